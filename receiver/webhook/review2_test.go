package webhook_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/btcsuite/btclog/v2"
	rt "github.com/satstream/satstream/receiver/receivertest"
	"github.com/satstream/satstream/receiver/webhook"
	"github.com/satstream/satstream/store"
	"github.com/stretchr/testify/require"
)

// TestDownEndpointRescansBacklogOnEveryEvent: while an endpoint is down,
// its cursor stays below its oldest pending event, so every new event
// (every Notify) makes its pass read the whole backlog again: O(backlog)
// reads per event, O(n^2) over an outage of up to giveupafter (72h).
func TestDownEndpointRescansBacklogOnEveryEvent(t *testing.T) {
	t.Parallel()
	base := rt.OpenStore(t).Receiver()
	down := newEndpoint(t)
	down.down.Store(true)
	spy := &spyStore{ReceiverStore: base,
		watch: store.NewEndpointID(down.srv.URL)}
	const backlog = 300
	appendEvents(t, base, backlog, time.Now())
	d := webhook.New(webhook.Config{Store: spy,
		URLs: []string{down.srv.URL}, Secret: []byte("s"),
		Log: btclog.Disabled, InitialBackoff: time.Hour,
		MaxBackoff: time.Hour})
	runDispatcher(t, d)
	// The first pass reads the backlog's rows in one batch before its
	// first POST.
	require.Eventually(t, func() bool {
		return delivery(t, base, down.srv.URL, 1).Attempts == 1
	}, 30*time.Second, 5*time.Millisecond)

	spy.reads.Store(0)
	appendEvents(t, base, 1, time.Now())
	// An event of another subscription, tried at once: its attempt
	// shows the pass woken by Notify is over.
	require.NoError(t, base.Update(context.Background(),
		func(tx store.ReceiverTx) error {
			return tx.AppendEvent(&store.Event{SubID: store.SubID{8},
				Type:    store.EventPaymentReceived,
				Payload: []byte(`{}`), CreatedAt: time.Now()})
		}))
	d.Notify()
	require.Eventually(t, func() bool {
		return delivery(t, base, down.srv.URL, backlog+2).Attempts == 1
	}, 30*time.Second, 5*time.Millisecond)
	require.Less(t, spy.reads.Load(), int64(20),
		"one new event made the down endpoint read %d delivery rows",
		spy.reads.Load())
}

// TestRetryRecordedAddedEndpointAsDelivered: an event given up at its
// only endpoint A leaves the queue; endpoint C is added later. The API
// read C's missing row as "delivered" (the deleted row of a finished
// event), and a manual retry wrote a delivered row for C and sent the
// event to A only: the ledger and the API said C had an event it never
// got. Now C reads "not_sent" and the retry sends it there too.
func TestRetryRecordedAddedEndpointAsDelivered(t *testing.T) {
	t.Parallel()
	db := rt.OpenStore(t).Receiver()
	a, c := newEndpoint(t), newEndpoint(t)
	a.down.Store(true)
	appendEvents(t, db, 1, time.Now())
	stop := runDispatcher(t, webhook.New(webhook.Config{Store: db,
		URLs: []string{a.srv.URL}, Secret: []byte("s"),
		Log: btclog.Disabled, InitialBackoff: time.Millisecond,
		MaxBackoff: time.Millisecond, GiveUpAfter: time.Nanosecond}))
	require.Eventually(t, func() bool {
		return pendingEvents(t, db) == 0
	}, 10*time.Second, 5*time.Millisecond)
	stop()
	require.Equal(t, store.DeliveryDead,
		delivery(t, db, a.srv.URL, 1).State)

	urls := []string{a.srv.URL, c.srv.URL}
	views := deliveries(t, db, urls, 1)
	require.Equal(t, "dead", views[0].State)
	require.Equal(t, webhook.StateNotSent, views[1].State,
		"an endpoint added after the event finished")

	a.down.Store(false)
	require.NoError(t, db.Update(context.Background(),
		func(tx store.ReceiverTx) error {
			ev, err := tx.Event(1)
			if err != nil {
				return err
			}
			_, err = webhook.Retry(tx, urls, ev.UID, time.Now())
			return err
		}))
	d := webhook.New(webhook.Config{Store: db, URLs: urls,
		Secret: []byte("s"), Log: btclog.Disabled,
		InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond})
	runDispatcher(t, d)
	require.Eventually(t, func() bool {
		return len(a.received()) == 1 && len(c.received()) == 1 &&
			pendingEvents(t, db) == 0
	}, 10*time.Second, 5*time.Millisecond,
		"C shows %q for an event it never received",
		deliveries(t, db, urls, 1)[1].State)
	for _, v := range deliveries(t, db, urls, 1) {
		require.Equal(t, "delivered", v.State)
	}
}

// TestBlockedEventsDieAfterOneAttempt: later events of a subscription
// wait (in order) behind an earlier one that is retried at a down
// endpoint. When that one is given up, the give-up clock of the waiting
// events, counted from their creation, is also over: each is tried once
// and given up in the same pass, without its retry period.
func TestBlockedEventsDieAfterOneAttempt(t *testing.T) {
	t.Parallel()
	db := rt.OpenStore(t).Receiver()
	ep := newEndpoint(t)
	ep.down.Store(true)
	start := time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC)
	var offset atomic.Int64
	clock := func() time.Time {
		return start.Add(time.Duration(offset.Load()))
	}
	appendEvents(t, db, 3, start)
	d := webhook.New(webhook.Config{Store: db, URLs: []string{ep.srv.URL},
		Secret: []byte("s"), Log: btclog.Disabled,
		InitialBackoff: time.Minute, MaxBackoff: 10 * time.Minute,
		GiveUpAfter: time.Hour, Now: clock,
		Jitter: func(d time.Duration) time.Duration { return d }})
	runDispatcher(t, d)
	require.Eventually(t, func() bool {
		return delivery(t, db, ep.srv.URL, 1).Attempts == 1
	}, 10*time.Second, 5*time.Millisecond)
	offset.Store(int64(time.Hour + time.Minute))
	d.Notify()
	require.Eventually(t, func() bool {
		return delivery(t, db, ep.srv.URL, 1).State ==
			store.DeliveryDead
	}, 10*time.Second, 5*time.Millisecond)
	require.Eventually(t, func() bool {
		return delivery(t, db, ep.srv.URL, 2).Attempts >= 1
	}, 10*time.Second, 5*time.Millisecond)
	dl2 := delivery(t, db, ep.srv.URL, 2)
	require.NotEqual(t, store.DeliveryDead, dl2.State,
		"event 2 given up after %d attempt(s)", dl2.Attempts)
}

// TestNewEventOvertakesRetriedEventOfItsSubscription: a pass woken by a
// new event looks only at the events after the last one seen; it must
// still hold back a new event of a subscription whose earlier event
// waits for a retry, while delivering other subscriptions' events, and
// deliver both in order once the retry is due.
func TestNewEventOvertakesRetriedEventOfItsSubscription(t *testing.T) {
	t.Parallel()
	db := rt.OpenStore(t).Receiver()
	ep := newEndpoint(t)
	ep.down.Store(true)
	start := time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC)
	var offset atomic.Int64
	clock := func() time.Time {
		return start.Add(time.Duration(offset.Load()))
	}
	appendEvents(t, db, 1, start)
	d := webhook.New(webhook.Config{Store: db, URLs: []string{ep.srv.URL},
		Secret: []byte("s"), Log: btclog.Disabled,
		InitialBackoff: time.Hour, MaxBackoff: time.Hour, Now: clock,
		Jitter: func(d time.Duration) time.Duration { return d }})
	runDispatcher(t, d)
	require.Eventually(t, func() bool {
		return delivery(t, db, ep.srv.URL, 1).Attempts == 1
	}, 10*time.Second, 5*time.Millisecond)

	ep.down.Store(false)
	appendEvents(t, db, 1, start)
	require.NoError(t, db.Update(context.Background(),
		func(tx store.ReceiverTx) error {
			return tx.AppendEvent(&store.Event{SubID: store.SubID{8},
				Type:    store.EventPaymentReceived,
				Payload: []byte(`{}`), CreatedAt: start})
		}))
	d.Notify()
	// Event 3 (another subscription) goes through; event 2 waits
	// behind event 1, which is not due yet.
	require.Eventually(t, func() bool {
		return len(ep.received()) > 0
	}, 10*time.Second, 5*time.Millisecond)
	require.Equal(t, []uint64{3}, ep.received())

	offset.Store(int64(time.Hour))
	d.Notify()
	require.Eventually(t, func() bool {
		return len(ep.received()) == 3
	}, 10*time.Second, 5*time.Millisecond)
	require.Equal(t, []uint64{3, 1, 2}, ep.received())
}

// TestRetriedDeadLetterHoldsBackLaterEvents: a dead letter retried by
// hand while its endpoint still fails waits for its next attempt; it held
// back every newer event of its subscription at that endpoint for up to
// the whole retry period, though those had gone on when it was given up.
func TestRetriedDeadLetterHoldsBackLaterEvents(t *testing.T) {
	t.Parallel()
	db := rt.OpenStore(t).Receiver()
	ep := newEndpoint(t)
	ep.down.Store(true)
	urls := []string{ep.srv.URL}
	start := time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC)
	var offset atomic.Int64
	clock := func() time.Time {
		return start.Add(time.Duration(offset.Load()))
	}
	appendEvents(t, db, 1, start)
	d := webhook.New(webhook.Config{Store: db, URLs: urls,
		Secret: []byte("s"), Log: btclog.Disabled,
		InitialBackoff: time.Hour, MaxBackoff: time.Hour,
		GiveUpAfter: time.Hour, Now: clock,
		Jitter: func(d time.Duration) time.Duration { return d }})
	runDispatcher(t, d)
	require.Eventually(t, func() bool {
		return delivery(t, db, ep.srv.URL, 1).Attempts == 1
	}, 10*time.Second, 5*time.Millisecond)
	offset.Store(int64(time.Hour))
	d.Notify()
	require.Eventually(t, func() bool {
		return delivery(t, db, ep.srv.URL, 1).State ==
			store.DeliveryDead
	}, 10*time.Second, 5*time.Millisecond)

	// Retried while the endpoint still fails: attempt 3 fails, the
	// next is an hour away.
	require.NoError(t, db.Update(context.Background(),
		func(tx store.ReceiverTx) error {
			ev, err := tx.Event(1)
			if err != nil {
				return err
			}
			_, err = webhook.Retry(tx, urls, ev.UID, clock())
			return err
		}))
	d.Rewind(1)
	require.Eventually(t, func() bool {
		return delivery(t, db, ep.srv.URL, 1).Attempts == 3
	}, 10*time.Second, 5*time.Millisecond)

	ep.down.Store(false)
	appendEvents(t, db, 1, clock())
	d.Notify()
	require.Eventually(t, func() bool {
		return len(ep.received()) == 1
	}, 10*time.Second, 5*time.Millisecond,
		"event 2 waits behind the retried dead letter")
	require.Equal(t, []uint64{2}, ep.received())
	require.Equal(t, store.DeliveryPending,
		delivery(t, db, ep.srv.URL, 1).State)
}
