package sender

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestConfigErrorsNameTheOption(t *testing.T) {
	dir := t.TempDir()
	cert := filepath.Join(dir, "tls.cert")
	mac := filepath.Join(dir, "admin.macaroon")
	require.NoError(t, os.WriteFile(cert, []byte("x"), 0o600))
	require.NoError(t, os.WriteFile(mac, []byte("x"), 0o600))
	base := []string{"--datadir=" + dir, "--lnd.tlspath=" + cert,
		"--lnd.macaroonpath=" + mac}

	tests := []struct {
		name string
		args []string
		file string
		want string
	}{
		{"ok", nil, "", ""},
		{"bad network", []string{"--network=moon"}, "", `"moon"`},
		{"bad listen", []string{"--api.listen=nope"}, "", "--api.listen"},
		{"bad level", []string{"--debuglevel=loud"}, "", `"loud"`},
		{"no inflight", []string{"--payments.maxinflight=0"}, "",
			"--payments.maxinflight"},
		{"missing lnd", []string{"--lnd.tlspath=/nonexistent"}, "",
			"--lnd.tlspath"},
		{"no unavailable threshold",
			[]string{"--payments.unavailableafter=0s"}, "",
			"--payments.unavailableafter"},
		{"refused retry above max", []string{
			"--payments.refusedretry=2h",
			"--payments.refusedretrymax=1h"}, "",
			"--payments.refusedretry"},
		{"corrupt file", nil, "[Application Options\nnetwork", "sender.conf"},
		{"file value", nil, "network=venus\n", `"venus"`},
		{"flags win", []string{"--network=regtest"}, "network=venus\n", ""},
		{"testnet4", []string{"--network=testnet4"}, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			conf := filepath.Join(dir, ConfigFilename)
			_ = os.Remove(conf)
			if tc.file != "" {
				require.NoError(t, os.WriteFile(conf,
					[]byte(tc.file), 0o600))
			}
			cfg, err := LoadConfig(append(append([]string{}, base...),
				tc.args...))
			if tc.want == "" {
				require.NoError(t, err)
				require.Equal(t, filepath.Join(dir,
					cfg.Network, "tls.cert"), cfg.API.TLSCert)
				return
			}
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestDefaults(t *testing.T) {
	cfg := DefaultConfig()
	require.Equal(t, "127.0.0.1:7322", cfg.API.Listen)
	require.Equal(t, "127.0.0.1:9732", cfg.Metrics.Listen)
	require.Equal(t, "mainnet", cfg.Network)
	require.Equal(t, "info", cfg.DebugLevel)
	// Hold expiry (30 s recommended) must not look like a refusal.
	require.Equal(t, 10*time.Second, cfg.Payments.UnavailableAfter)
	require.Equal(t, 10*time.Minute, cfg.Payments.RefusedRetry)
	require.Equal(t, filepath.Join(".satstream", "sender"),
		filepath.Join(filepath.Base(filepath.Dir(cfg.DataDir)),
			filepath.Base(cfg.DataDir)))
}
