// Package openapitest holds what both daemons' tests use to hold their
// committed OpenAPI documents to the code: the operations a document lists,
// a schema's properties, and the JSON names a Go view marshals to.
package openapitest

import (
	"encoding/json"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Operations returns "METHOD /path" for every operation of an OpenAPI 3
// document, sorted.
func Operations(t testing.TB, doc []byte) []string {
	t.Helper()
	var d struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	require.NoError(t, json.Unmarshal(doc, &d))
	require.True(t, strings.HasPrefix(d.OpenAPI, "3."),
		"openapi version %q", d.OpenAPI)
	var out []string
	for path, ops := range d.Paths {
		for method := range ops {
			out = append(out, strings.ToUpper(method)+" "+path)
		}
	}
	sort.Strings(out)
	return out
}

// SchemaProperties lists the properties of a component schema, sorted.
func SchemaProperties(t testing.TB, doc []byte, name string) []string {
	t.Helper()
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

// JSONNames lists the JSON keys a struct type marshals to (embedded structs
// flattened), sorted.
func JSONNames(t reflect.Type) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.Anonymous && name == "" {
			out = append(out, JSONNames(f.Type)...)
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

// MatchViews requires that every component schema named in views lists
// exactly the JSON fields of its Go view.
func MatchViews(t testing.TB, doc []byte, views map[string]any) {
	t.Helper()
	for name, v := range views {
		require.Equal(t, JSONNames(reflect.TypeOf(v)),
			SchemaProperties(t, doc, name), name)
	}
}
