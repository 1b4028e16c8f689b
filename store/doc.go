// Package store is satstream's durable ledger, on badger v4, for both
// daemons: the receiver's subscriptions, payment ledger, lnd resume point and
// webhook outbox, and the sender's subscriptions, payment attempts (written
// before they are sent) and daily spend.
//
// Every logical step is one transaction (ReceiverStore.Update,
// SenderStore.Update), so crediting a payment, moving the settle index and
// queueing its events happen together or not at all. An Update returns only
// once its step is on disk: commits are group-committed, many steps sharing
// one fsync, which keeps durability without paying one fsync per step.
//
// The store persists and indexes; it knows no domain rules. State
// transitions and credit arithmetic belong to the receiver and sender.
//
// Keys are a one-byte table prefix followed by fixed-width big-endian
// fields (see keys.go); values are a version byte and an lnd TLV stream (see
// codec.go), so adding a field is adding a TLV type. The schema version key
// is checked at Open.
package store
