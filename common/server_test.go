package common

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/satstream/satstream/store"
	"github.com/stretchr/testify/require"
)

// testServer serves handler over TLS with short limits and returns it
// with a client TLS config that trusts it.
func testServer(t *testing.T, handler http.Handler,
	limits ServerLimits) *Server {

	t.Helper()
	dir := t.TempDir()
	conf, err := LoadOrCreateTLS(filepath.Join(dir, "tls.cert"),
		filepath.Join(dir, "tls.key"), nil)
	require.NoError(t, err)
	srv, err := Listen("test API", "127.0.0.1:0", handler, conf, limits)
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(),
			5*time.Second)
		defer cancel()
		require.NoError(t, srv.Shutdown(ctx))
		require.NoError(t, <-served)
	})
	return srv
}

// jsonHandler reads the whole body strictly, as the API handlers do.
func jsonHandler(w http.ResponseWriter, r *http.Request) {
	var v map[string]any
	if err := DecodeJSON(r, &v); err != nil {
		WriteError(w, http.StatusBadRequest, "bad_request", "",
			err.Error())
		return
	}
	WriteJSON(w, http.StatusOK, v)
}

// waitClosed reads from conn until the server closes it, failing the test
// if that has not happened by guard (a bound far above the read timeout,
// so a slow machine can't make it flaky).
func waitClosed(t *testing.T, conn net.Conn, guard time.Duration) {
	t.Helper()
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(guard)))
	_, err := io.Copy(io.Discard, conn)
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		t.Fatalf("server still holds the connection after %v", guard)
	}
}

// TestSlowBodyIsDroppedAfterReadTimeout reproduces a slowloris client: it
// completes the TLS handshake and the headers, sends half the body it
// announced and then nothing. Before the server kit, only a header timeout
// was set, so such a client held its connection (and a goroutine) forever.
func TestSlowBodyIsDroppedAfterReadTimeout(t *testing.T) {
	t.Parallel()
	// Long enough for a TLS handshake on a loaded machine under -race
	// (the server bounds the handshake by the same timeouts).
	limits := DefaultServerLimits()
	limits.ReadHeaderTimeout = 2 * time.Second
	limits.ReadTimeout = 2 * time.Second
	srv := testServer(t, http.HandlerFunc(jsonHandler), limits)

	conn, err := tls.Dial("tcp", srv.Addr(),
		&tls.Config{InsecureSkipVerify: true})
	require.NoError(t, err)
	defer conn.Close()
	body := `{"label":"half`
	_, err = fmt.Fprintf(conn, "POST /v1/plans HTTP/1.1\r\nHost: x\r\n"+
		"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		len(body)+100, body)
	require.NoError(t, err)

	waitClosed(t, conn, 30*time.Second)
}

// TestSlowHeadersAreDropped: a client that never finishes its headers is
// dropped too.
func TestSlowHeadersAreDropped(t *testing.T) {
	t.Parallel()
	limits := DefaultServerLimits()
	limits.ReadHeaderTimeout = 2 * time.Second
	limits.ReadTimeout = 2 * time.Second
	srv := testServer(t, http.HandlerFunc(jsonHandler), limits)

	conn, err := tls.Dial("tcp", srv.Addr(),
		&tls.Config{InsecureSkipVerify: true})
	require.NoError(t, err)
	defer conn.Close()
	_, err = fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
	require.NoError(t, err)

	waitClosed(t, conn, 30*time.Second)
}

// TestConnectionCapHoldsExtraClients: with the cap reached, a further
// client is not served until a slot frees up, and is served then.
func TestConnectionCapHoldsExtraClients(t *testing.T) {
	t.Parallel()
	limits := DefaultServerLimits()
	limits.MaxConns = 1
	srv := testServer(t, http.HandlerFunc(jsonHandler), limits)

	// The first client takes the only slot (a finished handshake
	// proves the server accepted it).
	first, err := tls.Dial("tcp", srv.Addr(),
		&tls.Config{InsecureSkipVerify: true})
	require.NoError(t, err)

	// The second connects (the kernel queues it) but its handshake
	// can't complete while the first holds the slot.
	raw, err := net.Dial("tcp", srv.Addr())
	require.NoError(t, err)
	defer raw.Close()
	second := tls.Client(raw, &tls.Config{InsecureSkipVerify: true})
	handshake := make(chan error, 1)
	go func() { handshake <- second.Handshake() }()
	select {
	case err := <-handshake:
		t.Fatalf("second client served past the cap of 1 (err %v)", err)
	case <-time.After(200 * time.Millisecond):
	}

	// Freeing the slot lets it in.
	require.NoError(t, first.Close())
	select {
	case err := <-handshake:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("second client never served after the slot freed")
	}
}

// TestServerLimitsRefuseZero: a zero timeout would switch the protection
// off, so it is refused by name.
func TestServerLimitsRefuseZero(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		change  func(*ServerLimits)
		wantErr string
	}{
		{"read", func(l *ServerLimits) { l.ReadTimeout = 0 },
			"readtimeout must be positive, got 0s"},
		{"write", func(l *ServerLimits) { l.WriteTimeout = -1 },
			"writetimeout must be positive, got -1ns"},
		{"idle", func(l *ServerLimits) { l.IdleTimeout = 0 },
			"idletimeout must be positive"},
		{"conns", func(l *ServerLimits) { l.MaxConns = 0 },
			"maxconns must be at least 1, got 0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := DefaultServerLimits()
			tc.change(&l)
			_, err := Listen("x", "127.0.0.1:0", http.NotFoundHandler(),
				nil, l)
			require.ErrorIs(t, err, ErrServerLimits)
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}

// TestAPIConfigLimits: api.* options override the defaults and negative
// values are refused naming the option.
func TestAPIConfigLimits(t *testing.T) {
	t.Parallel()
	c := APIConfig{Listen: "127.0.0.1:0", ReadTimeout: 5 * time.Second,
		MaxConns: 7}
	require.NoError(t, c.Resolve(t.TempDir()))
	l := c.Limits()
	require.Equal(t, 5*time.Second, l.ReadTimeout)
	require.Equal(t, 5*time.Second, l.ReadHeaderTimeout)
	require.Equal(t, DefaultWriteTimeout, l.WriteTimeout)
	require.Equal(t, 7, l.MaxConns)

	c = APIConfig{Listen: "127.0.0.1:0", IdleTimeout: -time.Second}
	require.ErrorContains(t, c.Resolve(t.TempDir()),
		"--api.idletimeout=-1s")
	c = APIConfig{Listen: "127.0.0.1:0", MaxConns: -3}
	require.ErrorContains(t, c.Resolve(t.TempDir()), "--api.maxconns=-3")
}

// TestDiskFullAnsweredAsInternalError: a write the ledger refused for a
// full disk was answered 500 internal (a bug, with an error id), though it
// passes once space returns; it is 503 disk_full with Retry-After.
func TestDiskFullAnsweredAsInternalError(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		err    error
		status int
		code   string
	}{
		{"disk full", fmt.Errorf("put: %w", store.ErrDiskFull), 503,
			"disk_full"},
		{"other", errors.New("boom"), 500, "internal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			WriteInternalError(rec, discardErrors{}, tc.err)
			require.Equal(t, tc.status, rec.Code)
			var body struct {
				Error APIError `json:"error"`
			}
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
			require.Equal(t, tc.code, body.Error.Code)
			if tc.status == 503 {
				require.Equal(t, DiskFullRetryAfter,
					rec.Header().Get("Retry-After"))
				require.Empty(t, body.Error.ID)
			} else {
				require.Empty(t, rec.Header().Get("Retry-After"))
			}
		})
	}
}

type discardErrors struct{}

func (discardErrors) Errorf(string, ...any) {}
