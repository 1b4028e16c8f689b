package receiver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/satstream/satstream/common"
	"github.com/satstream/satstream/receiver/core"
	rt "github.com/satstream/satstream/receiver/receivertest"
	"github.com/satstream/satstream/store"
	"github.com/satstream/satstream/store/postgres"
	"github.com/satstream/satstream/store/postgres/pgtest"
	"github.com/satstream/satstream/store/storetest"
	"github.com/satstream/satstream/tlv"
	"github.com/stretchr/testify/require"
)

// TestEventListWaitSecOutOfRangeRefused reproduces GET /v1/events taking
// any wait_sec: a negative, too long or malformed wait must be a 400
// naming wait_sec and the allowed range, not a silent ordinary page (or a
// wait the server's write timeout would cut off). 0 and no wait_sec at
// all answer the page at once, as before.
func TestEventListWaitSecOutOfRangeRefused(t *testing.T) {
	t.Parallel()
	a := newAPIHarness(t)
	tests := []struct {
		name, query string
		ok          bool
	}{
		{"absent", "", true},
		{"zero", "?wait_sec=0", true},
		{"zero with after", "?after=5&wait_sec=0", true},
		{"negative", "?wait_sec=-1", false},
		{"above the maximum", "?wait_sec=21", false},
		{"a minute", "?wait_sec=60", false},
		{"huge", "?wait_sec=99999999999999999999", false},
		{"fraction", "?wait_sec=1.5", false},
		{"not a number", "?wait_sec=soon", false},
		{"empty", "?wait_sec=", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := a.call(a.tokens.ReadOnly, "GET",
				"/v1/events"+tc.query, nil)
			if tc.ok {
				require.Equal(t, http.StatusOK, code, body)
				require.Empty(t, body["events"])
				return
			}
			require.Equal(t, http.StatusBadRequest, code, body)
			_, field := errOf(body)
			require.Equal(t, "wait_sec", field, body)
			msg := body["error"].(map[string]any)["message"].(string)
			require.Contains(t, msg, "0 and 20")
		})
	}
}

// viewSignal is a store that says, on views, when a View has returned:
// a long poll's read is done and it is about to wait.
type viewSignal struct {
	store.ReceiverStore
	views chan struct{}

	mu sync.Mutex
	// hold, if set, keeps the next View from returning until it is
	// closed (after views is told).
	hold chan struct{}
}

func (v *viewSignal) View(ctx context.Context,
	fn func(tx store.ReceiverTx) error) error {

	err := v.ReceiverStore.View(ctx, fn)
	v.mu.Lock()
	hold := v.hold
	v.hold = nil
	v.mu.Unlock()
	select {
	case v.views <- struct{}{}:
	default:
	}
	if hold != nil {
		<-hold
	}
	return err
}

// holdNext makes the next View wait, after it read, until release.
func (v *viewSignal) holdNext() (release func()) {
	ch := make(chan struct{})
	v.mu.Lock()
	v.hold = ch
	v.mu.Unlock()
	return func() { close(ch) }
}

// drain empties views.
func (v *viewSignal) drain() {
	for {
		select {
		case <-v.views:
		default:
			return
		}
	}
}

// waitView waits for the next View to return.
func (v *viewSignal) waitView(t *testing.T) {
	t.Helper()
	select {
	case <-v.views:
	case <-time.After(10 * time.Second):
		t.Fatal("no read of the event page")
	}
}

// waitHarness is the API as the daemon wires it on badger (event notifier
// over the paid index over the ledger), with the long polls' safety
// re-read set to an hour: only the notifier wakes them.
type waitHarness struct {
	*apiHarness
	events *eventNotifier
	views  *viewSignal
}

func newWaitHarness(t *testing.T) *waitHarness {
	a := newAPIHarness(t)
	ev := newEventNotifier(a.api.db)
	views := &viewSignal{ReceiverStore: ev, views: make(chan struct{}, 64)}
	a.db = ev
	a.api.db = views
	a.api.events = ev.n
	a.api.eventReread = time.Hour
	a.api.maxEventWait = maxEventWait(common.DefaultWriteTimeout)
	a.h = a.api.handler()
	return &waitHarness{apiHarness: a, events: ev, views: views}
}

// poll is a GET of path with the read-only token, answered on the
// returned channel; it ends with ctx.
func (w *waitHarness) poll(ctx context.Context, path string) <-chan *httptest.ResponseRecorder {
	req := httptest.NewRequest("GET", path, nil).WithContext(ctx)
	req.Header.Set("Authorization", "Bearer "+w.tokens.ReadOnly)
	out := make(chan *httptest.ResponseRecorder, 1)
	go func() {
		rec := httptest.NewRecorder()
		w.h.ServeHTTP(rec, req)
		out <- rec
	}()
	return out
}

// answer waits for a poll's answer and decodes its events.
func answer(t *testing.T, ch <-chan *httptest.ResponseRecorder) (int,
	[]map[string]any) {

	t.Helper()
	select {
	case rec := <-ch:
		var body struct {
			Events []map[string]any `json:"events"`
		}
		if rec.Code == http.StatusOK {
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
			require.NotNil(t, body.Events, "events is [], not null")
		}
		return rec.Code, body.Events
	case <-time.After(30 * time.Second):
		t.Fatal("the long poll never answered")
		return 0, nil
	}
}

// createSubscription makes a plan and a subscription through the API and
// returns the subscription's secret and the sequence of its event.
func (w *waitHarness) createSubscription(t *testing.T) ([16]byte, uint64) {
	t.Helper()
	adm := w.tokens.Admin
	code, plan := w.call(adm, "POST", "/v1/plans", map[string]any{
		"price_msat_per_sec": 10, "min_payment_msat": 1000,
	})
	require.Equal(t, http.StatusCreated, code, plan)
	code, sub := w.call(adm, "POST", "/v1/subscriptions",
		map[string]any{"plan_id": plan["id"]})
	require.Equal(t, http.StatusCreated, code, sub)
	sid, err := tlv.ParseSubscriptionID(sub["secret"].(string))
	require.NoError(t, err)
	code, body := w.call(adm, "GET", "/v1/events", nil)
	require.Equal(t, http.StatusOK, code)
	evs := body["events"].([]any)
	require.Len(t, evs, 1)
	last := evs[0].(map[string]any)
	require.Equal(t, "subscription.created", last["type"])
	return sid, uint64(last["sequence"].(float64))
}

// TestEventLongPollMissesPipelineCredit reproduces a follower of
// GET /v1/events learning of a credit only at its next poll: a request
// with wait_sec waiting after the last event must answer with the
// payment.received event the real pipeline commits while it waits. Its
// safety re-read is an hour away, so only the event notifier can have
// woken it. The credit is committed, and its wake-up sent, after the
// request's first (empty) read and before that read returns: a waiter
// that subscribed only after reading would lose it and wait on.
func TestEventLongPollMissesPipelineCredit(t *testing.T) {
	t.Parallel()
	w := newWaitHarness(t)
	sid, last := w.createSubscription(t)

	lnd := rt.NewFakeLnd()
	ctx, cancel := context.WithCancel(context.Background())
	credited := make(chan struct{})
	var once sync.Once
	p := core.NewPipeline(core.PipelineConfig{Store: w.events,
		Source: lnd, Log: w.api.log,
		// Told after the step's Update returned: after the
		// wrapper's wake-up.
		OnEvents: func() { once.Do(func() { close(credited) }) }})
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	require.Eventually(t, func() bool { return lnd.Subscribers() > 0 },
		10*time.Second, 5*time.Millisecond, "pipeline never subscribed")

	w.views.drain()
	release := w.views.holdNext()
	ans := w.poll(context.Background(),
		fmt.Sprintf("/v1/events?after=%d&wait_sec=%d", last,
			maxEventWaitSec))
	w.views.waitView(t)

	hash := lnd.Keysend(2000, rt.Records(t, sid, 1, nil, false))
	select {
	case <-credited:
	case <-time.After(10 * time.Second):
		t.Fatal("the pipeline never credited")
	}
	release()
	code, evs := answer(t, ans)
	require.Equal(t, http.StatusOK, code)
	require.NotEmpty(t, evs, "the credit, not an empty page at wait_sec")
	// The first credit activates the subscription: both events are
	// committed in the credit's step.
	var types []string
	for _, ev := range evs {
		require.Greater(t, uint64(ev["sequence"].(float64)), last)
		types = append(types, ev["type"].(string))
	}
	require.Equal(t, []string{"subscription.activated", "payment.received"},
		types)
	pay := evs[1]["data"].(map[string]any)["payment"].(map[string]any)
	require.Equal(t, hash.String(), pay["payment_hash"])
	require.Zero(t, w.events.n.Subscribers(), "unsubscribed")
}

// TestEventLongPollEndsEmptyAfterWaitSec: with nothing new, a long poll
// answers the empty page once wait_sec has passed, exactly as without
// wait_sec, and leaves no subscription behind.
func TestEventLongPollEndsEmptyAfterWaitSec(t *testing.T) {
	t.Parallel()
	w := newWaitHarness(t)
	_, last := w.createSubscription(t)

	for _, q := range []string{"", "&pending=true"} {
		ans := w.poll(context.Background(),
			fmt.Sprintf("/v1/events?after=%d&wait_sec=1%s", last, q))
		require.Eventually(t, func() bool {
			return w.events.n.Subscribers() == 1
		}, 10*time.Second, time.Millisecond, "never waited")
		code, evs := answer(t, ans)
		require.Equal(t, http.StatusOK, code)
		require.Empty(t, evs)
		require.Zero(t, w.events.n.Subscribers())
	}

	// A page that is not empty is answered at once (no subscription).
	code, evs := answer(t, w.poll(context.Background(),
		"/v1/events?wait_sec=20"))
	require.Equal(t, http.StatusOK, code)
	require.Len(t, evs, 1)
}

// TestEventLongPollClientGoneLeaksSubscription: a client that goes away
// while its long poll waits must end the wait at once, leaving no
// goroutine and no notifier subscription behind, and nothing is written.
func TestEventLongPollClientGoneLeaksSubscription(t *testing.T) {
	t.Parallel()
	w := newWaitHarness(t)
	ctx, cancel := context.WithCancel(context.Background())
	ans := w.poll(ctx, "/v1/events?wait_sec=20")
	require.Eventually(t, func() bool {
		return w.events.n.Subscribers() == 1
	}, 10*time.Second, time.Millisecond, "never waited")
	cancel()
	select {
	case rec := <-ans:
		require.Zero(t, rec.Body.Len(), "nobody to answer")
	case <-time.After(10 * time.Second):
		t.Fatal("the handler still waits for a client that is gone")
	}
	require.Zero(t, w.events.n.Subscribers())
}

// countingStore runs each Update's fn as often as attempts says (a
// store retrying after conflicts), failing all but the last with
// store.ErrConflict, and the last with lastErr.
type countingStore struct {
	store.ReceiverStore
	attempts int
	lastErr  error
	txs      []store.ReceiverTx
}

func (c *countingStore) Update(ctx context.Context,
	fn func(tx store.ReceiverTx) error) error {

	var err error
	for i := 0; i < c.attempts; i++ {
		err = c.ReceiverStore.Update(ctx, func(tx store.ReceiverTx) error {
			if err := fn(tx); err != nil {
				return err
			}
			if i < c.attempts-1 {
				return store.ErrConflict
			}
			return c.lastErr
		})
		if i < c.attempts-1 {
			if !errors.Is(err, store.ErrConflict) {
				return err
			}
		}
	}
	return err
}

// TestEventNotifierChangesStepResult: the wrapper every writer goes
// through must pass a step's error back unchanged and run every retry of
// it through the watched transaction, and wake the long polls only when
// the committed attempt queued an event: not for a step that failed or
// rolled back, not for one whose only event was in an attempt that lost
// a conflict, and not for a step that queued nothing.
func TestEventNotifierChangesStepResult(t *testing.T) {
	t.Parallel()
	errStep := errors.New("step failed")
	appendEv := func(tx store.ReceiverTx) error {
		return tx.AppendEvent(&store.Event{
			Type: store.EventSubscriptionCreated})
	}
	tests := []struct {
		name     string
		attempts int
		lastErr  error
		// step runs in attempt i (0-based).
		step   func(tx store.ReceiverTx, i int) error
		err    error
		notify bool
	}{
		{"appends", 1, nil,
			func(tx store.ReceiverTx, _ int) error { return appendEv(tx) },
			nil, true},
		{"queues nothing", 1, nil,
			func(tx store.ReceiverTx, _ int) error {
				return tx.SetSettleIndex(7)
			}, nil, false},
		{"step fails after appending", 1, nil,
			func(tx store.ReceiverTx, _ int) error {
				if err := appendEv(tx); err != nil {
					return err
				}
				return errStep
			}, errStep, false},
		{"commit fails", 1, errStep,
			func(tx store.ReceiverTx, _ int) error { return appendEv(tx) },
			errStep, false},
		{"retried, appends in the committed attempt", 3, nil,
			func(tx store.ReceiverTx, i int) error {
				if i == 2 {
					return appendEv(tx)
				}
				return nil
			}, nil, true},
		{"retried, appended only in a lost attempt", 2, nil,
			func(tx store.ReceiverTx, i int) error {
				if i == 0 {
					return appendEv(tx)
				}
				return nil
			}, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cs := &countingStore{ReceiverStore: rt.OpenStore(t).Receiver(),
				attempts: tc.attempts, lastErr: tc.lastErr}
			ev := newEventNotifier(cs)
			wake, unsubscribe := ev.n.Subscribe()
			defer unsubscribe()
			runs := 0
			err := ev.Update(context.Background(),
				func(tx store.ReceiverTx) error {
					_, watched := tx.(*eventRecorder)
					require.True(t, watched, "attempt %d", runs)
					runs++
					return tc.step(tx, runs-1)
				})
			if tc.err == nil {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, tc.err)
			}
			require.Equal(t, tc.attempts, runs)
			select {
			case <-wake:
				require.True(t, tc.notify, "woken")
			default:
				require.False(t, tc.notify, "not woken")
			}
		})
	}
}

// startEventDaemon starts a daemon on badger whose lnd never answers, with
// the long polls' safety re-read set to reread, and returns it with its
// admin token. mutate, if set, changes the configuration first. Not from
// a parallel test: New sets the store's process-wide logger, which the
// stores of parallel tests read.
func startEventDaemon(t *testing.T, reread time.Duration,
	mutate func(*Config)) (*Daemon, string) {

	t.Helper()
	c := validConfig(t)
	c.API.Listen = "127.0.0.1:0"
	c.Metrics.Listen = ""
	lndConfigThatWaits(t, c)
	if mutate != nil {
		mutate(c)
	}
	d, err := New(c, common.NewLogManager(io.Discard))
	require.NoError(t, err)
	d.eventReread = reread
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	require.NoError(t, d.Start(ctx))
	t.Cleanup(func() { _ = d.Stop() })
	tokens, err := common.LoadOrCreateTokens(c.NetworkDir())
	require.NoError(t, err)
	return d, tokens.Admin
}

// daemonPoll does GET path on the daemon's API; the answer (status and
// events, or the error) comes on the returned channel.
type pollResult struct {
	code int
	evs  []map[string]any
	err  error
}

func daemonPoll(d *Daemon, token, path string) <-chan pollResult {
	out := make(chan pollResult, 1)
	go func() {
		req, err := http.NewRequest("GET", "https://"+d.APIAddr()+path,
			nil)
		if err != nil {
			out <- pollResult{err: err}
			return
		}
		req.Header.Set("Authorization", "Bearer "+token)
		c := insecureClient()
		c.Timeout = time.Minute
		resp, err := c.Do(req)
		if err != nil {
			out <- pollResult{err: err}
			return
		}
		defer resp.Body.Close()
		var body struct {
			Events []map[string]any `json:"events"`
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		out <- pollResult{code: resp.StatusCode, evs: body.Events, err: err}
	}()
	return out
}

// TestDaemonLongPollMissesStoreEvent: in the daemon as wired, an event
// appended by any writer through d.rs wakes a long poll of
// GET /v1/events at once (its safety re-read is an hour away).
func TestDaemonLongPollMissesStoreEvent(t *testing.T) {
	d, token := startEventDaemon(t, time.Hour, nil)
	ans := daemonPoll(d, token, "/v1/events?wait_sec=20")
	require.Eventually(t, func() bool { return d.events.Subscribers() == 1 },
		10*time.Second, time.Millisecond, "never waited")

	require.NoError(t, d.rs.Update(context.Background(),
		func(tx store.ReceiverTx) error {
			return tx.AppendEvent(&store.Event{
				Type:    store.EventSubscriptionCreated,
				Payload: []byte(`{}`), CreatedAt: time.Now()})
		}))
	var res pollResult
	select {
	case res = <-ans:
	case <-time.After(30 * time.Second):
		t.Fatal("the long poll never answered")
	}
	require.NoError(t, res.err)
	require.Equal(t, http.StatusOK, res.code)
	require.Len(t, res.evs, 1)
	require.EqualValues(t, 1, res.evs[0]["sequence"])
}

// TestStopWaitsForLongPoll reproduces a waiting GET /v1/events?wait_sec
// holding the daemon's Stop: http.Server.Shutdown waits for running
// handlers (up to 5 s, then the store is closed under it). The daemon's
// stop must end the wait: the client gets its (empty) page or an error,
// and Stop returns well before Shutdown's timeout.
func TestStopWaitsForLongPoll(t *testing.T) {
	d, token := startEventDaemon(t, time.Hour, nil)
	ans := daemonPoll(d, token, fmt.Sprintf("/v1/events?wait_sec=%d",
		maxEventWaitSec))
	require.Eventually(t, func() bool { return d.events.Subscribers() == 1 },
		10*time.Second, time.Millisecond, "never waited")

	stopped := make(chan error, 1)
	go func() { stopped <- d.Stop() }()
	select {
	case err := <-stopped:
		require.NoError(t, err)
	case <-time.After(4 * time.Second):
		t.Fatal("Stop is held by the waiting request")
	}
	select {
	case res := <-ans:
		if res.err == nil {
			require.Equal(t, http.StatusOK, res.code)
			require.Empty(t, res.evs)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the client never got an answer")
	}
	require.Zero(t, d.events.Subscribers())
}

// TestEventLongPollPendingMissesRetry: a long poll of the pending queue
// (pending=true) must wake when a dead or delivered event is put back in
// it (a manual retry), not only when an event is appended; its safety
// re-read is an hour away.
func TestEventLongPollPendingMissesRetry(t *testing.T) {
	t.Parallel()
	w := newWaitHarness(t)
	w.api.webhookURLs = []string{"https://hooks.example/satstream"}
	ctx := context.Background()
	ev := &store.Event{Type: store.EventSubscriptionCreated,
		Payload: []byte(`{}`), CreatedAt: w.now}
	require.NoError(t, w.db.Update(ctx, func(tx store.ReceiverTx) error {
		if err := tx.AppendEvent(ev); err != nil {
			return err
		}
		return tx.MarkEventDelivered(ev.ID, w.now)
	}))

	ans := w.poll(ctx, "/v1/events?pending=true&wait_sec=20")
	require.Eventually(t, func() bool {
		return w.events.n.Subscribers() == 1
	}, 10*time.Second, time.Millisecond, "never waited")
	code, body := w.call(w.tokens.Admin, "POST",
		"/v1/webhooks/events/"+ev.UID.String()+"/retry", nil)
	require.Equal(t, http.StatusOK, code, body)

	code, evs := answer(t, ans)
	require.Equal(t, http.StatusOK, code)
	require.Len(t, evs, 1)
	require.Equal(t, ev.UID.String(), evs[0]["id"])
	require.Equal(t, false, evs[0]["delivered"])
}

// TestEventLongPollMissesOtherNodesEvent: on a PostgreSQL ledger shared
// by a cluster, an event another receiver appends never passes through
// this process's store, so no notifier tells of it; a long poll here must
// still answer with it, found by its re-read.
func TestEventLongPollMissesOtherNodesEvent(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dsn := srv.NewDatabase(t)
	open := func() *postgres.Store {
		db, err := postgres.Open(ctx, postgres.Config{DSN: dsn,
			NodePubkey: [33]byte{2, 9}})
		require.NoError(t, err)
		t.Cleanup(func() { _ = db.Close() })
		return db
	}
	here, other := open(), open()

	a := newAPIHarness(t)
	ev := newEventNotifier(here)
	views := &viewSignal{ReceiverStore: ev, views: make(chan struct{}, 64)}
	a.db, a.api.db, a.api.paidIdx = ev, views, nil
	a.api.events = ev.n
	a.api.eventReread = eventRereadPostgres
	a.h = a.api.handler()
	w := &waitHarness{apiHarness: a, events: ev, views: views}

	ans := w.poll(ctx, "/v1/events?wait_sec=20")
	w.views.waitView(t)
	require.NoError(t, other.Update(ctx, func(tx store.ReceiverTx) error {
		return tx.AppendEvent(&store.Event{
			Type:    store.EventSubscriptionCreated,
			Payload: []byte(`{}`), CreatedAt: a.now})
	}))
	code, evs := answer(t, ans)
	require.Equal(t, http.StatusOK, code)
	require.Len(t, evs, 1, "the other node's event, not an empty page")
	require.Zero(t, ev.n.Subscribers())
}

// TestLongPollCutOffByWriteTimeout reproduces a long poll outliving the
// API server's write timeout (--api.writetimeout, which runs from the
// end of the request's headers): its page could no longer be written and
// the client got a broken connection instead of the empty page. The wait
// is shortened to two thirds of the write timeout.
func TestLongPollCutOffByWriteTimeout(t *testing.T) {
	for _, tc := range []struct {
		writeTimeout, want time.Duration
	}{
		{common.DefaultWriteTimeout, maxEventWaitSec * time.Second},
		{time.Hour, maxEventWaitSec * time.Second},
		{15 * time.Second, 10 * time.Second},
		{3 * time.Second, 2 * time.Second},
	} {
		require.Equal(t, tc.want, maxEventWait(tc.writeTimeout),
			"write timeout %v", tc.writeTimeout)
	}
	require.Less(t, maxEventWaitSec*time.Second, common.DefaultWriteTimeout)

	d, token := startEventDaemon(t, time.Hour, func(c *Config) {
		c.API.WriteTimeout = 3 * time.Second
	})
	ans := daemonPoll(d, token, fmt.Sprintf("/v1/events?wait_sec=%d",
		maxEventWaitSec))
	select {
	case res := <-ans:
		require.NoError(t, res.err, "the page, not a cut connection")
		require.Equal(t, http.StatusOK, res.code)
		require.Empty(t, res.evs)
	case <-time.After(time.Minute):
		t.Fatal("the long poll never answered")
	}
}

// pageCounter is a store that counts its Views and the event pages
// (ForEachEvent) read in them.
type pageCounter struct {
	store.ReceiverStore
	views, pages atomic.Int64
}

func (c *pageCounter) View(ctx context.Context,
	fn func(tx store.ReceiverTx) error) error {

	c.views.Add(1)
	return c.ReceiverStore.View(ctx, func(tx store.ReceiverTx) error {
		return fn(&pageCountingTx{ReceiverTx: tx, pages: &c.pages})
	})
}

type pageCountingTx struct {
	store.ReceiverTx
	pages *atomic.Int64
}

func (t *pageCountingTx) ForEachEvent(after store.EventID, limit int,
	fn func(*store.Event) error) error {

	t.pages.Add(1)
	return t.ReceiverTx.ForEachEvent(after, limit, fn)
}

// TestEventLongPollRereadsPagePerWaiter reproduces the long polls' safety
// re-read costing the ledger one page read per waiting request per
// interval: on PostgreSQL every 250 ms, each a transaction on the
// connection pool the payment steps use, so 256 idle followers (the
// default --api.maxconns) made a thousand reads a second. Idle waiters
// must share one check of the ledger's last event id and read their pages
// only when it moved past them; an event no notifier told of (another
// receiver's) is still found by that check and answered.
func TestEventLongPollRereadsPagePerWaiter(t *testing.T) {
	t.Parallel()
	a := newAPIHarness(t)
	ev := newEventNotifier(a.api.db)
	reads := &pageCounter{ReceiverStore: ev}
	a.db, a.api.db = ev, reads
	a.api.events = ev.n
	a.api.eventReread = time.Millisecond
	a.api.maxEventWait = maxEventWait(common.DefaultWriteTimeout)
	a.h = a.api.handler()
	w := &waitHarness{apiHarness: a, events: ev}

	const waiters = 20
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	answers := make([]<-chan *httptest.ResponseRecorder, waiters)
	for i := range answers {
		answers[i] = w.poll(ctx, fmt.Sprintf("/v1/events?wait_sec=%d",
			maxEventWaitSec))
	}
	require.Eventually(t, func() bool {
		return ev.n.Subscribers() == waiters
	}, 10*time.Second, time.Millisecond, "never all waiting")
	// Each waiter read its page once; let a few hundred re-read
	// intervals pass, counted in the ledger's reads.
	require.Eventually(t, func() bool {
		return reads.views.Load() >= waiters+300
	}, 30*time.Second, time.Millisecond, "no re-read")
	require.LessOrEqual(t, reads.pages.Load(), int64(waiters),
		"idle waiters read their pages at every interval")

	// An event appended behind the notifier's back (as another
	// receiver of a cluster does) is found and answered to everyone.
	require.NoError(t, ev.ReceiverStore.Update(ctx,
		func(tx store.ReceiverTx) error {
			return tx.AppendEvent(&store.Event{
				Type:    store.EventSubscriptionCreated,
				Payload: []byte(`{}`), CreatedAt: a.now})
		}))
	for _, ans := range answers {
		code, evs := answer(t, ans)
		require.Equal(t, http.StatusOK, code)
		require.Len(t, evs, 1)
	}
	require.Zero(t, ev.n.Subscribers())
}

// TestReceiverSuiteThroughEventNotifier runs the store's conformance suite
// (conflicts, event order, scans, deliveries) through the wrappers every
// writer of the daemon goes through on badger, the event notifier over the
// paid index: they must not change any step's result.
func TestReceiverSuiteThroughEventNotifier(t *testing.T) {
	t.Parallel()
	storetest.RunReceiverSuite(t, func(t testing.TB) store.ReceiverStore {
		return newEventNotifier(newPaidIndex(rt.OpenStore(t).Receiver()))
	})
}

// TestReceiverSuiteThroughEventNotifierPostgres is the same on a
// PostgreSQL ledger (SERIALIZABLE retries, the slow lane, the event order
// lock), where the notifier wraps the store directly.
func TestReceiverSuiteThroughEventNotifierPostgres(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	storetest.RunReceiverSuite(t, func(t testing.TB) store.ReceiverStore {
		db, err := postgres.Open(context.Background(), postgres.Config{
			DSN: srv.NewDatabase(t), NodePubkey: [33]byte{2, 7}})
		require.NoError(t, err)
		t.Cleanup(func() { _ = db.Close() })
		return newEventNotifier(db)
	})
}
