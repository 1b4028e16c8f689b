package store

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/stretchr/testify/require"
)

// testTimeout guards every test that waits on other goroutines.
const testTimeout = 30 * time.Second

// openTestDB opens a store in a fresh directory and closes it at cleanup.
func openTestDB(t testing.TB, mutate ...func(*Options)) (*DB, string) {
	t.Helper()
	dir := t.TempDir()
	opts := DefaultOptions()
	for _, m := range mutate {
		m(&opts)
	}
	db, err := Open(context.Background(), dir, opts)
	require.NoError(t, err)
	t.Cleanup(func() {
		if err := db.Close(); err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("close: %v", err)
		}
	})
	return db, dir
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

func subID(n uint64) SubID {
	var id SubID
	id[0] = 0xab
	binary.BigEndian.PutUint64(id[8:], n)
	return id
}

func hashOf(n uint64) Hash {
	return Hash(sha256.Sum256(be64(n)))
}

func at(sec int64) time.Time { return time.Unix(sec, 0).UTC() }

// creditTerms is a 1 sat/s plan used by the credit helper.
var creditTerms = Terms{RatePerSecond: 1000, MinPayment: 1000, Grace: time.Minute}

// putActiveSub creates an active subscription for the credit tests.
func putActiveSub(ctx context.Context, rs ReceiverStore, id SubID) error {
	return rs.Update(ctx, func(tx ReceiverTx) error {
		return tx.PutSubscription(&ReceiverSubscription{
			ID: id, PlanID: "basic", Terms: creditTerms, State: SubActive,
			PaidUntil: at(1_000_000), CreatedAt: at(1),
		})
	})
}

// credit is the receiver's logical step in miniature: deduplicate by hash,
// credit the subscription, record the payment, move the settle index and
// queue an event, all in one transaction.
func credit(ctx context.Context, rs ReceiverStore, sub SubID, n uint64,
	amt lnwire.MilliSatoshi) error {

	h := hashOf(n)
	return rs.Update(ctx, func(tx ReceiverTx) error {
		if _, err := tx.Payment(h); err == nil {
			return nil
		} else if !errors.Is(err, ErrNotFound) {
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
		if err := tx.PutPayment(&Payment{
			Hash: h, SubID: sub, Seq: n, Amount: amt, Seconds: secs,
			SettleIndex: n, State: PaymentCredited, ReceivedAt: at(int64(n)),
		}); err != nil {
			return err
		}
		if err := tx.PutSubscription(s); err != nil {
			return err
		}
		idx, err := tx.SettleIndex()
		if err != nil {
			return err
		}
		if n > idx {
			if err := tx.SetSettleIndex(n); err != nil {
				return err
			}
		}
		return tx.AppendEvent(&Event{
			SubID: sub, Type: EventPaymentReceived, CreatedAt: at(int64(n)),
			Payload: []byte(fmt.Sprintf(`{"seq":%d}`, n)),
		})
	})
}

// ledgerSummary is what a consistency check compares.
type ledgerSummary struct {
	sub         *ReceiverSubscription
	payments    map[uint64]*Payment
	sum         lnwire.MilliSatoshi
	maxSettle   uint64
	settleIndex uint64
	pending     int
}

// summarize reads the whole credit ledger of one subscription.
func summarize(ctx context.Context, rs ReceiverStore, sub SubID) (*ledgerSummary, error) {
	out := &ledgerSummary{payments: map[uint64]*Payment{}}
	err := rs.View(ctx, func(tx ReceiverTx) error {
		var err error
		if out.sub, err = tx.Subscription(sub); err != nil {
			return err
		}
		err = tx.ForEachPayment(sub, 0, func(p *Payment) error {
			out.payments[p.Seq] = p
			out.sum += p.Amount
			out.maxSettle = max(out.maxSettle, p.SettleIndex)
			return nil
		})
		if err != nil {
			return err
		}
		if out.settleIndex, err = tx.SettleIndex(); err != nil {
			return err
		}
		return tx.ForEachPendingEvent(0, func(*Event) error {
			out.pending++
			return nil
		})
	})
	return out, err
}

// checkConsistent asserts that no credit was half-applied.
func checkConsistent(t testing.TB, s *ledgerSummary) {
	t.Helper()
	require.Equal(t, s.sum, s.sub.TotalPaid, "sum of payments vs subscription total")
	require.EqualValues(t, len(s.payments), s.sub.Payments, "payment count")
	require.Equal(t, s.maxSettle, s.settleIndex, "settle index vs payments")
	require.Equal(t, len(s.payments), s.pending, "one event per payment")
}
