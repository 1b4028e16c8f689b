package store

import (
	"bytes"
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
const SchemaVersion uint32 = 5

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

	// batch, set instead of apply, rewrites records in batches, each its
	// own transaction, because a real ledger holds more than one badger
	// transaction may (ErrTxnTooBig). It is called with after, the last
	// key it handled (nil at first), handles some records after it and
	// returns the last key it handled, or nil when there is nothing
	// left: that final call's transaction stamps the new version. Each
	// record's rewrite must be idempotent, since a crash resumes the
	// step from the first record at the next Open.
	batch func(t *txn, after []byte) ([]byte, error)
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
	{
		from: 4,
		what: "receiver: the public id index (pRSubByPublic) of every " +
			"subscription, Event.UID (a random public event id) for " +
			"every stored event, and event payloads that named the " +
			"secret subscription id name its public id",
		batch: migratePublicIDs,
	},
}

// migrateBatch is how many records one batch of a batched migration step
// rewrites: far below badger's transaction limit on the smallest memtable.
const migrateBatch = 500

// migratePublicIDs is the schema 4 -> 5 step: it indexes every receiver
// subscription by its public id, gives every event a random UID, and
// replaces the secret subscription id in event payloads (the webhook body
// and the API's event list carry them) by the public id. Each rewrite is
// idempotent: an indexed id is indexed again, an event with a UID keeps
// it, and a payload without the secret is left as it is.
func migratePublicIDs(t *txn, after []byte) ([]byte, error) {
	type work struct {
		k   []byte
		sub SubID
		ev  *Event
	}
	var (
		todo []work
		last []byte
	)
	for _, prefix := range []byte{pRSub, pEvent} {
		if after != nil && after[0] > prefix {
			continue
		}
		var start []byte
		if after != nil && after[0] == prefix {
			start = successor(after)
		}
		err := t.scan([]byte{prefix}, start, true,
			func(k []byte, item *badger.Item) error {
				if len(todo) >= migrateBatch {
					return ErrStop
				}
				w := work{k: append([]byte(nil), k...)}
				switch prefix {
				case pRSub:
					if len(k) != 1+len(SubID{}) {
						return fmt.Errorf("%w: subscription key "+
							"%x", ErrCorrupt, k)
					}
					copy(w.sub[:], k[1:])
				default:
					w.ev = &Event{}
					err := item.Value(func(v []byte) error {
						return decodeRecord(v, w.ev)
					})
					if err != nil {
						return err
					}
				}
				todo = append(todo, w)
				return nil
			})
		if err != nil {
			return nil, err
		}
		if len(todo) >= migrateBatch {
			break
		}
	}
	// Writes happen after the walk: a read-write transaction's iterator
	// is not written through.
	for _, w := range todo {
		last = w.k
		if w.ev == nil {
			pub := w.sub.PublicID()
			if err := t.set(rsubPublicKey(pub), w.sub[:]); err != nil {
				return nil, err
			}
			continue
		}
		ev, changed := w.ev, false
		if ev.UID.IsZero() {
			uid, err := NewEventUID()
			if err != nil {
				return nil, err
			}
			ev.UID, changed = uid, true
		}
		if !ev.SubID.IsZero() {
			secret := []byte(ev.SubID.Hex())
			if bytes.Contains(ev.Payload, secret) {
				ev.Payload = bytes.ReplaceAll(ev.Payload, secret,
					[]byte(ev.SubID.PublicID().String()))
				changed = true
			}
		}
		if changed {
			if err := t.put(w.k, ev); err != nil {
				return nil, err
			}
		}
	}
	if len(todo) < migrateBatch {
		return nil, nil
	}
	return last, nil
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
		var err error
		if step.batch != nil {
			err = db.batchedStep(v+1, step.batch)
		} else {
			err = db.schemaStep(v+1, step.apply)
		}
		if err != nil {
			return fmt.Errorf("store: migrate %s from schema version %d "+
				"to %d (%s): %w", db.dir, v, v+1, step.what, err)
		}
		log.Infof("Migrated store %s from schema version %d to %d: %s",
			db.dir, v, v+1, step.what)
	}
	return nil
}

// batchedStep runs a batched step: one transaction per batch, the last
// of which stamps version.
func (db *DB) batchedStep(version uint32,
	batch func(t *txn, after []byte) ([]byte, error)) error {

	var after []byte
	for {
		var next []byte
		err := db.commitStep(version, func(t *txn) (bool, error) {
			var err error
			next, err = batch(t, after)
			return next == nil, err
		})
		if err != nil || next == nil {
			return err
		}
		after = next
	}
}

// schemaStep runs apply (if any) and stamps version in one transaction,
// then syncs it to disk.
func (db *DB) schemaStep(version uint32, apply func(t *txn) error) error {
	return db.commitStep(version, func(t *txn) (bool, error) {
		if apply == nil {
			return true, nil
		}
		return true, apply(t)
	})
}

// commitStep runs apply in one transaction, stamps version in it if apply
// says so, commits and syncs it to disk.
func (db *DB) commitStep(version uint32, apply func(t *txn) (bool, error)) error {
	t := &txn{bt: db.bdb.NewTransaction(true), update: true}
	defer t.bt.Discard()
	stamp, err := apply(t)
	if err != nil {
		return err
	}
	// A batch of a longer step commits its writes without the version.
	if stamp {
		if err := t.set(keySchemaVersion, be32(version)); err != nil {
			return err
		}
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
