package pgtest

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// TestServerLeftRunningAfterTest reproduces a harness that leaks: after the
// test's cleanup the postmaster must be gone and its directory removed.
func TestServerLeftRunningAfterTest(t *testing.T) {
	var (
		srv *Server
		dsn string
	)
	t.Run("use", func(t *testing.T) {
		srv = Start(t)
		dsn = srv.NewDatabase(t)

		ctx, cancel := context.WithTimeout(context.Background(),
			time.Minute)
		defer cancel()
		for _, d := range []string{dsn, srv.TCPDSN("postgres")} {
			conn, err := pgx.Connect(ctx, d)
			require.NoError(t, err, d)
			var one int
			require.NoError(t, conn.QueryRow(ctx, "SELECT 1").Scan(&one))
			require.Equal(t, 1, one)

			// Runs as a non-root user even when we are root.
			var super bool
			require.NoError(t, conn.QueryRow(ctx,
				"SELECT rolsuper FROM pg_roles WHERE "+
					"rolname = current_user").Scan(&super))
			require.True(t, super)
			require.NoError(t, conn.Close(ctx))
		}
		st, err := os.Stat(filepath.Join(srv.dataDir(), "PG_VERSION"))
		require.NoError(t, err)
		if os.Geteuid() == 0 {
			require.NotZero(t, st.Sys().(*syscall.Stat_t).Uid)
		}
	})

	// The subtest's cleanup ran: the process has exited, the directory
	// is gone.
	select {
	case <-srv.exited:
	default:
		t.Fatal("postmaster still running after cleanup")
	}
	require.Error(t, syscall.Kill(srv.cmd.Process.Pid, 0))
	_, err := os.Stat(srv.Dir)
	require.True(t, os.IsNotExist(err), "directory %s left: %v", srv.Dir, err)
}

// TestDatabasesOfTwoTestsShareData reproduces tests seeing each other's
// tables: every NewDatabase is empty.
func TestDatabasesOfTwoTestsShareData(t *testing.T) {
	srv := Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	a, b := srv.NewDatabase(t), srv.NewDatabase(t)
	require.NotEqual(t, a, b)

	ca, err := pgx.Connect(ctx, a)
	require.NoError(t, err)
	defer ca.Close(ctx)
	_, err = ca.Exec(ctx, "CREATE TABLE x (id int)")
	require.NoError(t, err)

	cb, err := pgx.Connect(ctx, b)
	require.NoError(t, err)
	defer cb.Close(ctx)
	var n int
	require.NoError(t, cb.QueryRow(ctx, "SELECT count(*) FROM "+
		"information_schema.tables WHERE table_name = 'x'").Scan(&n))
	require.Zero(t, n)
}

// TestMissingBinariesNotReported reproduces a harness that starts nothing
// and says nothing: missing binaries are an error naming where it looked
// (Start turns it into a skip, or a failure with SATSTREAM_REQUIRE_POSTGRES=1).
func TestMissingBinariesNotReported(t *testing.T) {
	t.Setenv("SATSTREAM_PG_BIN", filepath.Join(t.TempDir(), "nothing"))
	_, err := BinDir()
	require.Error(t, err)
	require.Contains(t, err.Error(), "SATSTREAM_PG_BIN")
}
