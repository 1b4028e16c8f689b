package webhook_test

import (
	"testing"
	"time"

	"github.com/btcsuite/btclog/v2"
	rt "github.com/satstream/satstream/receiver/receivertest"
	"github.com/satstream/satstream/receiver/webhook"
	"github.com/stretchr/testify/require"
)

// TestDuplicateURLDeliveredEveryEventTwice reproduces the same URL given
// twice (config file plus command line): two queues on one endpoint's
// delivery state POSTed every event twice.
func TestDuplicateURLDeliveredEveryEventTwice(t *testing.T) {
	db := rt.OpenStore(t).Receiver()
	ep := newEndpoint(t)
	d := webhook.New(webhook.Config{Store: db,
		URLs:   []string{ep.srv.URL, ep.srv.URL},
		Secret: []byte("s"), Log: btclog.Disabled,
		InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond})
	appendEvents(t, db, 50, time.Now())
	runDispatcher(t, d)
	require.Eventually(t, func() bool {
		return len(ep.received()) >= 50
	}, 10*time.Second, 5*time.Millisecond)
	require.Never(t, func() bool {
		return len(ep.received()) > 50
	}, 500*time.Millisecond, 10*time.Millisecond)
}
