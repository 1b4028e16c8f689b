package store

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// SchemaVersion is the layout of keys and values this program writes: the
// tables (key prefixes), meta keys and, for every stored record, the TLV
// types it encodes. Open refuses a store with a higher number, written by a
// newer satstream, rather than read it with fields it does not know: an
// older binary that rewrote such a record would silently drop them. Every
// layout change bumps it, with a step in migrations; TestStoredFieldAddedWithoutSchemaBump
// fails until both are done (see the package comment).
const SchemaVersion uint32 = 4

// migration upgrades a store by one schema version.
type migration struct {
	// from is the version the step upgrades, to from+1.
	from uint32

	// what says what changed, for the log.
	what string

	// apply rewrites what has to change. It runs in one transaction
	// with the new version stamp: a crash or an error leaves the store
	// at the old version, and the next Open runs the step again.
	apply func(t *txn) error
}

// migrations holds one step per version: migrations[i] upgrades version
// i+1 to i+2, so there are always SchemaVersion-1 of them. A step that
// only adds fields or tables has nothing to rewrite (old records decode the
// new fields as zero); it still exists, so the numbers stay a plain
// sequence.
var migrations = []migration{
	{
		from: 1,
		what: "receiver: Plan.DefaultIncrement, Payment.Rate and the held " +
			"table; sender: subscription offer, pricing, pause and " +
			"revision fields, attempt fee limit, day, cancel and tries " +
			"(nothing to rewrite: records without them read them as zero)",
		apply: func(*txn) error { return nil },
	},
	{
		from: 2,
		what: "receiver: ReceiverSubscription.CancelledAt, refusal " +
			"counters, the index of each subscription's refused " +
			"payments and the refusal event rate limit (nothing to " +
			"rewrite: older refused rows are simply not indexed, and " +
			"a subscription without a cancel time ends at paid_until)",
		apply: func(*txn) error { return nil },
	},
	{
		from: 3,
		what: "receiver: Payment.BeforePaidUntil, BeforeRemainder, " +
			"BeforeState and CreditNo, ReceiverSubscription." +
			"CreditCount, SenderSubscription.CancelledAt: the subscription as it was before each " +
			"credit, so a reversal restores it and re-applies the " +
			"later credits (nothing to rewrite: older payments read " +
			"them as zero and are reversed by arithmetic); pending " +
			"subscriptions leave the paid-until index when next " +
			"written",
		apply: func(*txn) error { return nil },
	},
}

// checkSchema stamps a new store with SchemaVersion, migrates an older one
// step by step, and refuses stores that are foreign or too new.
func (db *DB) checkSchema() error {
	version, found, err := db.readSchema()
	switch {
	case err != nil:
		return err
	case !found:
		if err := db.stampSchema(); err != nil {
			return err
		}
		log.Infof("Created store %s with schema version %d", db.dir, SchemaVersion)
		return nil
	case version > SchemaVersion:
		return fmt.Errorf("%w: %s has schema version %d, this satstream "+
			"understands up to %d; upgrade satstream (an older one would "+
			"drop the fields it does not know)", ErrSchemaTooNew, db.dir,
			version, SchemaVersion)
	case version == 0:
		return fmt.Errorf("%w: schema version 0", ErrCorrupt)
	case version < SchemaVersion:
		return db.migrate(version, SchemaVersion, migrations)
	}
	return nil
}

// readSchema reads the stored schema version. A store without one is new
// if it is empty and foreign otherwise.
func (db *DB) readSchema() (uint32, bool, error) {
	var (
		version uint32
		found   bool
		empty   = true
	)
	err := db.bdb.View(func(txn *badger.Txn) error {
		item, err := txn.Get(keySchemaVersion)
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
			it := txn.NewIterator(badger.IteratorOptions{})
			defer it.Close()
			it.Rewind()
			empty = !it.Valid()
			return nil
		case err != nil:
			return err
		}
		found = true
		return item.Value(func(v []byte) error {
			if len(v) != 4 {
				return fmt.Errorf("%w: schema version of %d bytes", ErrCorrupt, len(v))
			}
			version = binary.BigEndian.Uint32(v)
			return nil
		})
	})
	switch {
	case err != nil && errors.Is(err, ErrCorrupt):
		return 0, false, err
	case err != nil:
		return 0, false, fmt.Errorf("%w: read schema version: %v", ErrCorrupt, err)
	case !found && !empty:
		return 0, false, fmt.Errorf("%w: %s is a badger database without a "+
			"satstream schema version", ErrForeign, db.dir)
	}
	return version, found, nil
}

// stampSchema writes SchemaVersion into a new store, durably.
func (db *DB) stampSchema() error {
	return db.schemaStep(SchemaVersion, nil)
}

// migrate runs steps from version from up to version to, each in its own
// transaction that ends by stamping its new version.
func (db *DB) migrate(from, to uint32, steps []migration) error {
	for v := from; v < to; v++ {
		i := int(v) - 1
		if i < 0 || i >= len(steps) || steps[i].from != v {
			return fmt.Errorf("store: no migration from schema version %d", v)
		}
		step := steps[i]
		if err := db.schemaStep(v+1, step.apply); err != nil {
			return fmt.Errorf("store: migrate %s from schema version %d "+
				"to %d (%s): %w", db.dir, v, v+1, step.what, err)
		}
		log.Infof("Migrated store %s from schema version %d to %d: %s",
			db.dir, v, v+1, step.what)
	}
	return nil
}

// schemaStep runs apply (if any) and stamps version in one transaction,
// then syncs it to disk.
func (db *DB) schemaStep(version uint32, apply func(t *txn) error) error {
	t := &txn{bt: db.bdb.NewTransaction(true), update: true}
	defer t.bt.Discard()
	if apply != nil {
		if err := apply(t); err != nil {
			return err
		}
	}
	if err := t.set(keySchemaVersion, be32(version)); err != nil {
		return err
	}
	if err := t.bt.Commit(); err != nil {
		return fmt.Errorf("store: write schema version: %w", translateErr(err))
	}
	if db.opts.InMemory {
		return nil
	}
	if err := db.logs.sync(); err != nil {
		return fmt.Errorf("store: sync schema version: %w", err)
	}
	return nil
}
