package sender

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/btcsuite/btclog/v2"
	"github.com/satstream/satstream/common"
	"github.com/satstream/satstream/common/idem"
	"github.com/stretchr/testify/require"
)

// TestRetriedPersonalOfferAddAfterLostAnswerIs409: the add of a personal
// offer (the offer carries the subscription id, so no seeded id) commits,
// the daemon dies before the key's answer is stored (the key is kept,
// Applied), and the client's retry under the same key is answered 409
// "exists" -- which is then recorded and replayed for 24 h -- instead of
// the subscription it created.
func TestRetriedPersonalOfferAddAfterLostAnswerIs409(t *testing.T) {
	h := newHarness(t, nil)
	h.run()
	offer := testOffer(t, 1000, time.Hour, false)
	body := `{"offer":"` + offer + `","paused":true}`
	tokens := common.Tokens{Admin: "adm", ReadOnly: "ro"}
	serve := func(st idem.Store) http.Handler {
		api := &apiServer{engine: h.eng, log: btclog.Disabled,
			health: func() map[string]any { return nil },
			tokens: tokens, idem: idem.New(st, btclog.Disabled)}
		return tokens.Middleware(api.routes())
	}
	post := func(srv http.Handler) (int, string) {
		req := httptest.NewRequest("POST", "/v1/subscriptions",
			strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer adm")
		req.Header.Set(idem.Header, "A1")
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	code, out := post(serve(finishLost{h.db}))
	require.Equal(t, http.StatusCreated, code, out)

	h.stop()
	h.load()
	h.run()
	code, out = post(serve(h.db))
	require.Equal(t, http.StatusCreated, code, out)
}
