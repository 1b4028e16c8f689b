package sender

import (
	"encoding/json"
	"net/http/httptest"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/btcsuite/btclog/v2"
	"github.com/satstream/satstream/common"
	"github.com/stretchr/testify/require"
)

// TestOpenAPIDocumentMatchesRoutes: the committed document lists every
// route the sender serves and no other, and /v1/openapi.json serves that
// file byte for byte.
func TestOpenAPIDocumentMatchesRoutes(t *testing.T) {
	file, err := os.ReadFile("../docs/openapi-sender.json")
	require.NoError(t, err)
	var d struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	require.NoError(t, json.Unmarshal(file, &d))
	require.True(t, strings.HasPrefix(d.OpenAPI, "3."))
	var documented, served []string
	for path, ops := range d.Paths {
		for method := range ops {
			documented = append(documented,
				strings.ToUpper(method)+" "+path)
		}
	}
	tokens := common.Tokens{Admin: "adm", ReadOnly: "ro"}
	api := &apiServer{log: btclog.Disabled, tokens: tokens}
	for _, r := range api.routeList() {
		served = append(served, r.pattern)
	}
	sort.Strings(documented)
	sort.Strings(served)
	require.Equal(t, served, documented)

	req := httptest.NewRequest("GET", "/v1/openapi.json", nil)
	req.Header.Set("Authorization", "Bearer ro")
	rec := httptest.NewRecorder()
	tokens.Middleware(api.routes()).ServeHTTP(rec, req)
	require.Equal(t, 200, rec.Code)
	require.Equal(t, string(file), rec.Body.String())
}
