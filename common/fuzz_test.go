package common

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseLndConnect: any string either parses into a usable host:port
// (port 1..65535) and a macaroon that decodes, or fails with
// ErrLndConnect without repeating the macaroon parameter.
func FuzzParseLndConnect(f *testing.F) {
	mac := base64.RawURLEncoding.EncodeToString(
		testMacaroon(f, "info:read"))
	for _, s := range []string{
		"lndconnect://h:10009?macaroon=" + mac,
		"lndconnect://[::1]:1?cert=AAAA&macaroon=" + mac,
		"LNDCONNECT://h?macaroon=" + mac,
		"lndconnect://h:0?macaroon=" + mac,
		"lndconnect://h:99999?macaroon=%zz",
		"lndconnect://?macaroon=",
		"https://h:1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, uri string) {
		lc, err := ParseLndConnect(uri)
		if err != nil {
			if !errors.Is(err, ErrLndConnect) {
				t.Fatalf("error %v does not wrap ErrLndConnect", err)
			}
			return
		}
		host, port, err := net.SplitHostPort(lc.Host)
		if err != nil || host == "" {
			t.Fatalf("host %q is not host:port: %v", lc.Host, err)
		}
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			t.Fatalf("port %q accepted", port)
		}
		if len(lc.Macaroon) == 0 {
			t.Fatal("accepted without a macaroon")
		}
		if _, err := MacaroonPermissions(lc.Macaroon); err != nil &&
			!strings.Contains(err.Error(), "macaroon") {
			t.Fatalf("odd macaroon error %v", err)
		}
	})
}

// FuzzPolarNetworksJSON: any networks.json either yields a node with a
// port in range (or none) or fails with ErrPolar; never a panic.
func FuzzPolarNetworksJSON(f *testing.F) {
	for _, s := range []string{
		`{"networks":[{"id":1,"nodes":{"lightning":[{"name":"alice","implementation":"LND","ports":{"grpc":10001},"paths":{"tlsCert":"/t","adminMacaroon":"/m"}}]}}]}`,
		`{"networks":[{"id":1,"nodes":{"lightning":[{"name":"alice","implementation":"litd","ports":{"grpc":70000}}]}}]}`,
		`{"networks":[{"id":1,"nodes":{"lightning":[{"name":"alice","implementation":"c-lightning"}]}}]}`,
		`{"networks":[{"id":2}]}`,
		`{"networks":null}`,
		`[]`,
		``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		node, err := polarNodeFromJSON(data, "networks.json",
			&PolarNode{NetworkID: 1, Name: "alice"})
		if err != nil {
			if !errors.Is(err, ErrPolar) {
				t.Fatalf("error %v does not wrap ErrPolar", err)
			}
			return
		}
		if node.Host == "" {
			return
		}
		_, port, err := net.SplitHostPort(node.Host)
		if err != nil {
			t.Fatalf("host %q: %v", node.Host, err)
		}
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			t.Fatalf("port %q accepted", port)
		}
	})
}

// FuzzMacaroonPermissions: decoding any bytes as an lnd macaroon never
// panics, and what it returns is usable by MissingPermissions.
func FuzzMacaroonPermissions(f *testing.F) {
	f.Add(testMacaroon(f, "info:read", "invoices:read",
		"invoices:write"))
	f.Add(testMacaroon(f, "uri:/lnrpc.Lightning/GetInfo"))
	f.Add([]byte{})
	f.Add([]byte{2, 1, 0})
	f.Fuzz(func(t *testing.T, mac []byte) {
		perms, err := MacaroonPermissions(mac)
		if err != nil {
			return
		}
		_ = describeMissing(MissingPermissions(perms,
			ReceiverMacaroonRPCs()))
	})
}

// fuzzBody is shaped like the API's request bodies: pointers for optional
// fields, an embedded struct, a nested object.
type fuzzBody struct {
	Label *string `json:"label"`
	Price *uint64 `json:"price_msat_per_sec"`
	Flag  bool    `json:"flag,omitempty"`
	fuzzEmbedded
	Nested *struct {
		A int `json:"a"`
	} `json:"nested"`
}

type fuzzEmbedded struct {
	Increment *string `json:"increment"`
}

// FuzzDecodeStrict: the strict decoder never panics, refuses with an
// APIError, and accepts only bodies that are exactly one valid JSON value
// with no key repeated.
func FuzzDecodeStrict(f *testing.F) {
	for _, s := range []string{
		`{"label":"x","price_msat_per_sec":1}`,
		`{"label":"x","label":"y"}`,
		`{"label":"x","LABEL":"y"}`,
		`{"price_msat_per_sec":1} {}`,
		`{"price_msat_per_sec":1}]`,
		`{"nested":{"a":1,"a":2}}`,
		`{"increment":"1m","flag":true}`,
		`{"unknown":1}`,
		`[1,2]`,
		` `,
		`{"label":"\u202e"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var v fuzzBody
		err := DecodeStrict(data, &v)
		if err != nil {
			var apiErr *APIError
			if !errors.As(err, &apiErr) || apiErr.Code != "bad_request" {
				t.Fatalf("error %v is not a bad_request APIError",
					err)
			}
			if !utf8.ValidString(apiErr.Message) &&
				utf8.Valid(data) {
				t.Fatalf("message not UTF-8: %q", apiErr.Message)
			}
			return
		}
		trimmed := bytes.TrimSpace(data)
		if !jsonValid(trimmed) {
			t.Fatalf("accepted invalid or trailing JSON %q", data)
		}
		if dup := findDuplicateKey(trimmed); dup != "" {
			t.Fatalf("accepted duplicate key %q in %q", dup, data)
		}
	})
}

// jsonValid is encoding/json's own validity check.
func jsonValid(data []byte) bool { return json.Valid(data) }

// findDuplicateKey is the fuzz oracle for duplicate keys, written apart
// from walkJSON: one flat pass over the tokens with a stack of the keys
// seen per open object (nil for arrays) and whether a key is expected.
func findDuplicateKey(data []byte) string {
	dec := json.NewDecoder(bytes.NewReader(data))
	type obj struct {
		keys    map[string]bool
		wantKey bool
	}
	var stack []*obj
	for {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		var top *obj
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.keys != nil && top.wantKey {
			if k, ok := tok.(string); ok {
				if top.keys[strings.ToLower(k)] {
					return k
				}
				top.keys[strings.ToLower(k)] = true
				top.wantKey = false
				continue
			}
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &obj{keys: map[string]bool{},
				wantKey: true})
			continue
		case json.Delim('['):
			stack = append(stack, &obj{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		// A value ended; its parent object wants a key next.
		if len(stack) > 0 && stack[len(stack)-1].keys != nil {
			stack[len(stack)-1].wantKey = true
		}
	}
}
