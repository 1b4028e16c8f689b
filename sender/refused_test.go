package sender

import (
	"context"
	"testing"
	"time"

	"github.com/lightninglabs/lndclient"
	"github.com/satstream/satstream/sender/sendertest"
	"github.com/satstream/satstream/store"
	"github.com/stretchr/testify/require"
)

// stored reads a subscription and one of its attempts from the store.
func (h *harness) stored(id store.SubID, seq uint64) (*store.SenderSubscription,
	*store.Attempt) {

	h.t.Helper()
	var (
		s *store.SenderSubscription
		a *store.Attempt
	)
	err := h.db.Sender().View(context.Background(), func(tx store.SenderTx) error {
		var err error
		if s, err = tx.Subscription(id); err != nil {
			return err
		}
		if seq == 0 {
			return nil
		}
		a, err = tx.Attempt(id, seq)
		return err
	})
	require.NoError(h.t, err)
	return s, a
}

// refuseAll makes the fake receiver refuse every payment at once.
func refuseAll(lndclient.SendPaymentRequest) sendertest.Outcome {
	return refusal
}

// TestRefusedSubscriptionCanBePaused reproduces the review's second
// finding: the payer could not pause a refused subscription, so it went on
// probing the receiver. It pauses, sends nothing however long it waits,
// and pays again once resumed.
func TestRefusedSubscriptionCanBePaused(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, func(c *EngineConfig) {
		c.RefusalLimit = 1
		c.MaxInFlightPerSub = 1
	})
	h.router.SetDecide(refuseAll)
	h.run()
	id := h.add(testOffer(t, 1000, time.Hour, false), TermsRequest{
		Increment: dur(time.Minute), Buffer: dur(0),
	})
	h.eventually(func() bool {
		v := h.view(id)
		return v.State == StateRefused && v.InFlight == 0
	}, "refused")

	v, err := h.eng.Apply(ctx, id, OpPause, false)
	require.NoError(t, err)
	require.Equal(t, StatePaused, v.State)
	require.Empty(t, v.RetryAt)

	h.router.SetDecide(nil)
	h.clock.Advance(10 * h.cfg.RefusedRetryMax)
	h.eventually(h.idleOrQuiet, "scheduler settled")
	require.Len(t, h.router.Payments(), 1, "no probe while paused")

	_, err = h.eng.Apply(ctx, id, OpResume, false)
	require.NoError(t, err)
	h.drive(func() bool { return h.view(id).Payments >= 1 }, "pays again")
	v = h.view(id)
	require.Equal(t, StateActive, v.State)
	require.Zero(t, v.RefusalsInARow)
}

// idleOrQuiet reports whether no payment is being worked on (the
// scheduler may have nothing queued at all).
func (h *harness) idleOrQuiet() bool {
	h.eng.mu.Lock()
	defer h.eng.mu.Unlock()
	return h.eng.inFlight == 0
}

// TestUpgradeSpreadsProbesOfRefused reproduces the review's second
// finding: a refused subscription stored by a version without probing has
// no probe time, and the upgraded daemon probed every such subscription at
// once on start. Each gets a probe time between RefusedRetry and twice
// that from the start instead, and nothing is sent before it.
func TestUpgradeSpreadsProbesOfRefused(t *testing.T) {
	h := newHarness(t, func(c *EngineConfig) {
		c.RefusalLimit = 1
		c.MaxInFlightPerSub = 1
	})
	h.router.SetDecide(refuseAll)
	h.run()
	var ids []store.SubID
	for i := 0; i < 3; i++ {
		ids = append(ids, h.add(testOffer(t, 1000, time.Hour, false),
			TermsRequest{Increment: dur(time.Minute), Buffer: dur(0)}))
	}
	h.eventually(func() bool {
		for _, id := range ids {
			if v := h.view(id); v.State != StateRefused ||
				v.InFlight != 0 {
				return false
			}
		}
		return true
	}, "all refused")
	h.stop()

	// What the old version left: refused, no probe time.
	err := h.db.Sender().Update(context.Background(), func(tx store.SenderTx) error {
		for _, id := range ids {
			s, err := tx.Subscription(id)
			if err != nil {
				return err
			}
			s.ResumeAt = time.Time{}
			if err := tx.PutSubscription(s); err != nil {
				return err
			}
		}
		return nil
	})
	require.NoError(t, err)

	h.router.SetDecide(nil)
	upgraded := h.clock.Now()
	h.load()
	h.run()
	h.eventually(h.idle, "scheduler waits")
	require.Len(t, h.router.Payments(), 3, "no probe at start")
	for _, id := range ids {
		s, _ := h.stored(id, 0)
		require.Equal(t, store.SenderRefused, s.State)
		require.False(t, s.ResumeAt.Before(upgraded.Add(h.cfg.RefusedRetry)),
			"probe not before RefusedRetry")
		require.True(t, s.ResumeAt.Before(upgraded.Add(2*h.cfg.RefusedRetry)),
			"probe within twice RefusedRetry")
		require.NotEmpty(t, h.view(id).RetryAt)
	}
}

// TestProbeWaitCountsProbesNotInFlightRefusals reproduces the review's
// third finding: with several payments in flight, each refusal raised the
// in-a-row count that doubled the wait before the next probe, so a
// subscription waited as if it had been probed and refused already. The
// wait doubles per refused probe only.
func TestProbeWaitCountsProbesNotInFlightRefusals(t *testing.T) {
	h := newHarness(t, func(c *EngineConfig) {
		c.RefusalLimit = 3
		c.MaxInFlightPerSub = 4
	})
	h.router.SetDecide(holdAll)
	h.run()
	id := h.add(testOffer(t, 1000, time.Hour, false), TermsRequest{
		Increment: dur(time.Minute), Buffer: dur(10 * time.Minute),
	})
	h.eventually(func() bool {
		return len(h.router.Held()) == 4 && h.idleHeld()
	}, "four payments in flight")
	for _, hash := range h.router.Held() {
		h.router.Resolve(hash, refusal)
	}
	h.eventually(func() bool {
		v := h.view(id)
		return v.State == StateRefused && v.InFlight == 0
	}, "refused")
	s, a := h.stored(id, 4)
	require.EqualValues(t, 4, s.Refusals)
	require.Equal(t, h.cfg.RefusedRetry, s.ResumeAt.Sub(a.UpdatedAt),
		"first wait")

	// The probe is refused too: the wait doubles once.
	h.router.SetDecide(refuseAll)
	h.drive(func() bool {
		v := h.view(id)
		return len(h.router.Payments()) == 5 &&
			v.State == StateRefused && v.InFlight == 0
	}, "probe refused")
	s, a = h.stored(id, 5)
	require.Equal(t, 2*h.cfg.RefusedRetry, s.ResumeAt.Sub(a.UpdatedAt))
}

// TestRefusedSubscriptionActiveAgainWhenPaymentSettles reproduces the
// review's third finding: a payment in flight when the refusals came
// settled (the receiver credits the subscription), and the subscription
// stayed refused until its next probe. It is active again at once.
func TestRefusedSubscriptionActiveAgainWhenPaymentSettles(t *testing.T) {
	h := newHarness(t, func(c *EngineConfig) {
		c.RefusalLimit = 1
		c.MaxInFlightPerSub = 2
	})
	h.router.SetDecide(holdAll)
	h.run()
	id := h.add(testOffer(t, 1000, time.Hour, false), TermsRequest{
		Increment: dur(time.Minute), Buffer: dur(10 * time.Minute),
	})
	h.eventually(func() bool {
		return len(h.router.Held()) == 2 && h.idleHeld()
	}, "two payments in flight")
	held := h.router.Held()
	h.router.Resolve(held[0], refusal)
	h.eventually(func() bool {
		v := h.view(id)
		return v.State == StateRefused && v.InFlight == 1
	}, "refused")

	h.router.Resolve(held[1], sendertest.Succeed(0))
	h.eventually(func() bool { return h.view(id).Payments == 1 },
		"settled payment booked")
	v := h.view(id)
	require.Equal(t, StateActive, v.State)
	require.Empty(t, v.RetryAt)
	require.Zero(t, v.RefusalsInARow)
}
