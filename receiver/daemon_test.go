package receiver

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/satstream/satstream/common"
	"github.com/satstream/satstream/store"
	"github.com/stretchr/testify/require"
)

// TestDaemonStartStop: the daemon comes up without lnd (it connects in the
// background), binds port 0, refuses a second daemon on the same data
// directory with a clear error and stops cleanly.
func TestDaemonStartStop(t *testing.T) {
	c := validConfig(t)
	c.API.Listen = "127.0.0.1:0"
	c.MetricsListen = "127.0.0.1:0"
	c.Lnd.Host = "127.0.0.1:1"
	d, err := New(c, common.NewLogManager(io.Discard))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, d.Start(ctx))
	require.ErrorIs(t, d.Start(ctx), ErrAlreadyStarted)
	require.NotEmpty(t, d.APIAddr())
	require.NotContains(t, d.APIAddr(), ":0")
	require.NotEmpty(t, d.MetricsAddr())
	require.Equal(t, "degraded", d.health()["status"])

	c2 := *c
	d2, err := New(&c2, common.NewLogManager(io.Discard))
	require.NoError(t, err)
	require.ErrorIs(t, d2.Start(ctx), store.ErrLocked)

	require.NoError(t, d.Stop())
	require.NoError(t, d.Stop())
}
