package receiver

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestAPIStrictBodiesLoseNothing: bodies encoding/json would have accepted
// with a guess (the last of two keys, the first of two objects, a label
// that disguises itself on the payer's screen) are refused with a 400
// naming what is wrong, and no plan is created.
func TestAPIStrictBodiesLoseNothing(t *testing.T) {
	t.Parallel()
	a := newAPIHarness(t)
	tests := []struct {
		name, body, field, msg string
	}{
		{"duplicate key",
			`{"price_msat_per_sec":1,"price_msat_per_sec":1000}`,
			"price_msat_per_sec", `key "price_msat_per_sec" appears more than once`},
		{"duplicate key differing in case",
			`{"label":"a","LABEL":"b","price_msat_per_sec":1}`,
			"LABEL", `key "LABEL" appears more than once`},
		{"second object", `{"price_msat_per_sec":1} {"price_msat_per_sec":2}`,
			"", "trailing data after the JSON object"},
		{"stray bracket", `{"price_msat_per_sec":1}]`,
			"", "trailing data after the JSON object at byte 24"},
		{"stray brace", `{"price_msat_per_sec":1}}`,
			"", "trailing data"},
		{"empty", ``, "", "empty body"},
		{"control character in label",
			`{"label":"tea\u0007","price_msat_per_sec":1}`,
			"label", "forbidden character U+0007"},
		{"bidi override in label",
			`{"label":"abc\u202edcba","price_msat_per_sec":1}`,
			"label", "forbidden character U+202E"},
		{"long label", `{"label":"` + strings.Repeat("x", 65) +
			`","price_msat_per_sec":1}`, "label", "label has 65 bytes, at most 64"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := a.call(a.tokens.Admin, "POST", "/v1/plans",
				tc.body)
			require.Equal(t, http.StatusBadRequest, code, body)
			_, field := errOf(body)
			require.Equal(t, tc.field, field, body)
			msg := body["error"].(map[string]any)["message"].(string)
			require.Contains(t, msg, tc.msg)
		})
	}

	// Nothing was created by any of them.
	code, body := a.call(a.tokens.Admin, "GET", "/v1/plans", nil)
	require.Equal(t, http.StatusOK, code)
	require.Empty(t, body["plans"])

	// A good label still works.
	code, body = a.call(a.tokens.Admin, "POST", "/v1/plans",
		`{"label":"Café premium ☕","price_msat_per_sec":1}`)
	require.Equal(t, http.StatusCreated, code, body)
}
