package dashboard

import (
	"context"
	"embed"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/satstream/satstream/common"
)

//go:embed assets
var assets embed.FS

// maxFormBytes bounds a posted form.
const maxFormBytes = 64 << 10

// eventsPath is where the pages' event stream is served.
const eventsPath = "/events"

// Handler guards app (the dashboard's own pages) and serves the kit's
// routes: /login, /login/link, /logout, /static/ and /events. A request
// without a session is sent to the login page; a request that changes
// something (any method but GET and HEAD) needs an admin session, its
// CSRF token and, if the browser says where it comes from, this origin.
func (k *Kit) Handler(app http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; "+
			"img-src 'self' data:; object-src 'none'; "+
			"base-uri 'none'; frame-ancestors 'none'; "+
			"form-action 'self'")
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		// same-origin, not no-referrer: with no-referrer browsers send
		// "Origin: null" on form posts, which sameOrigin refuses.
		h.Set("Referrer-Policy", "same-origin")

		switch {
		case strings.HasPrefix(r.URL.Path, "/static/"):
			serveAsset(w, r)
			return
		case r.URL.Path == "/login" || r.URL.Path == "/login/link":
			h.Set("Cache-Control", "no-store")
			k.login(w, r)
			return
		}
		h.Set("Cache-Control", "no-store")
		s := k.session(r)
		write := r.Method != http.MethodGet && r.Method != http.MethodHead
		if write {
			// Forms are small; so is what a page may post.
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		}
		switch {
		case s == nil && write:
			http.Error(w, "not logged in", http.StatusUnauthorized)
			return
		case s == nil:
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		case write && !sameOrigin(r):
			http.Error(w, "cross-origin request refused",
				http.StatusForbidden)
			return
		case write && !checkCSRF(r, s):
			http.Error(w, "missing or wrong CSRF token; reload "+
				"the page", http.StatusForbidden)
			return
		case r.URL.Path == "/logout" && r.Method == http.MethodPost:
			k.endSession(w, r)
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		case write && !s.Admin():
			http.Error(w, "read-only session: log in with the "+
				"admin token to change anything",
				http.StatusForbidden)
			return
		case r.URL.Path == eventsPath && k.cfg.Events != nil:
			k.events(w, r)
			return
		}
		app.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(),
			ctxKey{}, s)))
	})
}

// assetTypes are the content types of the embedded assets.
var assetTypes = map[string]string{
	".css": "text/css; charset=utf-8",
	".js":  "text/javascript; charset=utf-8",
}

// serveAsset writes one embedded asset whole. It is not http.FileServer:
// two small files need no directory listing, Range requests or
// modification-time logic (and so none of their parsing bugs).
func serveAsset(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/static/")
	ctype, ok := assetTypes[path.Ext(name)]
	if !ok || strings.Contains(name, "/") ||
		(r.Method != http.MethodGet && r.Method != http.MethodHead) {

		http.NotFound(w, r)
		return
	}
	data, err := assets.ReadFile("assets/" + name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, _ = w.Write(data)
}

// login serves the login form, its POST and the one-time links.
func (k *Kit) login(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/login/link" && r.Method == http.MethodGet:
		access := k.consumeLink(r.URL.Query().Get("code"))
		if access == common.AccessNone {
			k.loginPage(w, http.StatusUnauthorized, "This login "+
				"link is unknown, used or expired: make a new "+
				"one or paste a token.")
			return
		}
		if err := k.startSession(w, access); err != nil {
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		// A page, not a redirect: the browser replaces the link in
		// its history, and the cookie set on a navigation that came
		// from another application (a terminal, a chat) is sent on
		// the next, same-site, navigation.
		k.render(w, http.StatusOK, "loggedin", pageData{Title: "Logged in"})
	case r.URL.Path == "/login" && r.Method == http.MethodGet:
		if k.session(r) != nil {
			http.Redirect(w, r, "/", http.StatusSeeOther)
			return
		}
		k.loginPage(w, http.StatusOK, "")
	case r.URL.Path == "/login" && r.Method == http.MethodPost:
		if !sameOrigin(r) {
			http.Error(w, "cross-origin request refused",
				http.StatusForbidden)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 4096)
		access := k.tokenAccess(r.PostFormValue("token"))
		if access == common.AccessNone {
			k.loginPage(w, http.StatusUnauthorized, "That is neither "+
				"the admin nor the read-only token.")
			return
		}
		if err := k.startSession(w, access); err != nil {
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		http.Redirect(w, r, "/", http.StatusSeeOther)
	default:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

func (k *Kit) loginPage(w http.ResponseWriter, status int, msg string) {
	k.render(w, status, "login", pageData{Title: "Log in", Error: msg})
}

// heartbeat keeps an idle event stream (and proxies on the way) open.
const heartbeat = 15 * time.Second

// minEventGap spaces the change events of one stream: a busy daemon
// changes many times a second, a page needs to re-read only so often.
const minEventGap = 500 * time.Millisecond

// events streams "change" events to a page while it is open.
func (k *Kit) events(w http.ResponseWriter, r *http.Request) {
	ch, unsubscribe := k.cfg.Events.Subscribe()
	defer unsubscribe()
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	send := func(msg string) bool {
		// The listener's write timeout would cut a long stream.
		_ = rc.SetWriteDeadline(time.Now().Add(time.Minute))
		if _, err := w.Write([]byte(msg)); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !send("retry: 2000\n\n") {
		return
	}
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-k.done:
			return
		case <-tick.C:
			if !send(": ping\n\n") {
				return
			}
		case <-ch:
			if !send("event: change\ndata: {}\n\n") {
				return
			}
			gap := time.NewTimer(minEventGap)
			select {
			case <-gap.C:
			case <-r.Context().Done():
				gap.Stop()
				return
			case <-k.done:
				gap.Stop()
				return
			}
		}
	}
}

// LinkHandler answers POST /v1/dashboard/login-link for the CLI: a fresh
// one-time login link, admin unless ?read_only=true. Mount it behind the
// API's token middleware; it needs the admin token itself.
func (k *Kit) LinkHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			common.WriteError(w, http.StatusMethodNotAllowed,
				"method_not_allowed", "", "use POST")
			return
		}
		if k.cfg.Tokens.Check(r) != common.AccessAdmin {
			common.WriteError(w, http.StatusForbidden, "forbidden", "",
				"a login link needs the admin token")
			return
		}
		access := common.AccessAdmin
		if r.URL.Query().Get("read_only") == "true" {
			access = common.AccessReadOnly
		}
		path, exp, err := k.LoginLink(access)
		if err != nil {
			common.WriteError(w, http.StatusInternalServerError,
				"internal", "", "could not make a link")
			return
		}
		common.WriteJSON(w, http.StatusCreated, map[string]any{
			"url":        "https://" + r.Host + path,
			"path":       path,
			"expires_at": exp.UTC(),
			"read_only":  access == common.AccessReadOnly,
		})
	})
}

// Mount sends /v1/ to the REST API and everything else to the dashboard.
func Mount(api, dash http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v1/") || r.URL.Path == "/v1" {
			api.ServeHTTP(w, r)
			return
		}
		dash.ServeHTTP(w, r)
	})
}

// Notify tells the open pages that something changed (nil-safe, never
// blocks).
func (k *Kit) Notify() {
	if k != nil {
		k.cfg.Events.Notify()
	}
}
