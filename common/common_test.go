package common

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lightningnetwork/lnd/cert"
	"github.com/stretchr/testify/require"
)

func TestTokensCreatedOnceWith0600(t *testing.T) {
	dir := t.TempDir()
	first, err := LoadOrCreateTokens(dir)
	require.NoError(t, err)
	require.Len(t, first.Admin, 64)
	require.NotEqual(t, first.Admin, first.ReadOnly)

	for _, f := range []string{AdminTokenFile, ReadOnlyTokenFile} {
		info, err := os.Stat(filepath.Join(dir, f))
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	}

	again, err := LoadOrCreateTokens(dir)
	require.NoError(t, err)
	require.Equal(t, first, again)
}

func TestTokensRejectBadFiles(t *testing.T) {
	tests := []struct {
		name    string
		content string
		mode    os.FileMode
		wantErr string
	}{
		{"world readable", strings.Repeat("a", 64), 0o644, "chmod 600"},
		{"truncated", "abcd", 0o600, "64-hex-character"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, AdminTokenFile)
			require.NoError(t, os.WriteFile(path, []byte(tc.content),
				tc.mode))
			require.NoError(t, os.Chmod(path, tc.mode))
			_, err := LoadOrCreateTokens(dir)
			require.ErrorContains(t, err, tc.wantErr)
			require.ErrorContains(t, err, path)
		})
	}
}

func TestMiddleware(t *testing.T) {
	toks := Tokens{Admin: strings.Repeat("a", 64),
		ReadOnly: strings.Repeat("b", 64)}
	h := toks.Middleware(http.HandlerFunc(
		func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusTeapot)
		}), "/v1/health")

	tests := []struct {
		name, method, path, token string
		want                      int
	}{
		{"no token", "GET", "/v1/x", "", http.StatusUnauthorized},
		{"wrong token", "GET", "/v1/x", strings.Repeat("c", 64),
			http.StatusUnauthorized},
		{"read-only GET", "GET", "/v1/x", toks.ReadOnly,
			http.StatusTeapot},
		{"read-only POST", "POST", "/v1/x", toks.ReadOnly,
			http.StatusForbidden},
		{"admin POST", "POST", "/v1/x", toks.Admin, http.StatusTeapot},
		{"open path", "GET", "/v1/health", "", http.StatusTeapot},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, tc.path, nil)
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			require.Equal(t, tc.want, rec.Code)
			if tc.want != http.StatusTeapot {
				require.Contains(t, rec.Body.String(), `"code"`)
			}
		})
	}
}

func TestDecodeJSON(t *testing.T) {
	type body struct {
		Name  string `json:"name"`
		Price uint64 `json:"price"`
	}
	tests := []struct {
		name, in, wantField, wantMsg string
	}{
		{"unknown field", `{"nme":"x"}`, "", "unknown field"},
		{"wrong type", `{"price":"ten"}`, "price", "expected uint64"},
		{"two objects", `{"name":"a"}{"name":"b"}`, "", "exactly one"},
		{"not json", `hello`, "", "invalid JSON"},
		{"too big", `{"name":"` + strings.Repeat("x", maxRequestBody) +
			`"}`, "", "body is larger than 65536 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("POST", "/",
				bytes.NewBufferString(tc.in))
			var b body
			err := DecodeJSON(req, &b)
			var apiErr *APIError
			require.ErrorAs(t, err, &apiErr)
			require.Equal(t, "bad_request", apiErr.Code)
			require.Equal(t, tc.wantField, apiErr.Field)
			require.Contains(t, apiErr.Message, tc.wantMsg)
		})
	}
}

type testConfig struct {
	ConfigFile string    `long:"configfile"`
	Name       string    `long:"name"`
	Lnd        LndConfig `group:"lnd" namespace:"lnd"`
}

func TestLoadConfigFlagsWinOverFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "test.conf")
	require.NoError(t, os.WriteFile(path, []byte(
		"name=fromfile\n[lnd]\nlnd.host=file:10009\n"), 0o600))

	cfg := &testConfig{ConfigFile: path, Lnd: DefaultLndConfig()}
	err := LoadConfig(cfg, []string{"--name=fromflag"}, &cfg.ConfigFile,
		path)
	require.NoError(t, err)
	require.Equal(t, "fromflag", cfg.Name)
	require.Equal(t, "file:10009", cfg.Lnd.Host)
}

func TestLoadConfigErrors(t *testing.T) {
	dir := t.TempDir()
	def := filepath.Join(dir, "default.conf")

	// A missing file at the default path is fine.
	cfg := &testConfig{ConfigFile: def}
	require.NoError(t, LoadConfig(cfg, nil, &cfg.ConfigFile, def))

	// A missing file the user named is not.
	cfg = &testConfig{ConfigFile: def}
	err := LoadConfig(cfg, []string{"--configfile=/nope.conf"},
		&cfg.ConfigFile, def)
	require.ErrorContains(t, err, "/nope.conf")

	// A corrupt file names itself.
	bad := filepath.Join(dir, "bad.conf")
	require.NoError(t, os.WriteFile(bad, []byte("nosuchoption=1\n"), 0o600))
	cfg = &testConfig{ConfigFile: def}
	err = LoadConfig(cfg, []string{"--configfile=" + bad}, &cfg.ConfigFile,
		def)
	require.ErrorContains(t, err, bad)
	require.ErrorContains(t, err, "nosuchoption")

	// An unknown flag is named.
	cfg = &testConfig{ConfigFile: def}
	err = LoadConfig(cfg, []string{"--bogus"}, &cfg.ConfigFile, def)
	require.ErrorContains(t, err, "bogus")
}

func TestLndConfigValidate(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	good := LndConfig{Host: "h:1", TLSPath: file, MacaroonPath: file,
		RPCTimeout: 1}
	require.NoError(t, good.Validate())

	tests := []struct {
		name    string
		mutate  func(*LndConfig)
		wantErr string
	}{
		{"no tls", func(c *LndConfig) { c.TLSPath = "" }, "--lnd.tlspath"},
		{"missing macaroon", func(c *LndConfig) {
			c.MacaroonPath = "/nope"
		}, "--lnd.macaroonpath"},
		{"bad timeout", func(c *LndConfig) { c.RPCTimeout = 0 },
			"--lnd.rpctimeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.mutate(&c)
			err := c.Validate()
			require.ErrorIs(t, err, ErrLndConfig)
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}

func TestLogLevels(t *testing.T) {
	var buf bytes.Buffer
	m := NewLogManager(&buf)
	a, b := m.Logger("AAAA"), m.Logger("BBBB")

	require.NoError(t, m.SetLevels("warn,BBBB=debug"))
	a.Infof("hidden")
	b.Debugf("shown")
	require.NotContains(t, buf.String(), "hidden")
	require.Contains(t, buf.String(), "BBBB: shown")

	require.ErrorContains(t, m.SetLevels("loud"), `"loud"`)
	require.ErrorContains(t, m.SetLevels("CCCC=info"), `"CCCC"`)
}

func TestTLSGeneratedOnceAndReloaded(t *testing.T) {
	dir := t.TempDir()
	certPath := filepath.Join(dir, "tls.cert")
	keyPath := filepath.Join(dir, "tls.key")
	conf, err := LoadOrCreateTLS(certPath, keyPath, []string{"example.com"})
	require.NoError(t, err)
	require.Len(t, conf.Certificates, 1)
	before, err := os.ReadFile(certPath)
	require.NoError(t, err)
	info, err := os.Stat(keyPath)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())

	_, err = LoadOrCreateTLS(certPath, keyPath, []string{"example.com"})
	require.NoError(t, err)
	after, err := os.ReadFile(certPath)
	require.NoError(t, err)
	require.Equal(t, before, after)

	// A corrupt certificate is an error naming the file, not a silent
	// regeneration.
	require.NoError(t, os.WriteFile(certPath, []byte("junk"), 0o600))
	_, err = LoadOrCreateTLS(certPath, keyPath, nil)
	require.ErrorContains(t, err, certPath)
}

// TestExpiredAPICertIsRenewed: the API certificate was never checked for
// expiry, so after its validity every client failed. A generated
// certificate that expired, or no longer names --api.tlsextradomain, is
// renewed at start; one the operator made is not replaced.
func TestExpiredAPICertIsRenewed(t *testing.T) {
	t.Parallel()
	load := func(t *testing.T, certPath string) *x509.Certificate {
		t.Helper()
		b, err := os.ReadFile(certPath)
		require.NoError(t, err)
		blk, _ := pem.Decode(b)
		require.NotNil(t, blk)
		x, err := x509.ParseCertificate(blk.Bytes)
		require.NoError(t, err)
		return x
	}
	tests := []struct {
		name      string
		org       string
		validity  time.Duration
		hosts     []string
		now       time.Duration
		renewed   bool
		errIs     error
		wantHosts []string
	}{
		{name: "valid and unchanged", org: certOrg, validity: time.Hour,
			hosts: []string{"a.example"}},
		{name: "expired", org: certOrg, validity: time.Hour,
			hosts: []string{"a.example"}, now: 2 * time.Hour,
			renewed: true},
		{name: "extra domain changed", org: certOrg,
			validity: time.Hour, hosts: []string{"b.example"},
			renewed: true, wantHosts: []string{"b.example"}},
		{name: "operator's cert with other names is kept",
			org: "my CA", validity: time.Hour,
			hosts: []string{"b.example"}},
		{name: "operator's expired cert is refused", org: "my CA",
			validity: time.Hour, hosts: []string{"a.example"},
			now: 2 * time.Hour, errIs: ErrCertExpired},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			certPath := filepath.Join(dir, "tls.cert")
			keyPath := filepath.Join(dir, "tls.key")
			cb, kb, err := cert.GenCertPair(tc.org, nil,
				[]string{"a.example"}, false, tc.validity)
			require.NoError(t, err)
			require.NoError(t, cert.WriteCertPair(certPath,
				keyPath, cb, kb))
			require.NoError(t, os.Chmod(keyPath, 0o600))
			before := load(t, certPath)

			_, err = loadOrCreateTLS(certPath, keyPath, tc.hosts,
				time.Now().Add(tc.now))
			if tc.errIs != nil {
				require.ErrorIs(t, err, tc.errIs)
				require.ErrorContains(t, err, certPath)
				return
			}
			require.NoError(t, err)
			after := load(t, certPath)
			if !tc.renewed {
				require.Equal(t, before.Raw, after.Raw)
				return
			}
			require.NotEqual(t, before.SerialNumber,
				after.SerialNumber)
			require.True(t, after.NotAfter.After(
				time.Now().Add(300*24*time.Hour)))
			for _, h := range tc.wantHosts {
				require.Contains(t, after.DNSNames, h)
			}
			info, err := os.Stat(keyPath)
			require.NoError(t, err)
			require.Equal(t, os.FileMode(0o600), info.Mode().Perm())
		})
	}
}

func TestAPIConfigResolve(t *testing.T) {
	c := APIConfig{Listen: "127.0.0.1:7321"}
	require.NoError(t, c.Resolve("/data"))
	require.Equal(t, "/data/tls.cert", c.TLSCert)
	require.Equal(t, "/data/tls.key", c.TLSKey)

	home, err := os.UserHomeDir()
	require.NoError(t, err)
	c = APIConfig{Listen: ":0", TLSCert: "~/x.cert", TLSKey: "/k"}
	require.NoError(t, c.Resolve("/data"))
	require.Equal(t, filepath.Join(home, "x.cert"), c.TLSCert)
	require.Equal(t, "/k", c.TLSKey)

	c = APIConfig{Listen: "7321"}
	require.ErrorContains(t, c.Resolve("/data"), `--api.listen="7321"`)
}

// TestTLSKeyReadableByOthersRefused: a world-readable API key was loaded
// without a word; now it is refused naming the file and the fix, and the
// key is left as it was.
func TestTLSKeyReadableByOthersRefused(t *testing.T) {
	dir := t.TempDir()
	certPath := filepath.Join(dir, "tls.cert")
	keyPath := filepath.Join(dir, "tls.key")
	_, err := LoadOrCreateTLS(certPath, keyPath, nil)
	require.NoError(t, err)
	key, err := os.ReadFile(keyPath)
	require.NoError(t, err)

	require.NoError(t, os.Chmod(keyPath, 0o644))
	_, err = LoadOrCreateTLS(certPath, keyPath, nil)
	require.ErrorIs(t, err, ErrSecretFile)
	require.ErrorContains(t, err, keyPath)
	require.ErrorContains(t, err, "-rw-r--r--")
	require.ErrorContains(t, err, "chmod 600")

	after, err := os.ReadFile(keyPath)
	require.NoError(t, err)
	require.Equal(t, key, after)
}

// TestLogFileRotates: the daemons logged to stdout only, so a restarted
// service lost its history. Lines now also go to lnd's rotating log file
// in the log directory; --maxlogfiles=-1 turns the file off.
func TestLogFileRotates(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := DefaultLogConfig()
	require.NoError(t, c.Resolve(dir))
	require.Equal(t, filepath.Join(dir, "logs"), c.LogDir)
	var stdout bytes.Buffer
	w, closeLog, err := c.Open(&stdout, "satstream-test.log")
	require.NoError(t, err)
	m := NewLogManager(w)
	m.Logger("TEST").Infof("hello from the log file")
	require.NoError(t, closeLog())
	require.Contains(t, stdout.String(), "hello from the log file")
	b, err := os.ReadFile(filepath.Join(dir, "logs", "satstream-test.log"))
	require.NoError(t, err)
	require.Contains(t, string(b), "TEST: hello from the log file")

	off := DefaultLogConfig()
	off.MaxLogFiles = -1
	require.NoError(t, off.Resolve(filepath.Join(dir, "off")))
	w, _, err = off.Open(&stdout, "x.log")
	require.NoError(t, err)
	require.Equal(t, io.Writer(&stdout), w)
	require.ErrorContains(t, (&LogConfig{MaxLogFileSize: 0}).Resolve(dir),
		"--maxlogfilesize")
}
