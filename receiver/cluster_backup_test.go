package receiver

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/satstream/satstream/common"
	"github.com/stretchr/testify/require"
)

// TestBackupOfPostgresLedgerStreamsNothing: on PostgreSQL there is no
// badger ledger to snapshot; POST /v1/backup must say, in one line, to use
// pg_dump instead of answering with an empty or foreign backup.
func TestBackupOfPostgresLedgerStreamsNothing(t *testing.T) {
	t.Parallel()
	tokens := common.Tokens{Admin: "adm", ReadOnly: "ro"}
	h := refuseBackup(http.NotFoundHandler(), tokens)
	tests := []struct {
		name, token string
		want        int
	}{
		{"admin", "adm", http.StatusNotImplemented},
		{"no token", "", http.StatusUnauthorized},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost,
				common.BackupPath, nil)
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			require.Equal(t, tc.want, rec.Code)
			if tc.want == http.StatusNotImplemented {
				require.Contains(t, rec.Body.String(), "pg_dump")
			}
		})
	}
	// Other paths are the API's.
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/plans", nil))
	require.Equal(t, http.StatusNotFound, rec.Code)
}

// TestRestoreIntoPostgresReceiverWritesUnreadLedger: a badger backup
// restored into the data directory of a receiver configured for
// PostgreSQL would never be read; the restore is refused.
func TestRestoreIntoPostgresReceiverWritesUnreadLedger(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, conf string
		refused    bool
	}{
		{"no config file", "", false},
		{"badger", "[db]\ndb.backend=badger\n", false},
		{"postgres", "[db]\ndb.backend=postgres\n" +
			"db.postgres.dsn=host=/run/postgresql dbname=s\n", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.conf != "" {
				require.NoError(t, os.WriteFile(filepath.Join(dir,
					defaultConfigName), []byte(tc.conf), 0o600))
			}
			err := CheckRestorable(dir)
			if tc.refused {
				require.ErrorIs(t, err, ErrBackupPostgres)
				return
			}
			require.NoError(t, err)
		})
	}
}
