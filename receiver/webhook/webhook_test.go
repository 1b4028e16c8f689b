package webhook_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btclog/v2"
	rt "github.com/satstream/satstream/receiver/receivertest"
	"github.com/satstream/satstream/receiver/webhook"
	"github.com/satstream/satstream/store"
	"github.com/stretchr/testify/require"
)

func TestSignVerify(t *testing.T) {
	t.Parallel()
	secret := []byte("whsec_test")
	body := []byte(`{"id":"evt_1"}`)
	ts := time.Unix(1700000000, 0)

	// Known answer: HMAC-SHA256("whsec_test", "1700000000." + body).
	got := webhook.Sign(secret, ts, body)
	// Computed independently (Python hmac module).
	require.Equal(t, "t=1700000000,v1=c89214b5b5da833daed6f0b8c5bb6bd58cea9022bd80ccc78230f3942d632925", got)

	tests := []struct {
		name   string
		header string
		body   []byte
		now    time.Time
		ok     bool
	}{
		{"valid", got, body, ts.Add(time.Minute), true},
		{"tampered body", got, []byte(`{"id":"evt_2"}`), ts, false},
		{"wrong secret", webhook.Sign([]byte("other"), ts, body), body, ts, false},
		{"too old", got, body, ts.Add(10 * time.Minute), false},
		{"malformed", "v1=abc", body, ts, false},
		{"empty", "", body, ts, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := webhook.Verify(secret, tc.header, tc.body, tc.now,
				5*time.Minute)
			if tc.ok {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, webhook.ErrBadSignature)
			}
		})
	}
}

func TestDelay(t *testing.T) {
	t.Parallel()
	tests := []struct {
		attempts uint32
		want     time.Duration
	}{
		{1, time.Second}, {2, 2 * time.Second}, {3, 4 * time.Second},
		{7, 60 * time.Second}, {100, 60 * time.Second},
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, webhook.Delay(tc.attempts, time.Second,
			time.Minute), "attempt %d", tc.attempts)
	}
	// The schedule keeps retrying for more than a day.
	var total time.Duration
	for i := uint32(1); i <= 40; i++ {
		total += webhook.Delay(i, 5*time.Second, time.Hour)
	}
	require.Greater(t, total, 24*time.Hour)
}

// TestDispatcherRetriesInOrder: the endpoint fails at first; events are
// retried with backoff, delivered signed, in order per subscription, and
// a new dispatcher (restart) picks up what is left.
func TestDispatcherRetriesInOrder(t *testing.T) {
	t.Parallel()
	db := rt.OpenStore(t).Receiver()
	secret := []byte("s3cret")

	var (
		mu    sync.Mutex
		fails = 3
		got   []webhook.Envelope
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter,
		r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		require.NoError(t, webhook.Verify(secret,
			r.Header.Get(webhook.SignatureHeader), body, time.Now(),
			time.Minute))
		if fails > 0 {
			fails--
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		var env webhook.Envelope
		require.NoError(t, json.Unmarshal(body, &env))
		got = append(got, env)
	}))
	defer srv.Close()

	subA, subB := store.SubID{1}, store.SubID{2}
	require.NoError(t, db.Update(context.Background(), func(tx store.ReceiverTx) error {
		for _, s := range []store.SubID{subA, subB, subA, subA, subB} {
			err := tx.AppendEvent(&store.Event{SubID: s,
				Type: store.EventPaymentReceived, Payload: []byte(`{}`),
				CreatedAt: time.Now()})
			if err != nil {
				return err
			}
		}
		return nil
	}))

	var results sync.Map
	newD := func() *webhook.Dispatcher {
		return webhook.New(webhook.Config{
			Store: db, URLs: []string{srv.URL}, Secret: secret,
			Log:            btclog.NewSLogger(btclog.NewDefaultHandler(os.Stderr)),
			InitialBackoff: 10 * time.Millisecond,
			MaxBackoff:     50 * time.Millisecond,
			OnResult: func(ok bool) {
				v, _ := results.LoadOrStore(ok, new(int))
				*(v.(*int))++
			},
		})
	}

	// First dispatcher runs until the first failures are recorded, then
	// "crashes".
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = newD().Run(ctx); close(done) }()
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return fails == 0
	}, 10*time.Second, 5*time.Millisecond)
	cancel()
	<-done

	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	go func() { _ = newD().Run(ctx2) }()
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		ids := map[uint64]bool{}
		for _, env := range got {
			ids[env.Sequence] = true
		}
		return len(ids) == 5
	}, 10*time.Second, 5*time.Millisecond)

	mu.Lock()
	defer mu.Unlock()
	last := map[string]uint64{}
	seen := map[uint64]bool{}
	for _, env := range got {
		if seen[env.Sequence] {
			// At-least-once: a repeat (same id) is allowed and
			// deduplicated by the endpoint.
			continue
		}
		require.Greater(t, env.Sequence, last[env.SubscriptionID],
			"order of %s", env.SubscriptionID)
		last[env.SubscriptionID] = env.Sequence
		seen[env.Sequence] = true
	}
	require.Len(t, seen, 5)

	mu.Unlock()
	// Every event leaves the outbox once its delivery is recorded.
	require.Eventually(t, func() bool {
		pending := 0
		_ = db.View(context.Background(), func(tx store.ReceiverTx) error {
			return tx.ForEachPendingEvent(0, func(*store.Event) error {
				pending++
				return nil
			})
		})
		return pending == 0
	}, 10*time.Second, 5*time.Millisecond)
	mu.Lock()
}
