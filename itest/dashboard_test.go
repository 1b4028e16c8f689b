//go:build itest

package itest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/satstream/satstream/common"
	"github.com/satstream/satstream/itest/stack"
	"github.com/stretchr/testify/require"
)

// dashSite is one daemon's dashboard as the browser tests see it.
type dashSite struct {
	base   string
	tokens common.Tokens
	client *http.Client
}

func newDashSite(t *testing.T, addr, dataDir string) *dashSite {
	t.Helper()
	tokens, err := common.LoadOrCreateTokens(dataDir)
	require.NoError(t, err)
	pem, err := os.ReadFile(filepath.Join(dataDir, "tls.cert"))
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(pem))
	return &dashSite{base: "https://" + addr, tokens: tokens,
		client: &http.Client{Timeout: 30 * time.Second,
			Transport: &http.Transport{TLSClientConfig: &tls.Config{
				RootCAs: pool}}}}
}

// loginLink asks the daemon's API for a one-time login link, as
// `satstream <daemon> dashboard` does.
func (s *dashSite) loginLink(t *testing.T) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost,
		s.base+"/v1/dashboard/login-link", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+s.tokens.Admin)
	resp, err := s.client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	var out struct {
		URL string `json:"url"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	return out.URL
}

// browser starts a headless chromium with its own profile (cookies).
func browser(t *testing.T, ctx context.Context) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium is needed for the dashboard tests: " +
			"apt-get install chromium (itest/run.sh does)")
	}
	// A chromium that dies at start (it happens on a loaded machine:
	// crashpad reports, no DevTools line) is started again, twice at most.
	var err2 error
	for try := 1; try <= 3; try++ {
		actx, cancelA := chromedp.NewExecAllocator(ctx,
			chromedp.ExecPath(path), chromedp.Headless,
			chromedp.NoSandbox, chromedp.DisableGPU,
			chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
			chromedp.IgnoreCertErrors,
			chromedp.Flag("disable-dev-shm-usage", true),
			chromedp.WSURLReadTimeout(60*time.Second),
			chromedp.UserDataDir(t.TempDir()),
			chromedp.WindowSize(1280, 900))
		bctx, cancelB := chromedp.NewContext(actx)
		err2 = chromedp.Do(bctx, chromedp.EmulateViewport(1280, 900))
		if err2 == nil {
			t.Cleanup(func() {
				cancelB()
				cancelA()
			})
			return bctx
		}
		cancelB()
		cancelA()
		t.Logf("chromium start %d of 3 failed: %v", try, err2)
	}
	require.NoError(t, err2)
	return nil
}

// do runs browser steps and fails the test on error.
func do(t *testing.T, b context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	require.NoError(t, chromedp.Do(b, steps...))
}

// js evaluates expr in the page.
func js[T any](t *testing.T, b context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(b, chromedp.Evaluate[T](expr))
	require.NoError(t, err, expr)
	return v
}

// waitJS polls a boolean expression in the page until it holds.
func waitJS(t *testing.T, b context.Context, timeout time.Duration,
	expr, what string) {

	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, err := chromedp.Run(b, chromedp.Evaluate[bool](
			"(() => { try { return !!("+expr+"); } catch (e) { "+
				"return false; } })()"))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			html, _ := chromedp.Run(b, chromedp.Evaluate[string](
				"document.body ? document.body.innerText : ''"))
			t.Fatalf("%s: not seen within %v (last error %v); "+
				"page:\n%s", what, timeout, err, html)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// submit clicks a button that submits a form and waits for the next page.
func submit(t *testing.T, b context.Context, sel string) {
	t.Helper()
	_, err := chromedp.RunResponse(b, chromedp.Click(chromedp.CSS(sel)))
	require.NoError(t, err, "click %s", sel)
}

// pasteToken logs in on the login page with a token.
func pasteToken(t *testing.T, b context.Context, site *dashSite, token string) {
	t.Helper()
	do(t, b, chromedp.Navigate(site.base+"/"))
	waitJS(t, b, 30*time.Second, `location.pathname === "/login"`,
		"no session is sent to the login page")
	do(t, b, chromedp.SendKeys(chromedp.ID("token"), token))
	submit(t, b, "#login button")
	waitJS(t, b, 30*time.Second, `location.pathname === "/" && `+
		`document.querySelector("header .who")`, "logged in")
}

// forgedPost sends a POST with the page's own CSRF token from the page,
// as a read-only user with the developer tools could, and returns the
// status.
func forgedPost(t *testing.T, b context.Context, path, body string) int {
	t.Helper()
	status, err := chromedp.Run(b, chromedp.Evaluate[int](fmt.Sprintf(`(async () => {
		const csrf = document.querySelector('input[name=csrf]').value;
		const r = await fetch(%q, {method: "POST", headers: {
			"Content-Type": "application/x-www-form-urlencoded"},
			body: "csrf=" + csrf + "&" + %q});
		return r.status; })()`, path, body), chromedp.EvalAwaitPromise))
	require.NoError(t, err)
	return status
}

// screenshot saves the page; into docs/img when SATSTREAM_SCREENSHOTS is
// set (the README's pictures), else into the test's directory.
func screenshot(t *testing.T, b context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(b, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	dir := t.TempDir()
	if os.Getenv("SATSTREAM_SCREENSHOTS") != "" {
		dir = filepath.Join("..", "docs", "img")
		require.NoError(t, os.MkdirAll(dir, 0o755))
	}
	path := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(path, png, 0o644))
	t.Logf("screenshot %s", path)
}

// TestDashboardsInABrowser drives both dashboards in headless chromium
// against a real receiver and sender on the regtest network: logins (token
// and one-time link), a plan created in the provider's dashboard and its
// offer subscribed to from the payer's, countdowns that rise as payments
// land without a reload, pause and resume followed by the provider's
// dashboard, and read-only sessions without buttons whose forged POSTs
// are refused.
func TestDashboardsInABrowser(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()

	_, nodes := holdLine(t, ctx)
	alice, carol := nodes[0], nodes[2]
	dir := t.TempDir()
	logs, err := os.Create(filepath.Join(dir, "daemons.log"))
	require.NoError(t, err)
	defer logs.Close()
	st, err := stack.Start(ctx, dir, carol, alice, logs)
	require.NoError(t, err)
	defer func() { require.NoError(t, st.Stop()) }()

	prov := newDashSite(t, st.Receiver.APIAddr(), st.ReceiverCfg.NetworkDir())
	payer := newDashSite(t, st.Sender.APIAddr(), st.SenderCfg.NetworkDir())
	pb := browser(t, ctx)

	// The provider logs in by pasting the admin token and creates an
	// open plan in human units: 360,000 sat/hour, 1,000 sat at least,
	// no grace, at most 1 minute ahead.
	pasteToken(t, pb, prov, prov.tokens.Admin)
	do(t, pb, chromedp.Navigate(prov.base+"/plans"))
	do(t, pb, chromedp.SendKeys(chromedp.ID("label"), "Browser Gym"))
	for id, v := range map[string]string{"price": "360000",
		"min": "1000", "grace": "0", "prepay": "1", "inc": "0.25"} {

		do(t, pb, chromedp.SetValue(chromedp.ID(id), v))
	}
	submit(t, pb, "#save-plan")
	waitJS(t, pb, 30*time.Second, `[...document.querySelectorAll(".plan h2")]`+
		`.some(h => h.textContent.includes("Browser Gym"))`, "the new plan")
	require.Contains(t, js[string](t, pb, `document.querySelector(".plan p").textContent`),
		"360,000 sat/hour")
	// Copy its offer (the button copies the text shown beside it).
	do(t, pb, chromedp.Click(chromedp.CSS(".plan button[data-copy]")))
	waitJS(t, pb, 10*time.Second, `document.querySelector(".plan button[data-copy]")`+
		`.textContent === "Copied"`, "the copy button")
	offer := js[string](t, pb, `document.querySelector(".plan code.offer").textContent.trim()`)
	require.True(t, strings.HasPrefix(offer, "satoffer1"), offer)
	require.True(t, js[bool](t, pb, `document.querySelector(".plan img.qr").naturalWidth > 0`))

	// The payer opens a one-time login link and subscribes with the
	// offer, read back in plain words first.
	bb := browser(t, ctx)
	link := payer.loginLink(t)
	do(t, bb, chromedp.Navigate(link))
	waitJS(t, bb, 30*time.Second, `location.pathname === "/" && `+
		`document.querySelector("header .who")`, "logged in by link")
	require.NotContains(t, js[string](t, bb, `location.href`), "code=")
	do(t, bb, chromedp.Navigate(payer.base+"/add"))
	do(t, bb, chromedp.SetValue(chromedp.ID("offer"), offer))
	submit(t, bb, "#preview")
	decoded := js[string](t, bb, `document.getElementById("decoded").innerText`)
	require.Contains(t, decoded, "Browser Gym")
	require.Contains(t, decoded, "360,000 sat per hour")
	require.Contains(t, decoded, "1,000 sat")
	submit(t, bb, "#confirm-add")
	card := `document.querySelector("article.sub")`
	waitJS(t, bb, 30*time.Second, card+` && `+card+`.textContent.includes("Browser Gym")`,
		"the new subscription on the payer's dashboard")

	// Payments land: the countdown rises without a reload (the page's
	// marker survives; the change events refresh the card).
	js[bool](t, bb, `window.__notReloaded = true`)
	until := func(b context.Context, sel string) string {
		return js[string](t, b, `(document.querySelector(`+
			fmt.Sprintf("%q", sel)+`) || {dataset: {}}).dataset.until || ""`)
	}
	waitJS(t, bb, 2*time.Minute, `document.querySelector("article.sub [data-until]")`,
		"paid time on the payer's dashboard")
	first := until(bb, "article.sub [data-until]")
	waitJS(t, bb, 2*time.Minute, `Date.parse(document.querySelector("article.sub [data-until]").dataset.until) > `+
		fmt.Sprintf("Date.parse(%q)", first), "the payer's countdown rising")
	require.True(t, js[bool](t, bb, `window.__notReloaded === true`))
	left := js[int](t, bb, `Number(document.querySelector("article.sub [data-until]").dataset.leftMs)`)
	require.Positive(t, left)

	// The provider finds the subscription (by plan name) and watches its
	// countdown rise too.
	do(t, pb, chromedp.Navigate(prov.base+"/subscriptions?q=browser"))
	waitJS(t, pb, 30*time.Second, `document.querySelectorAll("tr[data-sub]").length === 1`,
		"the subscription in the provider's list")
	submit(t, pb, "tr[data-sub] a")
	js[bool](t, pb, `window.__notReloaded = true`)
	badge := `document.querySelector("#sub-detail [data-role=state]").textContent.trim()`
	waitJS(t, pb, time.Minute, badge+` === "active"`, "active at the provider")
	pFirst := until(pb, "#sub-detail [data-until]")
	waitJS(t, pb, 2*time.Minute, `Date.parse(document.querySelector("#sub-detail [data-until]").dataset.until) > `+
		fmt.Sprintf("Date.parse(%q)", pFirst), "the provider's countdown rising")
	screenshot(t, bb, "dashboard-payer.png")

	// Pause from the payer's dashboard: payments stop, and the
	// provider's dashboard follows as paid time runs out.
	submit(t, bb, `article.sub button[data-action="pause"]`)
	waitJS(t, bb, 30*time.Second, card+`.dataset.state === "paused"`, "paused")
	waitJS(t, pb, 3*time.Minute, badge+` !== "active"`,
		"the provider's dashboard following the pause")
	require.True(t, js[bool](t, pb, `window.__notReloaded === true`))

	// Resume: the next payment makes it active again at the provider.
	submit(t, bb, `article.sub button[data-action="resume"]`)
	waitJS(t, bb, 30*time.Second, card+`.dataset.state !== "paused"`, "resumed")
	waitJS(t, pb, 2*time.Minute, badge+` === "active"`,
		"the provider's dashboard following the resume")
	require.True(t, js[bool](t, pb, `window.__notReloaded === true`))

	do(t, pb, chromedp.Navigate(prov.base+"/"))
	waitJS(t, pb, 30*time.Second, `document.querySelector("#credited") && `+
		`document.querySelector("#credited").textContent !== "0 sat"`,
		"income on the overview")
	screenshot(t, pb, "dashboard-provider.png")

	// Read-only sessions: no buttons, and a forged POST (with a valid
	// CSRF token) is refused.
	ro := browser(t, ctx)
	pasteToken(t, ro, prov, prov.tokens.ReadOnly)
	require.Contains(t, js[string](t, ro, `document.querySelector("header .who").textContent`),
		"read-only")
	do(t, ro, chromedp.Navigate(prov.base+"/plans"))
	require.False(t, js[bool](t, ro, `!!document.getElementById("plan-form")`))
	require.Equal(t, http.StatusForbidden, forgedPost(t, ro, "/plans",
		"label=x&price_sat_per_hour=3600&min_payment_sat=0&"+
			"grace_min=0&max_prepay_min=60&increment_min=1"))
	do(t, ro, chromedp.Navigate(prov.base+"/subscriptions"))
	secret := js[string](t, ro, `document.body.innerHTML`)
	for _, v := range st.Sender.Engine().List("") {
		require.Len(t, v.Secret, 32)
		require.NotContains(t, secret, v.Secret)
		require.Contains(t, secret, v.ID)
	}

	ro2 := browser(t, ctx)
	pasteToken(t, ro2, payer, payer.tokens.ReadOnly)
	require.Zero(t, js[int](t, ro2, `document.querySelectorAll("[data-action]").length`))
	id := st.Sender.Engine().List("")[0].ID
	require.Equal(t, http.StatusForbidden, forgedPost(t, ro2,
		"/subscriptions/"+id+"/cancel", ""))
	require.NotEqual(t, "cancelled", st.Sender.Engine().List("")[0].State)

	// A used link does not log in again.
	fresh := browser(t, ctx)
	do(t, fresh, chromedp.Navigate(link))
	waitJS(t, fresh, 30*time.Second, `document.body.innerText.includes("unknown, used or expired")`,
		"a used link refused")
}
