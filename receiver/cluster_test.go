package receiver

import (
	"context"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/satstream/satstream/common"
	"github.com/satstream/satstream/store"
	"github.com/satstream/satstream/store/postgres/pgtest"
	"github.com/stretchr/testify/require"
)

// leaderProbe runs one pgLeader and records what it was told.
type leaderProbe struct {
	mu      sync.Mutex
	leading bool
	changes []bool
	stopped chan struct{}
	cancel  context.CancelFunc
}

func (p *leaderProbe) set(v bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.leading = v
	p.changes = append(p.changes, v)
}

func (p *leaderProbe) is() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.leading
}

// startLeader runs an elector on dsn with test timings (a lock attempt and
// a connection check every 100 ms).
func startLeader(t *testing.T, dsn string) *leaderProbe {
	t.Helper()
	logs := common.NewLogManager(io.Discard)
	el, err := newPGLeader(dsn, 5*time.Second, logs.Logger(tagCluster))
	require.NoError(t, err)
	el.retry, el.check = 100*time.Millisecond, 100*time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	p := &leaderProbe{stopped: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(p.stopped)
		el.Run(ctx, p.set)
	}()
	t.Cleanup(func() {
		cancel()
		<-p.stopped
	})
	return p
}

// waitOneLeader waits until exactly one probe leads, stays so for a few
// checks, and returns it.
func waitOneLeader(t *testing.T, probes ...*leaderProbe) *leaderProbe {
	t.Helper()
	var leader *leaderProbe
	stable := 0
	require.Eventually(t, func() bool {
		var leaders []*leaderProbe
		for _, p := range probes {
			if p.is() {
				leaders = append(leaders, p)
			}
		}
		if len(leaders) != 1 || leaders[0] != leader {
			stable = 0
			if len(leaders) == 1 {
				leader = leaders[0]
			}
			return false
		}
		stable++
		return stable >= 5
	}, 30*time.Second, 100*time.Millisecond)
	return leader
}

// leaderBackend is the server pid of the session holding the leader lock.
func leaderBackend(t *testing.T, ctx context.Context, conn *pgx.Conn) int32 {
	t.Helper()
	var pid int32
	require.Eventually(t, func() bool {
		err := conn.QueryRow(ctx, `SELECT pid FROM pg_locks
			WHERE locktype = 'advisory' AND granted
			AND database = (SELECT oid FROM pg_database
				WHERE datname = current_database())
			AND (classid::bigint << 32 | objid::bigint) = $1`,
			LeaderLockKey).Scan(&pid)
		return err == nil
	}, 10*time.Second, 50*time.Millisecond)
	return pid
}

// TestTwoReceiversOnOneDatabaseBothLead: two receivers on one PostgreSQL
// ledger must not both run webhook delivery and the expiry sweep (every
// event POSTed twice, every subscription aged twice): exactly one leads,
// and a receiver that stops hands leadership to the other.
func TestTwoReceiversOnOneDatabaseBothLead(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	a, b := startLeader(t, dsn), startLeader(t, dsn)
	leader := waitOneLeader(t, a, b)
	other := b
	if leader == b {
		other = a
	}

	// A clean stop releases the lock: the other takes over.
	leader.cancel()
	<-leader.stopped
	require.False(t, leader.is(), "a stopped receiver still leads")
	require.Eventually(t, other.is, 30*time.Second, 50*time.Millisecond)
}

// TestLeaderConnectionKilledKeepsLeading: the leader's dedicated
// connection dies (the server ends its session, as when the network drops
// it or the leader's host vanishes). PostgreSQL then frees the lock, so a
// leader that went on running its singletons would run them beside the
// receiver that takes the lock next. The old leader must stop them at
// once, the other must take over, and the old one must come back as a
// follower.
func TestLeaderConnectionKilledKeepsLeading(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer admin.Close(context.Background())

	a, b := startLeader(t, dsn), startLeader(t, dsn)
	for round := 0; round < 3; round++ {
		leader := waitOneLeader(t, a, b)
		pid := leaderBackend(t, ctx, admin)
		var ok bool
		require.NoError(t, admin.QueryRow(ctx,
			"SELECT pg_terminate_backend($1)", pid).Scan(&ok))
		require.True(t, ok, "round %d: terminate leader session %d",
			round, pid)

		// The old leader steps down on its own (its next check
		// fails), and the other one takes the lock.
		require.Eventually(t, func() bool { return !leader.is() },
			30*time.Second, 20*time.Millisecond,
			"round %d: leader kept leading after its session died",
			round)
		// Then one of them (the old leader on a new session, or the
		// other) holds the lock and leads, alone.
		next := waitOneLeader(t, a, b)
		require.NotEqual(t, pid, leaderBackend(t, ctx, admin),
			fmt.Sprintf("round %d: lock still on the dead session",
				round))
		_ = next
	}
}

// TestReceiverOnAnotherNetworkJoinsTheLedger: a receiver whose lnd is on
// another network than the cluster's ledger (or whose node the ledger
// bound to another network) would follow invoices that mean nothing to
// it; it must be refused at start in one line that names the ledger
// without its password.
func TestReceiverOnAnotherNetworkJoinsTheLedger(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := func(network string) *Config {
		c := DefaultConfig()
		c.Network = network
		c.DB.Backend = BackendPostgres
		c.DB.Postgres.DSN = dsn + " password=hunter2secret"
		return c
	}
	carol, dave := [33]byte{2, 1}, [33]byte{3, 2}

	db, err := openPGLedger(ctx, cfg("regtest"), carol)
	require.NoError(t, err)
	require.NoError(t, db.Close())

	tests := []struct {
		name    string
		network string
		node    [33]byte
	}{
		{"same node, other network", "testnet", carol},
		{"another node, other network", "signet", dave},
	}
	for _, tc := range tests {
		_, err := openPGLedger(ctx, cfg(tc.network), tc.node)
		require.ErrorIs(t, err, store.ErrWrongNode, tc.name)
		var nodeErr *common.NodeError
		require.ErrorAs(t, err, &nodeErr, tc.name)
		require.Contains(t, err.Error(), "refusing to start", tc.name)
		require.NotContains(t, err.Error(), "hunter2secret", tc.name)
	}

	// Another node on the cluster's network joins.
	db, err = openPGLedger(ctx, cfg("regtest"), dave)
	require.NoError(t, err)
	require.NoError(t, db.Close())
}
