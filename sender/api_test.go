package sender

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/btcsuite/btclog/v2"
	"github.com/satstream/satstream/common"
	"github.com/stretchr/testify/require"
)

func TestAPI(t *testing.T) {
	h := newHarness(t, nil)
	h.run()
	tokens := common.Tokens{Admin: "adm", ReadOnly: "ro"}
	api := &apiServer{engine: h.eng, log: btclog.Disabled,
		health: func() map[string]any { return map[string]any{"status": "ok"} },
		tokens: tokens}
	srv := httptest.NewServer(tokens.Middleware(api.routes()))
	defer srv.Close()

	call := func(method, path, token, body string) (int, map[string]any) {
		req, err := http.NewRequest(method, srv.URL+path,
			strings.NewReader(body))
		require.NoError(t, err)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		out := map[string]any{}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
		return resp.StatusCode, out
	}
	errCode := func(m map[string]any) string {
		return m["error"].(map[string]any)["code"].(string)
	}

	offer := testOffer(t, 1000, time.Hour, false)
	code, body := call("POST", "/v1/subscriptions", "adm",
		`{"offer":"`+offer+`","increment":"1m","buffer":"0s","max_total_msat":200000}`)
	require.Equal(t, http.StatusCreated, code, body)
	id := body["id"].(string)
	require.Equal(t, "1m0s", body["terms"].(map[string]any)["increment"])

	tests := []struct {
		name, method, path, token, body string
		status                          int
		code                            string
	}{
		{"health needs a token", "GET", "/v1/health", "", "", 401, "unauthenticated"},
		{"health with read-only token", "GET", "/v1/health", "ro", "", 200, ""},
		{"no token", "GET", "/v1/subscriptions", "", "", 401, "unauthenticated"},
		{"read-only can read", "GET", "/v1/subscriptions/" + id, "ro", "", 200, ""},
		{"read-only can't pause", "POST", "/v1/subscriptions/" + id + "/pause", "ro", "", 403, "read_only"},
		{"bad offer", "POST", "/v1/subscriptions", "adm", `{"offer":"satoffer1xx"}`, 400, "bad_offer"},
		{"missing offer", "POST", "/v1/subscriptions", "adm", `{}`, 400, "bad_request"},
		{"unknown field", "POST", "/v1/subscriptions", "adm", `{"offer":"x","tip":1}`, 400, "bad_request"},
		{"bad duration", "POST", "/v1/subscriptions", "adm", `{"offer":"` + offer + `","increment":"soon"}`, 400, "bad_request"},
		{"duplicate", "POST", "/v1/subscriptions", "adm", `{"offer":"` + offer + `"}`, 409, "exists"},
		{"bad id", "GET", "/v1/subscriptions/zz", "adm", "", 400, "bad_request"},
		{"unknown id", "GET", "/v1/subscriptions/000102030405060708090a0b0c0d0e0f", "adm", "", 404, "not_found"},
		{"bad state filter", "GET", "/v1/subscriptions?state=happy", "adm", "", 400, "bad_request"},
		{"bad terms", "PATCH", "/v1/subscriptions/" + id, "adm", `{"buffer":"5h"}`, 400, "bad_terms"},
		{"change terms", "PATCH", "/v1/subscriptions/" + id, "adm", `{"max_total_msat":300000}`, 200, ""},
		{"pause", "POST", "/v1/subscriptions/" + id + "/pause", "adm", "", 200, ""},
		{"payments", "GET", "/v1/subscriptions/" + id + "/payments?limit=10", "ro", "", 200, ""},
		{"bad limit", "GET", "/v1/subscriptions/" + id + "/payments?limit=0", "ro", "", 400, "bad_request"},
		{"cancel quietly", "POST", "/v1/subscriptions/" + id + "/cancel", "adm", `{"notify_receiver":false}`, 200, ""},
		{"resume cancelled", "POST", "/v1/subscriptions/" + id + "/resume", "adm", "", 409, "bad_state"},
		{"no such endpoint", "GET", "/v2/x", "adm", "", 404, "not_found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := call(tc.method, tc.path, tc.token, tc.body)
			require.Equal(t, tc.status, code, body)
			if tc.code != "" {
				require.Equal(t, tc.code, errCode(body), body)
			}
		})
	}
	_, body = call("GET", "/v1/subscriptions/"+id+"/payments", "ro", "")
	require.EqualValues(t, 1, body["succeeded"])
	require.EqualValues(t, 60000, body["sent_msat"])
	require.Len(t, body["spend_per_day"], 1)
}
