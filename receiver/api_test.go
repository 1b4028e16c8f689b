package receiver

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btclog/v2"
	"github.com/lightningnetwork/lnd/routing/route"
	"github.com/satstream/satstream/common"
	"github.com/satstream/satstream/receiver/core"
	rt "github.com/satstream/satstream/receiver/receivertest"
	"github.com/satstream/satstream/store"
	"github.com/satstream/satstream/tlv"
	"github.com/stretchr/testify/require"
)

type apiHarness struct {
	t      testing.TB
	h      http.Handler
	tokens common.Tokens
	now    time.Time
	db     store.ReceiverStore
	api    *apiServer
}

func newAPIHarness(t testing.TB) *apiHarness {
	key, err := btcec.NewPrivateKey()
	require.NoError(t, err)
	node := route.NewVertex(key.PubKey())
	tokens, err := common.LoadOrCreateTokens(t.TempDir())
	require.NoError(t, err)
	a := &apiHarness{t: t, tokens: tokens,
		now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	// As the daemon runs on badger: every write through the paid index.
	idx := newPaidIndex(rt.OpenStore(t).Receiver())
	a.db = idx
	s := &apiServer{
		db:     a.db,
		log:    btclog.NewSLogger(btclog.NewDefaultHandler(os.Stderr)),
		now:    func() time.Time { return a.now },
		node:   func() (route.Vertex, bool) { return node, true },
		health: func() map[string]any { return map[string]any{"status": "ok"} },
		tokens: tokens,
		notify: func() {},
	}
	s.paidIdx = idx
	a.api = s
	a.h = s.handler()
	return a
}

// call does a request with the given token and returns status and body.
func (a *apiHarness) call(token, method, path string, body any) (int, map[string]any) {
	var buf bytes.Buffer
	switch b := body.(type) {
	case nil:
	case string:
		buf.WriteString(b)
	default:
		require.NoError(a.t, json.NewEncoder(&buf).Encode(b))
	}
	req := httptest.NewRequest(method, path, &buf)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	a.h.ServeHTTP(w, req)
	out := map[string]any{}
	_ = json.Unmarshal(w.Body.Bytes(), &out)
	return w.Code, out
}

func errOf(m map[string]any) (code, field string) {
	e, _ := m["error"].(map[string]any)
	c, _ := e["code"].(string)
	f, _ := e["field"].(string)
	return c, f
}

func TestAPIAuth(t *testing.T) {
	t.Parallel()
	a := newAPIHarness(t)
	for _, path := range []string{"/v1/health", "/v1/plans", "/v1/subscriptions", "/v1/events"} {
		code, _ := a.call("", "GET", path, nil)
		require.Equal(t, 401, code, path)
		code, _ = a.call("wrong", "GET", path, nil)
		require.Equal(t, 401, code, path)
		code, _ = a.call(a.tokens.ReadOnly, "GET", path, nil)
		require.Equal(t, 200, code, path)
	}
	code, body := a.call(a.tokens.ReadOnly, "POST", "/v1/plans",
		map[string]any{"price_msat_per_sec": 1})
	require.Equal(t, 403, code)
	c, _ := errOf(body)
	require.Equal(t, "read_only", c)
}

func TestAPIPlanValidation(t *testing.T) {
	t.Parallel()
	a := newAPIHarness(t)
	tests := []struct {
		name  string
		body  any
		code  string
		field string
	}{
		{"missing price", map[string]any{}, "invalid_field", "price_msat_per_sec"},
		{"zero price", map[string]any{"price_msat_per_sec": 0}, "invalid_field", "price_msat_per_sec"},
		{"min above max prepay", map[string]any{"price_msat_per_sec": 1,
			"max_prepay_sec": 10, "min_payment_msat": 11,
			"default_increment_sec": 5}, "invalid_field", "min_payment_msat"},
		{"increment above prepay", map[string]any{"price_msat_per_sec": 1,
			"max_prepay_sec": 10, "default_increment_sec": 11},
			"invalid_field", "default_increment_sec"},
		{"increment no longer supported", map[string]any{
			"price_msat_per_sec": 1, "increment_msat": 500},
			"invalid_field", "increment_msat"},
		{"wrong type", map[string]any{"price_msat_per_sec": "ten"}, "bad_request", "price_msat_per_sec"},
		{"unknown field", map[string]any{"price": 1}, "bad_request", ""},
		{"not json", "{", "bad_request", ""},
		{"label too long", map[string]any{"price_msat_per_sec": 1,
			"label": string(make([]byte, 65))}, "invalid_field", "label"},
		{"huge duration", map[string]any{"price_msat_per_sec": 1,
			"max_prepay_sec": uint64(1) << 40}, "invalid_field", "max_prepay_sec"},
		// The PostgreSQL ledger read these as "database unavailable".
		{"price above int64", map[string]any{
			"price_msat_per_sec": uint64(1) << 63}, "invalid_field",
			"price_msat_per_sec"},
		{"min payment above int64", map[string]any{
			"price_msat_per_sec": 1, "min_payment_msat": uint64(1) << 63},
			"invalid_field", "min_payment_msat"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := a.call(a.tokens.Admin, "POST", "/v1/plans", tc.body)
			require.Equal(t, 400, code)
			c, f := errOf(body)
			require.Equal(t, tc.code, c)
			require.Equal(t, tc.field, f)
		})
	}
}

func TestAPISubscriptionFlow(t *testing.T) {
	t.Parallel()
	a := newAPIHarness(t)
	adm := a.tokens.Admin
	code, plan := a.call(adm, "POST", "/v1/plans", map[string]any{
		"label": "basic", "price_msat_per_sec": 10,
		"min_payment_msat": 1000, "grace_period_sec": 60,
		"max_prepay_sec": 3600, "default_increment_sec": 60,
	})
	require.Equal(t, 201, code)
	planID := plan["id"].(string)
	require.Empty(t, plan["offer"], "closed plans have no public offer")

	code, body := a.call(adm, "POST", "/v1/subscriptions",
		map[string]any{"plan_id": "nope"})
	require.Equal(t, 400, code)
	_, f := errOf(body)
	require.Equal(t, "plan_id", f)

	var ids []string
	for i := 0; i < 3; i++ {
		code, sub := a.call(adm, "POST", "/v1/subscriptions",
			map[string]any{"plan_id": planID,
				"terms": map[string]any{"grace_period_sec": 600}})
		require.Equal(t, 201, code)
		o, err := tlv.ParseOffer(sub["offer"].(string))
		require.NoError(t, err)
		require.Equal(t, sub["secret"], o.SubscriptionID.String())
		require.Equal(t, sub["id"], o.SubscriptionID.PublicID().String())
		require.Equal(t, 600*time.Second, o.GracePeriod)
		require.Equal(t, "pending", sub["state"])
		ids = append(ids, sub["id"].(string))
	}

	code, paid := a.call(a.tokens.ReadOnly, "GET", "/v1/subscriptions/"+ids[0]+"/paid", nil)
	require.Equal(t, 200, code)
	require.Equal(t, false, paid["paid"])

	// The personal offer needs the admin token.
	code, _ = a.call(a.tokens.ReadOnly, "GET", "/v1/subscriptions/"+ids[0]+"/offer", nil)
	require.Equal(t, 403, code)
	code, _ = a.call(adm, "GET", "/v1/subscriptions/"+ids[0]+"/offer", nil)
	require.Equal(t, 200, code)

	// Paging.
	code, page := a.call(adm, "GET", "/v1/subscriptions?limit=2", nil)
	require.Equal(t, 200, code)
	require.Len(t, page["subscriptions"], 2)
	code, page = a.call(adm, "GET", "/v1/subscriptions?limit=2&after="+
		page["next_after"].(string), nil)
	require.Equal(t, 200, code)
	require.Len(t, page["subscriptions"], 1)
	code, body = a.call(adm, "GET", "/v1/subscriptions?state=bogus", nil)
	require.Equal(t, 400, code)
	_, f = errOf(body)
	require.Equal(t, "state", f)

	// Override terms, cancel, and cancel again (idempotent).
	code, sub := a.call(adm, "PATCH", "/v1/subscriptions/"+ids[1],
		map[string]any{"terms": map[string]any{"grace_period_sec": 7200}})
	require.Equal(t, 200, code)
	require.EqualValues(t, 7200, sub["terms"].(map[string]any)["grace_period_sec"])
	for i := 0; i < 2; i++ {
		code, sub = a.call(adm, "POST", "/v1/subscriptions/"+ids[1]+"/cancel", nil)
		require.Equal(t, 200, code)
		require.Equal(t, "cancelled_by_provider", sub["state"])
	}
	code, page = a.call(adm, "GET", "/v1/subscriptions?state=cancelled_by_provider", nil)
	require.Equal(t, 200, code)
	require.Len(t, page["subscriptions"], 1)

	code, _ = a.call(adm, "GET", "/v1/subscriptions/zz", nil)
	require.Equal(t, 400, code)
	code, _ = a.call(adm, "GET", "/v1/subscriptions/00000000000000000000000000000001", nil)
	require.Equal(t, 404, code)
	code, _ = a.call(adm, "GET", "/v1/subscriptions/sub_00000000000000000000000000000001", nil)
	require.Equal(t, 404, code)
	code, _ = a.call(adm, "GET", "/v1/subscriptions/"+ids[0]+"/payments", nil)
	require.Equal(t, 200, code)
	code, _ = a.call(adm, "GET", "/v1/nope", nil)
	require.Equal(t, 404, code)

	// Events: 3 created, 1 updated, 1 cancelled.
	code, evs := a.call(adm, "GET", "/v1/events?pending=true", nil)
	require.Equal(t, 200, code)
	require.Len(t, evs["events"], 5)

	// Updating the plan leaves existing subscriptions alone.
	code, _ = a.call(adm, "PATCH", "/v1/plans/"+planID,
		map[string]any{"price_msat_per_sec": 20, "open_enrolment": true})
	require.Equal(t, 200, code)
	code, p := a.call(adm, "GET", "/v1/plans/"+planID, nil)
	require.Equal(t, 200, code)
	require.NotEmpty(t, p["offer"])
	code, sub = a.call(adm, "GET", "/v1/subscriptions/"+ids[0], nil)
	require.Equal(t, 200, code)
	require.EqualValues(t, 10, sub["terms"].(map[string]any)["price_msat_per_sec"])
}

// TestAPIProviderCancelForfeitedPaidTime reproduces issue 10 item 14 at the
// API: a cancelled subscription with paid time left answered paid: false.
// It is served until paid_until, which the answer gives as ends_at; the
// refusal counters show what left no ledger entry; increment_msat 0 is
// still accepted.
func TestAPIProviderCancelForfeitedPaidTime(t *testing.T) {
	t.Parallel()
	a := newAPIHarness(t)
	adm := a.tokens.Admin
	code, plan := a.call(adm, "POST", "/v1/plans", map[string]any{
		"price_msat_per_sec": 10, "min_payment_msat": 1000,
		"grace_period_sec": 60, "increment_msat": 0,
	})
	require.Equal(t, 201, code)
	code, sub := a.call(adm, "POST", "/v1/subscriptions",
		map[string]any{"plan_id": plan["id"]})
	require.Equal(t, 201, code)
	id := sub["id"].(string)
	sid, err := tlv.ParseSubscriptionID(sub["secret"].(string))
	require.NoError(t, err)

	apply := func(seq uint64, sub [16]byte) core.Outcome {
		var out core.Outcome
		require.NoError(t, a.db.Update(context.Background(), func(tx store.ReceiverTx) error {
			var err error
			out, err = core.Apply(tx, core.Incoming{
				Hash: store.Hash{byte(seq), sub[0]}, Amount: 1700,
				Custom: rt.Records(t, sub, seq, nil, false),
				Now:    a.now}, 0)
			return err
		}))
		return out
	}
	require.True(t, apply(1, sid).Credited) // 170 s
	require.Equal(t, core.ReasonUnknownSubscription,
		apply(1, [16]byte{0xff}).Reason)

	a.now = a.now.Add(10 * time.Second)
	code, sub = a.call(adm, "POST", "/v1/subscriptions/"+id+"/cancel", nil)
	require.Equal(t, 200, code)
	require.Equal(t, "cancelled_by_provider", sub["state"])
	require.Equal(t, true, sub["paid"])
	require.Equal(t, "2026-01-01T00:02:50Z", sub["ends_at"])

	code, paid := a.call(a.tokens.ReadOnly, "GET", "/v1/subscriptions/"+id+"/paid", nil)
	require.Equal(t, 200, code)
	require.Equal(t, true, paid["paid"])
	require.Equal(t, "2026-01-01T00:02:50Z", paid["ends_at"])
	a.now = a.now.Add(160 * time.Second)
	_, paid = a.call(a.tokens.ReadOnly, "GET", "/v1/subscriptions/"+id+"/paid", nil)
	require.Equal(t, false, paid["paid"])

	code, refusals := a.call(a.tokens.ReadOnly, "GET", "/v1/refusals", nil)
	require.Equal(t, 200, code)
	require.EqualValues(t, 1, refusals["total"])
	counts := refusals["refusals"].(map[string]any)
	require.EqualValues(t, 1, counts["unknown_subscription"])
	require.EqualValues(t, 0, counts["below_minimum"])
}
