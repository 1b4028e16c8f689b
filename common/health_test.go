package common

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/satstream/satstream/store"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/connectivity"
)

// fakeConn is a gRPC connection whose state the test sets.
type fakeConn struct {
	mu       sync.Mutex
	state    connectivity.State
	changed  chan struct{}
	connects int
}

func newFakeConn(s connectivity.State) *fakeConn {
	return &fakeConn{state: s, changed: make(chan struct{})}
}

func (f *fakeConn) set(s connectivity.State) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.state = s
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeConn) GetState() connectivity.State {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state
}

func (f *fakeConn) WaitForStateChange(ctx context.Context,
	s connectivity.State) bool {

	for {
		f.mu.Lock()
		cur, ch := f.state, f.changed
		f.mu.Unlock()
		if cur != s {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-ch:
		}
	}
}

// Connect is what grpc does on Idle: start connecting again.
func (f *fakeConn) Connect() {
	f.mu.Lock()
	f.connects++
	f.mu.Unlock()
}

// TestSenderHealthzSaid200AfterLndDropped: the sender set lnd_connected
// once at connect and cleared it only when its engine returned, which it
// does not when lnd goes away, so /healthz kept answering 200. Both
// daemons now follow the gRPC connection's state: 200 while it is ready,
// 503 once it fails, 200 again when it is back, and the gauge agrees.
func TestSenderHealthzSaid200AfterLndDropped(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "ledger"),
		store.DefaultOptions())
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })

	gauge := NewLndConnectedGauge("sender")
	link := NewLndLink(gauge)
	health := Health{DB: func() HealthLedger { return db }, Lnd: link}
	srv := httptest.NewServer(WithHealthz(http.NotFoundHandler(),
		health.Err))
	defer srv.Close()

	code := func() int {
		resp, err := http.Get(srv.URL + HealthzPath)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	waitFor := func(want int, status string, gaugeWant float64) {
		t.Helper()
		require.Eventually(t, func() bool {
			return code() == want &&
				health.Status()["status"] == status &&
				testutil.ToFloat64(gauge) == gaugeWant
		}, 10*time.Second, 5*time.Millisecond, "healthz %d", want)
	}

	// Not connected yet.
	require.Equal(t, http.StatusServiceUnavailable, code())

	conn := newFakeConn(connectivity.Ready)
	followCtx, stopFollow := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		link.Follow(followCtx, conn)
	}()
	waitFor(http.StatusOK, "ok", 1)

	// lnd stops: grpc drops the transport to Idle (nothing known yet;
	// Follow asks it to reconnect), then the dial fails.
	conn.set(connectivity.Idle)
	require.Eventually(t, func() bool {
		conn.mu.Lock()
		defer conn.mu.Unlock()
		return conn.connects > 0
	}, 10*time.Second, 5*time.Millisecond, "Idle asks to reconnect")
	conn.set(connectivity.Connecting)
	conn.set(connectivity.TransientFailure)
	waitFor(http.StatusServiceUnavailable, "degraded", 0)
	conn.set(connectivity.Connecting)
	waitFor(http.StatusServiceUnavailable, "degraded", 0)

	// lnd is back.
	conn.set(connectivity.Ready)
	waitFor(http.StatusOK, "ok", 1)

	// The daemon stops following (engine returned): down.
	stopFollow()
	<-done
	link.Set(false)
	waitFor(http.StatusServiceUnavailable, "degraded", 0)

	// A ledger that is not open (or failed) outranks lnd.
	link.Set(true)
	waitFor(http.StatusOK, "ok", 1)
	closed := Health{DB: func() HealthLedger { return nil }, Lnd: link}
	require.ErrorIs(t, closed.Err(), store.ErrClosed)
	require.Equal(t, "failing", closed.Status()["status"])
	require.Equal(t, false, closed.Status()["ledger_writable"])
}
