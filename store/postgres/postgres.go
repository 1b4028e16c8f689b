package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/satstream/satstream/store"
)

// Defaults of Config's pool settings.
const (
	DefaultMaxConns       = 16
	DefaultMinConns       = 1
	DefaultConnectTimeout = 10 * time.Second
	DefaultMaxRetries     = 30
)

// Config says where the ledger is and which provider node this store
// serves.
type Config struct {
	// DSN is a libpq connection string or URL
	// ("postgres://user:pass@host:5432/satstream?sslmode=verify-full",
	// "host=/run/postgresql dbname=satstream").
	DSN string
	// MaxConns and MinConns bound the connection pool (0: defaults).
	MaxConns int32
	MinConns int32
	// ConnectTimeout bounds one connection attempt (0: default): past it
	// the database counts as unreachable and steps fail with
	// store.ErrUnavailable.
	ConnectTimeout time.Duration
	// NodePubkey is the identity key of the lnd node this store's
	// receiver follows. The lnd resume points (settle and add index) and
	// the held-HTLC table are kept per node; everything else is shared.
	NodePubkey [33]byte
	// Network, if set, binds the ledger to NodePubkey on this network at
	// Open (see Store.Bind); empty leaves binding to the caller.
	Network string
	// MaxRetries bounds how often one Update is run again after a
	// serialization failure or deadlock (0: DefaultMaxRetries).
	MaxRetries int
	// LockTimeout bounds every wait of a step for a lock: the slow
	// lane's (shared or alone), the event order's, a row's (0:
	// LockTimeout). Past it the step fails with store.ErrUnavailable.
	LockTimeout time.Duration
}

// Validate reports a config Open cannot use, naming the field.
func (c *Config) Validate() error {
	switch {
	case c.DSN == "":
		return fmt.Errorf("%w: postgres DSN is empty", store.ErrInvalid)
	case c.NodePubkey == [33]byte{}:
		return fmt.Errorf("%w: postgres store needs the lnd node's "+
			"public key", store.ErrInvalid)
	case c.MaxConns < 0 || c.MinConns < 0 ||
		(c.MaxConns > 0 && c.MinConns > c.MaxConns):
		return fmt.Errorf("%w: postgres pool size min %d, max %d",
			store.ErrInvalid, c.MinConns, c.MaxConns)
	case c.ConnectTimeout < 0 || c.MaxRetries < 0 || c.LockTimeout < 0:
		return fmt.Errorf("%w: negative postgres timeout or retries",
			store.ErrInvalid)
	}
	return nil
}

// Store is the PostgreSQL ledger of one provider node's receiver. Several
// Stores (one per node, in one or several processes) may share one
// database.
type Store struct {
	pool       *pgxpool.Pool
	node       [33]byte
	maxRetries int
	failed     chan struct{}
	// lockTimeout is Config.LockTimeout or its default; beginShared and
	// laneAlone are the statements that wait for the slow lane under it.
	lockTimeout time.Duration
	beginShared string
	laneAlone   string
	beginAlone  string

	stats stats
}

// stats are the counters behind Stats, updated atomically by every step.
type stats struct {
	steps, attempts, serialization, deadlocks, uniques, slowLane atomic.Uint64
	// eventOrderNS and commitNS are nanoseconds spent waiting for the
	// event order lock and in COMMIT.
	eventOrderNS, commitNS atomic.Int64
}

// Stats counts what this store's read-write steps cost in conflicts since
// Open: how to tell "PostgreSQL is slow" from "our steps collide" (each
// retry is a whole step run again, each slow-lane entry excludes every
// other step of the database while it runs).
type Stats struct {
	// Steps is the number of Update calls that ended (either way).
	Steps uint64
	// Attempts is the number of transactions those steps began: Steps
	// plus every retry.
	Attempts uint64
	// Serialization, Deadlocks and Uniques count attempts rolled back on
	// 40001, 40P01 and 23505 (and so retried, or given up on).
	Serialization, Deadlocks, Uniques uint64
	// SlowLane counts attempts run in the slow lane (alone).
	SlowLane uint64
	// EventOrderWait is the time steps spent taking the event order
	// lock (waiting for the steps ahead to commit), Commit the time in
	// COMMIT (the WAL flush): figures to read, never to assert on.
	EventOrderWait, Commit time.Duration
}

// Stats returns the store's conflict counters.
func (s *Store) Stats() Stats {
	return Stats{
		Steps:         s.stats.steps.Load(),
		Attempts:      s.stats.attempts.Load(),
		Serialization: s.stats.serialization.Load(),
		Deadlocks:     s.stats.deadlocks.Load(),
		Uniques:       s.stats.uniques.Load(),
		SlowLane:      s.stats.slowLane.Load(),
		EventOrderWait: time.Duration(
			s.stats.eventOrderNS.Load()),
		Commit: time.Duration(s.stats.commitNS.Load()),
	}
}

// count notes one attempt's outcome in the stats.
func (s *Store) count(slow bool, err error) {
	s.stats.attempts.Add(1)
	if slow {
		s.stats.slowLane.Add(1)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "40001":
			s.stats.serialization.Add(1)
		case "40P01":
			s.stats.deadlocks.Add(1)
		case "23505":
			s.stats.uniques.Add(1)
		}
	}
}

// Compile-time check: the receiver's seam, the same one the badger store
// implements.
var _ store.ReceiverStore = (*Store)(nil)

// Open connects to the database, applies the migrations this binary knows
// (refusing a schema newer than it, store.ErrSchemaTooNew) and returns the
// store of cfg.NodePubkey. An unreachable database is
// store.ErrUnavailable.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	pc, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("%w: postgres DSN: %v", store.ErrInvalid,
			err)
	}
	pc.MaxConns, pc.MinConns = DefaultMaxConns, DefaultMinConns
	if cfg.MaxConns > 0 {
		pc.MaxConns = cfg.MaxConns
	}
	if cfg.MinConns > 0 {
		pc.MinConns = cfg.MinConns
	}
	pc.MinConns = min(pc.MinConns, pc.MaxConns)
	pc.ConnConfig.ConnectTimeout = DefaultConnectTimeout
	if cfg.ConnectTimeout > 0 {
		pc.ConnConfig.ConnectTimeout = cfg.ConnectTimeout
	}
	// A step returns once it is durable, whatever the server's or the
	// role's default: a COMMIT acknowledged before its WAL is flushed
	// could be lost with the money already settled.
	pc.ConnConfig.RuntimeParams["synchronous_commit"] = "on"
	pc.ConnConfig.RuntimeParams["application_name"] = "satstream"
	SetSessionParams(&pc.ConnConfig.Config)
	pc.AfterConnect = checkClientConnection

	s := &Store{
		node:       cfg.NodePubkey,
		maxRetries: DefaultMaxRetries,
		failed:     make(chan struct{}),
	}
	if cfg.MaxRetries > 0 {
		s.maxRetries = cfg.MaxRetries
	}
	s.lockTimeout = LockTimeout
	if cfg.LockTimeout > 0 {
		s.lockTimeout = cfg.LockTimeout
	}
	s.beginShared = beginShared(s.lockTimeout)
	s.laneAlone = laneAlone(s.lockTimeout)
	s.beginAlone = beginAlone(s.lockTimeout)
	s.pool, err = pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, translate(err)
	}
	if err := migrate(ctx, s.pool); err != nil {
		s.pool.Close()
		return nil, err
	}
	if cfg.Network != "" {
		_, err := s.Bind(ctx, store.Binding{Node: cfg.NodePubkey,
			Network: cfg.Network})
		if err != nil {
			s.pool.Close()
			return nil, err
		}
	}
	return s, nil
}

// Close closes the pool, waiting for connections in use to be returned.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// Node returns the lnd node this store serves.
func (s *Store) Node() [33]byte { return s.node }

// Failed never closes: unlike the badger store, a PostgreSQL store has no
// state that an error can leave untrustworthy (a failed COMMIT is rolled
// back by the server). An unreachable database fails each step with
// store.ErrUnavailable instead, and steps work again once it is back. It
// exists so the daemon can watch either backend the same way.
func (s *Store) Failed() <-chan struct{} { return s.failed }

// Err is always nil; see Failed.
func (s *Store) Err() error { return nil }

// SpaceErr is always nil: the database server watches its own disk, and a
// full disk fails the step (store.ErrUnavailable or the server's error).
func (s *Store) SpaceErr() error { return nil }

// Ping reports whether the database answers now (store.ErrUnavailable if
// not), for health checks.
func (s *Store) Ping(ctx context.Context) error {
	return translate(s.pool.Ping(ctx))
}

// Update implements store.ReceiverStore. It runs fn in a SERIALIZABLE
// transaction and returns after COMMIT (synchronous_commit=on: durable).
// A serialization failure (40001), deadlock (40P01) or a unique violation
// caused by a concurrent step (23505) rolls back and runs fn again, with
// jittered backoff, at most Config.MaxRetries times; past that the step
// fails with store.ErrConflict. An unreachable database fails with
// store.ErrUnavailable.
func (s *Store) Update(ctx context.Context,
	fn func(tx store.ReceiverTx) error) error {

	return s.update(ctx, func(t *tx) error { return fn(t) })
}

// View implements store.ReceiverStore: fn runs in a REPEATABLE READ, READ
// ONLY transaction, one consistent snapshot; writes fail.
func (s *Store) View(ctx context.Context,
	fn func(tx store.ReceiverTx) error) error {

	return s.view(ctx, func(t *tx) error { return fn(t) })
}

func (s *Store) update(ctx context.Context, fn func(*tx) error) error {
	defer s.stats.steps.Add(1)
	backoff := 2 * time.Millisecond
	for attempt := 0; ; attempt++ {
		slow := attempt >= slowLaneAfter
		err := s.run(ctx, pgx.TxOptions{IsoLevel: pgx.Serializable},
			slow, fn)
		s.count(slow, err)
		switch {
		case err == nil:
			return nil
		case staleConn(err) && attempt == 0:
			// A pooled connection the server closed (it
			// restarted) failed before anything was sent. Every
			// other idle connection died with it: drop them all,
			// then once more on a fresh connection, without
			// waiting.
			s.pool.Reset()
			continue
		case !retryable(err):
			return err
		}
		if attempt >= s.maxRetries {
			return fmt.Errorf("%w: gave up after %d attempts: %v",
				store.ErrConflict, attempt+1, err)
		}
		// Full jitter, so two receivers that collided do not collide
		// again in step.
		wait := time.Duration(rand.Int64N(int64(backoff))) + time.Millisecond
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		backoff = min(backoff*2, 100*time.Millisecond)
	}
}

func (s *Store) view(ctx context.Context, fn func(*tx) error) error {
	return s.run(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead,
		AccessMode: pgx.ReadOnly}, false, fn)
}

// IdleInTxTimeout is how long the server lets a session of ours sit idle
// inside a transaction before it ends the session. A receiver cut off (or
// frozen) in the middle of a step would otherwise keep the event-order
// lock, the shared slow-lane lock and its row locks, and stall every other
// node's steps for as long as the server's TCP keepalive takes to notice
// (two hours by default). A healthy step never waits on itself between
// two queries for this long.
const IdleInTxTimeout = 10 * time.Second

// LockTimeout bounds how long a step waits for a lock (the slow lane's,
// the event order's, a row's). Every holder's session is bounded by
// IdleInTxTimeout, so a longer wait means the database is not serving;
// the step fails with store.ErrUnavailable and the payment is refused
// rather than held until lnd's hold time runs out.
const LockTimeout = 20 * time.Second

// SetSessionParams sets the session parameters that bound a silent peer:
// the idle-in-transaction timeout and TCP keepalives short enough that
// the server notices a vanished receiver within seconds and releases its
// locks. The leader election's connection uses them too.
func SetSessionParams(c *pgconn.Config) {
	if c.RuntimeParams == nil {
		c.RuntimeParams = map[string]string{}
	}
	c.RuntimeParams["idle_in_transaction_session_timeout"] =
		strconv.FormatInt(IdleInTxTimeout.Milliseconds(), 10)
	c.RuntimeParams["tcp_keepalives_idle"] = "10"
	c.RuntimeParams["tcp_keepalives_interval"] = "5"
	c.RuntimeParams["tcp_keepalives_count"] = "3"
}

// checkClientConnection asks the server (PostgreSQL 14 and later) to check
// every few seconds during a long query that the client is still there. It
// is set after connecting, not in the startup packet, because an older
// server refuses an unknown startup parameter; there it is left unset.
func checkClientConnection(ctx context.Context, c *pgx.Conn) error {
	var v int
	err := c.QueryRow(ctx, "SELECT "+
		"current_setting('server_version_num')::int").Scan(&v)
	if err != nil {
		return err
	}
	if v < 140000 {
		return nil
	}
	_, err = c.Exec(ctx, "SET client_connection_check_interval = 5000")
	return err
}

// slowLaneAfter is the number of failed attempts after which a step runs
// its next attempts alone. Optimistic retries by themselves can starve a
// step on a hot row (many payments to one subscription at once, from
// several nodes): each round one transaction wins and the others start
// over, and a step can lose round after round. So every step takes the
// advisory lock slowLaneLock, shared, inside its transaction (steps run
// concurrently and SERIALIZABLE decides); a step that failed
// slowLaneAfter times takes it exclusively, on its connection, before it
// begins: it waits for the running steps to end, new ones wait for it,
// and since its snapshot is taken after that, it cannot fail on a
// conflict again. Correctness never depends on the lock: every step is
// SERIALIZABLE either way.
const slowLaneAfter = 2

// slowLaneLock is the advisory lock key of the slow lane ("satslow").
const slowLaneLock int64 = 0x736174736c6f77

// beginShared is BEGIN for a step outside the slow lane, the shared lock
// in the same round trip, every lock wait of the step bounded by timeout.
func beginShared(timeout time.Duration) string {
	return fmt.Sprintf("BEGIN ISOLATION LEVEL SERIALIZABLE; "+
		"SET LOCAL lock_timeout = %d; "+indexScans+
		"SELECT pg_advisory_xact_lock_shared(%d)",
		lockTimeoutMS(timeout), slowLaneLock)
}

// beginAlone is BEGIN for a step in the slow lane, once it holds the
// lane: laneAlone's RESET left the session without a lock timeout, and
// the step's own waits (a row, the event order) are bounded as in the
// shared lane; a session outside our steps (an operator's, a migration)
// can hold those.
func beginAlone(timeout time.Duration) string {
	return fmt.Sprintf("BEGIN ISOLATION LEVEL SERIALIZABLE; "+
		"SET LOCAL lock_timeout = %d; "+indexScans,
		lockTimeoutMS(timeout))
}

// lockTimeoutMS is timeout in whole milliseconds, rounded up: PostgreSQL
// reads lock_timeout = 0 as "wait for ever", so a sub-millisecond bound
// must not truncate to it. A bound past what lock_timeout holds
// (2147483647 ms, under 25 days; more fails every BEGIN "out of range")
// is that most, compared before the rounding, which would overflow for
// the largest Durations.
func lockTimeoutMS(timeout time.Duration) int64 {
	const most = math.MaxInt32
	if timeout >= most*time.Millisecond {
		return most
	}
	return max(1, (timeout + time.Millisecond - 1).Milliseconds())
}

// indexScans makes a SERIALIZABLE step read by index wherever an index
// serves the query. A sequential scan takes a predicate lock on the whole
// relation, and the planner picks one for every small table (a few dozen
// subscriptions, the node_state and held tables, the refusal tables):
// two steps that read and then wrote different rows of such a table then
// conflict, and one is rolled back and run again (three times and the
// slow lane stops every other step). An index scan locks the index pages
// and rows it read. Queries no index serves still scan the table.
const indexScans = "SET LOCAL enable_seqscan = off; "

// laneAlone takes the slow lane's lock exclusively, for the session,
// waiting at most timeout (then 55P03, store.ErrUnavailable) instead of
// as long as the step's context: a peer whose step holds the lane for
// long must not hang this receiver's payment past lnd's hold time. The
// statements are one simple query, so they run as one implicit
// transaction: if the wait fails, the SET is rolled back with it; if it
// succeeds, the RESET leaves the pooled connection as it was (a session
// advisory lock outlives the implicit transaction).
func laneAlone(timeout time.Duration) string {
	return fmt.Sprintf("SET lock_timeout = %d; "+
		"SELECT pg_advisory_lock(%d); RESET lock_timeout",
		lockTimeoutMS(timeout), slowLaneLock)
}

// slowUnlockTimeout bounds releasing the slow lane's lock; past it the
// connection is closed, which releases the lock too.
const slowUnlockTimeout = 5 * time.Second

// run is one attempt at one transaction; slow runs it in the slow lane
// (see slowLaneAfter).
func (s *Store) run(ctx context.Context, opts pgx.TxOptions, slow bool,
	fn func(*tx) error) error {

	if err := ctx.Err(); err != nil {
		return err
	}
	var begin interface {
		BeginTx(context.Context, pgx.TxOptions) (pgx.Tx, error)
	} = s.pool
	switch {
	case slow:
		conn, err := s.pool.Acquire(ctx)
		if err != nil {
			return translate(err)
		}
		defer conn.Release()
		if _, err = conn.Exec(ctx, s.laneAlone); err != nil {
			return fmt.Errorf("slow lane: waiting up to %v for "+
				"another step to leave it: %w", s.lockTimeout,
				translate(err))
		}
		defer func() {
			uctx, cancel := context.WithTimeout(
				context.WithoutCancel(ctx), slowUnlockTimeout)
			defer cancel()
			_, err := conn.Exec(uctx,
				"SELECT pg_advisory_unlock($1)", slowLaneLock)
			if err != nil {
				// Closing the session releases the lock.
				_ = conn.Conn().Close(context.Background())
			}
		}()
		begin = conn
		if opts.IsoLevel == pgx.Serializable {
			opts.BeginQuery = s.beginAlone
		}

	case opts.IsoLevel == pgx.Serializable:
		opts.BeginQuery = s.beginShared
	}
	ptx, err := begin.BeginTx(ctx, opts)
	if err != nil {
		return translate(err)
	}
	t := &tx{ctx: ctx, tx: ptx, node: s.node, stats: &s.stats}
	returned := false
	defer func() {
		// A panicking fn (a handler's bug that net/http recovers),
		// or one that ends its goroutine (runtime.Goexit: t.FailNow
		// in a test's callback, which recover does not see), must
		// not leave the transaction open: its connection would never
		// go back to the pool, and Close would wait for it. The
		// panic goes on unrecovered, with its own stack.
		if !returned {
			_ = ptx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	err = fn(t)
	returned = true
	if err == nil && opts.AccessMode != pgx.ReadOnly {
		err = t.markIdem()
	}
	if err != nil {
		_ = ptx.Rollback(context.WithoutCancel(ctx))
		// A query that failed inside fn may have been wrapped by fn's
		// own error, or swallowed; the transaction's first database
		// error decides whether to retry.
		if t.dbErr != nil && !errors.Is(err, t.dbErr) &&
			(retryable(t.dbErr) || staleConn(t.dbErr)) {

			return t.dbErr
		}
		return err
	}
	start := time.Now()
	err = ptx.Commit(ctx)
	s.stats.commitNS.Add(int64(time.Since(start)))
	if err != nil {
		if t.dbErr != nil {
			return t.dbErr
		}
		err = translate(err)
		if errors.Is(err, store.ErrUnavailable) {
			// The COMMIT may or may not have been applied.
			return fmt.Errorf("commit outcome unknown: %w", err)
		}
		return err
	}
	return nil
}

// ErrUnavailable is store.ErrUnavailable, re-exported for callers that
// import only this package.
var ErrUnavailable = store.ErrUnavailable

// retryable reports the errors a serializable step must be run again on.
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "40001", "40P01", "23505":
			return true
		}
	}
	return false
}

// staleConn reports a failure that happened before anything of the step
// reached the server, so running it again cannot apply it twice.
func staleConn(err error) bool {
	return pgconn.SafeToRetry(err) && !errors.Is(err, context.Canceled) &&
		!errors.Is(err, context.DeadlineExceeded)
}

// translate turns the driver's connection failures into
// store.ErrUnavailable, leaving everything else as is.
func translate(err error) error {
	if err == nil || errors.Is(err, context.Canceled) ||
		errors.Is(err, context.DeadlineExceeded) &&
			!isConnectErr(err) {

		return err
	}
	if unavailable(err) {
		return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	}
	return err
}

func isConnectErr(err error) bool {
	var ce *pgconn.ConnectError
	return errors.As(err, &ce)
}

// unavailable reports errors that mean "the database cannot be reached or
// is not serving", as opposed to errors in what we asked.
func unavailable(err error) bool {
	if isConnectErr(err) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case len(pgErr.Code) >= 2 && pgErr.Code[:2] == "08", // connection
			pgErr.Code == "57P01", // admin_shutdown
			pgErr.Code == "57P02", // crash_shutdown
			pgErr.Code == "57P03", // cannot_connect_now
			pgErr.Code == "55P03", // lock_not_available (LockTimeout)
			pgErr.Code == "25P03", // idle_in_transaction_session_timeout
			pgErr.Code == "53300": // too_many_connections
			return true
		}
		return false
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		pgconn.Timeout(err) || pgconn.SafeToRetry(err) ||
		errors.Is(err, net.ErrClosed) {

		return true
	}
	// pgconn reports a connection it lost earlier as "conn closed".
	return strings.Contains(err.Error(), "conn closed")
}
