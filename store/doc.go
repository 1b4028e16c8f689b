// Package store is satstream's durable ledger, on badger v4, for both
// daemons: the receiver's subscriptions, payment ledger, lnd resume point and
// webhook outbox, and the sender's subscriptions, payment attempts (written
// before they are sent) and daily spend.
//
// Every logical step is one transaction (ReceiverStore.Update,
// SenderStore.Update), so crediting a payment, moving the settle index and
// queueing its events happen together or not at all. An Update returns only
// once its step is on disk: commits are group-committed, many steps sharing
// one round of fsyncs of badger's log files (every write-ahead and value
// log not yet synced for good, see logsync.go), which keeps durability
// without paying one fsync per step. Reads never act on a step before it
// is on disk: a View, an Update that wrote nothing or a Backup whose
// snapshot may hold a step newer than the last good round waits for the
// next one. If a badger write or an fsync fails, or either takes longer
// than Options.StallTimeout (ErrStalled), or badger logs that a memtable
// flush failed, the store fails for good: that Update and every later
// operation return ErrFailed, DB.Failed is closed, and the daemon stops; a
// restart re-reads the ledger from disk (Open syncs what a killed process
// left unsynced before anything reads it).
//
// The store persists and indexes; it knows no domain rules. State
// transitions and credit arithmetic belong to the receiver and sender.
//
// Keys are a one-byte table prefix followed by fixed-width big-endian
// fields (see keys.go); values are a version byte and an lnd TLV stream (see
// codec.go), so adding a field is adding a TLV type.
//
// The schema version key is checked at Open (schema.go): a store written by
// a newer satstream is refused with ErrSchemaTooNew, an older one is
// migrated one version at a time, each step one transaction that ends by
// stamping its version. Every change to what the store writes (a new TLV
// type in a record, a new record type, table or meta key) is a new schema
// version, because an older binary would otherwise open the store, decode
// records without the new field and drop it when it rewrites them. To add
// a field:
//
//  1. give it a new TLV type in the record's records() (codec.go); a type
//     number, once released, keeps its meaning forever;
//  2. bump SchemaVersion in schema.go;
//  3. append the step {from: old version} to migrations, with an apply that
//     rewrites what must change (nothing, when records without the field
//     may read it as zero). A step that rewrites records cannot do it in
//     one transaction on a real ledger: badger refuses a transaction above
//     ~15% of the memtable (ErrTooBig). Such a step must run in batches,
//     each batch idempotent (re-running it after a crash changes nothing),
//     and stamp the new version in the last batch only, so a crash mid-way
//     resumes the migration at the next Open;
//  4. add schemaHistory[new version] in schema_test.go: a copy of the last
//     entry with the new type. TestStoredFieldAddedWithoutSchemaBump fails
//     until the layout, the version and the step agree.
package store
