//go:build itest

package itest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/satstream/satstream/itest/regtest"
	"github.com/stretchr/testify/require"
)

// TestHarnessFaults proves the fault injection later tests rely on: a node
// killed with SIGKILL, restarted, stopped gracefully or cut off from its
// peer stops payments, and payments flow again once it is back.
func TestHarnessFaults(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	start := time.Now()
	net, nodes := newNetwork(t, ctx,
		regtest.NodeConfig{Name: "alice"},
		regtest.NodeConfig{Name: "bob"},
		regtest.NodeConfig{Name: "carol"},
	)
	alice, bob, carol := nodes[0], nodes[1], nodes[2]
	line(t, ctx, net, alice, bob, carol)
	t.Logf("network of 3 nodes and 2 channels usable after %v",
		time.Since(start).Round(time.Millisecond))

	pays := func() error {
		_, s, err := sendKeysend(ctx, alice, carol, 1000, nil)
		if err != nil {
			return err
		}
		if s.State != lnrpc.Payment_SUCCEEDED {
			return fmt.Errorf("payment %v: %v", s.State,
				s.FailureReason)
		}
		return nil
	}
	require.NoError(t, pays())

	t.Run("kill -9 and restart", func(t *testing.T) {
		before := carol.Services()
		require.NoError(t, carol.Kill())
		require.False(t, carol.Running())
		require.Error(t, pays(), "payment to a dead node must fail")

		require.NoError(t, carol.Start(ctx))
		require.NotSame(t, before, carol.Services())
		// Don't wait out bob's reconnect backoff to the dead peer.
		require.NoError(t, carol.Connect(ctx, bob))
		require.NoError(t, regtest.Poll(ctx, 90*time.Second, pays))
	})

	t.Run("graceful restart with other flags", func(t *testing.T) {
		carol.SetAcceptKeysend(false)
		require.NoError(t, carol.Restart(ctx))
		require.NoError(t, regtest.Poll(ctx, 90*time.Second, func() error {
			_, s, err := sendKeysend(ctx, alice, carol, 1000, nil)
			if err != nil {
				return err
			}
			if s.FailureReason != lnrpc.PaymentFailureReason_FAILURE_REASON_INCORRECT_PAYMENT_DETAILS {
				return fmt.Errorf("want refusal, got %v %v",
					s.State, s.FailureReason)
			}
			return nil
		}))
		carol.SetAcceptKeysend(true)
		require.NoError(t, carol.Restart(ctx))
		require.NoError(t, regtest.Poll(ctx, 90*time.Second, pays))
	})

	t.Run("disconnect and reconnect", func(t *testing.T) {
		// lnd reconnects channel peers by itself within moments, so
		// a payment may or may not race the cut; the peer event is
		// the proof that the link went down.
		evCtx, cancelEv := context.WithCancel(ctx)
		defer cancelEv()
		events, err := bob.RPC().SubscribePeerEvents(evCtx,
			&lnrpc.PeerEventSubscription{})
		require.NoError(t, err)

		require.NoError(t, bob.Disconnect(ctx, carol))
		for {
			ev, err := events.Recv()
			require.NoError(t, err, "no PEER_OFFLINE for carol")
			if ev.PubKey == carol.PubKeyHex() &&
				ev.Type == lnrpc.PeerEvent_PEER_OFFLINE {
				break
			}
		}
		require.NoError(t, bob.Connect(ctx, carol))
		require.NoError(t, regtest.Poll(ctx, 90*time.Second, pays))
	})
}
