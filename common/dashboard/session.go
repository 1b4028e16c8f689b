package dashboard

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/satstream/satstream/common"
)

// Defaults of a Kit's lifetimes.
const (
	// DefaultSessionTTL is how long a login lasts.
	DefaultSessionTTL = 12 * time.Hour

	// DefaultLinkTTL is how long a one-time login link can be used.
	DefaultLinkTTL = 10 * time.Minute

	// maxSessions and maxLinks bound what the kit keeps in memory;
	// the oldest entry is dropped beyond them.
	maxSessions = 1000
	maxLinks    = 100

	// csrfField is the form field (and csrfHeader the header) that
	// carries a session's CSRF token.
	csrfField  = "csrf"
	csrfHeader = "X-CSRF-Token"
)

// ErrLinkAccess is returned when a login link is asked for no access.
var ErrLinkAccess = errors.New("a login link needs admin or read-only access")

// Session is one logged-in browser.
type Session struct {
	// Access is what the token used to log in allows.
	Access common.Access

	// CSRF is the token every state-changing form of this session
	// carries; a request without it is refused.
	CSRF string

	// Expires is when the session ends.
	Expires time.Time
}

// Admin reports whether the session may change things.
func (s *Session) Admin() bool { return s != nil && s.Access == common.AccessAdmin }

type ctxKey struct{}

// SessionFrom returns the session of a request the kit let through.
func SessionFrom(ctx context.Context) *Session {
	s, _ := ctx.Value(ctxKey{}).(*Session)
	return s
}

// sessions keeps the live sessions and one-time links, keyed by the
// SHA-256 of their secret (a map lookup then leaks nothing useful about
// the secret through timing).
type sessions struct {
	mu       sync.Mutex
	sessions map[[32]byte]*Session
	links    map[[32]byte]*Session
}

func newSessions() *sessions {
	return &sessions{sessions: map[[32]byte]*Session{},
		links: map[[32]byte]*Session{}}
}

func secretKey(secret string) [32]byte { return sha256.Sum256([]byte(secret)) }

// randomSecret is 32 random bytes in hex.
func randomSecret() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

// put stores s under a fresh secret in m, dropping expired entries and,
// beyond max, the one that expires first.
func put(m map[[32]byte]*Session, s *Session, now time.Time,
	max int) (string, error) {

	secret, err := randomSecret()
	if err != nil {
		return "", err
	}
	for k, v := range m {
		if !now.Before(v.Expires) {
			delete(m, k)
		}
	}
	for len(m) >= max {
		var oldest [32]byte
		var first *Session
		for k, v := range m {
			if first == nil || v.Expires.Before(first.Expires) {
				oldest, first = k, v
			}
		}
		delete(m, oldest)
	}
	m[secretKey(secret)] = s
	return secret, nil
}

// Kit serves login, logout, the assets and the events stream, and guards
// a dashboard's own pages with sessions and CSRF tokens.
type Kit struct {
	cfg      Config
	sessions *sessions
	done     chan struct{}
	stopOnce sync.Once
	layout   *layout
}

// Config describes one daemon's dashboard.
type Config struct {
	// Name is shown in the page header ("Provider dashboard").
	Name string

	// Cookie names the session cookie; each daemon needs its own, as
	// browsers share cookies between ports of one host.
	Cookie string

	// Tokens are the daemon's API tokens, which log a browser in.
	Tokens common.Tokens

	// Nav lists the dashboard's pages for the header.
	Nav []NavLink

	// Events is the notifier whose changes are streamed to the pages
	// (nil: no live updates).
	Events *Notifier

	// SessionTTL and LinkTTL default to DefaultSessionTTL and
	// DefaultLinkTTL.
	SessionTTL time.Duration
	LinkTTL    time.Duration

	// Now is the clock (time.Now if nil).
	Now func() time.Time
}

// NavLink is one entry of the header's navigation.
type NavLink struct {
	Path  string
	Label string
}

// New makes a kit.
func New(cfg Config) *Kit {
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = DefaultSessionTTL
	}
	if cfg.LinkTTL <= 0 {
		cfg.LinkTTL = DefaultLinkTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Cookie == "" {
		cfg.Cookie = "satstream"
	}
	return &Kit{cfg: cfg, sessions: newSessions(),
		done: make(chan struct{}), layout: mustLayout()}
}

// Stop ends the open event streams, so the daemon's server can shut down
// without waiting for the browsers to hang up.
func (k *Kit) Stop() {
	if k == nil {
		return
	}
	k.stopOnce.Do(func() { close(k.done) })
}

// cookieName is the session cookie's name. The __Host- prefix makes the
// browser refuse it unless it is Secure, for path / and without a domain.
func (k *Kit) cookieName() string { return "__Host-" + k.cfg.Cookie }

// LoginLink makes a one-time login link (a path with its query) for
// access, valid for the kit's LinkTTL and usable once.
func (k *Kit) LoginLink(access common.Access) (string, time.Time, error) {
	if access != common.AccessAdmin && access != common.AccessReadOnly {
		return "", time.Time{}, ErrLinkAccess
	}
	now := k.cfg.Now()
	s := &Session{Access: access, Expires: now.Add(k.cfg.LinkTTL)}
	k.sessions.mu.Lock()
	code, err := put(k.sessions.links, s, now, maxLinks)
	k.sessions.mu.Unlock()
	if err != nil {
		return "", time.Time{}, err
	}
	return "/login/link?code=" + url.QueryEscape(code), s.Expires, nil
}

// startSession opens a session for access and sets its cookie.
func (k *Kit) startSession(w http.ResponseWriter, access common.Access) error {
	now := k.cfg.Now()
	csrf, err := randomSecret()
	if err != nil {
		return err
	}
	s := &Session{Access: access, CSRF: csrf,
		Expires: now.Add(k.cfg.SessionTTL)}
	k.sessions.mu.Lock()
	id, err := put(k.sessions.sessions, s, now, maxSessions)
	k.sessions.mu.Unlock()
	if err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{
		Name:     k.cookieName(),
		Value:    id,
		Path:     "/",
		Expires:  s.Expires,
		MaxAge:   int(k.cfg.SessionTTL / time.Second),
		HttpOnly: true,
		Secure:   true,
		SameSite: http.SameSiteStrictMode,
	})
	return nil
}

// session returns the request's live session, or nil.
func (k *Kit) session(r *http.Request) *Session {
	c, err := r.Cookie(k.cookieName())
	if err != nil {
		return nil
	}
	key := secretKey(c.Value)
	k.sessions.mu.Lock()
	defer k.sessions.mu.Unlock()
	s := k.sessions.sessions[key]
	if s == nil {
		return nil
	}
	if !k.cfg.Now().Before(s.Expires) {
		delete(k.sessions.sessions, key)
		return nil
	}
	return s
}

// consumeLink returns the access of a one-time link and forgets it, or
// AccessNone if the code is unknown, used or expired.
func (k *Kit) consumeLink(code string) common.Access {
	if code == "" {
		return common.AccessNone
	}
	key := secretKey(code)
	k.sessions.mu.Lock()
	defer k.sessions.mu.Unlock()
	s := k.sessions.links[key]
	delete(k.sessions.links, key)
	if s == nil || !k.cfg.Now().Before(s.Expires) {
		return common.AccessNone
	}
	return s.Access
}

// endSession forgets the request's session and clears its cookie.
func (k *Kit) endSession(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(k.cookieName()); err == nil {
		k.sessions.mu.Lock()
		delete(k.sessions.sessions, secretKey(c.Value))
		k.sessions.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: k.cookieName(), Value: "",
		Path: "/", MaxAge: -1, HttpOnly: true, Secure: true,
		SameSite: http.SameSiteStrictMode})
}

// tokenAccess is what a pasted token allows, compared in constant time
// like the API's bearer tokens.
func (k *Kit) tokenAccess(tok string) common.Access {
	tok = strings.TrimSpace(tok)
	if tok == "" {
		return common.AccessNone
	}
	if subtle.ConstantTimeCompare([]byte(tok),
		[]byte(k.cfg.Tokens.Admin)) == 1 {

		return common.AccessAdmin
	}
	if subtle.ConstantTimeCompare([]byte(tok),
		[]byte(k.cfg.Tokens.ReadOnly)) == 1 {

		return common.AccessReadOnly
	}
	return common.AccessNone
}

// checkCSRF reports whether a state-changing request carries its
// session's CSRF token (form field or header).
func checkCSRF(r *http.Request, s *Session) bool {
	got := r.Header.Get(csrfHeader)
	if got == "" {
		got = r.PostFormValue(csrfField)
	}
	return got != "" && subtle.ConstantTimeCompare([]byte(got),
		[]byte(s.CSRF)) == 1
}

// sameOrigin refuses a request whose Origin header (sent by browsers on
// every POST) names another site: a second line of defence after the
// SameSite cookie and the CSRF token.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}
