package receiver

import (
	"net/http"

	"github.com/satstream/satstream/common"
)

// errBackupPostgres is the one line a backup or restore gets on a
// PostgreSQL ledger: the database is the cluster's, and PostgreSQL's own
// tools back it up consistently while every receiver runs.
const errBackupPostgres = "the ledger is in PostgreSQL (--db.backend=" +
	"postgres): back it up with pg_dump and restore it with pg_restore"

// refuseBackup answers POST /v1/backup on a PostgreSQL ledger with 501
// and the pg_dump pointer, and everything else from next.
func refuseBackup(next http.Handler, tokens common.Tokens) http.Handler {
	refuse := tokens.Middleware(http.HandlerFunc(
		func(w http.ResponseWriter, _ *http.Request) {
			common.WriteError(w, http.StatusNotImplemented,
				"not_supported", "", errBackupPostgres)
		}))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == common.BackupPath {
			refuse.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}
