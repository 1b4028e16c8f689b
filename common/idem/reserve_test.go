package idem

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestReserveUsedBlocksNewKeysPastTheirTTL: stops fill the reserve
// (count > MaxKeys+idemPrunePerCall). A day later every key has expired,
// but a normal key is still refused: IdemBegin prunes at most 64 records,
// finds the count still >= MaxKeys, returns ErrIdemFull, and that error
// rolls back the prune too, so no normal request ever makes progress.
// Only a stop (or 64-at-a-time progress by stops) can drain the table.
func TestReserveUsedBlocksNewKeysPastTheirTTL(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.k.MaxKeys, r.k.StopReserve = 2, 100
	stop := func(key string) int {
		req := httptest.NewRequest("POST", "/v1/subscriptions/s/cancel",
			nil)
		req.Header.Set("Authorization", "Bearer adm")
		req.Header.Set(Header, key)
		rec := httptest.NewRecorder()
		r.k.WrapStop(r.handler)(rec, req)
		<-r.seeds
		return rec.Code
	}
	for i := range 100 {
		require.Equal(t, http.StatusCreated, stop(fmt.Sprint("s", i)))
	}
	n, err := r.db.IdemCount(context.Background())
	require.NoError(t, err)
	require.EqualValues(t, 100, n)

	// Two days later every one of them has expired.
	r.now = r.now.Add(2 * DefaultTTL)
	var statuses []int
	for i := range 3 {
		got := r.post("adm", "/v1/plans", fmt.Sprint("new", i), `{}`)
		if got.status == http.StatusCreated {
			<-r.seeds
		}
		n, err := r.db.IdemCount(context.Background())
		require.NoError(t, err)
		t.Logf("attempt %d: %d, count %d", i, got.status, n)
		statuses = append(statuses, got.status)
	}
	// The first may be refused while the backlog drains (64 a call);
	// the prune must stick, so a later one is taken.
	require.Equal(t, http.StatusCreated, statuses[2],
		"all stored keys expired a day ago: %v", statuses)
}
