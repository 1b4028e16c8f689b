package receiver

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/satstream/satstream/common"
	"github.com/stretchr/testify/require"
)

// TestEndpointSecretsFromConfigFile: "webhook.endpointsecret = <url>
// <secret>" lines give one URL secrets of its own, several of them during
// a rotation, in the order written; other URLs keep the global secret.
func TestEndpointSecretsFromConfigFile(t *testing.T) {
	t.Parallel()
	c := validConfig(t)
	conf := filepath.Join(t.TempDir(), "receiver.conf")
	oldSec, newSec := "whsec_"+strings.Repeat("1", 64),
		"whsec_"+strings.Repeat("2", 64)
	require.NoError(t, os.WriteFile(conf, []byte("[webhook]\n"+
		"webhook.url = https://a.example/hook\n"+
		"webhook.url = https://b.example/hook\n"+
		"webhook.endpointsecret = https://a.example/hook "+oldSec+"\n"+
		"webhook.endpointsecret = https://a.example/hook "+newSec+"\n"),
		0o600))
	c.ConfigFile = conf
	require.NoError(t, common.LoadConfig(c, nil, &c.ConfigFile, conf))
	require.NoError(t, c.Validate())
	got, err := c.Webhook.SecretsByURL()
	require.NoError(t, err)
	require.Equal(t, map[string][][]byte{
		"https://a.example/hook": {[]byte(oldSec), []byte(newSec)},
	}, got)
}

// TestEndpointSecretRefused: a secret for a URL that is not configured, a
// short one or a malformed line is refused at start, naming the option
// and never repeating the secret; so is the option on the command line.
func TestEndpointSecretRefused(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("k", 40)
	tests := []struct {
		name   string
		value  string
		errHas string
	}{
		{"unknown url", "https://other.example/x?token=t " + long,
			"https://other.example/x?REDACTED, which is not a " +
				"--webhook.url"},
		{"short", "https://a.example/hook hunter2", "at least 32"},
		{"no secret", "https://a.example/hook", "'<url> <secret>'"},
		{"three words", "https://a.example/hook " + long + " x",
			"'<url> <secret>'"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig(t)
			c.Webhook.URLs = []string{"https://a.example/hook"}
			c.Webhook.EndpointSecrets = []string{tc.value}
			err := c.Validate()
			require.ErrorIs(t, err, ErrConfig)
			require.ErrorContains(t, err, "--webhook.endpointsecret")
			require.ErrorContains(t, err, tc.errHas)
			require.NotContains(t, err.Error(), "hunter2")
			require.NotContains(t, err.Error(), long)
		})
	}

	dir := filepath.Join(t.TempDir(), "data")
	err := Main([]string{"--datadir=" + dir,
		"--webhook.endpointsecret=https://a.example/hook " + long})
	require.ErrorIs(t, err, common.ErrSecretOnCommandLine)
	require.NotContains(t, err.Error(), long)
	require.NoDirExists(t, dir)
}
