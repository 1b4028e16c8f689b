package store

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/lightningnetwork/lnd/tlv"
)

// Idempotency keys (Idempotency-Key on the APIs' POSTs) are kept in the
// same ledger as the effects they guard, so a POST retried after a daemon
// restart is answered from the first result instead of being executed a
// second time. The table is bounded: records expire (the caller passes the
// time to live) and their number is capped. The prefix values are on disk
// and never change; both daemons use the same tables.
//
// A handler's effect and its key meet in one transaction: every write
// transaction a handler commits under a key (WithIdemKey) also marks the
// key's record Applied. So a record begun but never answered (the daemon
// died, or the handler failed with a 5xx after its effect) tells whether an
// effect exists under its seed. One that applied nothing expires like any
// other; one that applied is never pruned nor replaced: past its time to
// live it leaves the expiry index and the cap's count and stays, without a
// response, until a retry answers it (it then expires a time to live after
// that answer). Its seed is what lets that retry find what the first
// execution created; dropping it would let the retry create a second
// subscription. Such records are few (one per effect whose answer was
// lost) and small, and only the admin token can make them.
const (
	// pIdem | scope(32) -> IdemRecord.
	pIdem byte = 0x30
	// pIdemByTime | createdAt(8) | scope(32) -> empty: the expiry order.
	pIdemByTime byte = 0x31
)

// keyIdemCount counts the records in pIdem, in the meta table.
var keyIdemCount = []byte{pMeta, 0x40}

// idemPrunePerCall bounds how many expired records one Begin removes, so a
// request never pays for a large backlog at once.
const idemPrunePerCall = 64

// ErrIdemFull is returned by IdemBegin when the table holds its cap of
// unexpired records: a new key is refused rather than an old one evicted,
// since evicting a live key would let its retry execute a second time.
var ErrIdemFull = errors.New("too many idempotency keys")

// ErrIdemLost is returned by a write transaction made under a key
// (WithIdemKey) whose record is gone or belongs to a newer request: its
// effect is not committed, since nothing would remember it under the key.
var ErrIdemLost = errors.New("idempotency key expired while its request ran")

// IdemRecord is the stored state of one idempotency key.
type IdemRecord struct {
	// Scope identifies the key: a hash of the credential, the route and
	// the client's key.
	Scope [32]byte
	// BodyHash is the SHA-256 of the first request's body.
	BodyHash [32]byte
	// Seed is random, chosen when the key was first seen: a handler that
	// creates something derives its id from it, so a request that is
	// executed again after a crash finds what it already created.
	Seed [16]byte
	// CreatedAt is when the key was first seen, or when the answer of
	// a key kept past its time to live was recorded; it expires a time
	// to live after that.
	CreatedAt time.Time
	// Done is set once the response below is recorded.
	Done bool
	// Applied is set in the same transaction as the first write the
	// request's handler committed: an effect exists under Seed.
	Applied bool
	// Status, ContentType and Body are the first response, replayed
	// byte for byte.
	Status      uint32
	ContentType string
	Body        []byte
}

func (r *IdemRecord) records() []tlv.Record {
	return []tlv.Record{
		rec32(1, &r.Scope),
		rec32(2, &r.BodyHash),
		rec16(3, &r.Seed),
		recTime(4, &r.CreatedAt),
		recBool(5, &r.Done),
		recU32(6, &r.Status),
		recString(7, &r.ContentType),
		recBytes(8, &r.Body),
		recBool(9, &r.Applied),
	}
}

func idemKey(scope [32]byte) []byte { return key(pIdem, scope[:]) }

func idemTimeKey(t time.Time, scope [32]byte) []byte {
	return key(pIdemByTime, timeKey(t), scope[:])
}

// kept reports whether an expired record must stay: its effect was applied
// and its answer never recorded, so its seed is still needed.
func (r *IdemRecord) kept() bool { return r.Applied && !r.Done }

// IdemBegin looks up the key of rec.Scope. If an unexpired record exists,
// or an expired one that is kept (applied, never answered), it is returned
// with created false. Otherwise rec (an expired record of the same scope is
// replaced) is stored and returned with created true. Expired records are
// pruned on the way; if the table still holds maxRecords unexpired ones,
// ErrIdemFull.
func (db *DB) IdemBegin(ctx context.Context, rec *IdemRecord, ttl time.Duration,
	maxRecords uint64) (*IdemRecord, bool, error) {

	var (
		out     *IdemRecord
		created bool
		full    bool
		fullN   uint64
	)
	err := db.update(ctx, func(t *txn) error {
		out, created, full = nil, false, false
		cutoff := rec.CreatedAt.Add(-ttl)
		n, err := pruneIdem(t, cutoff)
		if err != nil {
			return err
		}
		old := &IdemRecord{}
		err = t.get(idemKey(rec.Scope), old)
		switch {
		case err == nil && old.CreatedAt.After(cutoff):
			out = old
			return nil
		case err == nil && old.kept():
			// Its effect exists under its seed: the retry
			// executes with that seed. Not yet pruned: take it
			// out of the expiry index now.
			moved, err := unindexIdem(t, old)
			if err != nil {
				return err
			}
			if moved && n > 0 {
				if err := t.set(keyIdemCount,
					be64(n-1)); err != nil {
					return err
				}
			}
			out = old
			return nil
		case err == nil:
			// Expired but not yet pruned: replace it (or, at the
			// cap, drop it).
			if err := t.del(idemTimeKey(old.CreatedAt,
				old.Scope)); err != nil {
				return err
			}
			if err := t.del(idemKey(old.Scope)); err != nil {
				return err
			}
			n--
			if err := t.set(keyIdemCount, be64(n)); err != nil {
				return err
			}
		case !errors.Is(err, ErrNotFound):
			return err
		}
		if n >= maxRecords {
			// Refused, but what was pruned on the way stays
			// pruned: a rolled-back prune would never drain a
			// table filled past the cap (the stop reserve).
			full, fullN = true, n
			return nil
		}
		if err := t.put(idemKey(rec.Scope), rec); err != nil {
			return err
		}
		if err := t.set(idemTimeKey(rec.CreatedAt, rec.Scope),
			nil); err != nil {
			return err
		}
		out, created = rec, true
		return t.set(keyIdemCount, be64(n+1))
	})
	if err != nil {
		return nil, false, err
	}
	if full {
		return nil, false, fmt.Errorf("%w: %d keys seen in the last "+
			"%v (the cap)", ErrIdemFull, fullN, ttl)
	}
	return out, created, nil
}

// unindexIdem takes a kept record out of the expiry index, reporting
// whether it was still there.
func unindexIdem(t *txn, r *IdemRecord) (bool, error) {
	k := idemTimeKey(r.CreatedAt, r.Scope)
	ok, err := t.exists(k)
	if err != nil || !ok {
		return false, err
	}
	return true, t.del(k)
}

// pruneIdem deletes up to idemPrunePerCall records created at or before
// cutoff and returns the number of records left in the expiry index. A
// record whose effect was applied and never answered is only taken out of
// the index: its seed stays.
func pruneIdem(t *txn, cutoff time.Time) (uint64, error) {
	n, err := t.getU64(keyIdemCount)
	if err != nil {
		return 0, err
	}
	var expired [][32]byte
	var times [][]byte
	end := timeKey(cutoff)
	err = t.scan([]byte{pIdemByTime}, nil, false,
		func(k []byte, _ *badger.Item) error {
			if len(k) != 1+8+32 {
				return fmt.Errorf("%w: idempotency index key of "+
					"%d bytes", ErrCorrupt, len(k))
			}
			if string(k[1:9]) > string(end) ||
				len(expired) >= idemPrunePerCall {

				return ErrStop
			}
			var s [32]byte
			copy(s[:], k[9:])
			expired = append(expired, s)
			times = append(times, append([]byte(nil), k...))
			return nil
		})
	if err != nil {
		return 0, err
	}
	for i, s := range expired {
		if err := t.del(times[i]); err != nil {
			return 0, err
		}
		r := &IdemRecord{}
		switch err := t.get(idemKey(s), r); {
		case errors.Is(err, ErrNotFound):
		case err != nil:
			return 0, err
		case r.kept():
			log.Infof("Keeping idempotency key %x past its time to "+
				"live: its request took effect and was never "+
				"answered", s[:4])
		default:
			if err := t.del(idemKey(s)); err != nil {
				return 0, err
			}
		}
		if n > 0 {
			n--
		}
	}
	if len(expired) > 0 {
		if err := t.set(keyIdemCount, be64(n)); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// IdemFinish records the response of a key begun with IdemBegin (rec with
// Done set and the response filled in) at now. A record that expired and
// was pruned in between is not written again; a kept one (past its time to
// live, out of the expiry index) goes back into the index at now, so its
// answer is replayed for a time to live from now.
func (db *DB) IdemFinish(ctx context.Context, rec *IdemRecord,
	now time.Time) error {

	return db.update(ctx, func(t *txn) error {
		old := &IdemRecord{}
		err := t.get(idemKey(rec.Scope), old)
		switch {
		case errors.Is(err, ErrNotFound):
			return nil
		case err != nil:
			return err
		case old.Seed != rec.Seed:
			// Replaced after expiry by a newer request.
			return nil
		}
		out := *rec
		// Applied is only ever set by the handler's transactions.
		out.Applied = old.Applied
		out.CreatedAt = old.CreatedAt
		indexed, err := t.exists(idemTimeKey(old.CreatedAt, old.Scope))
		if err != nil {
			return err
		}
		if !indexed {
			out.CreatedAt = now
			if err := t.set(idemTimeKey(now, out.Scope),
				nil); err != nil {
				return err
			}
			n, err := t.getU64(keyIdemCount)
			if err != nil {
				return err
			}
			if err := t.set(keyIdemCount, be64(n+1)); err != nil {
				return err
			}
		}
		return t.put(idemKey(rec.Scope), &out)
	})
}

type idemKeyCtx struct{}

// idemMark names the key a request's write transactions mark as applied.
type idemMark struct {
	scope [32]byte
	seed  [16]byte
	// active is cleared when the handler returns, so a write made later
	// with a context derived from the request marks nothing.
	active *atomic.Bool
}

// WithIdemKey returns ctx under which every write transaction (of this
// store) that commits a change also marks the record of scope, begun with
// seed, as Applied, in the same commit: the effect and the fact that it
// happened are durable together. If the record is gone or was replaced,
// the transaction fails with ErrIdemLost and commits nothing. The marking
// stops when active is cleared.
func WithIdemKey(ctx context.Context, scope [32]byte, seed [16]byte,
	active *atomic.Bool) context.Context {

	return context.WithValue(ctx, idemKeyCtx{}, idemMark{scope: scope,
		seed: seed, active: active})
}

// IdemMarkOf returns the key a write transaction made under ctx must mark
// applied (see WithIdemKey), for a store other than this one (PostgreSQL)
// to do the same; ok is false when there is none or the handler returned.
func IdemMarkOf(ctx context.Context) (scope [32]byte, seed [16]byte, ok bool) {
	m, ok := ctx.Value(idemKeyCtx{}).(idemMark)
	if !ok || !m.active.Load() {
		return scope, seed, false
	}
	return m.scope, m.seed, true
}

// withIdemMark wraps a write transaction's fn so that, when it wrote
// something under a request's key, it also marks the key applied.
func withIdemMark(ctx context.Context, fn func(t *txn) error) func(t *txn) error {
	m, ok := ctx.Value(idemKeyCtx{}).(idemMark)
	if !ok {
		return fn
	}
	return func(t *txn) error {
		if err := fn(t); err != nil || !t.dirty || !m.active.Load() {
			return err
		}
		r := &IdemRecord{}
		err := t.get(idemKey(m.scope), r)
		switch {
		case errors.Is(err, ErrNotFound) ||
			(err == nil && r.Seed != m.seed):
			return fmt.Errorf("%w (its record is gone)", ErrIdemLost)
		case err != nil:
			return err
		case r.Applied || r.Done:
			return nil
		}
		r.Applied = true
		return t.put(idemKey(m.scope), r)
	}
}

// IdemCount returns the number of idempotency records stored.
func (db *DB) IdemCount(ctx context.Context) (uint64, error) {
	var n uint64
	err := db.view(ctx, func(t *txn) error {
		var err error
		n, err = t.getU64(keyIdemCount)
		return err
	})
	return n, err
}
