package store

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"github.com/satstream/satstream/tlv"
)

// SchemaVersion is the layout of keys and values this program writes: the
// tables (key prefixes), meta keys and, for every stored record, the TLV
// types it encodes. Open refuses a store with a higher number, written by a
// newer satstream, rather than read it with fields it does not know: an
// older binary that rewrote such a record would silently drop them. Every
// layout change bumps it, with a step in migrations; TestStoredFieldAddedWithoutSchemaBump
// fails until both are done (see the package comment).
const SchemaVersion uint32 = 9

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
	batch func(t *txn, after []byte, lim batchLimit) ([]byte, error)
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
			"subscription, Event.UID (a public event id, derived " +
			"from the event) for every stored event, and payment " +
			"reasons and event payloads that named the secret " +
			"subscription id name its public id",
		batch: migratePublicIDs,
	},
	{
		from: 5,
		what: "IdemRecord.Applied: an idempotency key whose request " +
			"committed its effect (nothing to rewrite: an older " +
			"record reads it as false, and expires as before)",
		apply: func(*txn) error { return nil },
	},
	{
		from: 6,
		what: "sender: Attempt.Destination, the provider node an " +
			"attempt is sent to (nothing to rewrite: older attempts " +
			"read it as zero, which means the offer's primary node)",
		apply: func(*txn) error { return nil },
	},
	{
		from: 7,
		what: "Event.FinishedAt: the webhook endpoints an event " +
			"finished at, and Delivery.Manual: a manual retry " +
			"(nothing to rewrite: an older record reads them as " +
			"not kept and false, and reads as before)",
		apply: func(*txn) error { return nil },
	},
	{
		from: 8,
		what: "receiver: the paid-until index (pRSubByPaid) keys a " +
			"past-due subscription by the end of its grace period " +
			"instead of its paid time, so the expiry scan reads only " +
			"subscriptions with a state change due",
		batch: migrateDueIndex,
	},
}

// migrateDueIndex is the schema 8 -> 9 step: it moves the index entry of
// every past-due subscription with a grace period from its paid time to
// the end of its grace (ReceiverSubscription.dueAt). Each rewrite is
// idempotent: deleting a missing entry and setting a present one change
// nothing.
func migrateDueIndex(t *txn, after []byte, lim batchLimit) ([]byte, error) {
	var (
		last []byte
		subs []*ReceiverSubscription
		n    int
		size int64
		full bool
	)
	var start []byte
	if after != nil {
		start = successor(after)
	}
	err := t.scan([]byte{pRSub}, start, true,
		func(k []byte, item *badger.Item) error {
			// Every subscription read counts toward the limit,
			// rewritten or not.
			if n > 0 && (n >= lim.count || size >= lim.bytes) {
				full = true
				return ErrStop
			}
			n++
			size += int64(len(k)) + item.ValueSize()
			last = append(last[:0], k...)
			s := &ReceiverSubscription{}
			err := item.Value(func(v []byte) error {
				return decodeRecord(v, s)
			})
			if err != nil {
				return fmt.Errorf("subscription %x: %w", k, err)
			}
			if s.State == SubPastDue && s.Terms.Grace != 0 {
				subs = append(subs, s)
			}
			return nil
		})
	if err != nil {
		return nil, err
	}
	// Writes happen after the walk: a read-write transaction's iterator
	// is not written through.
	for _, s := range subs {
		if err := t.del(rsubPaidKey(s.PaidUntil, s.ID)); err != nil {
			return nil, err
		}
		if err := t.set(rsubPaidKey(s.dueAt(), s.ID), nil); err != nil {
			return nil, err
		}
	}
	if !full {
		return nil, nil
	}
	return append([]byte(nil), last...), nil
}

// migrateBatch is the most records one batch of a batched migration step
// rewrites. batchLimit also bounds a batch by bytes, from badger's
// per-transaction limits for the configured memtable.
const migrateBatch = 500

// migrateProgressEvery is how many batches pass between two progress lines
// in the log.
const migrateProgressEvery = 20

// batchLimit bounds what one batch of a batched step reads and rewrites.
type batchLimit struct {
	// count is the most records a batch handles.
	count int
	// bytes is the most bytes (keys and values read, as an estimate of
	// what is written back) a batch handles; at least one record is
	// always handled.
	bytes int64
}

// defaultBatchLimit is a quarter of what badger lets one transaction
// hold with this store's memtable, and at most migrateBatch records.
func (db *DB) defaultBatchLimit() batchLimit {
	return batchLimit{
		count: int(max(1, min(int64(migrateBatch),
			db.bdb.MaxBatchCount()/4))),
		bytes: db.bdb.MaxBatchSize() / 4,
	}
}

// eventUIDTag separates a migrated event's derived UID from every other
// use of sha256 in satstream.
const eventUIDTag = "satstream/event-uid/v1"

// legacyEventUID derives the UID of an event stored before events had
// one: the first 16 bytes of sha256(tag || id || created_at || type ||
// payload as stored), with id and created_at (Unix nanoseconds) as 8
// big-endian bytes and type as 2. It is derived rather than random so that
// migrating the same backup twice gives each event the same id, and a
// consumer that deduplicates by id does not process it twice. Events
// appended later get random ids.
func legacyEventUID(ev *Event) EventUID {
	h := sha256.New()
	h.Write([]byte(eventUIDTag))
	h.Write(be64(uint64(ev.ID)))
	h.Write(be64(uint64(ev.CreatedAt.UnixNano())))
	var typ [2]byte
	binary.BigEndian.PutUint16(typ[:], uint16(ev.Type))
	h.Write(typ[:])
	h.Write(ev.Payload)
	var u EventUID
	copy(u[:], h.Sum(nil))
	return u
}

// migratePublicIDs is the schema 4 -> 5 step: it indexes every receiver
// subscription by its public id, replaces the secret subscription id in
// refusal reasons of stored payments (older versions named an unknown
// subscription by its secret in a row without an id), gives every event a
// UID derived from its content (legacyEventUID), and replaces the secret
// subscription id in event payloads (the webhook body and the API's event
// list carry them) by the public id. Each rewrite is idempotent: an
// indexed id is indexed again, an event with a UID keeps it, and a reason
// or payload without the secret is left as it is.
func migratePublicIDs(t *txn, after []byte, lim batchLimit) ([]byte, error) {
	type work struct {
		k   []byte
		sub SubID
		pay *Payment
		ev  *Event
	}
	var (
		todo []work
		size int64
		full bool
	)
	// The tables in key order, so after's prefix says where to resume.
	for _, prefix := range []byte{pRSub, pPayment, pEvent} {
		if after != nil && after[0] > prefix {
			continue
		}
		var start []byte
		if after != nil && after[0] == prefix {
			start = successor(after)
		}
		err := t.scan([]byte{prefix}, start, true,
			func(k []byte, item *badger.Item) error {
				if len(todo) > 0 && (len(todo) >= lim.count ||
					size >= lim.bytes) {

					full = true
					return ErrStop
				}
				// A rewrite is about the size of what it
				// replaces, plus the public id index entry.
				size += 2*int64(len(k)) + item.ValueSize() + 64
				w := work{k: append([]byte(nil), k...)}
				var rec recorder
				switch prefix {
				case pRSub:
					if len(k) != 1+len(SubID{}) {
						return fmt.Errorf("%w: subscription key "+
							"%x", ErrCorrupt, k)
					}
					copy(w.sub[:], k[1:])
				case pPayment:
					w.pay = &Payment{}
					rec = w.pay
				default:
					w.ev = &Event{}
					rec = w.ev
				}
				if rec == nil {
					todo = append(todo, w)
					return nil
				}
				err := item.Value(func(v []byte) error {
					return decodeRecord(v, rec)
				})
				if err != nil {
					return err
				}
				todo = append(todo, w)
				return nil
			})
		if err != nil {
			return nil, err
		}
		if full {
			break
		}
	}
	// Writes happen after the walk: a read-write transaction's iterator
	// is not written through.
	for _, w := range todo {
		var err error
		switch {
		case w.pay != nil:
			err = redactPayment(t, w.k, w.pay)
		case w.ev != nil:
			err = redactEvent(t, w.k, w.ev)
		default:
			pub := w.sub.PublicID()
			err = t.set(rsubPublicKey(pub),
				append([]byte(nil), w.sub[:]...))
		}
		if err != nil {
			return nil, err
		}
	}
	if !full {
		return nil, nil
	}
	return todo[len(todo)-1].k, nil
}

// redactPayment rewrites the stored payment p (at k) if its reason names
// a secret subscription id.
func redactPayment(t *txn, k []byte, p *Payment) error {
	reason := p.Reason
	if !p.SubID.IsZero() {
		reason = strings.ReplaceAll(reason, p.SubID.Hex(),
			p.SubID.PublicID().String())
	}
	reason = tlv.RedactSecrets(reason)
	if reason == p.Reason {
		return nil
	}
	p.Reason = reason
	return t.put(k, p)
}

// redactEvent gives the stored event ev (at k) its UID, if it has none,
// and replaces the secret subscription id in its payload: the event's own
// and, in events of payments to unknown subscriptions (which have no
// id), the one the refusal reason names ("subscription <secret>").
func redactEvent(t *txn, k []byte, ev *Event) error {
	changed := false
	if ev.UID.IsZero() {
		// From the payload as stored, before redaction.
		ev.UID, changed = legacyEventUID(ev), true
	}
	payload := string(ev.Payload)
	if !ev.SubID.IsZero() {
		payload = strings.ReplaceAll(payload, ev.SubID.Hex(),
			ev.SubID.PublicID().String())
	}
	payload = tlv.RedactSecretsAfter(payload, "subscription ")
	if payload != string(ev.Payload) {
		ev.Payload, changed = []byte(payload), true
	}
	if !changed {
		return nil
	}
	return t.put(k, ev)
}

// checkSchema stamps a new store with SchemaVersion, migrates an older one
// step by step, and refuses stores that are foreign or too new.
func (db *DB) checkSchema(ctx context.Context) error {
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
		return db.migrate(ctx, version, SchemaVersion, migrations)
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
// transaction that ends by stamping its new version. ctx, checked between
// batches, interrupts a long step; the next Open resumes it.
func (db *DB) migrate(ctx context.Context, from, to uint32,
	steps []migration) error {

	for v := from; v < to; v++ {
		i := int(v) - 1
		if i < 0 || i >= len(steps) || steps[i].from != v {
			return fmt.Errorf("store: no migration from schema version %d", v)
		}
		step := steps[i]
		var err error
		if step.batch != nil {
			log.Infof("Migrating store %s from schema version %d to "+
				"%d: %s; this reads every record it names, so it "+
				"takes time in proportion to their number",
				db.dir, v, v+1, step.what)
			err = db.batchedStep(ctx, v+1, step.batch,
				db.defaultBatchLimit())
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
// of which stamps version. A batch badger finds too big (ErrTooBig: the
// estimate in lim was wrong) is retried with half the limit.
func (db *DB) batchedStep(ctx context.Context, version uint32,
	batch func(t *txn, after []byte, lim batchLimit) ([]byte, error),
	lim batchLimit) error {

	var (
		after   []byte
		batches int
	)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var next []byte
		err := db.commitStep(version, func(t *txn) (bool, error) {
			var err error
			next, err = batch(t, after, lim)
			return next == nil, err
		})
		if errors.Is(err, ErrTooBig) && lim.count > 1 {
			lim.count /= 2
			lim.bytes /= 2
			log.Debugf("Migration batch too big; halving it to %d "+
				"records", lim.count)
			continue
		}
		if err != nil || next == nil {
			return err
		}
		after = next
		batches++
		if batches%migrateProgressEvery == 0 {
			log.Infof("Migrating store %s to schema version %d: %d "+
				"batches done, at key %x", db.dir, version,
				batches, after)
		}
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
	// A migration rewrites the ledger in batches: like any write step,
	// refused (nothing written) before badger writes into a full disk.
	if err := db.space.check(); err != nil {
		return fmt.Errorf("store: upgrade to schema %d: %w", version, err)
	}
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
