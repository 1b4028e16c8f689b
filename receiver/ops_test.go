package receiver

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/satstream/satstream/common"
	"github.com/satstream/satstream/store"
	"github.com/stretchr/testify/require"
)

// startWaiting starts a daemon whose lnd never answers, with a ledger that
// fails its syncs once broken is set.
func startWaiting(t *testing.T, broken *atomic.Bool) (*Daemon,
	context.Context) {

	t.Helper()
	c := validConfig(t)
	c.API.Listen = "127.0.0.1:0"
	c.Metrics.Listen = "127.0.0.1:0"
	lndConfigThatWaits(t, c)
	d, err := New(c, common.NewLogManager(io.Discard))
	require.NoError(t, err)
	d.storeOpts = func(o *store.Options) {
		o.FaultHook = func(p store.FaultPoint) error {
			if p == store.FaultSync && broken.Load() {
				return errors.New("disk on fire")
			}
			return nil
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	require.NoError(t, d.Start(ctx))
	t.Cleanup(func() { _ = d.Stop() })
	return d, ctx
}

func insecureClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
	}}
}

// healthz asks /healthz without a token and returns the status and body.
func healthz(t *testing.T, d *Daemon) (int, string) {
	t.Helper()
	resp, err := insecureClient().Get("https://" + d.APIAddr() +
		common.HealthzPath)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// TestHealthzSaysOkWhileLndIsAwayOrLedgerBroken: a load balancer or
// systemd had only the token-protected /v1/health, which said "ok" with
// the ledger broken. /healthz needs no token, gives no details, and
// answers 503 while lnd is disconnected or the ledger can't be written;
// /v1/health's status follows.
func TestHealthzSaysOkWhileLndIsAwayOrLedgerBroken(t *testing.T) {
	var broken atomic.Bool
	d, ctx := startWaiting(t, &broken)

	code, body := healthz(t, d)
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.NotContains(t, body, "lnd", "no details for anyone")
	require.Equal(t, "degraded", d.health()["status"])

	// Connected (as the lnd loop marks it): 200.
	d.lnd.Set(true)
	code, body = healthz(t, d)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "ok\n", body)
	require.Equal(t, "ok", d.health()["status"])

	// Other paths still need the token.
	resp, err := insecureClient().Get("https://" + d.APIAddr() +
		"/v1/health")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	// The ledger fails: 503, and /v1/health says so.
	broken.Store(true)
	err = d.db.Receiver().Update(ctx, func(tx store.ReceiverTx) error {
		return tx.SetSettleIndex(1)
	})
	require.ErrorIs(t, err, store.ErrFailed)
	code, _ = healthz(t, d)
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Equal(t, "failing", d.health()["status"])
	require.Equal(t, false, d.health()["ledger_writable"])
}

// TestMetricsMissRuntimeBuildAndLnd: /metrics had neither the Go and
// process collectors, nor which build runs, nor whether lnd is connected,
// and counted webhook failures apart from deliveries. A scrape now finds
// each.
func TestMetricsMissRuntimeBuildAndLnd(t *testing.T) {
	var broken atomic.Bool
	d, _ := startWaiting(t, &broken)
	d.metrics.webhookResult(false)

	resp, err := http.Get("http://" + d.MetricsAddr() + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	body := string(b)
	for _, want := range []string{
		"go_goroutines ",
		"process_cpu_seconds_total ",
		`satstream_build_info{daemon="receiver",`,
		`satstream_lnd_connected{daemon="receiver"} 0`,
		`satstream_receiver_webhook_deliveries_total{result="failed"} 1`,
		`satstream_receiver_webhook_deliveries_total{result="ok"} 0`,
	} {
		require.Contains(t, body, want)
	}
}

// TestOldLayoutDatadirRefused: data used to sit at the top of --datadir;
// now each network has <datadir>/<network>. A ledger in the old place is
// neither used nor moved (it holds money records): the daemon refuses to
// start and says what to move where.
func TestOldLayoutDatadirRefused(t *testing.T) {
	t.Parallel()
	c := validConfig(t)
	c.API.Listen = "127.0.0.1:0"
	c.Metrics.Listen = ""
	c.Network = "regtest"
	require.NoError(t, os.MkdirAll(filepath.Join(c.DataDir, "ledger"),
		0o700))
	require.NoError(t, os.WriteFile(filepath.Join(c.DataDir,
		common.AdminTokenFile), []byte("x"), 0o600))
	d, err := New(c, common.NewLogManager(io.Discard))
	require.NoError(t, err)
	err = d.Start(context.Background())
	require.ErrorIs(t, err, common.ErrOldLayout)
	msg := err.Error()
	require.NotContains(t, msg, "\n")
	require.Contains(t, msg, filepath.Join(c.DataDir, "regtest"))
	require.Contains(t, msg, "mv ledger admin.token")
	_, err = os.Stat(filepath.Join(c.DataDir, "ledger"))
	require.NoError(t, err, "the old ledger is left where it is")
	_, err = os.Stat(filepath.Join(c.DataDir, "regtest", "ledger"))
	require.True(t, os.IsNotExist(err))
}

// TestVersionAndShow: --version prints the build and --debuglevel=show
// the subsystems, both without starting anything.
func TestVersionAndShow(t *testing.T) {
	c := validConfig(t)
	for _, args := range [][]string{
		{"--datadir=" + c.DataDir, "--version"},
		{"--datadir=" + c.DataDir, "--debuglevel=show"},
	} {
		out := captureStdout(t, func() { require.NoError(t, Main(args)) })
		if strings.HasSuffix(args[1], "version") {
			require.Contains(t, out, "satstream-receiver version ")
			require.Contains(t, out, " commit ")
		} else {
			require.Contains(t, out, "INVW")
			require.Contains(t, out, "STOR")
		}
	}
}

// captureStdout runs f with os.Stdout sent to a pipe.
func captureStdout(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	require.NoError(t, err)
	old := os.Stdout
	os.Stdout = w
	done := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		done <- string(b)
	}()
	func() {
		defer func() { os.Stdout = old }()
		f()
	}()
	require.NoError(t, w.Close())
	return <-done
}
