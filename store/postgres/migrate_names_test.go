package postgres_test

import (
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/satstream/satstream/store"
	"github.com/satstream/satstream/store/postgres"
	"github.com/satstream/satstream/store/postgres/pgtest"
	"github.com/satstream/satstream/store/storetest"
	"github.com/stretchr/testify/require"
)

// TestRevertedMigrationNumberLeavesDueIndexMissing reproduces a database
// migrated by a build of main between the pgperf merge and its revert,
// whose version 3 was 0003_credit_stays_on_row.sql (it dropped
// subscriptions_due). This build's version 3 is 0003_due_index.sql; the
// migrator compares version numbers only, so it finds the database up to
// date and runs without the due index (and a database from the expiry
// branch, whose version 2 was 0002_due_index.sql, never gets
// held_by_hash). Open must not accept a schema row whose name is not the
// migration this program has under that number.
func TestRevertedMigrationNumberLeavesDueIndexMissing(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	ctx := storetest.Ctx(t)
	require.NoError(t, open(t, dsn, 1).Close())

	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "DROP INDEX subscriptions_due; "+
		"UPDATE satstream_schema SET name = "+
		"'0003_credit_stays_on_row.sql' WHERE version = 3")
	require.NoError(t, err)

	s, err := postgres.Open(ctx, postgres.Config{DSN: dsn,
		NodePubkey: nodeKey(1)})
	if err == nil {
		defer s.Close()
		var n int
		require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM "+
			"pg_indexes WHERE indexname = 'subscriptions_due'").
			Scan(&n))
		require.Equal(t, 1, n, "opened without the due index")
	}
	require.ErrorIs(t, err, store.ErrCorrupt)
	require.ErrorContains(t, err, "0003_credit_stays_on_row.sql")
}
