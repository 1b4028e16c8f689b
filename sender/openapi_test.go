package sender

import (
	"encoding/json"
	"net/http/httptest"
	"os"
	"reflect"
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
	// The daemon wraps the API with /healthz and the backup endpoint.
	served = append(served, "GET "+common.HealthzPath,
		"POST "+common.BackupPath)
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

// jsonNames lists the JSON keys a struct type marshals to (embedded
// structs flattened).
func jsonNames(t reflect.Type) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			out = append(out, jsonNames(f.Type)...)
			continue
		}
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// schemaProps lists the properties of a component schema.
func schemaProps(t *testing.T, doc []byte, name string) []string {
	var d struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]json.RawMessage `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	require.NoError(t, json.Unmarshal(doc, &d))
	s, ok := d.Components.Schemas[name]
	require.True(t, ok, "schema %s", name)
	var out []string
	for p := range s.Properties {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// TestOpenAPIResponseFieldsMatchViews: every field the document promises
// in a response exists in the view the handler marshals, and the other
// way round.
func TestOpenAPIResponseFieldsMatchViews(t *testing.T) {
	file, err := os.ReadFile("../docs/openapi-sender.json")
	require.NoError(t, err)
	for name, v := range map[string]any{
		"Subscription": View{},
		"Terms":        TermsView{},
		"Payment":      PaymentView{},
		"DaySpend":     DaySpend{},
		"Payments":     PaymentsView{},
	} {
		require.Equal(t, jsonNames(reflect.TypeOf(v)),
			schemaProps(t, file, name), name)
	}
}
