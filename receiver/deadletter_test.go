package receiver

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/btcsuite/btclog/v2"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/satstream/satstream/common"
	rt "github.com/satstream/satstream/receiver/receivertest"
	"github.com/satstream/satstream/receiver/webhook"
	"github.com/satstream/satstream/store"
	"github.com/stretchr/testify/require"
)

// deadLetterURLs are the endpoints the dead-letter tests configure.
var deadLetterURLs = []string{"https://a.example/hook", "https://b.example/hook"}

// seedDeadLetters writes events in the states the dispatcher leaves them
// in: e[0] dead at A (finished: out of the pending queue), e[1] delivered
// everywhere (no rows), e[2] still pending at A and dead at B, e[3] dead at
// A and B, e[4] dead only at an endpoint no longer configured.
func seedDeadLetters(t *testing.T, db store.ReceiverStore,
	now time.Time) []*store.Event {

	t.Helper()
	a := store.NewEndpointID(deadLetterURLs[0])
	b := store.NewEndpointID(deadLetterURLs[1])
	gone := store.NewEndpointID("https://gone.example/hook")
	evs := make([]*store.Event, 5)
	require.NoError(t, db.Update(context.Background(),
		func(tx store.ReceiverTx) error {
			for i := range evs {
				evs[i] = &store.Event{SubID: store.SubID{1},
					Type:    store.EventPaymentReceived,
					Payload: []byte(`{}`), CreatedAt: now,
					Delivered: i != 2}
				if err := tx.AppendEvent(evs[i]); err != nil {
					return err
				}
			}
			rows := []store.Delivery{
				{Endpoint: a, Event: evs[0].ID},
				{Endpoint: a, Event: evs[2].ID, Attempts: 2,
					State:       store.DeliveryPending,
					NextAttempt: now.Add(time.Hour)},
				{Endpoint: b, Event: evs[2].ID},
				{Endpoint: a, Event: evs[3].ID},
				{Endpoint: b, Event: evs[3].ID},
				{Endpoint: gone, Event: evs[4].ID},
			}
			for i := range rows {
				dl := rows[i]
				if dl.Attempts == 0 {
					dl.State, dl.Attempts = store.DeliveryDead, 9
					dl.LastError, dl.FinishedAt = "status 503", now
				}
				if err := tx.PutDelivery(&dl); err != nil {
					return err
				}
			}
			return nil
		}))
	return evs
}

// TestDeadLettersCouldNotBeListed: dead letters leave the pending queue,
// so GET /v1/events?pending=true no longer shows them; GET
// /v1/webhooks/dead lists them from the delivery rows, oldest first, one
// page at a time, each once however many endpoints gave it up.
func TestDeadLettersCouldNotBeListed(t *testing.T) {
	t.Parallel()
	a := newAPIHarness(t)
	a.api.webhookURLs = deadLetterURLs
	evs := seedDeadLetters(t, a.db, a.now)

	seqs := func(body map[string]any) []uint64 {
		var out []uint64
		for _, v := range body["events"].([]any) {
			out = append(out, uint64(v.(map[string]any)["sequence"].(float64)))
		}
		return out
	}
	code, body := a.call(a.tokens.ReadOnly, http.MethodGet,
		"/v1/webhooks/dead?limit=2", nil)
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, []uint64{uint64(evs[0].ID), uint64(evs[2].ID)}, seqs(body))
	require.Equal(t, strconv.FormatUint(uint64(evs[2].ID), 10), body["next_after"])
	first := body["events"].([]any)[0].(map[string]any)
	require.Equal(t, evs[0].UID.String(), first["id"])
	require.Equal(t, false, first["delivered"])
	require.Equal(t, "dead", first["deliveries"].([]any)[0].(map[string]any)["state"])

	code, body = a.call(a.tokens.ReadOnly, http.MethodGet,
		"/v1/webhooks/dead?limit=2&after="+body["next_after"].(string), nil)
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, []uint64{uint64(evs[3].ID)}, seqs(body),
		"dead at two endpoints, listed once; a removed endpoint's "+
			"rows are not listed")
	require.NotContains(t, body, "next_after")

	code, body = a.call(a.tokens.ReadOnly, http.MethodGet,
		"/v1/webhooks/dead?after=x", nil)
	require.Equal(t, http.StatusBadRequest, code)
	_, field := errOf(body)
	require.Equal(t, "after", field)
}

// TestDashboardRetryButtonDidNothing: the overview's retry button set
// Event.NextAttempt, which the dispatcher no longer reads, so a dead
// letter stayed dead. It now retries the dead letters as the API does:
// pending again at the endpoints that gave them up, the dispatcher
// rewound to the oldest, the endpoints that have them left alone.
func TestDashboardRetryButtonDidNothing(t *testing.T) {
	t.Parallel()
	d := newDashHarness(t, deadLetterURLs...)
	now := time.Now()
	evs := seedDeadLetters(t, d.api.db, now)
	var rewound []store.EventID
	d.api.api.webhookRetried = func(id store.EventID) {
		rewound = append(rewound, id)
	}
	delivery := func(url string, ev *store.Event) *store.Delivery {
		var dl *store.Delivery
		require.NoError(t, d.api.db.View(t.Context(),
			func(tx store.ReceiverTx) error {
				var err error
				dl, err = tx.Delivery(store.NewEndpointID(url), ev.ID)
				return err
			}))
		return dl
	}
	event := func(ev *store.Event) *store.Event {
		var out *store.Event
		require.NoError(t, d.api.db.View(t.Context(),
			func(tx store.ReceiverTx) error {
				var err error
				out, err = tx.Event(ev.ID)
				return err
			}))
		return out
	}

	ro := d.login(common.AccessReadOnly)
	code, _ := ro.post("/webhooks/retry", url.Values{})
	require.Equal(t, http.StatusForbidden, code)
	require.Equal(t, store.DeliveryDead, delivery(deadLetterURLs[0], evs[0]).State)

	admin := d.login(common.AccessAdmin)
	code, _ = admin.post("/webhooks/retry", url.Values{})
	require.Equal(t, http.StatusSeeOther, code)
	require.Equal(t, []store.EventID{evs[0].ID}, rewound,
		"the dispatcher's cursors move back to the oldest retried")
	for _, c := range []struct {
		url string
		ev  *store.Event
	}{
		{deadLetterURLs[0], evs[0]},
		{deadLetterURLs[1], evs[2]},
		{deadLetterURLs[0], evs[3]},
		{deadLetterURLs[1], evs[3]},
	} {
		dl := delivery(c.url, c.ev)
		require.Equal(t, store.DeliveryPending, dl.State, c.url, c.ev.ID)
		require.EqualValues(t, 9, dl.Attempts)
		require.False(t, dl.NextAttempt.After(time.Now()))
		require.False(t, dl.RetrySince.IsZero(), "give-up clock restarts")
		require.False(t, event(c.ev).Delivered, "back in the pending queue")
	}
	// e[0] was delivered at B: B must not get it a second time.
	require.Equal(t, store.DeliveryDelivered,
		delivery(deadLetterURLs[1], evs[0]).State)
	// A retry makes an event due now everywhere it is open, as the
	// API's does: e[2] waited an hour at A.
	require.False(t, delivery(deadLetterURLs[0], evs[2]).NextAttempt.After(time.Now()))
	require.True(t, event(evs[1]).Delivered, "delivered events stay so")
	require.True(t, event(evs[4]).Delivered,
		"a removed endpoint's dead row is not retried")
}

// TestDashboardHidDeadLetters: the webhooks panel counted only the pending
// queue, which dead letters leave; it shows their count and the retry
// button when there are some.
func TestDashboardHidDeadLetters(t *testing.T) {
	t.Parallel()
	d := newDashHarness(t, deadLetterURLs...)
	admin := d.login(common.AccessAdmin)
	_, page := admin.get("/")
	require.Contains(t, page, `id="webhook-dead">0 `)
	require.NotContains(t, page, `id="retry-webhooks"`)

	d.k.Notify()
	seedDeadLetters(t, d.api.db, time.Now())
	d.k.Notify()
	_, page = admin.get("/")
	require.Contains(t, page, `id="webhook-dead">3 `)
	require.Contains(t, page, `id="retry-webhooks"`)
}

// TestDeadLetterMetricMissing: satstream_receiver_events_pending counts
// the pending queue, which dead letters leave, so an alert on it never saw
// them; satstream_receiver_webhook_dead counts them, each event once (a
// removed endpoint's rows count until the dispatcher's start tidies them).
func TestDeadLetterMetricMissing(t *testing.T) {
	t.Parallel()
	db := rt.OpenStore(t).Receiver()
	seedDeadLetters(t, db, time.Now())
	m := newMetrics()
	require.NoError(t, m.refresh(t.Context(), db))
	require.InDelta(t, 4, testutil.ToFloat64(m.webhookDead), 0)
	require.InDelta(t, 1, testutil.ToFloat64(m.eventsQueued), 0)
}

// TestDashboardRetryNeverReachedTheDispatcher: end to end with a real
// dispatcher, an event given up at a down endpoint stayed dead after the
// dashboard's retry; now the click makes it due, rewinds the dispatcher's
// cursor below it, and the endpoint, back up, gets it.
func TestDashboardRetryNeverReachedTheDispatcher(t *testing.T) {
	t.Parallel()
	var (
		down     atomic.Bool
		received atomic.Int32
	)
	down.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(
		func(w http.ResponseWriter, r *http.Request) {
			if down.Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			received.Add(1)
		}))
	t.Cleanup(srv.Close)

	d := newDashHarness(t, srv.URL)
	start := time.Now()
	var now atomic.Int64
	now.Store(start.UnixNano())
	hooks := webhook.New(webhook.Config{Store: d.api.db,
		URLs: []string{srv.URL}, Secret: []byte("s"),
		Log: btclog.Disabled, InitialBackoff: time.Millisecond,
		MaxBackoff: time.Millisecond, GiveUpAfter: time.Hour,
		Now:    func() time.Time { return time.Unix(0, now.Load()) },
		Jitter: func(d time.Duration) time.Duration { return d }})
	d.api.api.webhookRetried = hooks.Rewind
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = hooks.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	ev := &store.Event{SubID: store.SubID{1},
		Type: store.EventPaymentReceived, Payload: []byte(`{}`),
		CreatedAt: start}
	require.NoError(t, d.api.db.Update(t.Context(),
		func(tx store.ReceiverTx) error { return tx.AppendEvent(ev) }))
	hooks.Notify()
	state := func() store.DeliveryState {
		var dl *store.Delivery
		require.NoError(t, d.api.db.View(t.Context(),
			func(tx store.ReceiverTx) error {
				var err error
				dl, err = tx.Delivery(store.NewEndpointID(srv.URL),
					ev.ID)
				return err
			}))
		return dl.State
	}
	delivered := func() bool {
		var got *store.Event
		require.NoError(t, d.api.db.View(t.Context(),
			func(tx store.ReceiverTx) error {
				var err error
				got, err = tx.Event(ev.ID)
				return err
			}))
		return got.Delivered
	}
	// The give-up clock starts at the first attempt at the endpoint.
	attempted := func() bool {
		var dl *store.Delivery
		require.NoError(t, d.api.db.View(t.Context(),
			func(tx store.ReceiverTx) error {
				var err error
				dl, err = tx.Delivery(store.NewEndpointID(srv.URL),
					ev.ID)
				return err
			}))
		return dl.Attempts > 0
	}
	require.Eventually(t, attempted, 10*time.Second, 5*time.Millisecond,
		"first attempt at the down endpoint")
	// Past the give-up time at the down endpoint: a dead letter.
	now.Store(start.Add(time.Hour + time.Second).UnixNano())
	hooks.Notify()
	require.Eventually(t, func() bool {
		return state() == store.DeliveryDead && delivered()
	}, 10*time.Second, 5*time.Millisecond, "dead, out of the queue")

	down.Store(false)
	admin := d.login(common.AccessAdmin)
	code, _ := admin.post("/webhooks/retry", url.Values{})
	require.Equal(t, http.StatusSeeOther, code)
	require.Eventually(t, func() bool {
		return received.Load() == 1 && delivered() &&
			state() != store.DeliveryDead
	}, 10*time.Second, 5*time.Millisecond, "delivered after the retry")
}
