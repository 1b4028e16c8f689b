package receiver

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/satstream/satstream/common"
	"github.com/satstream/satstream/receiver/webhook"
	"github.com/stretchr/testify/require"
)

// TestWebhookSecretOnCommandLineRefused: --webhook.secret on the command
// line put the secret in every user's process list. It is refused before
// anything starts, without repeating the secret.
func TestWebhookSecretOnCommandLineRefused(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	for _, args := range [][]string{
		{"--datadir=" + dir, "--webhook.secret=hunter2hunter2"},
		{"--datadir=" + dir, "--webhook.secret", "hunter2hunter2"},
	} {
		err := Main(args)
		require.ErrorIs(t, err, ErrConfig)
		require.ErrorIs(t, err, common.ErrSecretOnCommandLine)
		require.ErrorContains(t, err, "--webhook.secret")
		require.NotContains(t, err.Error(), "hunter2")
		require.NoDirExists(t, dir)
	}
}

// TestWebhookSecretInConfigTooShort: a secret from the config file gets the
// file's length rule.
func TestWebhookSecretInConfigTooShort(t *testing.T) {
	t.Parallel()
	c := validConfig(t)
	c.Webhook.Secret = "short"
	d := &Daemon{cfg: c}
	_, err := d.webhookSecret()
	require.ErrorIs(t, err, webhook.ErrWeakSecret)
	require.ErrorContains(t, err, "holds 5 bytes, at least 32")
	require.NotContains(t, err.Error(), "short\"")

	c.Webhook.Secret = strings.Repeat("s", 32)
	got, err := d.webhookSecret()
	require.NoError(t, err)
	require.Equal(t, []byte(c.Webhook.Secret), got)
}

// TestWebhookSecretFileReadableRefused: the daemon refuses a secret file
// others can read instead of using it.
func TestWebhookSecretFileReadableRefused(t *testing.T) {
	t.Parallel()
	c := validConfig(t)
	require.NoError(t, os.MkdirAll(c.NetworkDir(), 0o700))
	path := filepath.Join(c.NetworkDir(), webhook.SecretFile)
	require.NoError(t, os.WriteFile(path,
		[]byte(strings.Repeat("s", 40)), 0o644))
	require.NoError(t, os.Chmod(path, 0o644))
	d := &Daemon{cfg: c}
	_, err := d.webhookSecret()
	require.ErrorIs(t, err, common.ErrSecretFile)
	require.ErrorContains(t, err, path)
}
