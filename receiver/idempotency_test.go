package receiver

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btclog/v2"
	"github.com/lightningnetwork/lnd/routing/route"
	"github.com/satstream/satstream/common"
	"github.com/satstream/satstream/common/idem"
	rt "github.com/satstream/satstream/receiver/receivertest"
	"github.com/satstream/satstream/store"
	"github.com/stretchr/testify/require"
)

// TestRetriedCreateSubscriptionPOSTCreatesOne: a retried POST
// /v1/subscriptions made a second subscription (and a second offer for the
// payer to pay); with the same Idempotency-Key the retry gets the first
// answer, and an execution repeated after a crash finds the first
// subscription through the key's seed.
func TestRetriedCreateSubscriptionPOSTCreatesOne(t *testing.T) {
	t.Parallel()
	key, err := btcec.NewPrivateKey()
	require.NoError(t, err)
	node := route.NewVertex(key.PubKey())
	db := rt.OpenStore(t)
	tokens := common.Tokens{Admin: "adm", ReadOnly: "ro"}
	s := &apiServer{
		db: db.Receiver(), log: btclog.Disabled, now: time.Now,
		node:   func() (route.Vertex, bool) { return node, true },
		health: func() map[string]any { return nil },
		tokens: tokens, notify: func() {},
		idem: idem.New(db, btclog.Disabled),
	}
	h := s.handler()
	post := func(path, key, body string) (int, string) {
		req := httptest.NewRequest("POST", path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer adm")
		if key != "" {
			req.Header.Set(idem.Header, key)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w.Code, w.Body.String()
	}
	count := func() int {
		n := 0
		require.NoError(t, db.Receiver().View(context.Background(),
			func(tx store.ReceiverTx) error {
				n = 0
				return tx.ForEachSubscription(0, store.Page{},
					func(*store.ReceiverSubscription) error {
						n++
						return nil
					})
			}))
		return n
	}

	code, planBody := post("/v1/plans", "plan-1", `{"price_msat_per_sec":10}`)
	require.Equal(t, http.StatusCreated, code, planBody)
	code, again := post("/v1/plans", "plan-1", `{"price_msat_per_sec":10}`)
	require.Equal(t, http.StatusCreated, code)
	require.Equal(t, planBody, again)
	planID := planBody[strings.Index(planBody, `"id": "`)+7:]
	planID = planID[:strings.IndexByte(planID, '"')]

	body := `{"plan_id":"` + planID + `"}`
	code, first := post("/v1/subscriptions", "sub-1", body)
	require.Equal(t, http.StatusCreated, code, first)
	code, second := post("/v1/subscriptions", "sub-1", body)
	require.Equal(t, http.StatusCreated, code)
	require.Equal(t, first, second)
	require.Equal(t, 1, count())

	// The same request executed twice under one seed (the daemon
	// stopped before it stored the first answer).
	ctx := idem.WithSeed(context.Background(), [16]byte{9})
	var outs [2]string
	for i := range outs {
		req := httptest.NewRequestWithContext(ctx, "POST",
			"/v1/subscriptions", strings.NewReader(body))
		w := httptest.NewRecorder()
		s.createSubscription(w, req)
		require.Equal(t, http.StatusCreated, w.Code)
		outs[i] = w.Body.String()
	}
	require.Equal(t, outs[0], outs[1])
	require.Equal(t, 2, count())
}

// TestKeyCapRefusedProviderCancel reproduces the provider who could not
// cancel: once some client had filled the key table, a cancel sent with an
// Idempotency-Key was refused with a 429 like any new key. A cancel passes
// the cap; a new key of another POST is still refused; the read-only
// token records no key (its POSTs are refused before the keeper).
func TestKeyCapRefusedProviderCancel(t *testing.T) {
	t.Parallel()
	key, err := btcec.NewPrivateKey()
	require.NoError(t, err)
	node := route.NewVertex(key.PubKey())
	db := rt.OpenStore(t)
	tokens := common.Tokens{Admin: "adm", ReadOnly: "ro"}
	keeper := idem.New(db, btclog.Disabled)
	keeper.MaxKeys = 2
	s := &apiServer{
		db: db.Receiver(), log: btclog.Disabled, now: time.Now,
		node:   func() (route.Vertex, bool) { return node, true },
		health: func() map[string]any { return nil },
		tokens: tokens, notify: func() {}, idem: keeper,
	}
	h := s.handler()
	post := func(token, path, key, body string) (int, string) {
		req := httptest.NewRequest("POST", path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		if key != "" {
			req.Header.Set(idem.Header, key)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w.Code, w.Body.String()
	}
	idOf := func(body string) string {
		id := body[strings.Index(body, `"id": "`)+7:]
		return id[:strings.IndexByte(id, '"')]
	}
	count := func() uint64 {
		n, err := db.IdemCount(context.Background())
		require.NoError(t, err)
		return n
	}

	code, out := post("adm", "/v1/plans", "", `{"price_msat_per_sec":10}`)
	require.Equal(t, http.StatusCreated, code, out)
	code, out = post("adm", "/v1/subscriptions", "",
		`{"plan_id":"`+idOf(out)+`"}`)
	require.Equal(t, http.StatusCreated, code, out)
	sub := idOf(out)

	for i := range 3 {
		code, _ := post("ro", "/v1/plans", fmt.Sprint("ro", i), `{}`)
		require.Equal(t, http.StatusForbidden, code)
	}
	require.Zero(t, count(), "the read-only token records no key")

	for _, k := range []string{"f1", "f2"} {
		code, out := post("adm", "/v1/plans", k, `{}`)
		require.Equal(t, http.StatusBadRequest, code, out)
	}
	code, out = post("adm", "/v1/plans", "f3", `{}`)
	require.Equal(t, http.StatusTooManyRequests, code, out)

	code, out = post("adm", "/v1/subscriptions/"+sub+"/cancel", "c1", "")
	require.Equal(t, http.StatusOK, code, out)
	require.Contains(t, out, `"cancelled`)
	code, again := post("adm", "/v1/subscriptions/"+sub+"/cancel", "c1", "")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, out, again, "recorded in the reserve")
}
