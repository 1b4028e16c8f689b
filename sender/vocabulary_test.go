package sender

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestSubscriptionListPagesWithStringCursor: the sender's list had no
// pagination while the receiver's had after/limit; both now page the same
// way, with a string next_after.
func TestSubscriptionListPagesWithStringCursor(t *testing.T) {
	h := newHarness(t, nil)
	h.run()
	srv := idemAPI(h)
	for range 3 {
		code, out := postWithKey(t, srv, "", `{"offer":"`+
			testOffer(t, 1000, time.Hour, true)+`","paused":true,`+
			`"increment_sec":60,"buffer_sec":120}`)
		require.Equal(t, http.StatusCreated, code, out)
	}
	get := func(q string) map[string]any {
		req := httptest.NewRequest("GET", "/v1/subscriptions"+q, nil)
		req.Header.Set("Authorization", "Bearer ro")
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		out := map[string]any{}
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &out))
		return out
	}
	page := get("?limit=2")
	require.Len(t, page["subscriptions"], 2)
	next, ok := page["next_after"].(string)
	require.True(t, ok, "next_after is a string")
	terms := page["subscriptions"].([]any)[0].(map[string]any)["terms"]
	require.EqualValues(t, 60, terms.(map[string]any)["increment_sec"])
	require.EqualValues(t, 120, terms.(map[string]any)["buffer_sec"])
	page = get("?limit=2&after=" + next)
	require.Len(t, page["subscriptions"], 1)
	require.NotContains(t, page, "next_after")
}
