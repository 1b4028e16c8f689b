package receiver

import (
	"net/http"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/satstream/satstream/common"
	"github.com/satstream/satstream/common/openapitest"
	"github.com/satstream/satstream/receiver/core"
	"github.com/satstream/satstream/receiver/webhook"
	"github.com/stretchr/testify/require"
)

// TestOpenAPIDocumentMatchesRoutes: the committed document lists every
// route the receiver serves and no other, and /v1/openapi.json serves
// that file byte for byte.
func TestOpenAPIDocumentMatchesRoutes(t *testing.T) {
	t.Parallel()
	file, err := os.ReadFile("../docs/openapi-receiver.json")
	require.NoError(t, err)
	// The daemon wraps the API with /healthz and the backup endpoint.
	served := []string{"GET " + common.HealthzPath,
		"POST " + common.BackupPath}
	for _, r := range (&apiServer{}).routes() {
		served = append(served, r.pattern)
	}
	sort.Strings(served)
	require.Equal(t, served, openapitest.Operations(t, file))

	a := newAPIHarness(t)
	code, _ := a.call(a.tokens.ReadOnly, http.MethodGet, "/v1/openapi.json", nil)
	require.Equal(t, http.StatusOK, code)
	req, err := http.NewRequest(http.MethodGet, "/v1/openapi.json", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+a.tokens.ReadOnly)
	w := &bodyRecorder{header: http.Header{}}
	a.h.ServeHTTP(w, req)
	require.Equal(t, string(file), w.body.String())
}

type bodyRecorder struct {
	header http.Header
	body   strings.Builder
}

func (b *bodyRecorder) Header() http.Header         { return b.header }
func (b *bodyRecorder) Write(p []byte) (int, error) { return b.body.Write(p) }
func (b *bodyRecorder) WriteHeader(int)             {}

// TestOpenAPIResponseFieldsMatchViews: every field the document promises
// in a response exists in the view the handler marshals, and the other
// way round.
func TestOpenAPIResponseFieldsMatchViews(t *testing.T) {
	t.Parallel()
	file, err := os.ReadFile("../docs/openapi-receiver.json")
	require.NoError(t, err)
	openapitest.MatchViews(t, file, map[string]any{
		"Plan":         planView{},
		"Terms":        core.TermsView{},
		"Subscription": core.SubscriptionView{},
		"Payment":      core.PaymentView{},
		"Event":        eventView{},
		"Delivery":     webhook.DeliveryView{},
	})
}
