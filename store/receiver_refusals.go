package store

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Refusals cost a payer nothing (the HTLC fails back), so what the receiver
// keeps about them must be bounded, or anyone could grow the ledger for
// free. These tables hold what it keeps instead of one row per refusal:
//
//   - a counter per refusal reason (the whole tally, whoever was refused);
//   - an index of the refused payment rows of each known subscription, so
//     the receiver can keep only the most recent ones;
//   - per subscription and reason, when a payment.refused event was last
//     queued, so such events can be rate-limited.
//
// The prefix values are on disk and never change; they sit next to the other
// receiver tables in keys.go's numbering (pRHeld is 0x18).
const (
	// pRefusedBySub | sub(16) | receivedAt(8) | hash(32) -> empty, for
	// every payment row in state PaymentRefused with a subscription id.
	pRefusedBySub byte = 0x19
	// pRefusalEvent | sub(16) | reason -> time(8): when a payment.refused
	// event of that reason was last queued for the subscription.
	pRefusalEvent byte = 0x1a
)

// keyRefusalCountPrefix | reason -> counter(8), in the meta table.
var keyRefusalCountPrefix = []byte{pMeta, 0x20}

// maxReasonKeyLen bounds the reason part of a key.
const maxReasonKeyLen = 64

func refusalCountKey(reason string) []byte {
	return key(pMeta, keyRefusalCountPrefix[1:], []byte(reason))
}

func refusedKey(p *Payment) []byte {
	return key(pRefusedBySub, p.SubID[:], timeKey(p.ReceivedAt), p.Hash[:])
}

func refusalEventKey(sub SubID, reason string) []byte {
	return key(pRefusalEvent, sub[:], []byte(reason))
}

func checkReason(reason string) error {
	if reason == "" || len(reason) > maxReasonKeyLen {
		return fmt.Errorf("%w: refusal reason %q must be 1..%d bytes",
			ErrInvalid, reason, maxReasonKeyLen)
	}
	return nil
}

// refusedIndexed reports whether p belongs in the refused index.
func refusedIndexed(p *Payment) bool {
	return p.State == PaymentRefused && !p.SubID.IsZero()
}

// updateRefusedIndex keeps the refused index in step when old (nil if
// none) is replaced by p. PutPayment calls it.
func (t *receiverTx) updateRefusedIndex(old, p *Payment) error {
	if old != nil && refusedIndexed(old) {
		if err := t.del(refusedKey(old)); err != nil {
			return err
		}
	}
	if p != nil && refusedIndexed(p) {
		return t.set(refusedKey(p), nil)
	}
	return nil
}

// AddRefusal implements ReceiverTx.
func (t *receiverTx) AddRefusal(reason string) (uint64, error) {
	if err := checkReason(reason); err != nil {
		return 0, err
	}
	k := refusalCountKey(reason)
	n, err := t.getU64(k)
	if err != nil {
		return 0, err
	}
	n++
	return n, t.set(k, be64(n))
}

// ForEachRefusalCount implements ReceiverTx.
func (t *receiverTx) ForEachRefusalCount(fn func(reason string, n uint64) error) error {
	return t.scan(keyRefusalCountPrefix, nil, true,
		func(k []byte, item *badger.Item) error {
			var n uint64
			err := item.Value(func(v []byte) error {
				if len(v) != 8 {
					return fmt.Errorf("%w: refusal counter %x of %d "+
						"bytes", ErrCorrupt, k, len(v))
				}
				n = beU64(v)
				return nil
			})
			if err != nil {
				return err
			}
			return fn(string(k[len(keyRefusalCountPrefix):]), n)
		})
}

// DeletePayment implements ReceiverTx.
func (t *receiverTx) DeletePayment(hash Hash) error {
	p, err := t.Payment(hash)
	if err != nil {
		return err
	}
	if !p.SubID.IsZero() {
		if err := t.del(paymentSeqKey(p.SubID, p.Seq, p.Hash)); err != nil {
			return err
		}
	}
	if err := t.updateRefusedIndex(p, nil); err != nil {
		return err
	}
	return t.del(paymentKey(hash))
}

// PruneRefused implements ReceiverTx.
func (t *receiverTx) PruneRefused(sub SubID, keep int) (int, error) {
	if keep < 0 {
		keep = 0
	}
	prefix := key(pRefusedBySub, sub[:])
	var hashes []Hash
	err := t.scan(prefix, nil, false, func(k []byte, _ *badger.Item) error {
		var h Hash
		copy(h[:], k[len(prefix)+8:])
		hashes = append(hashes, h)
		return nil
	})
	if err != nil || len(hashes) <= keep {
		return 0, err
	}
	drop := hashes[:len(hashes)-keep]
	for _, h := range drop {
		if err := t.DeletePayment(h); err != nil {
			return 0, fmt.Errorf("prune refused payment: %w", err)
		}
	}
	return len(drop), nil
}

// LastRefusalEvent implements ReceiverTx.
func (t *receiverTx) LastRefusalEvent(sub SubID, reason string) (time.Time, error) {
	if err := checkReason(reason); err != nil {
		return time.Time{}, err
	}
	n, err := t.getU64(refusalEventKey(sub, reason))
	if err != nil || n == 0 {
		return time.Time{}, err
	}
	return time.Unix(0, int64(n)).UTC(), nil
}

// SetLastRefusalEvent implements ReceiverTx.
func (t *receiverTx) SetLastRefusalEvent(sub SubID, reason string, at time.Time) error {
	if err := checkReason(reason); err != nil {
		return err
	}
	return t.set(refusalEventKey(sub, reason), timeKey(at))
}

// ClearRefusalEvents implements ReceiverTx.
func (t *receiverTx) ClearRefusalEvents(sub SubID) error {
	prefix := key(pRefusalEvent, sub[:])
	var keys [][]byte
	err := t.scan(prefix, nil, false, func(k []byte, _ *badger.Item) error {
		keys = append(keys, append([]byte(nil), k...))
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := t.del(k); err != nil {
			return err
		}
	}
	return nil
}

// KeyCount returns how many keys the store holds under prefix (nil: all).
// Tests use it to prove that an operation added no rows.
func (db *DB) KeyCount(prefix []byte) (int, error) {
	n := 0
	err := db.view(context.Background(), func(t *txn) error {
		return t.scan(prefix, nil, false, func(k []byte, _ *badger.Item) error {
			if prefix == nil || bytes.HasPrefix(k, prefix) {
				n++
			}
			return nil
		})
	})
	return n, err
}
