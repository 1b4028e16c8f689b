//go:build itest

package itest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcutil"
	"github.com/lightninglabs/lndclient"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/lntypes"
	"github.com/satstream/satstream/tlv"
	"github.com/stretchr/testify/require"
)

// refusals reads the receiver's refusal counters by reason.
func (f *faultRig) refusals() map[string]uint64 {
	var v struct {
		Refusals map[string]uint64 `json:"refusals"`
	}
	require.Equal(f.t, 200, f.rcv.do("GET", "/v1/refusals", nil, &v))
	return v.Refusals
}

// subscriptionCount counts the receiver's subscriptions.
func (f *faultRig) subscriptionCount() int {
	n := 0
	after := ""
	for {
		var page struct {
			Subscriptions []struct {
				ID string `json:"id"`
			} `json:"subscriptions"`
		}
		path := "/v1/subscriptions?limit=1000"
		if after != "" {
			path += "&after=" + after
		}
		require.Equal(f.t, 200, f.rcv.do("GET", path, nil, &page))
		n += len(page.Subscriptions)
		if len(page.Subscriptions) < 1000 {
			return n
		}
		after = page.Subscriptions[len(page.Subscriptions)-1].ID
	}
}

// requireRefusedStatus checks that lnd failed a payment back the way a
// refusal does.
func requireRefusedStatus(t *testing.T, what string, st lndclient.PaymentStatus) {
	t.Helper()
	require.Equal(t, lnrpc.Payment_FAILED, st.State, what)
	require.Equal(t,
		lnrpc.PaymentFailureReason_FAILURE_REASON_INCORRECT_PAYMENT_DETAILS,
		st.FailureReason, what)
}

// randomRecords are well-formed records for a subscription nobody made.
func randomRecords(t *testing.T, plan *tlv.PlanID) map[uint64][]byte {
	id, err := tlv.NewSubscriptionID()
	require.NoError(t, err)
	r := tlv.Records{Version: 1, SubscriptionID: id, Sequence: 1,
		PlanID: plan}
	m, err := r.Encode()
	require.NoError(t, err)
	return m
}

// TestHostilePayers sends keysends a hostile payer would (from bob, not
// through satstream-sender) at a receiver that streams honest
// subscriptions meanwhile: each is refused (failed back) and counted by
// reason, none leaves a ledger row or a subscription, and the honest
// streams keep being credited, with the ledger invariant intact.
func TestHostilePayers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	net, nodes := faultNetwork(t, ctx)
	// One network; per backend a receiver on a fresh ledger and a
	// sender with its own subscriptions.
	for _, backend := range backends(t) {
		t.Run(backend, func(t *testing.T) {
			f := startFaultRig(t, ctx, net, nodes, 2, backend)
			testHostileOn(t, ctx, f)
			f.stop()
		})
	}
}

// testHostileOn is TestHostilePayers' body on the fault rig f.
func testHostileOn(t *testing.T, ctx context.Context, f *faultRig) {
	bob, carol := f.bob, f.carol

	// An open plan whose minimum is 5 sat.
	var open struct {
		ID string `json:"id"`
	}
	require.Equal(t, 201, f.rcv.do("POST", "/v1/plans", map[string]any{
		"label": "open", "price_msat_per_sec": 1000,
		"min_payment_msat": 5000, "max_prepay_sec": 600,
		"default_increment_sec": 5, "grace_period_sec": 10,
		"open_enrolment": true,
	}, &open), "create open plan")
	openID, err := tlv.ParsePlanID(open.ID)
	require.NoError(t, err)
	unknownPlan := tlv.PlanID{}
	_, err = rand.Read(unknownPlan[:])
	require.NoError(t, err)

	known := f.secrets[0]
	knownRecs := func(seq uint64) map[uint64][]byte {
		return records(t, known, seq, "", false)
	}

	garbage := randomRecords(t, nil)
	for typ := range garbage {
		b := make([]byte, len(garbage[typ]))
		_, _ = rand.Read(b)
		garbage[typ] = b
	}
	oversized := randomRecords(t, nil)
	oversized[tlv.TypeSubscriptionID] = make([]byte, 300)
	wrongVersion := randomRecords(t, nil)
	v := append([]byte(nil), wrongVersion[tlv.TypeVersion]...)
	v[len(v)-1] = 99
	wrongVersion[tlv.TypeVersion] = v

	before := f.refusals()
	subsBefore := f.subscriptionCount()
	cases := []struct {
		name   string
		recs   map[uint64][]byte
		amt    btcutil.Amount
		reason string
	}{
		{"garbage in every record", garbage, 10, "malformed_records"},
		{"oversized subscription id", oversized, 10, "malformed_records"},
		{"wrong version", wrongVersion, 10, "malformed_records"},
		{"unknown subscription", randomRecords(t, nil), 10,
			"unknown_subscription"},
		{"unknown plan", randomRecords(t, &unknownPlan), 10,
			"unknown_plan"},
		{"replayed sequence", knownRecs(1), 2, "duplicate_sequence"},
		{"open enrolment below the minimum", randomRecords(t, &openID), 1,
			"below_minimum"},
	}
	var hashes []lntypes.Hash
	for _, tc := range cases {
		hash, st, err := sendKeysend(ctx, bob, carol, tc.amt, tc.recs)
		require.NoError(t, err, tc.name)
		requireRefusedStatus(t, tc.name, st)
		hashes = append(hashes, hash)
	}

	// A replayed hash: the same preimage twice.
	var pre lntypes.Preimage
	_, _ = rand.Read(pre[:])
	for i := 0; i < 2; i++ {
		hash, st, err := sendKeysendPreimage(ctx, bob, carol, 10,
			randomRecords(t, nil), pre)
		require.NoError(t, err)
		requireRefusedStatus(t, "replayed hash", st)
		hashes = append(hashes, hash)
	}

	// A flood of unknown subscriptions and 1-sat open enrolments with
	// settle and cancel slowed down, while the honest streams go on.
	f.proxy.SetDelay(50 * time.Millisecond)
	const flood = 300
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		floodHs []lntypes.Hash
		errs    []error
	)
	sem := make(chan struct{}, 16)
	for i := 0; i < flood; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			var plan *tlv.PlanID
			if i%2 == 1 {
				plan = &openID
			}
			hash, st, err := sendKeysend(ctx, bob, carol, 1,
				randomRecords(t, plan))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				errs = append(errs, err)
			case st.State != lnrpc.Payment_FAILED || st.FailureReason !=
				lnrpc.PaymentFailureReason_FAILURE_REASON_INCORRECT_PAYMENT_DETAILS:
				errs = append(errs, fmt.Errorf("flood payment %d: %v %v",
					i, st.State, st.FailureReason))
			default:
				floodHs = append(floodHs, hash)
			}
		}(i)
	}
	f.waitProgress(2)
	wg.Wait()
	f.proxy.SetDelay(0)
	require.Empty(t, errs)
	hashes = append(hashes, floodHs...)

	// Counted by reason, and nothing stored for them.
	after := f.refusals()
	want := map[string]uint64{}
	for _, tc := range cases {
		want[tc.reason]++
	}
	// The replayed hash's second HTLC never reaches the receiver: lnd
	// fails it itself, the hash's invoice being cancelled already.
	want["unknown_subscription"] += 1 + flood/2
	want["below_minimum"] += flood / 2
	for reason, n := range want {
		require.GreaterOrEqual(t, after[reason]-before[reason], n,
			"refusals counted for %s", reason)
	}
	require.Equal(t, subsBefore, f.subscriptionCount(),
		"a refused payment created a subscription")
	for _, h := range hashes {
		code := f.rcv.do("GET", "/v1/payments/"+hex.EncodeToString(h[:]),
			nil, nil)
		// A refusal for a known subscription keeps a bounded row;
		// everything else keeps none.
		if code == 200 {
			var p receiverPayment
			f.rcv.do("GET", "/v1/payments/"+hex.EncodeToString(h[:]),
				nil, &p)
			require.NotEqual(t, "credited", p.State, "hash %v", h)
			continue
		}
		require.Equal(t, 404, code, "hash %v", h)
	}
	f.checkInvariant("after hostile payments")
	t.Logf("hostile payers: %d refused keysends, counted by reason %v; "+
		"honest streams kept being credited", len(hashes), diff(before, after))
}

// diff returns after-before per key.
func diff(before, after map[string]uint64) map[string]uint64 {
	out := map[string]uint64{}
	for k, v := range after {
		if d := v - before[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}
