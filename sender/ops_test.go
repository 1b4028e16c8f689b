package sender

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/satstream/satstream/common"
	"github.com/satstream/satstream/store"
	"github.com/stretchr/testify/require"
)

// TestSenderHealthAlwaysSaidOk: the sender's /v1/health said "ok" with lnd
// unreachable and with a failed ledger, and there was no open endpoint for
// load balancers. /healthz (no token) answers 503 in both cases, 200 when
// connected, and /v1/health's status follows.
func TestSenderHealthAlwaysSaidOk(t *testing.T) {
	c := DefaultConfig()
	c.DataDir = t.TempDir()
	c.API.Listen = "127.0.0.1:0"
	c.Metrics.Listen = "127.0.0.1:0"
	c.Network = "regtest"
	lndAway(t, c)
	require.NoError(t, c.Validate())
	d, err := New(c, common.NewLogManager(io.Discard))
	require.NoError(t, err)
	var broken atomic.Bool
	d.storeOpts = func(o *store.Options) {
		o.FaultHook = func(p store.FaultPoint) error {
			if p == store.FaultSync && broken.Load() {
				return errors.New("disk on fire")
			}
			return nil
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, d.Start(ctx))
	defer d.Stop()

	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
	}}
	healthz := func() int {
		resp, err := client.Get("https://" + d.APIAddr() +
			common.HealthzPath)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusServiceUnavailable, healthz())
	require.Equal(t, "degraded", d.health()["status"])

	// Connected: /healthz and the gauge follow the same source.
	d.lnd.Set(true)
	require.Equal(t, http.StatusOK, healthz())
	require.Equal(t, "ok", d.health()["status"])

	// The scrape has the runtime, the build and the lnd gauge.
	resp, err := http.Get("http://" + d.MetricsAddr() + "/metrics")
	require.NoError(t, err)
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	for _, want := range []string{"go_goroutines ",
		"process_cpu_seconds_total ",
		`satstream_build_info{daemon="sender",`,
		`satstream_lnd_connected{daemon="sender"} 1`} {
		require.Contains(t, string(b), want)
	}

	broken.Store(true)
	err = d.db.Sender().Update(ctx, func(tx store.SenderTx) error {
		return tx.PutSubscription(&store.SenderSubscription{
			ID: store.SubID{1}, State: store.SenderActive})
	})
	require.ErrorIs(t, err, store.ErrFailed)
	require.Equal(t, http.StatusServiceUnavailable, healthz())
	require.Equal(t, "failing", d.health()["status"])
}
