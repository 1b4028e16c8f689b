//go:build itest

package itest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/satstream/satstream/itest/regtest"
	"github.com/stretchr/testify/require"
)

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
// is delivered, POSTed again only across a leader change and then with
// the same event id and body.
func TestClusterTwoReceiversOnePostgres(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	c := newClusterRig(t, ctx, false)
	f, rc, rd, carol, dave := c.faultRig, c.rc, c.rd, c.carol, c.dave
	alice := c.alice
	// Two subscriptions made at carol's receiver (their offers name
	// carol), one at dave's: the plan, made at carol's, is shared.
	for _, at := range []*rcv{rc, rc, rd} {
		c.subscribe(at)
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
			map[string]any{"plan_id": c.planID}, &sub))
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
			c.kill(rc)
			rc.start(ctx)
		}
		f.waitProgress(2)
		f.checkInvariant("after 3 SIGKILLs of carol's receiver")
		waitOneLeader(t, ctx, rc, rd)
	})

	t.Run("LeaderSIGKILLed", func(t *testing.T) {
		for i := 0; i < 3; i++ {
			leader := waitOneLeader(t, ctx, rc, rd)
			f.pause(200*time.Millisecond, 2*time.Second)
			// The survivor takes over while the dead one is
			// down (c.kill checks it).
			c.kill(leader)
			leader.start(ctx)
		}
		f.waitProgress(2)
		f.checkInvariant("after 3 SIGKILLs of the leader")
		waitOneLeader(t, ctx, rc, rd)
	})

	t.Run("WebhooksDelivered", func(t *testing.T) {
		posts, events := f.checkLedgerWebhooks(c.dsn)
		c.hooks.checkRepeats("after the leader's SIGKILLs")
		t.Logf("webhooks: %d POSTs accepted for %d events (repeats "+
			"are events a killed leader POSTed but had not marked)",
			posts, events)
	})

	t.Logf("TestClusterTwoReceiversOnePostgres: %d faults injected, %d "+
		"invariant checks passed, took %v", f.faults, f.checks,
		time.Since(c.began).Round(time.Second))
}
