package receiver

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btclog/v2"
	"github.com/lightningnetwork/lnd/routing/route"
	"github.com/satstream/satstream/common"
	kit "github.com/satstream/satstream/common/dashboard"
	"github.com/satstream/satstream/receiver/dashboard"
	rt "github.com/satstream/satstream/receiver/receivertest"
	"github.com/satstream/satstream/store"
	"github.com/stretchr/testify/require"
)

type dashHarness struct {
	t   *testing.T
	k   *kit.Kit
	h   http.Handler
	api *apiHarness
}

// newDashHarness builds the dashboard over an API with the webhook urls
// configured.
func newDashHarness(t *testing.T, urls ...string) *dashHarness {
	t.Helper()
	key, err := btcec.NewPrivateKey()
	require.NoError(t, err)
	node := route.NewVertex(key.PubKey())
	tokens, err := common.LoadOrCreateTokens(t.TempDir())
	require.NoError(t, err)
	a := &apiHarness{t: t, tokens: tokens, now: time.Now()}
	a.db = rt.OpenStore(t).Receiver()
	s := &apiServer{
		db:     a.db,
		log:    btclog.NewSLogger(btclog.NewDefaultHandler(os.Stderr)),
		now:    time.Now,
		node:   func() (route.Vertex, bool) { return node, true },
		health: func() map[string]any { return map[string]any{"lnd_connected": true} },
		tokens: tokens,

		webhookURLs: urls,
	}
	a.api = s
	k, h, err := newDashboard(s, len(urls))
	// The API tells the open pages about its changes, as the daemon's
	// notifyEvents does.
	s.notify = k.Notify
	require.NoError(t, err)
	t.Cleanup(k.Stop)
	a.h = h
	return &dashHarness{t: t, k: k, h: h, api: a}
}

type dashBrowser struct {
	d      *dashHarness
	cookie *http.Cookie
	csrf   string
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

func (d *dashHarness) login(access common.Access) *dashBrowser {
	link, _, err := d.k.LoginLink(access)
	require.NoError(d.t, err)
	rec := httptest.NewRecorder()
	d.h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, link, nil))
	require.Equal(d.t, http.StatusOK, rec.Code)
	b := &dashBrowser{d: d, cookie: rec.Result().Cookies()[0]}
	_, page := b.get("/")
	m := csrfRe.FindStringSubmatch(page)
	require.NotNil(d.t, m)
	b.csrf = m[1]
	return b
}

func (b *dashBrowser) get(path string) (int, string) {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.AddCookie(b.cookie)
	b.d.h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

func (b *dashBrowser) post(path string, form url.Values) (int, string) {
	form.Set("csrf", b.csrf)
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, path,
		strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(b.cookie)
	b.d.h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

func planForm(label, price string) url.Values {
	return url.Values{"label": {label}, "price_sat_per_hour": {price},
		"min_payment_sat": {"60"}, "grace_min": {"5"},
		"max_prepay_min": {"60"}, "increment_min": {"1"}, "open": {"on"}}
}

func TestDashboardPlanFormTakesHumanUnits(t *testing.T) {
	t.Parallel()
	d := newDashHarness(t)
	admin := d.login(common.AccessAdmin)
	code, _ := admin.post("/plans", planForm("Gym", "3600"))
	require.Equal(t, http.StatusSeeOther, code)

	var plans []*store.Plan
	require.NoError(t, d.api.db.View(t.Context(), func(tx store.ReceiverTx) error {
		plans = nil
		return tx.ForEachPlan(func(p *store.Plan) error {
			plans = append(plans, p)
			return nil
		})
	}))
	require.Len(t, plans, 1)
	p := plans[0]
	require.EqualValues(t, 1000, p.Terms.RatePerSecond)
	require.EqualValues(t, 60_000, p.Terms.MinPayment)
	require.Equal(t, 5*time.Minute, p.Terms.Grace)
	require.Equal(t, time.Hour, p.Terms.MaxPrepay)
	require.Equal(t, time.Minute, p.DefaultIncrement)
	require.True(t, p.OpenEnrolment)

	_, page := admin.get("/plans")
	require.Contains(t, page, "3,600 sat/hour")
	require.Contains(t, page, `data-copy="offer-`+string(p.ID)+`"`)
	require.Contains(t, page, `src="data:image/png;base64,`)
	require.Contains(t, page, ">satoffer1")

	// Edit: the form comes back filled in sat/hour and minutes.
	_, page = admin.get("/plans/" + string(p.ID))
	require.Contains(t, page, `name="price_sat_per_hour" inputmode="decimal" value="3600"`)
	code, _ = admin.post("/plans/"+string(p.ID), planForm("Gym+", "7200"))
	require.Equal(t, http.StatusSeeOther, code)

	// A price no payment could meet is refused with the form's words.
	code, page = admin.post("/plans", planForm("Bad", "0.1"))
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, page, "price: at least 3.6 sat/hour")
	f := planForm("Bad", "3600")
	f.Set("min_payment_sat", "100000")
	code, page = admin.post("/plans", f)
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, page, "smallest payment: exceeds")
}

func TestReadOnlyDashboardNeverShowsTheCancelSecret(t *testing.T) {
	t.Parallel()
	d := newDashHarness(t)
	admin := d.login(common.AccessAdmin)
	code, _ := admin.post("/plans", planForm("Gym", "3600"))
	require.Equal(t, http.StatusSeeOther, code)
	_, plans := d.api.call(d.api.tokens.Admin, http.MethodGet, "/v1/plans", nil)
	planID := plans["plans"].([]any)[0].(map[string]any)["id"].(string)
	code, sub := d.api.call(d.api.tokens.Admin, http.MethodPost,
		"/v1/subscriptions", map[string]any{"plan_id": planID})
	require.Equal(t, http.StatusCreated, code)
	secret := sub["secret"].(string)
	require.Len(t, secret, 32)

	ro := d.login(common.AccessReadOnly)
	var pub string
	require.NoError(t, d.api.db.View(t.Context(), func(tx store.ReceiverTx) error {
		return tx.ForEachSubscription(0, store.Page{},
			func(s *store.ReceiverSubscription) error {
				pub = dashboard.PublicID(s)
				return nil
			})
	}))
	for _, path := range []string{"/", "/subscriptions",
		"/subscriptions/" + pub, "/plans"} {

		code, page := ro.get(path)
		require.Equal(t, http.StatusOK, code, path)
		require.NotContains(t, page, secret, path)
		require.NotContains(t, page, "<form method=\"post\" action=\"/plans", path)
	}
	_, page := ro.get("/subscriptions")
	require.Contains(t, page, pub)
	code, _ = ro.post("/plans", planForm("Sneaky", "3600"))
	require.Equal(t, http.StatusForbidden, code)

	// The admin sees the personal offer (it holds the secret).
	_, page = admin.get("/subscriptions/" + pub)
	require.Contains(t, page, `data-copy="offer-sub"`)
	_, page = ro.get("/subscriptions/" + pub)
	require.NotContains(t, page, `data-copy="offer-sub"`)
}

func TestDashboardSubscriptionsSearchAndPage(t *testing.T) {
	t.Parallel()
	d := newDashHarness(t)
	admin := d.login(common.AccessAdmin)
	code, _ := admin.post("/plans", planForm("Gym", "3600"))
	require.Equal(t, http.StatusSeeOther, code)
	_, plans := d.api.call(d.api.tokens.Admin, http.MethodGet, "/v1/plans", nil)
	planID := plans["plans"].([]any)[0].(map[string]any)["id"].(string)
	for range 60 {
		code, _ := d.api.call(d.api.tokens.Admin, http.MethodPost,
			"/v1/subscriptions", map[string]any{"plan_id": planID})
		require.Equal(t, http.StatusCreated, code)
	}
	_, page := admin.get("/subscriptions")
	require.Contains(t, page, "60 subscription(s), page 1 of 2")
	require.Equal(t, 50, strings.Count(page, "<tr data-sub="))
	_, page = admin.get("/subscriptions?page=2")
	require.Equal(t, 10, strings.Count(page, "<tr data-sub="))

	m := regexp.MustCompile(`data-sub="(sub_[0-9a-f]+)"`).FindStringSubmatch(page)
	require.NotNil(t, m)
	_, page = admin.get("/subscriptions?q=" + m[1][:12])
	require.Contains(t, page, m[1])
	_, page = admin.get("/subscriptions?q=gym&state=pending")
	require.Contains(t, page, "60 subscription(s)")
	_, page = admin.get("/subscriptions?state=active")
	require.Contains(t, page, "0 subscription(s)")

	code, page = admin.get("/")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, page, `data-state-count="pending">60<`)
	require.Contains(t, page, "lnd connected")
}
