package sender

import (
	"net/http/httptest"
	"os"
	"sort"
	"testing"

	"github.com/btcsuite/btclog/v2"
	"github.com/satstream/satstream/common"
	"github.com/satstream/satstream/common/openapitest"
	"github.com/stretchr/testify/require"
)

// TestOpenAPIDocumentMatchesRoutes: the committed document lists every
// route the sender serves and no other, and /v1/openapi.json serves that
// file byte for byte.
func TestOpenAPIDocumentMatchesRoutes(t *testing.T) {
	file, err := os.ReadFile("../docs/openapi-sender.json")
	require.NoError(t, err)
	var served []string
	tokens := common.Tokens{Admin: "adm", ReadOnly: "ro"}
	api := &apiServer{log: btclog.Disabled, tokens: tokens}
	// The daemon wraps the API with /healthz and the backup endpoint.
	served = append(served, "GET "+common.HealthzPath,
		"POST "+common.BackupPath)
	for _, r := range api.routeList() {
		served = append(served, r.pattern)
	}
	sort.Strings(served)
	require.Equal(t, served, openapitest.Operations(t, file))

	req := httptest.NewRequest("GET", "/v1/openapi.json", nil)
	req.Header.Set("Authorization", "Bearer ro")
	rec := httptest.NewRecorder()
	tokens.Middleware(api.routes()).ServeHTTP(rec, req)
	require.Equal(t, 200, rec.Code)
	require.Equal(t, string(file), rec.Body.String())
}

// TestOpenAPIResponseFieldsMatchViews: every field the document promises
// in a response exists in the view the handler marshals, and the other
// way round.
func TestOpenAPIResponseFieldsMatchViews(t *testing.T) {
	file, err := os.ReadFile("../docs/openapi-sender.json")
	require.NoError(t, err)
	openapitest.MatchViews(t, file, map[string]any{
		"Subscription": View{},
		"Terms":        TermsView{},
		"Payment":      PaymentView{},
		"DaySpend":     DaySpend{},
		"Payments":     PaymentsView{},
	})
}
