package common

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/satstream/satstream/store"
	"google.golang.org/grpc/connectivity"
)

// HealthzPath is the open liveness endpoint for load balancers and
// systemd: no token, no details, 200 or 503.
const HealthzPath = "/healthz"

// ErrLndDisconnected is why /healthz answers 503 while lnd is away.
var ErrLndDisconnected = errors.New("lnd not connected")

// WithHealthz serves GET and HEAD /healthz from healthy, outside next's
// token check, and everything else from next. healthy returns nil when the
// daemon can do its work (lnd connected, ledger writable); the reason is
// logged by the daemon, never shown here, since anyone may ask.
func WithHealthz(next http.Handler, healthy func() error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != HealthzPath {
			next.ServeHTTP(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if healthy() != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("unavailable\n"))
			return
		}
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("ok\n"))
	})
}

// LndLink is a daemon's view of its lnd connection, the one source of
// /healthz, /v1/health's lnd_connected and the satstream_lnd_connected
// gauge, so the three can't disagree.
type LndLink struct {
	up    atomic.Bool
	gauge prometheus.Gauge
}

// NewLndLink starts disconnected; gauge (satstream_lnd_connected) may be
// nil.
func NewLndLink(gauge prometheus.Gauge) *LndLink {
	l := &LndLink{gauge: gauge}
	l.Set(false)
	return l
}

// Set records whether lnd is usable.
func (l *LndLink) Set(up bool) {
	l.up.Store(up)
	if l.gauge == nil {
		return
	}
	if up {
		l.gauge.Set(1)
	} else {
		l.gauge.Set(0)
	}
}

// Up reports whether lnd is usable.
func (l *LndLink) Up() bool { return l.up.Load() }

// ConnState is the part of a gRPC client connection Follow watches; lndclient
// hands out its *grpc.ClientConn as LndServices.ClientConn.
type ConnState interface {
	GetState() connectivity.State
	WaitForStateChange(ctx context.Context, s connectivity.State) bool
	Connect()
}

// Follow sets the link from conn's state until ctx ends: up while the
// connection is ready, down once connecting to lnd fails. An RPC in
// flight can't tell a daemon that lnd went away (the sender's engine
// keeps running through it), the connection can. When lnd closes the
// connection, gRPC falls back to idle and dials again only when asked:
// Follow asks at once, so a stopped lnd shows as a failed dial within
// moments. Idle alone changes nothing, since gRPC also idles a healthy
// but unused connection. The caller sets the link down after Follow
// returns, when it stops using the connection.
func (l *LndLink) Follow(ctx context.Context, conn ConnState) {
	for {
		s := conn.GetState()
		switch s {
		case connectivity.Ready:
			l.Set(true)
		case connectivity.TransientFailure, connectivity.Shutdown:
			l.Set(false)
		case connectivity.Idle:
			conn.Connect()
		}
		if s == connectivity.Shutdown || !conn.WaitForStateChange(ctx, s) {
			return
		}
	}
}

// HealthLedger is what health asks of a ledger: whether it failed for
// good. A ledger that can fill its disk also has SpaceErr() error, one
// behind a network (PostgreSQL) also has Ping(ctx) error; both are asked
// when present.
type HealthLedger interface {
	Err() error
}

// spaceErr is the ledger's full-disk refusal, if it has one.
func spaceErr(db HealthLedger) error {
	if s, ok := db.(interface{ SpaceErr() error }); ok {
		return s.SpaceErr()
	}
	return nil
}

// pingTimeout bounds the reachability check of a networked ledger.
const pingTimeout = 2 * time.Second

// pingErr is why a networked ledger can't be reached, if it can't.
func pingErr(db HealthLedger) error {
	p, ok := db.(interface{ Ping(context.Context) error })
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), pingTimeout)
	defer cancel()
	if err := p.Ping(ctx); err != nil {
		return fmt.Errorf("ledger database unreachable: %w", err)
	}
	return nil
}

// Health is what both daemons' /healthz and the shared part of
// /v1/health are made of: the ledger and the lnd link.
type Health struct {
	// DB returns the ledger, nil while it is not open.
	DB func() HealthLedger

	// Lnd is the daemon's lnd connection.
	Lnd *LndLink
}

// ledgerErr is the ledger's failure, if it failed or is not open.
func (h Health) ledgerErr() error {
	db := h.DB()
	if db == nil {
		return store.ErrClosed
	}
	return db.Err()
}

// Err is the answer of the open /healthz: nil while the daemon can do its
// work (ledger writable, disk not full, lnd connected).
func (h Health) Err() error {
	if err := h.ledgerErr(); err != nil {
		return err
	}
	if db := h.DB(); db != nil {
		// A full disk: nothing can be recorded until space returns.
		if err := spaceErr(db); err != nil {
			return err
		}
		// A database out of reach: payments are refused (lnd fails
		// them back), not accepted uncredited.
		if err := pingErr(db); err != nil {
			return err
		}
	}
	if !h.Lnd.Up() {
		return ErrLndDisconnected
	}
	return nil
}

// Status is the shared part of GET /v1/health: status "ok" only when
// /healthz answers 200, "degraded" while lnd is away or the disk is full,
// "failing" when the ledger can no longer be written (the daemon is
// stopping); lnd_connected, ledger_writable, and ledger (why it is full)
// when it is.
func (h Health) Status() map[string]any {
	ledgerErr := h.ledgerErr()
	up := h.Lnd.Up()
	m := map[string]any{
		"status":          "ok",
		"lnd_connected":   up,
		"ledger_writable": ledgerErr == nil,
	}
	switch {
	case ledgerErr != nil:
		m["status"] = "failing"
	case !up:
		m["status"] = "degraded"
	}
	if db := h.DB(); db != nil {
		err := spaceErr(db)
		if err == nil {
			err = pingErr(db)
		}
		if err != nil {
			m["ledger"] = err.Error()
			if ledgerErr == nil {
				m["status"] = "degraded"
			}
		}
	}
	return m
}
