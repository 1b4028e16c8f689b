package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/satstream/satstream/store"
)

// migrationFiles are the schema steps, migrations/NNNN_name.sql, applied in
// number order. A file, once released, never changes: a change to the
// schema is a new file.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrationLock is the pg_advisory_xact_lock key every migration step
// takes, so receivers starting together apply each step once ("satstrm"
// in ASCII).
const migrationLock int64 = 0x7361747374726d

type migration struct {
	version int
	name    string
	sql     string
}

// loadMigrations returns the embedded steps in order, checking that they
// are numbered 1, 2, 3... without gaps.
func loadMigrations() ([]migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, n := range names {
		base := path.Base(n)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration file %s: name must be "+
				"NNNN_name.sql", base)
		}
		b, err := migrationFiles.ReadFile(n)
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: base,
			sql: string(b)})
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].version < out[j].version
	})
	for i, m := range out {
		if m.version != i+1 {
			return nil, fmt.Errorf("migration %s: expected version %d",
				m.name, i+1)
		}
	}
	return out, nil
}

// SchemaVersion is the newest schema this binary knows.
func SchemaVersion() int {
	ms, err := loadMigrations()
	if err != nil {
		panic(err) // the embedded files are part of the binary
	}
	return len(ms)
}

// createVersionTable holds one row per applied step.
const createVersionTable = `CREATE TABLE IF NOT EXISTS satstream_schema (
	version    integer PRIMARY KEY,
	name       text NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now()
)`

// migrate brings the schema up to SchemaVersion, one transaction per step,
// each under the migration advisory lock, and refuses a database written
// by a newer binary.
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	ms, err := loadMigrations()
	if err != nil {
		return err
	}
	for {
		done, err := migrateStep(ctx, pool, ms)
		if err != nil || done {
			return err
		}
	}
}

// migrateStep applies the next missing step, if any, and reports whether
// the schema is current.
func migrateStep(ctx context.Context, pool *pgxpool.Pool,
	ms []migration) (bool, error) {

	done := false
	err := pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{},
		func(tx pgx.Tx) error {
			// Under the lock, a receiver starting at the same time
			// waits here and then finds the step applied.
			_, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)",
				migrationLock)
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, createVersionTable); err != nil {
				return err
			}
			var have int
			err = tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) "+
				"FROM satstream_schema").Scan(&have)
			if err != nil {
				return err
			}
			if err := checkApplied(ctx, tx, ms); err != nil {
				return err
			}
			switch {
			case have > len(ms):
				return fmt.Errorf("%w: database schema version %d, "+
					"this program knows up to %d",
					store.ErrSchemaTooNew, have, len(ms))
			case have == len(ms):
				done = true
				return nil
			}
			m := ms[have]
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return fmt.Errorf("migration %s: %w", m.name, err)
			}
			_, err = tx.Exec(ctx, "INSERT INTO satstream_schema "+
				"(version, name) VALUES ($1, $2)", m.version, m.name)
			return err
		})
	if err != nil && !errors.Is(err, store.ErrSchemaTooNew) {
		err = translate(err)
	}
	return done, err
}

// checkApplied compares the migrations the database records as applied
// with this program's of the same number. A number says nothing by itself:
// a build whose migration N was another file (a branch's, or one since
// reverted) leaves a schema this program would take for its own and run
// on without the indexes or constraints its N made.
func checkApplied(ctx context.Context, tx pgx.Tx, ms []migration) error {
	rows, err := tx.Query(ctx, "SELECT version, name FROM "+
		"satstream_schema WHERE version <= $1 ORDER BY version", len(ms))
	if err != nil {
		return err
	}
	type row struct {
		version int
		name    string
	}
	applied, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (
		row, error) {

		var a row
		return a, r.Scan(&a.version, &a.name)
	})
	if err != nil {
		return err
	}
	for _, a := range applied {
		if a.version < 1 || ms[a.version-1].name == a.name {
			continue
		}
		return fmt.Errorf("%w: database schema version %d was "+
			"applied as %s, this program's version %d is %s: the "+
			"database was migrated by a build with other "+
			"migrations", store.ErrCorrupt, a.version, a.name,
			a.version, ms[a.version-1].name)
	}
	return nil
}
