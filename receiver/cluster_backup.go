package receiver

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"

	flags "github.com/jessevdk/go-flags"

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

// ErrBackupPostgres is returned by the backup and restore commands of a
// receiver whose ledger is in PostgreSQL.
var ErrBackupPostgres = errors.New(errBackupPostgres)

// CheckRestorable refuses a restore into the data directory dataDir of a
// receiver configured (in its config file, <dataDir>/receiver.conf) for a
// PostgreSQL ledger: a badger ledger restored there would never be read.
func CheckRestorable(dataDir string) error {
	cfg := DefaultConfig()
	path := filepath.Join(dataDir, defaultConfigName)
	if _, err := os.Stat(path); err != nil {
		return nil
	}
	parser := flags.NewParser(cfg, flags.IgnoreUnknown)
	if err := flags.NewIniParser(parser).ParseFile(path); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	if cfg.DB.Backend == BackendPostgres {
		return ErrBackupPostgres
	}
	return nil
}
