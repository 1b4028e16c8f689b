//go:build itest

package itest

import (
	"context"
	"fmt"
	"math/rand"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/satstream/satstream/itest/regtest"
	"github.com/satstream/satstream/store/postgres/pgtest"
	"github.com/stretchr/testify/require"
)

// clusterNetwork starts payer alice -> router bob -> two provider nodes,
// carol and dave, both holding keysends for faultHold so their receivers
// settle or refuse each one, with routes from alice to both.
func clusterNetwork(t *testing.T, ctx context.Context) (*regtest.Network,
	[]*regtest.Node) {

	t.Helper()
	hold := []string{"--keysend-hold-time=" + faultHold.String()}
	net, nodes := newNetwork(t, ctx,
		regtest.NodeConfig{Name: "alice"},
		regtest.NodeConfig{Name: "bob"},
		regtest.NodeConfig{Name: "carol", ExtraArgs: hold},
		regtest.NodeConfig{Name: "dave", ExtraArgs: hold},
	)
	alice, bob, carol, dave := nodes[0], nodes[1], nodes[2], nodes[3]
	require.NoError(t, net.Fund(ctx, walletFunds, alice, bob))
	spec := func(from, to *regtest.Node) regtest.ChannelSpec {
		return regtest.ChannelSpec{From: from, To: to,
			Capacity: chanCapacity, Push: chanCapacity / 2}
	}
	_, err := net.OpenChannels(ctx, spec(alice, bob), spec(bob, carol),
		spec(bob, dave))
	require.NoError(t, err)
	for _, to := range []*regtest.Node{carol, dave} {
		require.NoError(t, net.WaitForRoute(ctx, alice, to, 1000))
	}
	return net, nodes
}

// clusterRcv is a receiver beside node on the PostgreSQL ledger dsn.
func clusterRcv(t *testing.T, node *regtest.Node, hookURL, dsn string) *rcv {
	r := newRcv(t, node, hookURL)
	r.args = append(r.args, "--db.backend=postgres",
		"--db.postgres.dsn="+dsn)
	return r
}

// withoutOffer drops the offer from a subscription's view: each receiver
// writes its own node into the offers it shows.
func withoutOffer(v subView) subView {
	v.Offer = ""
	return v
}

// leaders returns the receivers whose /v1/health says they lead (a
// receiver that does not answer counts as not leading).
func leaders(rs ...*rcv) []*rcv {
	var out []*rcv
	for _, r := range rs {
		if r.proc == nil {
			continue
		}
		var h map[string]any
		if r.do("GET", "/v1/health", nil, &h) == 200 && h["leader"] == true {
			out = append(out, r)
		}
	}
	return out
}

// waitOneLeader waits until exactly one of rs leads and returns it.
func waitOneLeader(t *testing.T, ctx context.Context, rs ...*rcv) *rcv {
	t.Helper()
	var leader *rcv
	require.NoError(t, regtest.Poll(ctx, time.Minute, func() error {
		l := leaders(rs...)
		if len(l) != 1 {
			return fmt.Errorf("%d leaders", len(l))
		}
		leader = l[0]
		return nil
	}), "no single leader")
	return leader
}

// TestClusterTwoReceiversOnePostgres runs two provider nodes, carol and
// dave, each with its own satstream-receiver, on one PostgreSQL ledger. A
// sender streams subscriptions made at carol's receiver to carol and one
// made at dave's to dave, and keysends race one subscription's payments
// to both nodes at once. Carol's receiver and then the cluster's leader
// are SIGKILLed a few times. It checks the fault suite's invariant over
// both nodes (settled at carol + dave == credited == paid by the sender,
// hash by hash, no sequence credited twice), that either receiver's API
// answers for every subscription, that exactly one receiver leads at a
// time and another takes over when it dies, and that every webhook event
// is delivered.
func TestClusterTwoReceiversOnePostgres(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	began := time.Now()
	pg := pgtest.Start(t)
	dsn := pg.NewDatabase(t)
	net, nodes := clusterNetwork(t, ctx)
	alice, bob, carol, dave := nodes[0], nodes[1], nodes[2], nodes[3]

	hook := newHookServer(t)
	rc := clusterRcv(t, carol, hook.srv.URL, dsn)
	rd := clusterRcv(t, dave, hook.srv.URL, dsn)
	rc.start(ctx)
	rd.start(ctx)
	waitOneLeader(t, ctx, rc, rd)

	f := &faultRig{t: t, ctx: ctx, net: net, alice: alice, bob: bob,
		carol: carol, rcv: rc, hook: hook,
		providers: []*regtest.Node{carol, dave},
		rng:       rand.New(rand.NewSource(faultSeed(t)))}
	var plan struct {
		ID string `json:"id"`
	}
	require.Equal(t, 201, rc.do("POST", "/v1/plans", map[string]any{
		"label": "cluster", "price_msat_per_sec": 1000,
		"min_payment_msat": 1000, "max_prepay_sec": 600,
		"default_increment_sec": 2, "grace_period_sec": 20,
	}, &plan), "create plan")

	f.snd = newSnd(t, alice)
	f.snd.start(ctx)
	// Two subscriptions made at carol's receiver (their offers name
	// carol), one at dave's: the plan, made at carol's, is shared.
	for _, at := range []*rcv{rc, rc, rd} {
		var sub struct {
			ID     string `json:"id"`
			Secret string `json:"secret"`
			Offer  string `json:"offer"`
		}
		require.Equal(t, 201, at.do("POST", "/v1/subscriptions",
			map[string]any{"plan_id": plan.ID}, &sub))
		code := f.snd.do("POST", "/v1/subscriptions", map[string]any{
			"offer": sub.Offer, "increment_sec": 2, "buffer_sec": 6,
			"fee_limit_ppm": 1_000_000, "fee_limit_msat": 1_100,
		}, nil)
		require.Equal(t, 201, code, "subscribe %s", sub.ID)
		f.subs = append(f.subs, sub.ID)
		f.secrets = append(f.secrets, sub.Secret)
	}
	f.waitProgress(3)

	t.Run("EachReceiverCreditsItsNodesPayments", func(t *testing.T) {
		f.checkInvariant("two receivers on one database")
		settled := f.carolSettled()
		daveSub := f.subs[2]
		require.NotEmpty(t, settled[daveSub], "nothing settled for "+
			"the subscription paid to dave")
		// Either receiver answers for every subscription.
		for _, id := range f.subs {
			require.Equal(t, withoutOffer(rc.sub(id)),
				withoutOffer(rd.sub(id)), "%s: carol's and "+
					"dave's receivers disagree", id)
		}
	})

	t.Run("OneSubscriptionsPaymentsRaceToBothNodes", func(t *testing.T) {
		var sub struct {
			ID     string `json:"id"`
			Secret string `json:"secret"`
		}
		require.Equal(t, 201, rd.do("POST", "/v1/subscriptions",
			map[string]any{"plan_id": plan.ID}, &sub))
		// Every sequence is paid to carol and to dave at once, each
		// with its own preimage: one of the two may be credited,
		// the other must fail back to alice.
		const seqs = 8
		type sent struct {
			hash  string
			state lnrpc.Payment_PaymentStatus
		}
		var (
			mu   sync.Mutex
			all  []sent
			wg   sync.WaitGroup
			errs []error
		)
		for seq := uint64(1); seq <= seqs; seq++ {
			for _, to := range []*regtest.Node{carol, dave} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					hash, st, err := sendKeysend(ctx, alice, to,
						10, records(t, sub.Secret, seq, "",
							false))
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						errs = append(errs, err)
						return
					}
					all = append(all, sent{hash.String(),
						st.State})
				}()
			}
		}
		wg.Wait()
		require.Empty(t, errs)

		paid := map[string]uint64{}
		for _, s := range all {
			if s.state == lnrpc.Payment_SUCCEEDED {
				paid[s.hash] = 10_000
			}
		}
		credited := map[string]uint64{}
		bySeq := map[uint64]string{}
		for _, p := range f.receiverPayments(sub.ID) {
			if p.State != "credited" {
				continue
			}
			prev, dup := bySeq[p.Sequence]
			require.False(t, dup, "seq %d credited twice (%s, %s)",
				p.Sequence, prev, p.Hash)
			bySeq[p.Sequence] = p.Hash
			credited[p.Hash] = p.Amount
		}
		require.Len(t, bySeq, seqs, "every sequence credited once")
		require.Equal(t, paid, credited, "paid by alice vs credited")
		require.Equal(t, f.carolSettled()[sub.ID], credited,
			"settled at carol + dave vs credited")
		v := rc.sub(sub.ID)
		require.EqualValues(t, seqs*10_000, v.TotalPaidMsat)
		require.Equal(t, withoutOffer(v), withoutOffer(rd.sub(sub.ID)))
	})

	t.Run("CarolsReceiverSIGKILLed", func(t *testing.T) {
		for i := 0; i < 3; i++ {
			f.pause(200*time.Millisecond, 2*time.Second)
			rc.kill()
			f.faults++
			rc.start(ctx)
		}
		f.waitProgress(2)
		f.checkInvariant("after 3 SIGKILLs of carol's receiver")
		waitOneLeader(t, ctx, rc, rd)
	})

	t.Run("LeaderSIGKILLed", func(t *testing.T) {
		for i := 0; i < 3; i++ {
			leader := waitOneLeader(t, ctx, rc, rd)
			other := rd
			if leader == rd {
				other = rc
			}
			f.pause(200*time.Millisecond, 2*time.Second)
			leader.kill()
			f.faults++
			// The survivor takes over while the dead one is down.
			require.Equal(t, other, waitOneLeader(t, ctx, rc, rd),
				"kill %d: the other receiver did not take over", i)
			leader.start(ctx)
		}
		f.waitProgress(2)
		f.checkInvariant("after 3 SIGKILLs of the leader")
		waitOneLeader(t, ctx, rc, rd)
	})

	t.Run("WebhooksDelivered", func(t *testing.T) {
		posts, events := f.checkLedgerWebhooks(dsn)
		t.Logf("webhooks: %d POSTs accepted for %d events (repeats "+
			"are events a killed leader POSTed but had not marked)",
			posts, events)
	})

	t.Logf("TestClusterTwoReceiversOnePostgres: %d faults injected, %d "+
		"invariant checks passed, took %v", f.faults, f.checks,
		time.Since(began).Round(time.Second))
}

// checkLedgerWebhooks waits until the cluster has delivered every event of
// the PostgreSQL ledger dsn and checks that the endpoint got each one (by
// event id) and nothing else. It returns the POSTs the endpoint accepted,
// repeats included, and the number of events.
func (f *faultRig) checkLedgerWebhooks(dsn string) (posts, events int) {
	t, ctx, hook := f.t, f.ctx, f.hook
	t.Helper()
	f.checkWebhooks()
	// The API's event list walks ids one by one and ends at the first
	// gap, which PostgreSQL's id sequence leaves for every retried
	// transaction: read the outbox itself.
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	// The subscriptions may still stream: check the events up to the
	// newest one now, which must all be delivered in time.
	var last uint64
	require.NoError(t, conn.QueryRow(ctx, "SELECT max(id) FROM events").
		Scan(&last))
	var ids []uint64
	require.NoError(t, regtest.Poll(ctx, 2*time.Minute, func() error {
		var pending int
		err := conn.QueryRow(ctx, "SELECT count(*) FROM events "+
			"WHERE NOT delivered AND id <= $1", last).Scan(&pending)
		if err != nil {
			return err
		}
		if pending > 0 {
			return fmt.Errorf("%d events not delivered", pending)
		}
		rows, err := conn.Query(ctx, "SELECT id FROM events "+
			"WHERE id <= $1 ORDER BY id", last)
		if err != nil {
			return err
		}
		ids, err = pgx.CollectRows(rows, pgx.RowTo[uint64])
		return err
	}))
	require.NotEmpty(t, ids)
	gaps := 0
	hook.mu.Lock()
	defer hook.mu.Unlock()
	for i, id := range ids {
		_, ok := hook.got[id]
		require.True(t, ok, "event %d never delivered", id)
		if i > 0 && id != ids[i-1]+1 {
			gaps++
		}
	}
	upTo := 0
	for id := range hook.got {
		if id <= last {
			upTo++
		}
	}
	require.Equal(t, len(ids), upTo, "deliveries of events the ledger "+
		"does not hold")
	t.Logf("webhooks: all %d events of the ledger delivered (%d gaps in "+
		"their ids)", len(ids), gaps)
	return hook.posts, len(ids)
}
