package webhook_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/btcsuite/btclog/v2"
	rt "github.com/satstream/satstream/receiver/receivertest"
	"github.com/satstream/satstream/receiver/webhook"
	"github.com/satstream/satstream/store"
	"github.com/stretchr/testify/require"
)

// spyStore wraps a receiver store: it counts the delivery rows of one
// endpoint read by read-only passes, and can refuse every write the way a
// full disk does.
type spyStore struct {
	store.ReceiverStore
	watch      store.EndpointID
	reads      atomic.Int64
	diskFull   atomic.Bool
	refusedUpd atomic.Int64
}

func (s *spyStore) View(ctx context.Context,
	fn func(store.ReceiverTx) error) error {

	return s.ReceiverStore.View(ctx, func(tx store.ReceiverTx) error {
		return fn(&spyTx{ReceiverTx: tx, s: s})
	})
}

func (s *spyStore) Update(ctx context.Context,
	fn func(store.ReceiverTx) error) error {

	if s.diskFull.Load() {
		s.refusedUpd.Add(1)
		return fmt.Errorf("put delivery: %w", store.ErrDiskFull)
	}
	return s.ReceiverStore.Update(ctx, fn)
}

type spyTx struct {
	store.ReceiverTx
	s *spyStore
}

func (t *spyTx) Delivery(ep store.EndpointID, id store.EventID) (
	*store.Delivery, error) {

	if ep == t.s.watch {
		t.s.reads.Add(1)
	}
	return t.ReceiverTx.Delivery(ep, id)
}

func pendingEvents(t *testing.T, db store.ReceiverStore) int {
	n := 0
	require.NoError(t, db.View(context.Background(),
		func(tx store.ReceiverTx) error {
			return tx.ForEachPendingEvent(0, func(*store.Event) error {
				n++
				return nil
			})
		}))
	return n
}

func delivery(t *testing.T, db store.ReceiverStore, url string,
	id store.EventID) *store.Delivery {

	var dl *store.Delivery
	require.NoError(t, db.View(context.Background(),
		func(tx store.ReceiverTx) error {
			var err error
			dl, err = tx.Delivery(store.NewEndpointID(url), id)
			return err
		}))
	return dl
}

// TestPassRescannedTheWholeBacklog reproduces each endpoint's pass
// starting at the first pending event: with another endpoint down, the
// events this endpoint already has stay pending, and every pass read all
// of them again (the cost grew with the backlog). A pass now starts where
// the endpoint's oldest unfinished event is.
func TestPassRescannedTheWholeBacklog(t *testing.T) {
	t.Parallel()
	base := rt.OpenStore(t).Receiver()
	up, down := newEndpoint(t), newEndpoint(t)
	down.down.Store(true)
	spy := &spyStore{ReceiverStore: base,
		watch: store.NewEndpointID(up.srv.URL)}
	const backlog = 100
	appendEvents(t, base, backlog, time.Now())
	d := webhook.New(webhook.Config{Store: spy,
		URLs: []string{up.srv.URL, down.srv.URL}, Secret: []byte("s"),
		Log: btclog.Disabled, InitialBackoff: time.Hour,
		MaxBackoff: time.Hour})
	runDispatcher(t, d)
	require.Eventually(t, func() bool {
		return len(up.received()) == backlog
	}, 60*time.Second, 5*time.Millisecond)
	require.Equal(t, backlog, pendingEvents(t, base),
		"the down endpoint still waits for them")

	for i := range 3 {
		spy.reads.Store(0)
		appendEvents(t, base, 1, time.Now())
		d.Notify()
		want := backlog + i + 1
		require.Eventually(t, func() bool {
			return len(up.received()) == want && delivery(t, base,
				up.srv.URL, store.EventID(want)).State ==
				store.DeliveryDelivered
		}, 10*time.Second, 5*time.Millisecond)
		require.Less(t, spy.reads.Load(), int64(20),
			"a pass read %d delivery rows for one new event",
			spy.reads.Load())
	}
}

// TestRemovedEndpointKeptEventsPendingForever reproduces an endpoint
// dropped from the config: its events stayed in the pending queue for
// ever, and the per-endpoint rows were never deleted. After a restart
// without it, the events every remaining endpoint has leave the queue and
// their rows (the removed endpoint's included) are gone.
func TestRemovedEndpointKeptEventsPendingForever(t *testing.T) {
	t.Parallel()
	db := rt.OpenStore(t).Receiver()
	keep, gone := newEndpoint(t), newEndpoint(t)
	gone.down.Store(true)
	newD := func(urls ...string) *webhook.Dispatcher {
		return webhook.New(webhook.Config{Store: db, URLs: urls,
			Secret: []byte("s"), Log: btclog.Disabled,
			InitialBackoff: time.Millisecond,
			MaxBackoff:     5 * time.Millisecond})
	}
	appendEvents(t, db, 3, time.Now())
	stop := runDispatcher(t, newD(keep.srv.URL, gone.srv.URL))
	require.Eventually(t, func() bool {
		return len(keep.received()) == 3 &&
			delivery(t, db, gone.srv.URL, 1).Attempts >= 2
	}, 10*time.Second, 5*time.Millisecond)
	stop()
	require.Equal(t, 3, pendingEvents(t, db))

	runDispatcher(t, newD(keep.srv.URL))
	require.Eventually(t, func() bool {
		return pendingEvents(t, db) == 0
	}, 10*time.Second, 5*time.Millisecond)
	for id := store.EventID(1); id <= 3; id++ {
		// A missing row reads as a fresh pending one.
		require.Equal(t, store.Delivery{Endpoint: store.NewEndpointID(
			gone.srv.URL), Event: id}, *delivery(t, db, gone.srv.URL, id))
		require.Equal(t, store.Delivery{Endpoint: store.NewEndpointID(
			keep.srv.URL), Event: id}, *delivery(t, db, keep.srv.URL, id))
		require.Equal(t, "delivered",
			deliveries(t, db, []string{keep.srv.URL}, id)[0].State)
	}
	require.Equal(t, []uint64{1, 2, 3}, keep.received())
}

// TestMarkDeliveredRefusedRePostedTheEvent reproduces a store that
// refuses to record a delivery the endpoint accepted (disk full): the loop
// POSTed the event again at a fixed short interval. The accepted event is
// now kept in memory and only its mark is retried, on the exponential
// schedule.
func TestMarkDeliveredRefusedRePostedTheEvent(t *testing.T) {
	t.Parallel()
	base := rt.OpenStore(t).Receiver()
	ep := newEndpoint(t)
	spy := &spyStore{ReceiverStore: base}
	spy.diskFull.Store(true)
	var (
		mu     sync.Mutex
		delays []time.Duration
	)
	appendEvents(t, base, 1, time.Now())
	d := webhook.New(webhook.Config{Store: spy, URLs: []string{ep.srv.URL},
		Secret: []byte("s"), Log: btclog.Disabled,
		InitialBackoff: time.Millisecond, MaxBackoff: time.Second,
		Jitter: func(d time.Duration) time.Duration {
			mu.Lock()
			defer mu.Unlock()
			delays = append(delays, d)
			return d
		}})
	runDispatcher(t, d)
	require.Eventually(t, func() bool {
		return spy.refusedUpd.Load() >= 5
	}, 10*time.Second, time.Millisecond, "refused %d, posted %v",
		spy.refusedUpd.Load(), ep.received())
	spy.diskFull.Store(false)
	require.Eventually(t, func() bool {
		return pendingEvents(t, base) == 0 && deliveries(t, base,
			[]string{ep.srv.URL}, 1)[0].State == "delivered"
	}, 10*time.Second, 5*time.Millisecond)
	require.Equal(t, []uint64{1}, ep.received(), "POSTed once")

	mu.Lock()
	defer mu.Unlock()
	require.GreaterOrEqual(t, len(delays), 4)
	for i := 1; i < 4; i++ {
		require.Equal(t, 2*delays[i-1], delays[i], "delays %v", delays)
	}
}

// TestRetryDuringPostLostToStaleWrite reproduces a manual retry racing an
// in-flight POST of the same event: the attempt wrote the delivery it had
// read before the retry back over it, so the retry's fresh give-up clock
// was lost and the event went dead at once.
func TestRetryDuringPostLostToStaleWrite(t *testing.T) {
	t.Parallel()
	db := rt.OpenStore(t).Receiver()
	start := time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return start.Add(time.Hour) }
	inFlight, release := make(chan struct{}), make(chan struct{})
	var (
		first atomic.Bool
		got   atomic.Int64
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter,
		_ *http.Request) {

		if first.CompareAndSwap(false, true) {
			close(inFlight)
			<-release
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		got.Add(1)
	}))
	t.Cleanup(srv.Close)
	urls := []string{srv.URL}
	appendEvents(t, db, 1, start)
	d := webhook.New(webhook.Config{Store: db, URLs: urls,
		Secret: []byte("s"), Log: btclog.Disabled,
		InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond,
		GiveUpAfter: time.Hour, Now: clock,
		Jitter: func(d time.Duration) time.Duration { return d }})
	runDispatcher(t, d)
	select {
	case <-inFlight:
	case <-time.After(10 * time.Second):
		t.Fatal("no POST")
	}

	var uid store.EventUID
	require.NoError(t, db.Update(context.Background(),
		func(tx store.ReceiverTx) error {
			ev, err := tx.Event(1)
			if err != nil {
				return err
			}
			uid = ev.UID
			_, err = webhook.Retry(tx, urls, uid, clock())
			return err
		}))
	close(release)
	d.Rewind(1)
	require.Eventually(t, func() bool {
		return deliveries(t, db, urls, 1)[0].State == "delivered"
	}, 10*time.Second, 5*time.Millisecond, "state %+v",
		deliveries(t, db, urls, 1))
	require.Equal(t, int64(1), got.Load())
}
