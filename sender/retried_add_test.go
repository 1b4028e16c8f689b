package sender

import (
	"context"
	"testing"
	"time"

	"github.com/satstream/satstream/common/idem"
	"github.com/stretchr/testify/require"
)

// TestRetriedAddRefusedByRouteCheck reproduces a create executed again
// under its Idempotency-Key (a crash between the create's commit and the
// key's answer) after lnd's route answer turned pessimistic: the
// subscription the first run made exists and pays, yet the retry answered
// 400 "terms refused", which a client would take as final (and subscribe
// again with other terms: two paying subscriptions). The retry must find
// the first subscription before checking anything.
func TestRetriedAddRefusedByRouteCheck(t *testing.T) {
	h := newHarness(t, nil)
	p := runProbing(h)
	p.fee.Store(10)
	ppm := uint32(10_000)
	req := TermsRequest{Increment: dur(10 * time.Second), FeeLimitPPM: &ppm}
	offer := testOffer(t, 1000, time.Hour, true)
	ctx := idem.WithSeed(context.Background(), [16]byte{9})
	v1, err := h.eng.Add(ctx, offer, req, false)
	require.NoError(t, err)

	p.fee.Store(1001) // mission control is now pessimistic
	v2, err := h.eng.Add(ctx, offer, req, false)
	require.NoError(t, err, "the retry must find the first subscription")
	require.Equal(t, v1.ID, v2.ID)
	require.Len(t, h.eng.List(""), 1)
}
