package dashboard

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/satstream/satstream/common"
	"github.com/stretchr/testify/require"
)

var testTokens = common.Tokens{
	Admin:    strings.Repeat("a", 64),
	ReadOnly: strings.Repeat("b", 64),
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// newTestKit returns a kit over an app that answers 200 "app <access>"
// to every request it is handed.
func newTestKit(t *testing.T) (*Kit, http.Handler, *fakeClock) {
	t.Helper()
	clock := &fakeClock{now: time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)}
	k := New(Config{Name: "Test", Cookie: "test", Tokens: testTokens,
		Now: clock.Now, Events: NewNotifier()})
	t.Cleanup(k.Stop)
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := SessionFrom(r.Context())
		require.NotNil(t, s)
		_, _ = w.Write([]byte("app " + map[bool]string{true: "admin",
			false: "readonly"}[s.Admin()]))
	})
	return k, k.Handler(app), clock
}

func do(h http.Handler, method, target string, form url.Values,
	cookies ...*http.Cookie) *httptest.ResponseRecorder {

	var req *http.Request
	if form != nil {
		req = httptest.NewRequest(method, target,
			strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		req = httptest.NewRequest(method, target, nil)
	}
	for _, c := range cookies {
		req.AddCookie(c)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// login logs in with a token and returns the session cookie and the
// session's CSRF token.
func login(t *testing.T, k *Kit, h http.Handler, token string) (*http.Cookie,
	string) {

	t.Helper()
	rec := do(h, http.MethodPost, "/login", url.Values{"token": {token}})
	require.Equal(t, http.StatusSeeOther, rec.Code, rec.Body.String())
	cookies := rec.Result().Cookies()
	require.Len(t, cookies, 1)
	s := k.session(withCookie(cookies[0]))
	require.NotNil(t, s)
	return cookies[0], s.CSRF
}

func withCookie(c *http.Cookie) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.AddCookie(c)
	return r
}

func TestNoSessionIsSentToTheLoginPage(t *testing.T) {
	t.Parallel()
	_, h, _ := newTestKit(t)
	for _, path := range []string{"/", "/subscriptions", "/events"} {
		rec := do(h, http.MethodGet, path, nil)
		require.Equal(t, http.StatusSeeOther, rec.Code, path)
		require.Equal(t, "/login", rec.Header().Get("Location"))
	}
	rec := do(h, http.MethodPost, "/subscriptions/x/pause", url.Values{})
	require.Equal(t, http.StatusUnauthorized, rec.Code)

	rec = do(h, http.MethodGet, "/login", nil)
	require.Equal(t, http.StatusOK, rec.Code)
	require.Contains(t, rec.Body.String(), `name="token"`)
}

func TestLoginSetsAStrictHttpOnlySecureExpiringCookie(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, token, want string
	}{
		{"admin", testTokens.Admin, "app admin"},
		{"read-only", testTokens.ReadOnly, "app readonly"},
		{"token pasted with a newline", testTokens.Admin + "\n", "app admin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			k, h, _ := newTestKit(t)
			rec := do(h, http.MethodPost, "/login",
				url.Values{"token": {tc.token}})
			require.Equal(t, http.StatusSeeOther, rec.Code)
			// The token never ends up in a URL.
			require.Equal(t, "/", rec.Header().Get("Location"))
			c := rec.Result().Cookies()[0]
			require.Equal(t, "__Host-test", c.Name)
			require.True(t, c.HttpOnly)
			require.True(t, c.Secure)
			require.Equal(t, http.SameSiteStrictMode, c.SameSite)
			require.Equal(t, "/", c.Path)
			require.Equal(t, int(DefaultSessionTTL/time.Second), c.MaxAge)
			require.NotContains(t, c.Value, tc.token[:64])

			rec = do(h, http.MethodGet, "/", nil, c)
			require.Equal(t, tc.want, rec.Body.String())
			_ = k
		})
	}
}

func TestWrongTokenDoesNotLogIn(t *testing.T) {
	t.Parallel()
	_, h, _ := newTestKit(t)
	for _, tok := range []string{"", "x", testTokens.Admin[:63],
		testTokens.Admin + "a"} {

		rec := do(h, http.MethodPost, "/login", url.Values{"token": {tok}})
		require.Equal(t, http.StatusUnauthorized, rec.Code, tok)
		require.Empty(t, rec.Result().Cookies())
	}
}

func TestSessionExpires(t *testing.T) {
	t.Parallel()
	k, h, clock := newTestKit(t)
	c, _ := login(t, k, h, testTokens.Admin)
	clock.Add(DefaultSessionTTL - time.Second)
	require.Equal(t, http.StatusOK, do(h, http.MethodGet, "/", nil, c).Code)
	clock.Add(time.Second)
	rec := do(h, http.MethodGet, "/", nil, c)
	require.Equal(t, http.StatusSeeOther, rec.Code)
	require.Equal(t, "/login", rec.Header().Get("Location"))
}

func TestLoginLinkWorksOnceAndReplacesItselfInHistory(t *testing.T) {
	t.Parallel()
	k, h, _ := newTestKit(t)
	link, _, err := k.LoginLink(common.AccessReadOnly)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(link, "/login/link?code="))

	rec := do(h, http.MethodGet, link, nil)
	require.Equal(t, http.StatusOK, rec.Code)
	require.Contains(t, rec.Body.String(), `data-redirect="/"`)
	cookies := rec.Result().Cookies()
	require.Len(t, cookies, 1)
	require.Equal(t, "app readonly",
		do(h, http.MethodGet, "/", nil, cookies[0]).Body.String())

	// Used once: a second visit (history, a shared screen) fails.
	rec = do(h, http.MethodGet, link, nil)
	require.Equal(t, http.StatusUnauthorized, rec.Code)
	require.Empty(t, rec.Result().Cookies())
}

func TestLoginLinkExpires(t *testing.T) {
	t.Parallel()
	k, h, clock := newTestKit(t)
	link, exp, err := k.LoginLink(common.AccessAdmin)
	require.NoError(t, err)
	require.Equal(t, clock.Now().Add(DefaultLinkTTL), exp)
	clock.Add(DefaultLinkTTL)
	rec := do(h, http.MethodGet, link, nil)
	require.Equal(t, http.StatusUnauthorized, rec.Code)
	require.Empty(t, rec.Result().Cookies())

	_, _, err = k.LoginLink(common.AccessNone)
	require.ErrorIs(t, err, ErrLinkAccess)
}

func TestPostWithoutTheSessionsCSRFTokenIsRefused(t *testing.T) {
	t.Parallel()
	k, h, _ := newTestKit(t)
	c, csrf := login(t, k, h, testTokens.Admin)
	c2, csrf2 := login(t, k, h, testTokens.Admin)
	require.NotEqual(t, csrf, csrf2)
	_ = c2

	for _, tc := range []struct {
		name string
		form url.Values
		want int
	}{
		{"no token", url.Values{}, http.StatusForbidden},
		{"wrong token", url.Values{"csrf": {"nope"}}, http.StatusForbidden},
		{"another session's token", url.Values{"csrf": {csrf2}},
			http.StatusForbidden},
		{"right token", url.Values{"csrf": {csrf}}, http.StatusOK},
	} {
		rec := do(h, http.MethodPost, "/x/pause", tc.form, c)
		require.Equal(t, tc.want, rec.Code, tc.name)
	}
}

func TestReadOnlySessionPostIsForbidden(t *testing.T) {
	t.Parallel()
	k, h, _ := newTestKit(t)
	c, csrf := login(t, k, h, testTokens.ReadOnly)
	rec := do(h, http.MethodPost, "/x/pause", url.Values{"csrf": {csrf}}, c)
	require.Equal(t, http.StatusForbidden, rec.Code)
	require.Contains(t, rec.Body.String(), "read-only")

	// It may still log out.
	rec = do(h, http.MethodPost, "/logout", url.Values{"csrf": {csrf}}, c)
	require.Equal(t, http.StatusSeeOther, rec.Code)
	require.Equal(t, http.StatusSeeOther, do(h, http.MethodGet, "/", nil, c).Code)
}

func TestCrossOriginPostIsRefused(t *testing.T) {
	t.Parallel()
	k, h, _ := newTestKit(t)
	c, csrf := login(t, k, h, testTokens.Admin)
	req := httptest.NewRequest(http.MethodPost, "/x/pause",
		strings.NewReader(url.Values{"csrf": {csrf}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	req.AddCookie(c)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	require.Equal(t, http.StatusForbidden, rec.Code)
}

func TestLinkHandlerNeedsTheAdminToken(t *testing.T) {
	t.Parallel()
	k, h, _ := newTestKit(t)
	lh := k.LinkHandler()
	for _, tc := range []struct {
		token string
		want  int
	}{
		{"", http.StatusForbidden},
		{testTokens.ReadOnly, http.StatusForbidden},
		{testTokens.Admin, http.StatusCreated},
	} {
		req := httptest.NewRequest(http.MethodPost,
			"/v1/dashboard/login-link?read_only=true", nil)
		req.Host = "127.0.0.1:8443"
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		rec := httptest.NewRecorder()
		lh.ServeHTTP(rec, req)
		require.Equal(t, tc.want, rec.Code)
		if tc.want == http.StatusCreated {
			require.Contains(t, rec.Body.String(),
				`"url": "https://127.0.0.1:8443/login/link?code=`)
			require.Contains(t, rec.Body.String(), `"read_only": true`)
		}
	}
	_ = h
}

func TestNotifyNeverBlocksOnASlowPage(t *testing.T) {
	t.Parallel()
	n := NewNotifier()
	ch, unsub := n.Subscribe()
	// Nobody reads ch: a thousand changes must still not block.
	done := make(chan struct{})
	go func() {
		for range 1000 {
			n.Notify()
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Notify blocked")
	}
	<-ch
	select {
	case <-ch:
		t.Fatal("changes were not coalesced")
	default:
	}
	unsub()
	unsub()
	require.Zero(t, n.Subscribers())
	var nilN *Notifier
	nilN.Notify()
}

func TestEventsStreamAChangeAndEndOnStop(t *testing.T) {
	t.Parallel()
	k, h, _ := newTestKit(t)
	c, _ := login(t, k, h, testTokens.ReadOnly)
	srv := httptest.NewTLSServer(h)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		srv.URL+"/events", nil)
	require.NoError(t, err)
	req.AddCookie(c)
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "retry: 2000\n", line)

	// The stream is subscribed once its first line arrived.
	require.Eventually(t, func() bool {
		return k.cfg.Events.Subscribers() == 1
	}, 10*time.Second, 10*time.Millisecond)
	k.cfg.Events.Notify()
	for {
		line, err = br.ReadString('\n')
		require.NoError(t, err)
		if line == "event: change\n" {
			break
		}
	}
	k.Stop()
	for err == nil {
		_, err = br.ReadString('\n')
	}
	require.Eventually(t, func() bool {
		return k.cfg.Events.Subscribers() == 0
	}, 10*time.Second, 10*time.Millisecond)
}

func TestStaticAssetsNeedNoSession(t *testing.T) {
	t.Parallel()
	_, h, _ := newTestKit(t)
	for _, p := range []string{"/static/app.js", "/static/style.css"} {
		rec := do(h, http.MethodGet, p, nil)
		require.Equal(t, http.StatusOK, rec.Code, p)
		require.NotEmpty(t, rec.Body.Bytes())
	}
	for _, p := range []string{"/static/", "/static/x.js",
		"/static/../dashboard.go", "/static/assets/app.js"} {

		require.Equal(t, http.StatusNotFound,
			do(h, http.MethodGet, p, nil).Code, p)
	}
	rec := do(h, http.MethodGet, "/login", nil)
	require.Contains(t, rec.Header().Get("Content-Security-Policy"),
		"default-src 'self'")
}

func TestMountSendsV1ToTheAPI(t *testing.T) {
	t.Parallel()
	api := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("api"))
	})
	dash := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("dash"))
	})
	m := Mount(api, dash)
	for path, want := range map[string]string{
		"/v1/health": "api", "/v1": "api", "/": "dash",
		"/v1x": "dash", "/login": "dash",
	} {
		require.Equal(t, want, do(m, http.MethodGet, path, nil).Body.String(),
			path)
	}
}
