package sender

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/btcsuite/btclog/v2"
	"github.com/satstream/satstream/common"
	"github.com/satstream/satstream/receiver/core"
	"github.com/satstream/satstream/store"
	"github.com/satstream/satstream/tlv"
	"github.com/stretchr/testify/require"
)

// TestSenderShowedOnlyTheSecret reproduces issue 11 item 4 on the payer's
// side: the sender named a subscription only by its secret id, so payer and
// provider could not name it to each other without revealing it, and its
// read-only token saw the secret and the offer holding it. The sender now
// shows the receiver's public id for the same subscription; only the admin
// token sees the secret and the offer; the read-only token may not name a
// subscription by its secret.
func TestSenderShowedOnlyTheSecret(t *testing.T) {
	h := newHarness(t, nil)
	h.run()
	tokens := common.Tokens{Admin: "adm", ReadOnly: "ro"}
	api := &apiServer{engine: h.eng, log: btclog.Disabled,
		health: func() map[string]any { return map[string]any{} },
		tokens: tokens}
	srv := httptest.NewServer(tokens.Middleware(api.routes()))
	defer srv.Close()
	call := func(method, path, token, body string) (int, string) {
		req, err := http.NewRequest(method, srv.URL+path,
			strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(b)
	}

	offer := testOffer(t, 1000, time.Hour, false)
	o, err := tlv.ParseOffer(offer)
	require.NoError(t, err)
	secret := store.SubID(*o.SubscriptionID)
	// The receiver's view of the same subscription.
	receiverID := core.NewSubscriptionView(&store.ReceiverSubscription{
		ID: secret}, time.Now()).ID

	code, body := call("POST", "/v1/subscriptions", "adm",
		`{"offer":"`+offer+`","increment":"1m","buffer":"0s"}`)
	require.Equal(t, http.StatusCreated, code, body)
	var v View
	require.NoError(t, json.Unmarshal([]byte(body), &v))
	require.Equal(t, receiverID, v.ID)
	require.Equal(t, secret.Hex(), v.Secret)
	require.Equal(t, o.String(), v.Offer)

	forbidden := []string{secret.Hex(), strings.ToUpper(secret.Hex()),
		base64.StdEncoding.EncodeToString(secret[:]),
		base64.RawURLEncoding.EncodeToString(secret[:]), offer, o.String()}
	for _, p := range []string{"/v1/subscriptions",
		"/v1/subscriptions?state=active", "/v1/subscriptions/" + v.ID,
		"/v1/subscriptions/" + v.ID + "/payments", "/v1/health"} {
		code, body := call("GET", p, "ro", "")
		require.Equal(t, 200, code, p)
		for _, s := range forbidden {
			require.NotContains(t, body, s, p)
		}
	}
	code, body = call("GET", "/v1/subscriptions/"+v.ID, "ro", "")
	require.Equal(t, 200, code)
	require.Contains(t, body, receiverID)

	// The read-only token can't name it by its secret, nor act on it.
	code, _ = call("GET", "/v1/subscriptions/"+secret.Hex(), "ro", "")
	require.Equal(t, 403, code)
	code, _ = call("POST", "/v1/subscriptions/"+v.ID+"/pause", "ro", "")
	require.Equal(t, 403, code)
	// The admin can, by either.
	code, body = call("POST", "/v1/subscriptions/"+v.ID+"/pause", "adm", "")
	require.Equal(t, 200, code, body)
	code, body = call("POST", "/v1/subscriptions/"+secret.Hex()+"/resume", "adm", "")
	require.Equal(t, 200, code, body)
	require.Contains(t, body, secret.Hex())
	code, _ = call("GET", "/v1/subscriptions/sub_000102030405060708090a0b0c0d0e0f", "adm", "")
	require.Equal(t, 404, code)
}
