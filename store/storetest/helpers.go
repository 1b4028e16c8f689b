// Package storetest is the conformance suite of store.ReceiverStore: the
// promises the receiver relies on, run against every backend (the badger
// store in store/suite_test.go, PostgreSQL in store/postgres). A backend
// passes by running
//
//	storetest.RunReceiverSuite(t, func(t testing.TB) store.ReceiverStore {
//		return openAFreshEmptyStore(t) // closed in t.Cleanup
//	})
//
// Tests that only one backend can show (badger's group commit, a
// database's migrations) stay beside that backend.
package storetest

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/satstream/satstream/store"
	"github.com/stretchr/testify/require"
)

// Timeout guards every suite test that waits.
const Timeout = 60 * time.Second

// Ctx returns a context ended at t's cleanup or after Timeout.
func Ctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	t.Cleanup(cancel)
	return ctx
}

// SubID returns the n-th test subscription id.
func SubID(n uint64) store.SubID {
	var id store.SubID
	id[0] = 0xab
	binary.BigEndian.PutUint64(id[8:], n)
	return id
}

// HashOf returns the n-th test payment hash.
func HashOf(n uint64) store.Hash {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], n)
	return store.Hash(sha256.Sum256(b[:]))
}

// At is a UTC time sec seconds after the epoch.
func At(sec int64) time.Time { return time.Unix(sec, 0).UTC() }

// CreditTerms is a 1 sat/s plan used by Credit.
var CreditTerms = store.Terms{RatePerSecond: 1000, MinPayment: 1000,
	Grace: time.Minute}

// PutActiveSub creates an active subscription for the credit tests.
func PutActiveSub(ctx context.Context, rs store.ReceiverStore,
	id store.SubID) error {

	return rs.Update(ctx, func(tx store.ReceiverTx) error {
		return tx.PutSubscription(&store.ReceiverSubscription{
			ID: id, PlanID: "basic", Terms: CreditTerms,
			State: store.SubActive, PaidUntil: At(1_000_000),
			CreatedAt: At(1),
		})
	})
}

// Credit is the receiver's logical step in miniature: deduplicate by hash,
// credit the subscription (carrying the msat remainder), record the
// payment, move the settle index and queue an event, in one step.
func Credit(ctx context.Context, rs store.ReceiverStore, sub store.SubID,
	n uint64, amt lnwire.MilliSatoshi) error {

	return rs.Update(ctx, func(tx store.ReceiverTx) error {
		return CreditTx(tx, sub, n, amt, true)
	})
}

// CreditTx is Credit's work inside a caller's step, so several credits can
// share one step (the receiver's invoice stream records a batch per
// step). Without moveSettle it leaves the settle index alone, as the
// receiver's decision on a held HTLC does (only the stream moves it).
func CreditTx(tx store.ReceiverTx, sub store.SubID, n uint64,
	amt lnwire.MilliSatoshi, moveSettle bool) error {

	h := HashOf(n)
	if _, err := tx.Payment(h); err == nil {
		return nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	s, err := tx.Subscription(sub)
	if err != nil {
		return err
	}
	total := s.Remainder + amt
	secs := uint64(total / s.Terms.RatePerSecond)
	s.Remainder = total % s.Terms.RatePerSecond
	s.PaidUntil = s.PaidUntil.Add(time.Duration(secs) * time.Second)
	s.TotalPaid += amt
	s.TotalSeconds += secs
	s.Payments++
	s.LastSeq = max(s.LastSeq, n)
	if err := tx.PutPayment(&store.Payment{
		Hash: h, SubID: sub, Seq: n, Amount: amt, Seconds: secs,
		SettleIndex: n, State: store.PaymentCredited,
		ReceivedAt: At(int64(n)),
	}); err != nil {
		return err
	}
	if err := tx.PutSubscription(s); err != nil {
		return err
	}
	if moveSettle {
		idx, err := tx.SettleIndex()
		if err != nil {
			return err
		}
		if n > idx {
			if err := tx.SetSettleIndex(n); err != nil {
				return err
			}
		}
	}
	return tx.AppendEvent(&store.Event{
		SubID: sub, Type: store.EventPaymentReceived,
		CreatedAt: At(int64(n)),
		Payload:   []byte(fmt.Sprintf(`{"seq":%d}`, n)),
	})
}

// Summary is what a consistency check compares.
type Summary struct {
	Sub         *store.ReceiverSubscription
	Payments    map[uint64]*store.Payment
	Sum         lnwire.MilliSatoshi
	MaxSettle   uint64
	SettleIndex uint64
	Pending     int
}

// Summarize reads the whole credit ledger of one subscription.
func Summarize(ctx context.Context, rs store.ReceiverStore,
	sub store.SubID) (*Summary, error) {

	out := &Summary{Payments: map[uint64]*store.Payment{}}
	err := rs.View(ctx, func(tx store.ReceiverTx) error {
		out.Payments = map[uint64]*store.Payment{}
		out.Sum, out.MaxSettle, out.Pending = 0, 0, 0
		var err error
		if out.Sub, err = tx.Subscription(sub); err != nil {
			return err
		}
		err = tx.ForEachPayment(sub, 0, func(p *store.Payment) error {
			out.Payments[p.Seq] = p
			out.Sum += p.Amount
			out.MaxSettle = max(out.MaxSettle, p.SettleIndex)
			return nil
		})
		if err != nil {
			return err
		}
		if out.SettleIndex, err = tx.SettleIndex(); err != nil {
			return err
		}
		return tx.ForEachPendingEvent(0, func(*store.Event) error {
			out.Pending++
			return nil
		})
	})
	return out, err
}

// CheckConsistent asserts that no credit was half-applied: the
// subscription's totals match its payments, and every payment has its
// event.
func CheckConsistent(t testing.TB, s *Summary) {
	t.Helper()
	require.Equal(t, s.Sum, s.Sub.TotalPaid,
		"sum of payments vs subscription total")
	require.EqualValues(t, len(s.Payments), s.Sub.Payments, "payment count")
	require.Equal(t, len(s.Payments), s.Pending, "one event per payment")
}
