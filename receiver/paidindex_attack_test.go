package receiver

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/satstream/satstream/receiver/core"
	rt "github.com/satstream/satstream/receiver/receivertest"
	"github.com/satstream/satstream/store"
	"github.com/satstream/satstream/tlv"
	"github.com/stretchr/testify/require"
)

// TestPaidReviewExpiryBatchForgetsEvery: the expiry pass ages hundreds of
// subscriptions in batches of core.AgeBatch; every one that was in the
// index must answer with its new state once the pass returned.
func TestPaidReviewExpiryBatchForgetsEvery(t *testing.T) {
	t.Parallel()
	_, idx := openPaidLedger(t, t.TempDir(), nil)
	const n = 450
	var ids []store.SubID
	for i := range n {
		var id store.SubID
		id[0], id[1], id[2] = byte(i), byte(i>>8), 0xe1
		ids = append(ids, id)
	}
	// One step for all, paid until just before now (inside grace).
	plan := &store.Plan{ID: "p", Label: "p", Terms: store.Terms{
		RatePerSecond: 10, MinPayment: 1000, Grace: time.Minute,
		MaxPrepay: 24 * time.Hour}}
	require.NoError(t, idx.Update(context.Background(),
		func(tx store.ReceiverTx) error {
			if err := tx.PutPlan(plan); err != nil {
				return err
			}
			for _, id := range ids {
				s := core.NewSubscription(id, plan, paidTestNow)
				s.State = store.SubActive
				s.PaidUntil = paidTestNow.Add(-2 * time.Hour)
				if err := tx.PutSubscription(s); err != nil {
					return err
				}
			}
			return nil
		}))
	for _, id := range ids {
		require.Equal(t, "active", checkPaid(t, idx, id).State)
	}
	aged, err := core.AgeSubscriptions(context.Background(), idx, ids,
		paidTestNow, func(id store.SubID, err error) {
			t.Errorf("ageing %v: %v", id, err)
		})
	require.NoError(t, err)
	require.Len(t, aged, n)
	for _, id := range ids {
		require.Equal(t, ledgerPaid(t, idx.ReceiverStore, id),
			checkPaid(t, idx, id))
		require.NotEqual(t, "active", checkPaid(t, idx, id).State)
	}
}

// TestPaidReviewConcurrentConverges: credits, expiries and cancels from
// several writers while many checks fill the index; once the writers are
// done, every check answers as the ledger does.
func TestPaidReviewConcurrentConverges(t *testing.T) {
	t.Parallel()
	_, idx := openPaidLedger(t, t.TempDir(), nil)
	const subs = 16
	var ids []store.SubID
	for i := range subs {
		id := testSubID(byte(100 + i))
		putPaidSub(t, idx, id, paidTestNow.Add(-time.Hour))
		ids = append(ids, id)
	}
	ctx := context.Background()
	var stop atomic.Bool
	var readers sync.WaitGroup
	for r := range 6 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			rng := rand.New(rand.NewSource(int64(r)))
			for !stop.Load() {
				_, _ = idx.paid(ctx, ids[rng.Intn(subs)].PublicID())
			}
		}()
	}
	var writers sync.WaitGroup
	for w := range 3 {
		writers.Add(1)
		go func() {
			defer writers.Done()
			rng := rand.New(rand.NewSource(int64(1000 + w)))
			for i := range 150 {
				id := ids[rng.Intn(subs)]
				err := changeSub(ctx, idx, id,
					func(s *store.ReceiverSubscription) {
						switch i % 3 {
						case 0:
							s.State = store.SubActive
							s.PaidUntil = paidTestNow.Add(
								time.Duration(rng.Intn(7200)-3600) *
									time.Second)
						case 1:
							s.State = store.SubPastDue
						case 2:
							s.Terms.Grace = time.Duration(
								rng.Intn(7200)) * time.Second
						}
					})
				if err != nil {
					t.Errorf("write: %v", err)
					return
				}
			}
		}()
	}
	writers.Wait()
	stop.Store(true)
	readers.Wait()
	for _, id := range ids {
		require.Equal(t, ledgerPaid(t, idx.ReceiverStore, id),
			checkPaid(t, idx, id), fmt.Sprint(id))
	}
}

// TestPaidReviewAnswersAfterLedgerFailed: once the ledger failed (an
// fsync error: the daemon is stopping, /healthz answers 503 and every
// other read of the ledger fails), the paid check used to fail with it
// (its View returned the store's error). The index kept answering 200
// from memory for every subscription it held.
func TestPaidReviewAnswersAfterLedgerFailed(t *testing.T) {
	t.Parallel()
	var broken atomic.Bool
	opts := store.DefaultOptions()
	opts.FaultHook = func(p store.FaultPoint) error {
		if p == store.FaultSync && broken.Load() {
			return errors.New("disk on fire")
		}
		return nil
	}
	db, err := store.Open(context.Background(), t.TempDir(), opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	idx := newLedgerPaidIndex(db)
	x, y := testSubID(200), testSubID(201)
	putPaidSub(t, idx, x, paidTestNow.Add(time.Hour))
	putPaidSub(t, idx, y, paidTestNow.Add(time.Hour))
	require.True(t, checkPaid(t, idx, x).Paid)
	require.True(t, checkPaid(t, idx, y).Paid)

	// A step on x fails its fsync: the store fails for good.
	broken.Store(true)
	err = changeSub(context.Background(), idx, x,
		func(s *store.ReceiverSubscription) {
			s.State = store.SubCancelledByProvider
			s.CancelledAt = paidTestNow
		})
	require.ErrorIs(t, err, store.ErrFailed)
	_, err = viewPaid(context.Background(), idx.ReceiverStore, y.PublicID())
	require.ErrorIs(t, err, store.ErrFailed)

	// The check must fail as the ledger does, not answer from memory.
	_, err = idx.paid(context.Background(), y.PublicID())
	require.ErrorIs(t, err, store.ErrFailed)
	_, err = idx.paid(context.Background(), x.PublicID())
	require.ErrorIs(t, err, store.ErrFailed)
}

// TestPaidReviewAPIFollowsPatchAndCancel: through the handlers, with the
// check answered from the index: a credit, a PATCH of the grace period and
// a provider's cancel each show at once; the secret works with the admin
// token only, and another subscription's secret is not found.
func TestPaidReviewAPIFollowsPatchAndCancel(t *testing.T) {
	t.Parallel()
	a := newAPIHarness(t)
	adm, ro := a.tokens.Admin, a.tokens.ReadOnly
	code, plan := a.call(adm, "POST", "/v1/plans", map[string]any{
		"price_msat_per_sec": 10, "min_payment_msat": 1000,
		"grace_period_sec": 60, "increment_msat": 0,
	})
	require.Equal(t, 201, code)
	code, sub := a.call(adm, "POST", "/v1/subscriptions",
		map[string]any{"plan_id": plan["id"]})
	require.Equal(t, 201, code)
	id, secret := sub["id"].(string), sub["secret"].(string)
	paidPath := func(x string) string { return "/v1/subscriptions/" + x + "/paid" }

	code, paid := a.call(ro, "GET", paidPath(id), nil) // fills the index
	require.Equal(t, 200, code)
	require.Equal(t, false, paid["paid"])
	require.Equal(t, "pending", paid["state"])

	// Credit 100 s (the pipeline's step, through the same store).
	sid, err := tlv.ParseSubscriptionID(secret)
	require.NoError(t, err)
	require.NoError(t, a.db.Update(context.Background(),
		func(tx store.ReceiverTx) error {
			out, err := core.Apply(tx, core.Incoming{
				Hash: store.Hash{1}, Amount: 1000,
				Custom: rt.Records(t, sid, 1, nil, false),
				Now:    a.now}, 0)
			require.True(t, out.Credited)
			return err
		}))
	_, paid = a.call(ro, "GET", paidPath(id), nil)
	require.Equal(t, true, paid["paid"])
	require.Equal(t, "2026-01-01T00:01:40Z", paid["paid_until"])

	// Past paid time and grace: not paid; a PATCH of the grace period
	// makes it paid again at once.
	a.now = a.now.Add(100*time.Second + 90*time.Second)
	_, paid = a.call(ro, "GET", paidPath(id), nil)
	require.Equal(t, false, paid["paid"])
	code, _ = a.call(adm, "PATCH", "/v1/subscriptions/"+id,
		map[string]any{"terms": map[string]any{"grace_period_sec": 3600}})
	require.Equal(t, 200, code)
	_, paid = a.call(ro, "GET", paidPath(id), nil)
	require.Equal(t, true, paid["paid"])
	require.Equal(t, "2026-01-01T01:01:40Z", paid["grace_until"])

	// The secret: admin only.
	code, paid = a.call(adm, "GET", paidPath(secret), nil)
	require.Equal(t, 200, code)
	require.Equal(t, id, paid["id"])
	code, _ = a.call(ro, "GET", paidPath(secret), nil)
	require.Equal(t, 403, code)
	other := make([]byte, 16)
	other[0] = 0x42
	code, _ = a.call(adm, "GET", paidPath(hex.EncodeToString(other)), nil)
	require.Equal(t, 404, code)

	// Cancel: not paid (paid time over), ends_at is the cancel.
	code, _ = a.call(adm, "POST", "/v1/subscriptions/"+id+"/cancel", nil)
	require.Equal(t, 200, code)
	_, paid = a.call(ro, "GET", paidPath(id), nil)
	require.Equal(t, "cancelled_by_provider", paid["state"])
	require.Equal(t, false, paid["paid"])
	require.Nil(t, paid["grace_until"])
	require.NotNil(t, paid["ends_at"])
}
