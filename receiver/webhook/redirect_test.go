package webhook_test

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btclog/v2"
	"github.com/satstream/satstream/common"
	rt "github.com/satstream/satstream/receiver/receivertest"
	"github.com/satstream/satstream/receiver/webhook"
	"github.com/satstream/satstream/store"
	"github.com/stretchr/testify/require"
)

// syncBuffer is a log sink the dispatcher's goroutine and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// firstAttempt runs a dispatcher for url until the one event is either
// delivered or has a failed attempt recorded, and returns the event as
// stored then (nil if it was delivered) and the log.
func firstAttempt(t *testing.T, url string) (*store.Event, string) {
	t.Helper()
	db := rt.OpenStore(t).Receiver()
	ctx := context.Background()
	require.NoError(t, db.Update(ctx, func(tx store.ReceiverTx) error {
		return tx.AppendEvent(&store.Event{SubID: store.SubID{7},
			Type: store.EventPaymentReceived, Payload: []byte(`{}`),
			CreatedAt: time.Now()})
	}))
	logs := &syncBuffer{}
	d := webhook.New(webhook.Config{
		Store: db, URLs: []string{url},
		Secret:         bytes.Repeat([]byte("k"), 32),
		Client:         &http.Client{Timeout: 5 * time.Second},
		Log:            btclog.NewSLogger(btclog.NewDefaultHandler(logs)),
		InitialBackoff: time.Hour, MaxBackoff: time.Hour,
	})
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = d.Run(runCtx); close(done) }()
	defer func() { cancel(); <-done }()

	var ev *store.Event
	require.Eventually(t, func() bool {
		ev = nil
		_ = db.View(ctx, func(tx store.ReceiverTx) error {
			return tx.ForEachPendingEvent(0, func(e *store.Event) error {
				ev = e
				return nil
			})
		})
		return ev == nil || ev.Attempts > 0
	}, 20*time.Second, 5*time.Millisecond)
	return ev, logs.String()
}

// TestRedirectIsNotADelivery reproduces the lost event: the endpoint
// answers the POST with a redirect, Go's client followed it as a GET, the
// GET's 200 marked the event delivered and the provider never got it. Now
// every 3xx is a failed attempt and the event stays in the outbox.
func TestRedirectIsNotADelivery(t *testing.T) {
	t.Parallel()
	for _, status := range []int{http.StatusMovedPermanently,
		http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {

		t.Run(http.StatusText(status), func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			var posts int
			srv := httptest.NewServer(http.HandlerFunc(
				func(w http.ResponseWriter, r *http.Request) {
					if r.URL.Path == "/old" {
						http.Redirect(w, r,
							"/new?token=LEAKED", status)
						return
					}
					mu.Lock()
					defer mu.Unlock()
					if r.Method == http.MethodPost {
						posts++
					}
					w.WriteHeader(http.StatusOK)
				}))
			defer srv.Close()

			ev, logs := firstAttempt(t, srv.URL+"/old")
			require.NotNil(t, ev, "event marked delivered after a "+
				"%d redirect", status)
			require.Equal(t, uint32(1), ev.Attempts)
			require.Contains(t, ev.LastError, "redirect not followed")
			require.Contains(t, ev.LastError,
				"status "+strconv.Itoa(status))
			require.NotContains(t, ev.LastError, "LEAKED")
			require.NotContains(t, logs, "LEAKED")
			mu.Lock()
			require.Zero(t, posts, "redirect was followed")
			mu.Unlock()
		})
	}
}

// TestURLSecretsRedacted: credentials in a webhook URL's user information
// or query (where many endpoints keep their token) never reach last_error
// or the log, whether the endpoint answers with an error or can't be
// reached at all (Go's *url.Error repeats the full URL).
func TestURLSecretsRedacted(t *testing.T) {
	t.Parallel()
	failing := httptest.NewServer(http.HandlerFunc(
		func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusInternalServerError)
		}))
	t.Cleanup(failing.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closedAddr := ln.Addr().String()
	require.NoError(t, ln.Close())

	tests := []struct {
		name, url, wantErr string
	}{
		{"error status", "http://alice:PASSWORD@" +
			strings.TrimPrefix(failing.URL, "http://") +
			"/hook?token=QUERYTOKEN", "status 500"},
		{"unreachable", "http://alice:PASSWORD@" + closedAddr +
			"/hook?token=QUERYTOKEN", "connection refused"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ev, logs := firstAttempt(t, tc.url)
			require.NotNil(t, ev)
			require.Contains(t, ev.LastError, tc.wantErr)
			require.Contains(t, ev.LastError,
				"//REDACTED@")
			require.Contains(t, ev.LastError, "/hook?REDACTED")
			for _, secret := range []string{"PASSWORD", "QUERYTOKEN",
				"alice"} {
				require.NotContains(t, ev.LastError, secret)
				require.NotContains(t, logs, secret)
			}
		})
	}
}

func TestRedactURL(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"https://h.example/hook", "https://h.example/hook"},
		{"https://u:p@h.example/hook", "https://REDACTED@h.example/hook"},
		{"https://h.example/hook?k=v#frag", "https://h.example/hook?REDACTED"},
		{"https://u@h.example:8443/?", "https://REDACTED@h.example:8443/?REDACTED"},
		// Tokens in the path (Slack, Discord): the first segment stays.
		{"https://hooks.slack.com/services/T0001/B0002/abcdefghijklmnopqrstuvwx",
			"https://hooks.slack.com/services/REDACTED"},
		{"https://discord.com/api/webhooks/1234567890/tok-en_value",
			"https://discord.com/api/REDACTED"},
		{"https://h.example/hook/", "https://h.example/hook/"},
		{"https://h.example", "https://h.example"},
		{"", `""`},
		{"http://[::1", "(unparsable URL)"},
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, webhook.RedactURL(tc.in), tc.in)
	}
}

// TestSecretFileChecked: the webhook secret file gets the token files'
// rules. A file others can read, an empty one or a short one is refused
// naming the file and the fix, and left as it was.
func TestSecretFileChecked(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		content string
		mode    os.FileMode
		wantIs  error
		wantErr string
	}{
		{"readable by group", strings.Repeat("s", 40), 0o640,
			common.ErrSecretFile, "chmod 600"},
		{"readable by all", strings.Repeat("s", 40), 0o644,
			common.ErrSecretFile, "-rw-r--r--"},
		{"empty", "\n", 0o600, webhook.ErrWeakSecret, "is empty"},
		{"short", "whsec_short\n", 0o600, webhook.ErrWeakSecret,
			"holds 11 bytes, at least 32"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), webhook.SecretFile)
			require.NoError(t, os.WriteFile(path, []byte(tc.content),
				tc.mode))
			require.NoError(t, os.Chmod(path, tc.mode))
			_, err := webhook.LoadOrCreateSecret(path)
			require.ErrorIs(t, err, tc.wantIs)
			require.ErrorContains(t, err, path)
			require.ErrorContains(t, err, tc.wantErr)
			after, err := os.ReadFile(path)
			require.NoError(t, err)
			require.Equal(t, tc.content, string(after))
		})
	}

	// First start: generated, 0600, and read back the same.
	path := filepath.Join(t.TempDir(), webhook.SecretFile)
	first, err := webhook.LoadOrCreateSecret(path)
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(first), webhook.MinSecretLength)
	info, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	again, err := webhook.LoadOrCreateSecret(path)
	require.NoError(t, err)
	require.Equal(t, first, again)
}
