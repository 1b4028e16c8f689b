package receiver

import (
	"encoding/json"
	"net/http"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/satstream/satstream/common"
	"github.com/satstream/satstream/receiver/core"
	"github.com/satstream/satstream/receiver/webhook"
	"github.com/stretchr/testify/require"
)

// documentedRoutes returns "METHOD /path" for every operation of an
// OpenAPI document.
func documentedRoutes(t *testing.T, doc []byte) []string {
	var d struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	require.NoError(t, json.Unmarshal(doc, &d))
	require.True(t, strings.HasPrefix(d.OpenAPI, "3."), d.OpenAPI)
	var out []string
	for path, ops := range d.Paths {
		for method := range ops {
			out = append(out, strings.ToUpper(method)+" "+path)
		}
	}
	sort.Strings(out)
	return out
}

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
	require.Equal(t, served, documentedRoutes(t, file))

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
	t.Parallel()
	file, err := os.ReadFile("../docs/openapi-receiver.json")
	require.NoError(t, err)
	for name, v := range map[string]any{
		"Plan":         planView{},
		"Terms":        core.TermsView{},
		"Subscription": core.SubscriptionView{},
		"Payment":      core.PaymentView{},
		"Event":        eventView{},
		"Delivery":     webhook.DeliveryView{},
	} {
		require.Equal(t, jsonNames(reflect.TypeOf(v)),
			schemaProps(t, file, name), name)
	}
}
