package store

import (
	"context"
	"errors"
	"fmt"
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
	// CreatedAt is when the key was first seen; it expires a time to
	// live after that.
	CreatedAt time.Time
	// Done is set once the response below is recorded.
	Done bool
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
	}
}

func idemKey(scope [32]byte) []byte { return key(pIdem, scope[:]) }

func idemTimeKey(t time.Time, scope [32]byte) []byte {
	return key(pIdemByTime, timeKey(t), scope[:])
}

// IdemBegin looks up the key of rec.Scope. If an unexpired record exists it
// is returned with created false and nothing is written. Otherwise rec (an
// expired record of the same scope is replaced) is stored and returned with
// created true. Expired records are pruned on the way; if the table still
// holds maxRecords, ErrIdemFull.
func (db *DB) IdemBegin(ctx context.Context, rec *IdemRecord, ttl time.Duration,
	maxRecords uint64) (*IdemRecord, bool, error) {

	var (
		out     *IdemRecord
		created bool
	)
	err := db.update(ctx, func(t *txn) error {
		out, created = nil, false
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
		case err == nil:
			// Expired but not yet pruned: replace it.
			if err := t.del(idemTimeKey(old.CreatedAt,
				old.Scope)); err != nil {
				return err
			}
			n--
		case !errors.Is(err, ErrNotFound):
			return err
		}
		if n >= maxRecords {
			return fmt.Errorf("%w: %d keys seen in the last %v (the "+
				"cap)", ErrIdemFull, n, ttl)
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
	return out, created, nil
}

// pruneIdem deletes up to idemPrunePerCall records created at or before
// cutoff and returns the number of records left.
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
		if err := t.del(idemKey(s)); err != nil {
			return 0, err
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
// Done set and the response filled in). A record that expired and was
// pruned in between is not written again.
func (db *DB) IdemFinish(ctx context.Context, rec *IdemRecord) error {
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
		return t.put(idemKey(rec.Scope), rec)
	})
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
