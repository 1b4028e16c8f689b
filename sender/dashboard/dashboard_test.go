package dashboard

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/lightningnetwork/lnd/routing/route"
	"github.com/satstream/satstream/common"
	kit "github.com/satstream/satstream/common/dashboard"
	"github.com/satstream/satstream/tlv"
	"github.com/stretchr/testify/require"
)

var tokens = common.Tokens{Admin: strings.Repeat("a", 64),
	ReadOnly: strings.Repeat("b", 64)}

const subHex = "sub_00112233445566778899aabbccddeeff"

// fakeBackend records what the dashboard asked for.
type fakeBackend struct {
	mu    sync.Mutex
	subs  []Sub
	ops   []string
	added []AddRequest
}

func (f *fakeBackend) Subscriptions(context.Context) ([]Sub, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Sub(nil), f.subs...), nil
}

func (f *fakeBackend) SpendPerDay(_ context.Context, days int) ([]DaySpend, error) {
	out := make([]DaySpend, days)
	for i := range out {
		out[i] = DaySpend{Day: time.Date(2026, 11, 16+i, 0, 0, 0, 0,
			time.UTC), Msat: uint64(i) * 1000}
	}
	return out, nil
}

func (f *fakeBackend) Apply(_ context.Context, id, op string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ops = append(f.ops, op+" "+id)
	return nil
}

func (f *fakeBackend) Add(_ context.Context, req AddRequest) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.added = append(f.added, req)
	return nil
}

func (f *fakeBackend) Presets() []Preset {
	return []Preset{{Name: "bike", Increment: time.Minute,
		Buffer: 15 * time.Minute}}
}

func (f *fakeBackend) Health() Health {
	return Health{Lnd: "connected to alice", Connected: true}
}

func newTest(t *testing.T) (http.Handler, *fakeBackend) {
	t.Helper()
	b := &fakeBackend{subs: []Sub{{
		ID: subHex, Label: "Bike rental", State: "active",
		PaidUntil:       time.Now().Add(10 * time.Minute),
		PriceMsatPerSec: 1000, Increment: time.Minute,
		Buffer: 15 * time.Minute, SentMsat: 60_000, FeesMsat: 1_000,
		TodayMsat: 61_000, MaxPerDay: 1_000_000,
	}}}
	k := kit.New(kit.Config{Name: "Payer dashboard", Cookie: "t",
		Tokens: tokens, Nav: Nav, Events: kit.NewNotifier()})
	t.Cleanup(k.Stop)
	d, err := New(k, b)
	require.NoError(t, err)
	return k.Handler(d.Handler()), b
}

type browser struct {
	t      *testing.T
	h      http.Handler
	cookie *http.Cookie
	csrf   string
}

func logIn(t *testing.T, h http.Handler, token string) *browser {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/login",
		strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	h.ServeHTTP(rec, req)
	require.Equal(t, http.StatusSeeOther, rec.Code)
	b := &browser{t: t, h: h, cookie: rec.Result().Cookies()[0]}
	page := b.get("/")
	i := strings.Index(page, `name="csrf" value="`)
	require.Positive(t, i)
	rest := page[i+len(`name="csrf" value="`):]
	b.csrf = rest[:strings.IndexByte(rest, '"')]
	return b
}

func (b *browser) get(path string) string {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.AddCookie(b.cookie)
	b.h.ServeHTTP(rec, req)
	require.Equal(b.t, http.StatusOK, rec.Code, rec.Body.String())
	return rec.Body.String()
}

func (b *browser) post(path string, form url.Values) *httptest.ResponseRecorder {
	form.Set("csrf", b.csrf)
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, path,
		strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(b.cookie)
	b.h.ServeHTTP(rec, req)
	return rec
}

func TestPayerPageShowsCountdownRateCapsAndButtons(t *testing.T) {
	t.Parallel()
	h, _ := newTest(t)
	page := logIn(t, h, tokens.Admin).get("/")
	for _, want := range []string{"Bike rental", "3,600 sat/hour",
		`data-until="`, "61 sat", "of 1,000 sat", `data-action="pause"`,
		`data-action="cancel"`, "connected to alice", "<svg"} {
		require.Contains(t, page, want)
	}
	// Actions name the subscription by its public id.
	require.Contains(t, page, "/subscriptions/"+subHex+"/pause")
}

func TestReadOnlyPayerPageHasNoButtons(t *testing.T) {
	t.Parallel()
	h, b := newTest(t)
	br := logIn(t, h, tokens.ReadOnly)
	page := br.get("/")
	require.Contains(t, page, "Bike rental")
	require.NotContains(t, page, "data-action")
	require.NotContains(t, page, "/subscriptions/"+subHex)
	rec := br.post("/subscriptions/"+subHex+"/pause", url.Values{})
	require.Equal(t, http.StatusForbidden, rec.Code)
	require.Empty(t, b.ops)
}

func TestCancelAsksFirstAndSaysWhatHappensToPrepaidTime(t *testing.T) {
	t.Parallel()
	h, b := newTest(t)
	br := logIn(t, h, tokens.Admin)
	page := br.get("/subscriptions/" + subHex + "/cancel")
	require.Contains(t, page, "not refunded")
	require.Contains(t, page, "the provider serves it until")
	require.Empty(t, b.ops)

	rec := br.post("/subscriptions/"+subHex+"/cancel", url.Values{})
	require.Equal(t, http.StatusSeeOther, rec.Code)
	require.Equal(t, []string{"cancel " + subHex}, b.ops)

	rec = br.post("/subscriptions/ffff/pause", url.Values{})
	require.Equal(t, http.StatusNotFound, rec.Code)
}

func TestPastedOfferIsShownInPlainWordsBeforeSubscribing(t *testing.T) {
	t.Parallel()
	h, b := newTest(t)
	key, err := btcec.NewPrivateKey()
	require.NoError(t, err)
	plan, err := tlv.NewPlanID()
	require.NoError(t, err)
	offer := (&tlv.Offer{Node: route.NewVertex(key.PubKey()),
		PlanID: &plan, PriceMsatPerSec: 1000, MinPayment: 60_000,
		DefaultIncrement: time.Minute, GracePeriod: 5 * time.Minute,
		MaxPrepay: time.Hour, Label: "Gym"}).String()

	br := logIn(t, h, tokens.Admin)
	rec := br.post("/add", url.Values{"offer": {offer},
		"step": {"preview"}})
	require.Equal(t, http.StatusOK, rec.Code)
	page := rec.Body.String()
	for _, want := range []string{"Gym", "3,600 sat per hour",
		"86,400 sat per day", "60 sat", "5 min", "at most 1 h ahead",
		`id="confirm-add"`} {
		require.Contains(t, page, want)
	}
	require.Empty(t, b.added)

	rec = br.post("/add", url.Values{"offer": {offer}, "step": {"confirm"},
		"preset": {"bike"}, "buffer": {"20m"}})
	require.Equal(t, http.StatusSeeOther, rec.Code, rec.Body.String())
	require.Equal(t, []AddRequest{{Offer: offer, Preset: "bike",
		Buffer: 20 * time.Minute}}, b.added)

	rec = br.post("/add", url.Values{"offer": {"satstream1nope"},
		"step": {"confirm"}})
	require.Equal(t, http.StatusBadRequest, rec.Code)
	require.Contains(t, rec.Body.String(), "not a valid offer")
	require.Len(t, b.added, 1)
}

// TestPayerPageHidesWhichNodeIsPaid reproduces a payer who cannot tell
// that payments go to another node of the provider after a failover: a
// subscription to a multi-node offer shows the node it pays and says when
// that is not the primary; a single-node one shows nothing extra.
func TestPayerPageHidesWhichNodeIsPaid(t *testing.T) {
	t.Parallel()
	h, b := newTest(t)
	primary := strings.Repeat("02", 1) + strings.Repeat("aa", 32)
	other := strings.Repeat("03", 1) + strings.Repeat("bb", 32)
	b.mu.Lock()
	b.subs[0].Node, b.subs[0].PayingNode, b.subs[0].Nodes = primary,
		other, 2
	b.subs = append(b.subs, Sub{ID: "sub_ff", Label: "Single",
		State: "active", Node: primary, PayingNode: primary, Nodes: 1})
	b.mu.Unlock()

	page := logIn(t, h, tokens.ReadOnly).get("/")
	require.Contains(t, page, other)
	require.Contains(t, page, "failed over: the primary is unreachable")
	require.Equal(t, 1, strings.Count(page, `data-role="paying-node"`))
}

// TestPastedMultiNodeOfferListsEveryNode: the preview of an offer with
// several nodes lists them all, so the payer sees whom they may pay.
func TestPastedMultiNodeOfferListsEveryNode(t *testing.T) {
	t.Parallel()
	h, _ := newTest(t)
	var nodes []route.Vertex
	for i := 0; i < 3; i++ {
		key, err := btcec.NewPrivateKey()
		require.NoError(t, err)
		nodes = append(nodes, route.NewVertex(key.PubKey()))
	}
	plan, err := tlv.NewPlanID()
	require.NoError(t, err)
	offer := (&tlv.Offer{Node: nodes[0], ExtraNodes: nodes[1:],
		PlanID: &plan, PriceMsatPerSec: 1000, MinPayment: 60_000,
		DefaultIncrement: time.Minute, GracePeriod: 5 * time.Minute,
		MaxPrepay: time.Hour, Label: "Gym"}).String()

	rec := logIn(t, h, tokens.Admin).post("/add", url.Values{
		"offer": {offer}, "step": {"preview"}})
	require.Equal(t, http.StatusOK, rec.Code)
	for _, n := range nodes {
		require.Contains(t, rec.Body.String(), n.String())
	}
}
