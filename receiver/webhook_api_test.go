package receiver

import (
	"context"
	"testing"

	"github.com/satstream/satstream/store"
	"github.com/stretchr/testify/require"
)

// TestRetryEventEndpoint: POST /v1/webhooks/events/{evt_id}/retry makes a
// dead letter due again and shows each endpoint's state.
func TestRetryEventEndpoint(t *testing.T) {
	t.Parallel()
	a := newAPIHarness(t)
	ev := &store.Event{SubID: store.SubID{1}, Type: store.EventPaymentReceived,
		Payload: []byte(`{}`), CreatedAt: a.now}
	require.NoError(t, a.db.Update(context.Background(),
		func(tx store.ReceiverTx) error {
			// Given up at its only endpoint: out of the pending
			// queue, its dead row kept.
			ev.Delivered = true
			if err := tx.AppendEvent(ev); err != nil {
				return err
			}
			return tx.PutDelivery(&store.Delivery{
				Endpoint: store.NewEndpointID("https://h.example/x"),
				Event:    ev.ID, State: store.DeliveryDead, Attempts: 9,
				LastError: "status 503"})
		}))
	path := "/v1/webhooks/events/" + ev.UID.String() + "/retry"

	code, body := a.call(a.tokens.Admin, "POST", path, nil)
	require.Equal(t, 409, code, body, "no endpoints configured")

	a.api.webhookURLs = []string{"https://h.example/x"}
	code, body = a.call(a.tokens.Admin, "GET", "/v1/events", nil)
	require.Equal(t, 200, code)
	view := body["events"].([]any)[0].(map[string]any)
	dl := view["deliveries"].([]any)
	require.Equal(t, "dead", dl[0].(map[string]any)["state"])
	require.Equal(t, false, view["delivered"],
		"a dead letter out of the pending queue is not delivered")

	// The dispatcher is told, or the event would wait below its
	// endpoints' cursors until the next start.
	var rewound []store.EventID
	a.api.webhookRetried = func(id store.EventID) {
		rewound = append(rewound, id)
	}
	code, body = a.call(a.tokens.Admin, "POST", path, nil)
	require.Equal(t, 200, code, body)
	require.Equal(t, []store.EventID{ev.ID}, rewound)
	dl = body["deliveries"].([]any)
	require.Equal(t, "pending", dl[0].(map[string]any)["state"])
	require.EqualValues(t, 9, dl[0].(map[string]any)["attempts"])

	code, _ = a.call(a.tokens.Admin, "POST",
		"/v1/webhooks/events/evt_00000000000000000000000000000000/retry", nil)
	require.Equal(t, 404, code)
	code, _ = a.call(a.tokens.Admin, "POST", "/v1/webhooks/events/7/retry", nil)
	require.Equal(t, 400, code)
	code, _ = a.call(a.tokens.ReadOnly, "POST", path, nil)
	require.Equal(t, 403, code)
}
