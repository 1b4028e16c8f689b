package receiver

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/btcsuite/btclog/v2"
	"github.com/jackc/pgx/v5"
	"github.com/satstream/satstream/common/idem"
	"github.com/satstream/satstream/store"
	"github.com/satstream/satstream/store/postgres"
)

// Ledger is what the daemon needs from its store, whichever the backend:
// the badger store (*store.DB) for one receiver, or the PostgreSQL store
// that several receivers share. Everything else (API, pipeline, expiry,
// webhooks, metrics) goes through Receiver's store.ReceiverStore.
type Ledger interface {
	// Receiver is the transaction API of the provider's side.
	Receiver() store.ReceiverStore

	// IdemBegin and IdemFinish keep the API's Idempotency-Key records.
	idem.Store

	// Bind binds this receiver's lnd node and network on its first
	// start and refuses another network (or, for badger, another node)
	// afterwards with store.ErrWrongNode.
	Bind(ctx context.Context, want store.Binding) (bool, error)

	// Failed is closed when the ledger can no longer be trusted (a write
	// or fsync failed); Err says why.
	Failed() <-chan struct{}
	Err() error

	// Close releases the ledger.
	Close() error
}

var _ Ledger = (*store.DB)(nil)

// spaceChecker is a ledger on a local disk that can fill up (badger):
// SpaceErr is store.ErrDiskFull while writes are refused for space.
type spaceChecker interface {
	SpaceErr() error
}

// spaceErr is the ledger's disk-full state, nil for a ledger without a
// local disk.
func spaceErr(db Ledger) error {
	if s, ok := db.(spaceChecker); ok {
		return s.SpaceErr()
	}
	return nil
}

// elector decides which receiver of a cluster runs the cluster's
// singletons (the webhook dispatcher and the expiry sweep). Run calls
// set(true) when this receiver becomes the leader and set(false) when it
// stops being one (at the latest before Run returns); set(false) returns
// only once the singletons have stopped, so leadership is given up after
// them, never before.
type elector interface {
	Run(ctx context.Context, set func(leader bool))
}

// alwaysLeader is the elector of a ledger only one receiver can open
// (badger): it leads for as long as it runs.
type alwaysLeader struct{}

// Run leads until ctx ends.
func (alwaysLeader) Run(ctx context.Context, set func(bool)) {
	set(true)
	<-ctx.Done()
	set(false)
}

// LeaderLockKey is the PostgreSQL advisory lock whose holder is the
// cluster's leader ("satstrm1"). It is a session lock: it is held for as
// long as the leader's connection lives, and PostgreSQL releases it when
// that session ends, however it ends (the process killed, the connection
// cut, pg_terminate_backend).
const LeaderLockKey int64 = 0x7361747374726d31

// Default timings of the PostgreSQL elector.
const (
	// defaultLeaderRetry is how often a follower tries to take the lock,
	// and how long it waits after losing its connection.
	defaultLeaderRetry = 3 * time.Second

	// defaultLeaderCheck is how often the leader checks that its
	// session, and so its lock, is still alive.
	defaultLeaderCheck = time.Second
)

// pgLeader elects the leader with a session advisory lock held on a
// connection of its own (pg_try_advisory_lock, not a pool connection,
// which a pool may close or hand to other work). The leader checks its
// connection every check interval; a failed check means the session, and
// with it the lock, may be gone, so the leader stops its singletons at
// once and goes back to trying for the lock on a new connection.
type pgLeader struct {
	// connect opens the dedicated connection.
	connect func(ctx context.Context) (*pgx.Conn, error)

	retry, check, timeout time.Duration
	log                   btclog.Logger
}

// newPGLeader returns the elector of a receiver on the PostgreSQL ledger
// dsn. A timeout bounds each connection attempt and each check.
func newPGLeader(dsn string, timeout time.Duration,
	log btclog.Logger) (*pgLeader, error) {

	cc, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("%w: --db.postgres.dsn=%s: %v", ErrConfig,
			RedactDSN(dsn), err)
	}
	cc.RuntimeParams["application_name"] = "satstream-receiver leader"
	// The leader's lock lives as long as its session: keepalives let
	// the server end a vanished leader's session within seconds.
	postgres.SetSessionParams(&cc.Config)
	return &pgLeader{
		connect: func(ctx context.Context) (*pgx.Conn, error) {
			return pgx.ConnectConfig(ctx, cc.Copy())
		},
		retry:   defaultLeaderRetry,
		check:   defaultLeaderCheck,
		timeout: timeout,
		log:     log,
	}, nil
}

// Run tries for the lock until ctx ends.
func (l *pgLeader) Run(ctx context.Context, set func(bool)) {
	// Logged on a change only: a follower retries every few seconds
	// for as long as the leader lives.
	var lastErr string
	for {
		err := l.term(ctx, set)
		if ctx.Err() != nil {
			return
		}
		if msg := err.Error(); msg != lastErr {
			l.log.Warnf("leader election: %v; trying again every %v",
				err, l.retry)
			lastErr = msg
		}
		if !sleepCtx(ctx, l.retry) {
			return
		}
	}
}

// errLeaderLost ends a term whose connection check failed.
var errLeaderLost = errors.New("leader connection lost")

// term opens a connection, waits for the lock on it and leads until the
// connection fails or ctx ends. It returns why it ended.
func (l *pgLeader) term(ctx context.Context, set func(bool)) error {
	cctx, cancel := context.WithTimeout(ctx, l.timeout)
	conn, err := l.connect(cctx)
	cancel()
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer func() {
		// Closing the session releases the lock (if the server still
		// has it) after the singletons stopped.
		cctx, cancel := context.WithTimeout(context.Background(),
			l.timeout)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	for {
		var got bool
		qctx, cancel := context.WithTimeout(ctx, l.timeout)
		err := conn.QueryRow(qctx, "SELECT pg_try_advisory_lock($1)",
			LeaderLockKey).Scan(&got)
		cancel()
		if err != nil {
			return fmt.Errorf("try lock: %w", err)
		}
		if got {
			break
		}
		if !sleepCtx(ctx, l.retry) {
			return ctx.Err()
		}
	}
	set(true)
	defer set(false)
	t := time.NewTicker(l.check)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		qctx, cancel := context.WithTimeout(ctx, l.timeout)
		err := conn.Ping(qctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			return fmt.Errorf("%w: %w", errLeaderLost, err)
		}
	}
}

// sleepCtx waits d and reports false if ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// clusterPoll is how often the leader on a shared ledger looks for
// webhook events the other receivers committed: their notifications stay
// in their own process.
const clusterPoll = 2 * time.Second

// setLeader starts the cluster's singletons when this receiver becomes the
// leader and stops them (returning once they have stopped) when it no
// longer is. The elector's goroutine is its only caller.
func (d *Daemon) setLeader(leader bool) {
	if leader == (d.leadCancel != nil) {
		return
	}
	if !leader {
		d.leadCancel()
		d.leadWG.Wait()
		d.leadCancel = nil
		d.leader.Store(false)
		d.metrics.leader.Set(0)
		d.log.Infof("no longer the cluster's leader: webhook delivery " +
			"and the expiry sweep stopped here")
		return
	}
	ctx, cancel := context.WithCancel(d.runCtx)
	d.leadCancel = cancel
	d.leader.Store(true)
	d.metrics.leader.Set(1)
	d.log.Infof("this receiver is the cluster's leader: it runs webhook " +
		"delivery and the expiry sweep")
	run := func(f func()) {
		d.leadWG.Add(1)
		go func() {
			defer d.leadWG.Done()
			f()
		}()
	}
	run(func() { d.expiryLoop(ctx) })
	if d.hooks != nil {
		hooks := d.hooks
		run(func() { _ = hooks.Run(ctx) })
		if d.badger == nil {
			run(func() {
				for sleepCtx(ctx, clusterPoll) {
					hooks.Notify()
				}
			})
		}
	}
}
