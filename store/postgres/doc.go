// Package postgres is satstream's PostgreSQL ledger for the receiver: the
// same store.ReceiverStore as the badger store (store.DB.Receiver), for a
// provider that runs several lnd nodes, each with its own
// satstream-receiver, over one database. Badger stays the default; nothing
// here is used unless the daemon is configured for it.
//
// # API (for the daemon's wiring)
//
//	s, err := postgres.Open(ctx, postgres.Config{
//		DSN:        "postgres://satstream@db/satstream?sslmode=verify-full",
//		NodePubkey: lndIdentityKey, // this receiver's lnd node
//		MaxConns:   16, MinConns: 1, ConnectTimeout: 10 * time.Second,
//	})
//	defer s.Close()
//	rs := s                          // store.ReceiverStore: Update, View
//	s.Bind(ctx, store.Binding{...})  // like store.DB.Bind, per node
//	s.NodeBinding(ctx)               // like store.DB.NodeBinding
//	s.IdemBegin / IdemFinish         // common/idem.Store, shared by nodes
//	s.Failed(), s.Err(), s.SpaceErr() // as store.DB; never fail for good
//	s.Ping(ctx)                      // health: store.ErrUnavailable if down
//
// *Store satisfies store.ReceiverStore and common/idem.Store; Failed, Err
// and SpaceErr exist so the daemon can watch both backends alike.
//
// # What is shared and what is per node
//
// Plans, subscriptions, payments, refusal counters, events, webhook
// deliveries and idempotency keys are shared by every receiver of the
// database. lnd's resume points (ReceiverTx.SettleIndex / AddIndex), the
// held-HTLC table (MarkHeld, ForEachHeld) and the node binding are kept per
// node, keyed by Config.NodePubkey: each receiver follows its own lnd.
//
// # Exactly-once, in the database
//
// The schema (migrations/*.sql) makes the database itself refuse a second
// credit: the payment hash is the primary key of payments, and a unique
// index over (subscription, sequence) of credited payments refuses a
// sequence credited twice (refused payments may repeat a sequence: a
// duplicate is refused and recorded). Amounts are msat in bigint with
// CHECK (>= 0); sequences, which a payer chooses from all of uint64, are
// numeric(20,0).
//
// # Transactions
//
// Update runs SERIALIZABLE and returns only after COMMIT, with
// synchronous_commit=on forced on every connection, so an acknowledged step
// is durable. A serialization failure or deadlock (40001, 40P01), or a
// unique violation that a concurrent step caused (23505), rolls back and
// runs fn again (the ReceiverStore contract allows it), with jittered
// exponential backoff, at most Config.MaxRetries times, then
// store.ErrConflict. A step that lost twice runs in the "slow lane": it
// takes an advisory lock exclusively before it begins (every other step
// holds it shared), so it runs alone and cannot lose again; that bounds the
// retries on a hot subscription. View runs REPEATABLE READ, READ ONLY: one
// consistent snapshot. ForEach scans read rows in chunks before calling
// back, so the callback may use the transaction (nested scans work).
//
// Why SERIALIZABLE rather than row locks (SELECT ... FOR UPDATE): the
// receiver's step is written against the ReceiverTx interface, which reads
// and writes several tables (payment by hash, subscription, sequence
// index, settle index, refusal counters, events); with row locks every
// read that a decision depends on would have to lock, including reads of
// rows that do not exist yet (the payment hash not seen before), which row
// locks cannot cover. SERIALIZABLE gives that guarantee for every read,
// and the contract already says fn may run again.
//
// # Predicate locks: read by index
//
// SERIALIZABLE remembers what each step read (predicate locks) and fails
// one of two steps whose reads and writes cross. How much a read covers
// decides how often that happens without a real conflict: a sequential
// scan locks the whole table, an index scan the index pages and rows it
// read. The planner scans every small table sequentially (a few dozen
// subscriptions, node_state, held, the refusal tables), so a read-write
// step sets enable_seqscan off at BEGIN and every lookup of the credit
// step is an index probe on a narrow key (held has an index on the hash
// for HeldAt, migration 0002). What still conflicts: a credit moves its
// subscription's paid_until_ns, which subscriptions_due indexes (the
// expiry sweep's query), so the update is not heap-only (HOT) and writes
// a new entry into the primary key's index page, which every other
// credit's lookup read; on a small table that page is the whole index.
// Dropping the index made the update HOT and cut retries tenfold in the
// benchmark, but the sweep would then read every active subscription each
// pass; a due column that changes rarely (paid_until bucketed by the
// hour, so most credits rewrite the same value and stay HOT) would keep
// both, and is not built yet. Stats counts the
// retries by cause, the slow-lane entries and the time spent waiting for
// the event order lock and in COMMIT; the benchmarks report them per
// credit.
//
// # Event ids commit in id order
//
// The webhook dispatcher keeps a cursor per endpoint and reads the pending
// events after it (ForEachPendingEvent); an event whose id is below the
// cursor when it commits would never be delivered. A sequence alone hands
// out ids in the order transactions ask, not the order they commit, so
// AppendEvent first takes a transaction-scoped advisory lock (per
// database, so for every node): a step draws event ids only after every
// step that drew lower ones has committed or rolled back, and a reader
// that sees id N+1 sees N. Event-appending steps thereby queue behind each
// other from their first append to their COMMIT (the append is the last
// write of the receiver's credit step); they wait, they are not aborted.
// A rolled-back step leaves a gap in the ids, never a late lower id.
//
// # When the database is unreachable
//
// Update, View, Open and Ping fail with an error wrapping
// store.ErrUnavailable; the receiver then refuses payments (fails the HTLC
// back) rather than settle money it cannot credit. The store stays usable
// and works again once the database is back. A COMMIT whose answer was lost
// is reported as ErrUnavailable too ("commit outcome unknown"): the step
// may have been applied; the receiver's held-HTLC reconciliation settles or
// reverses such a credit on its next pass.
//
// # Schema versions
//
// migrations/NNNN_name.sql are embedded and applied in order at Open, each
// in one transaction holding pg_advisory_xact_lock, so receivers starting
// together migrate once; satstream_schema records the versions applied. A
// database whose schema is newer than this binary knows is refused with
// store.ErrSchemaTooNew, like the badger store. A released file never
// changes: a schema change is a new numbered file.
//
// # Tests
//
// Package pgtest starts a throw-away PostgreSQL cluster for tests (no
// Docker); the conformance suite (store/storetest) runs against this store
// and the badger store.
package postgres
