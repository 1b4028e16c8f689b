package receiver

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/satstream/satstream/receiver/core"
	rt "github.com/satstream/satstream/receiver/receivertest"
	"github.com/satstream/satstream/store"
	"github.com/satstream/satstream/tlv"
	"github.com/stretchr/testify/require"
)

// leakFixture is a receiver with subscriptions in every kind of state a
// read-only caller can see: credited, refused, payer-cancelled, an unknown
// subscription's refusal, and a payment row of an unknown subscription as
// an older store kept them.
type leakFixture struct {
	a        *apiHarness
	planID   string
	openPlan string
	pub      string // public id of the main subscription
	secrets  [][16]byte
	offers   []string
	hashes   []store.Hash
}

func newLeakFixture(t *testing.T) *leakFixture {
	a := newAPIHarness(t)
	adm := a.tokens.Admin
	f := &leakFixture{a: a}
	code, plan := a.call(adm, "POST", "/v1/plans", map[string]any{
		"price_msat_per_sec": 10, "min_payment_msat": 1000})
	require.Equal(t, 201, code)
	f.planID = plan["id"].(string)
	code, open := a.call(adm, "POST", "/v1/plans", map[string]any{
		"price_msat_per_sec": 10, "open_enrolment": true})
	require.Equal(t, 201, code)
	f.openPlan = open["id"].(string)

	for i := 0; i < 2; i++ {
		code, sub := a.call(adm, "POST", "/v1/subscriptions",
			map[string]any{"plan_id": f.planID})
		require.Equal(t, 201, code)
		offer := sub["offer"].(string)
		o, err := tlv.ParseOffer(offer)
		require.NoError(t, err)
		f.secrets = append(f.secrets, *o.SubscriptionID)
		f.offers = append(f.offers, offer)
		if i == 0 {
			f.pub = sub["id"].(string)
		}
	}
	// An unknown subscription's id: junk, or someone's secret sent to
	// the wrong node.
	f.secrets = append(f.secrets, [16]byte{0xee, 1, 2, 3})
	// An open-enrolment payer's own secret.
	f.secrets = append(f.secrets, [16]byte{0xdd, 4, 5, 6})
	planRaw, err := tlv.ParsePlanID(f.openPlan)
	require.NoError(t, err)
	planArr := [16]byte(planRaw)

	pay := func(n byte, sub [16]byte, seq uint64, amt uint64,
		plan *[16]byte, cancel bool) {

		h := store.Hash{0x77, n}
		f.hashes = append(f.hashes, h)
		require.NoError(t, a.db.Update(context.Background(),
			func(tx store.ReceiverTx) error {
				_, err := core.Apply(tx, core.Incoming{Hash: h,
					Amount: lnwire.MilliSatoshi(amt),
					Custom: rt.Records(t, sub, seq, plan, cancel),
					Now:    a.now}, 0)
				return err
			}))
	}
	pay(1, f.secrets[0], 1, 1700, nil, false)      // credited
	pay(2, f.secrets[0], 2, 10, nil, false)        // refused: below minimum
	pay(3, f.secrets[1], 1, 1, nil, true)          // payer's cancel
	pay(4, f.secrets[2], 1, 1700, nil, false)      // unknown subscription
	pay(5, f.secrets[3], 1, 1700, &planArr, false) // open enrolment
	// A row an older store kept for an unknown subscription.
	h := store.Hash{0x77, 6}
	f.hashes = append(f.hashes, h)
	require.NoError(t, a.db.Update(context.Background(),
		func(tx store.ReceiverTx) error {
			return tx.PutPayment(&store.Payment{Hash: h,
				SubID: store.SubID{}, Seq: 9, // as older versions wrote it
				State: store.PaymentRefused, ReceivedAt: a.now,
				Reason: "unknown_subscription: subscription " +
					hex.EncodeToString(f.secrets[2][:]) +
					" is not known"})
		}))
	return f
}

// forbidden lists every encoding of the fixture's secrets that must never
// reach a read-only caller.
func (f *leakFixture) forbidden() []string {
	var out []string
	for _, s := range f.secrets {
		out = append(out, hex.EncodeToString(s[:]),
			strings.ToUpper(hex.EncodeToString(s[:])),
			base64.StdEncoding.EncodeToString(s[:]),
			base64.RawStdEncoding.EncodeToString(s[:]),
			base64.URLEncoding.EncodeToString(s[:]),
			base64.RawURLEncoding.EncodeToString(s[:]))
	}
	return append(out, f.offers...)
}

// TestReadOnlyTokenSawPayersSecret reproduces issue 11 item 4: the
// read-only token saw the payer's secret subscription id (which lets anyone
// pay into, cancel or poison the subscription) in lists, single views,
// payments, refusals and events. Every GET route is called with the
// read-only token; no body holds any encoding of any secret or offer.
func TestReadOnlyTokenSawPayersSecret(t *testing.T) {
	t.Parallel()
	f := newLeakFixture(t)
	a := f.a
	paths := map[string][]string{
		"GET /v1/health":                      {"/v1/health"},
		"GET /v1/plans":                       {"/v1/plans"},
		"GET /v1/plans/{id}":                  {"/v1/plans/" + f.planID, "/v1/plans/" + f.openPlan},
		"GET /v1/subscriptions":               {"/v1/subscriptions", "/v1/subscriptions?limit=1", "/v1/subscriptions?state=active", "/v1/subscriptions?state=cancelled_by_payer", "/v1/subscriptions?limit=1&after=" + f.pub},
		"GET /v1/subscriptions/{id}":          {"/v1/subscriptions/" + f.pub},
		"GET /v1/subscriptions/{id}/paid":     {"/v1/subscriptions/" + f.pub + "/paid"},
		"GET /v1/subscriptions/{id}/offer":    {"/v1/subscriptions/" + f.pub + "/offer"},
		"GET /v1/subscriptions/{id}/payments": {"/v1/subscriptions/" + f.pub + "/payments"},
		"GET /v1/payments/{hash}":             nil,
		"GET /v1/events":                      {"/v1/events", "/v1/events?pending=true", "/v1/events?after=1"},
		"GET /v1/refusals":                    {"/v1/refusals"},
		"GET /v1/openapi.json":                {"/v1/openapi.json"},
		"GET /v1/webhooks/dead":               {"/v1/webhooks/dead"},
	}
	// Every event is a dead letter at a configured endpoint, so the
	// dead-letter list shows them all.
	a.api.webhookURLs = []string{"https://h.example/x"}
	require.NoError(t, a.db.Update(t.Context(), func(tx store.ReceiverTx) error {
		return tx.ForEachPendingEvent(0, func(ev *store.Event) error {
			return tx.PutDelivery(&store.Delivery{
				Endpoint: store.NewEndpointID(a.api.webhookURLs[0]),
				Event:    ev.ID, State: store.DeliveryDead})
		})
	}))
	code, dead := a.call(a.tokens.ReadOnly, "GET", "/v1/webhooks/dead", nil)
	require.Equal(t, 200, code)
	require.NotEmpty(t, dead["events"])
	for _, h := range f.hashes {
		paths["GET /v1/payments/{hash}"] = append(
			paths["GET /v1/payments/{hash}"], "/v1/payments/"+h.String())
	}
	// Every GET route of the API is in the table.
	for _, r := range (&apiServer{}).routes() {
		if strings.HasPrefix(r.pattern, "GET ") {
			require.Contains(t, paths, r.pattern,
				"new GET route: add it to this table")
		}
	}
	// Subscriptions of every kind are listed (the open enrolment too).
	code, list := a.call(a.tokens.ReadOnly, "GET", "/v1/subscriptions", nil)
	require.Equal(t, 200, code)
	require.Len(t, list["subscriptions"], 3)

	bad := f.forbidden()
	for pattern, ps := range paths {
		for _, p := range ps {
			t.Run(p, func(t *testing.T) {
				req := httptest.NewRequest("GET", p, nil)
				req.Header.Set("Authorization", "Bearer "+
					a.tokens.ReadOnly)
				w := httptest.NewRecorder()
				a.h.ServeHTTP(w, req)
				switch pattern {
				case "GET /v1/subscriptions/{id}/offer":
					require.Equal(t, 403, w.Code)
				case "GET /v1/payments/{hash}":
					// An unknown subscription's refusal
					// leaves no row.
					require.Contains(t, []int{200, 404}, w.Code)
				default:
					require.Equal(t, 200, w.Code, w.Body.String())
				}
				for _, s := range bad {
					require.NotContains(t, w.Body.String(), s)
				}
			})
		}
	}
	// Subscription views name the public id.
	code, sub := a.call(a.tokens.ReadOnly, "GET", "/v1/subscriptions/"+f.pub, nil)
	require.Equal(t, 200, code)
	require.Equal(t, store.SubID(f.secrets[0]).PublicID().String(), sub["id"])
}

// TestReadOnlyTokenCancelledByPublicID: the read-only token can't cancel
// or change a subscription (403) by its public id or its secret, while the
// admin token can, by either; a read-only caller who sends a secret in the
// path is told to use the public id rather than getting an answer about
// it (403).
func TestReadOnlyTokenCancelledByPublicID(t *testing.T) {
	t.Parallel()
	f := newLeakFixture(t)
	a := f.a
	ro, adm := a.tokens.ReadOnly, a.tokens.Admin
	secret := hex.EncodeToString(f.secrets[0][:])
	for _, id := range []string{f.pub, secret} {
		code, _ := a.call(ro, "POST", "/v1/subscriptions/"+id+"/cancel", nil)
		require.Equal(t, 403, code)
		code, _ = a.call(ro, "PATCH", "/v1/subscriptions/"+id,
			map[string]any{"terms": map[string]any{"grace_period_sec": 5}})
		require.Equal(t, 403, code)
	}
	code, body := a.call(ro, "GET", "/v1/subscriptions/"+secret, nil)
	require.Equal(t, 403, code)
	c, _ := errOf(body)
	require.Equal(t, "forbidden", c)

	code, sub := a.call(adm, "PATCH", "/v1/subscriptions/"+f.pub,
		map[string]any{"terms": map[string]any{"grace_period_sec": 5}})
	require.Equal(t, 200, code)
	require.Equal(t, f.pub, sub["id"])
	require.NotContains(t, sub, "secret")
	code, sub = a.call(adm, "GET", "/v1/subscriptions/"+secret, nil)
	require.Equal(t, 200, code)
	require.Equal(t, f.pub, sub["id"])
	require.NotContains(t, sub, "secret", "views never hold the secret")
	code, sub = a.call(adm, "POST", "/v1/subscriptions/"+f.pub+"/cancel", nil)
	require.Equal(t, 200, code)
	require.Equal(t, "cancelled_by_provider", sub["state"])

	// The offer endpoint hands the secret to the admin, with the public id.
	code, off := a.call(adm, "GET", "/v1/subscriptions/"+f.pub+"/offer", nil)
	require.Equal(t, 200, code)
	o, err := tlv.ParseOffer(off["offer"].(string))
	require.NoError(t, err)
	require.Equal(t, f.secrets[0], [16]byte(*o.SubscriptionID))
	require.Equal(t, secret, off["secret"])
	require.Equal(t, f.pub, off["id"])

	code, _ = a.call(adm, "GET", "/v1/subscriptions/sub_00000000000000000000000000000001", nil)
	require.Equal(t, 404, code)
	code, _ = a.call(adm, "GET", "/v1/subscriptions/sub_zz", nil)
	require.Equal(t, 400, code)
}

// TestLegacyUnknownSubscriptionReasonLeaksSecret reproduces a row older
// versions kept for a payment to an unknown subscription: no subscription
// id, and the secret in the reason. The read-only token must see the
// public id instead.
func TestLegacyUnknownSubscriptionReasonLeaksSecret(t *testing.T) {
	a := newAPIHarness(t)
	secret := store.SubID{0xee, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13,
		14, 15}
	h := store.Hash{0x77, 6}
	require.NoError(t, a.db.Update(context.Background(),
		func(tx store.ReceiverTx) error {
			return tx.PutPayment(&store.Payment{Hash: h, Seq: 9,
				State: store.PaymentRefused, ReceivedAt: a.now,
				Reason: "unknown_subscription: subscription " +
					secret.Hex() + " is not known"})
		}))
	code, body := a.call(a.tokens.ReadOnly, "GET", "/v1/payments/"+
		h.String(), nil)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "unknown_subscription: subscription "+
		secret.PublicID().String()+" is not known", body["reason"])
}

// TestReadOnlySecretInAfterBlamesID reproduces the read-only token's
// refusal of a secret given as the subscription list's after parameter:
// the error named the field "id", which the request did not have.
func TestReadOnlySecretInAfterBlamesID(t *testing.T) {
	a := newAPIHarness(t)
	secret := store.SubID{0xee, 1}
	code, body := a.call(a.tokens.ReadOnly, "GET",
		"/v1/subscriptions?after="+secret.Hex(), nil)
	require.Equal(t, http.StatusForbidden, code, body)
	require.Equal(t, "after", body["error"].(map[string]any)["field"], body)
	code, body = a.call(a.tokens.ReadOnly, "GET",
		"/v1/subscriptions/"+secret.Hex(), nil)
	require.Equal(t, http.StatusForbidden, code, body)
	require.Equal(t, "id", body["error"].(map[string]any)["field"], body)
}
