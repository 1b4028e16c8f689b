//go:build itest

package itest

import (
	"context"
	"fmt"
	"math/rand"
	"testing"
	"time"

	"github.com/satstream/satstream/itest/regtest"
	"github.com/satstream/satstream/store/postgres/pgtest"
	"github.com/stretchr/testify/require"
)

// senderNodes is the part of the sender's subscription view that says
// which provider nodes it may pay and which one it pays now.
type senderNodes struct {
	Node       string   `json:"node"`
	Nodes      []string `json:"nodes"`
	PayingNode string   `json:"paying_node"`
}

// senderNodes reads a subscription's nodes from the sender's API.
func (f *faultRig) senderNodes(id string) senderNodes {
	f.t.Helper()
	var v senderNodes
	require.Equal(f.t, 200, f.snd.do("GET", "/v1/subscriptions/"+id, nil,
		&v), "sender view of %s", id)
	return v
}

// waitPayingAt waits until the sender pays every subscription at node and
// node settled at least n more payments of each than in before.
func (f *faultRig) waitPayingAt(node *regtest.Node,
	before map[string]map[string]uint64, n int) {

	f.t.Helper()
	require.NoError(f.t, regtest.Poll(f.ctx, 3*time.Minute, func() error {
		settled := f.settledAt(node)
		for _, id := range f.subs {
			v := f.senderNodes(id)
			if v.PayingNode != node.PubKeyHex() {
				return fmt.Errorf("%s: sender pays %s, not %s",
					id, v.PayingNode, node.Name)
			}
			got := len(settled[id]) - len(before[id])
			if got < n {
				return fmt.Errorf("%s: %d more settled at %s, "+
					"want %d", id, got, node.Name, n)
			}
		}
		return nil
	}), "streams did not move to %s", node.Name)
}

// TestClusterStreamsMoveToDaveWhileCarolsLndIsDown runs the cluster of
// TestClusterTwoReceiversOnePostgres with offers that name both nodes
// (carol's receiver started with --offer.extranode=dave, dave's with
// --offer.extranode=carol). A sender streams three subscriptions made at
// carol's receiver, so carol is their primary node. Carol's lnd is then
// stopped: the sender must fail over to dave, whose receiver credits the
// payments in the shared ledger. Carol's lnd comes back: payments keep
// flowing, and a restarted sender (its failover choice lives in memory;
// its own return to the primary waits primaryRetryAfter, 10 minutes, which
// the test cannot shorten) pays carol again. Throughout: settled at carol
// + dave == credited == paid by the sender, hash by hash, no hash settled
// at both nodes, no sequence credited twice, and every webhook event
// delivered exactly once (no receiver dies in this test).
func TestClusterStreamsMoveToDaveWhileCarolsLndIsDown(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	began := time.Now()
	pg := pgtest.Start(t)
	dsn := pg.NewDatabase(t)
	net, nodes := clusterNetwork(t, ctx)
	alice, bob, carol, dave := nodes[0], nodes[1], nodes[2], nodes[3]

	hook := newHookServer(t)
	rc := clusterRcv(t, carol, hook.srv.URL, dsn)
	rc.args = append(rc.args, "--offer.extranode="+dave.PubKeyHex())
	rd := clusterRcv(t, dave, hook.srv.URL, dsn)
	rd.args = append(rd.args, "--offer.extranode="+carol.PubKeyHex())
	rc.start(ctx)
	rd.start(ctx)
	waitOneLeader(t, ctx, rc, rd)

	// Dave's receiver answers the rig's reads of the shared ledger: its
	// lnd stays up, and any receiver answers for any subscription.
	f := &faultRig{t: t, ctx: ctx, net: net, alice: alice, bob: bob,
		carol: carol, rcv: rd, hook: hook,
		providers: []*regtest.Node{carol, dave},
		rng:       rand.New(rand.NewSource(faultSeed(t)))}
	var plan struct {
		ID string `json:"id"`
	}
	require.Equal(t, 201, rc.do("POST", "/v1/plans", map[string]any{
		"label": "cluster failover", "price_msat_per_sec": 1000,
		"min_payment_msat": 1000, "max_prepay_sec": 600,
		"default_increment_sec": 2, "grace_period_sec": 20,
	}, &plan), "create plan")

	f.snd = newSnd(t, alice)
	f.snd.start(ctx)
	both := []string{carol.PubKeyHex(), dave.PubKeyHex()}
	for i := 0; i < 3; i++ {
		var sub struct {
			ID     string `json:"id"`
			Secret string `json:"secret"`
			Offer  string `json:"offer"`
		}
		require.Equal(t, 201, rc.do("POST", "/v1/subscriptions",
			map[string]any{"plan_id": plan.ID}, &sub))
		code := f.snd.do("POST", "/v1/subscriptions", map[string]any{
			"offer": sub.Offer, "increment_sec": 2, "buffer_sec": 6,
			"fee_limit_ppm": 1_000_000, "fee_limit_msat": 1_100,
		}, nil)
		require.Equal(t, 201, code, "subscribe %s", sub.ID)
		f.subs = append(f.subs, sub.ID)
		f.secrets = append(f.secrets, sub.Secret)
		// Carol's offer names carol first, then dave.
		require.Equal(t, both, f.senderNodes(sub.ID).Nodes,
			"nodes of the offer made at carol's receiver")
	}
	f.waitProgress(3)

	t.Run("BothUpCarolIsPaid", func(t *testing.T) {
		f.checkInvariant("both nodes up")
		atCarol, atDave := f.settledAt(carol), f.settledAt(dave)
		for _, id := range f.subs {
			require.Equal(t, carol.PubKeyHex(),
				f.senderNodes(id).PayingNode, "%s", id)
			require.NotEmpty(t, atCarol[id], "%s: nothing settled "+
				"at carol", id)
			require.Empty(t, atDave[id], "%s: paid to dave while "+
				"carol was up", id)
		}
	})

	t.Run("CarolsLndStoppedStreamsMoveToDave", func(t *testing.T) {
		before := f.settledAt(dave)
		require.NoError(t, carol.Stop())
		f.faults++
		f.waitPayingAt(dave, before, 3)

		// What dave settled is credited in the shared ledger, as
		// both receivers read it.
		settled := f.settledAt(dave)
		for _, id := range f.subs {
			for _, r := range []*rcv{rc, rd} {
				f.rcv = r
				credited := map[string]bool{}
				for _, p := range f.receiverPayments(id) {
					credited[p.Hash] = p.State == "credited"
				}
				for h := range settled[id] {
					require.True(t, credited[h], "%s: %s "+
						"settled at dave, not credited "+
						"(read at %s's receiver)", id, h,
						r.dir)
				}
			}
			f.rcv = rd
		}
	})

	t.Run("CarolsLndBackPaymentsKeepFlowing", func(t *testing.T) {
		require.NoError(t, carol.Start(ctx))
		f.faults++
		require.NoError(t, bob.Connect(ctx, carol))
		// Carol's receiver rode out its lnd's absence and reconnects
		// by itself.
		require.NoError(t, regtest.Poll(ctx, 2*time.Minute, func() error {
			select {
			case <-rc.proc.done:
				return fmt.Errorf("carol's receiver exited")
			default:
			}
			var h map[string]any
			if rc.do("GET", "/v1/health", nil, &h) != 200 ||
				h["lnd_connected"] != true {

				return fmt.Errorf("carol's receiver: %v", h)
			}
			return nil
		}))
		f.waitProgress(2)
		f.checkInvariant("carol's lnd back")
	})

	t.Run("RestartedSenderPaysCarolAgain", func(t *testing.T) {
		// Alice's mission control remembers bob -> carol failing
		// (half-life 1 h) and would keep her off carol: reset it, as
		// the operators' guide tells payers after an outage.
		require.NoError(t, alice.Services().Router.ResetMissionControl(ctx))
		require.NoError(t, net.WaitForRoute(ctx, alice, carol, 10))
		before := f.settledAt(carol)
		f.snd.stop()
		f.faults++
		f.snd.start(ctx)
		f.waitPayingAt(carol, before, 2)
		f.checkInvariant("back on carol")

		atCarol, atDave := f.settledAt(carol), f.settledAt(dave)
		for _, id := range f.subs {
			for h := range atCarol[id] {
				_, twice := atDave[id][h]
				require.False(t, twice, "%s: %s settled at "+
					"carol and at dave", id, h)
			}
			require.NotEmpty(t, atDave[id], "%s", id)
		}
	})

	t.Run("WebhooksDeliveredOnceEach", func(t *testing.T) {
		posts, events := f.checkLedgerWebhooks(dsn)
		require.Equal(t, events, posts, "an event was POSTed more "+
			"than once although no receiver died")
	})

	t.Logf("TestClusterStreamsMoveToDaveWhileCarolsLndIsDown: %d faults, "+
		"%d invariant checks passed, took %v", f.faults, f.checks,
		time.Since(began).Round(time.Second))
}
