package webhook

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/satstream/satstream/common"
)

// SecretFile is the webhook secret's file in the receiver's data
// directory, created on first start with 0600 permissions like the API
// tokens.
const SecretFile = "webhook.secret"

// MinSecretLength is the shortest secret accepted, in bytes: an HMAC-SHA256
// key shorter than the hash gives away strength, and a short secret can be
// guessed from one signed body offline.
const MinSecretLength = 32

// ErrWeakSecret reports a webhook secret that is empty or too short.
var ErrWeakSecret = errors.New("weak webhook secret")

// CheckSecret refuses a secret shorter than MinSecretLength bytes. source
// names where it came from, for the message; the secret itself is never
// repeated.
func CheckSecret(secret []byte, source string) error {
	if len(secret) == 0 {
		return fmt.Errorf("%w: %s is empty; delete it to have one "+
			"generated, or write at least %d random bytes into it",
			ErrWeakSecret, source, MinSecretLength)
	}
	if len(secret) < MinSecretLength {
		return fmt.Errorf("%w: %s holds %d bytes, at least %d are "+
			"needed (e.g. `openssl rand -hex 32`)", ErrWeakSecret,
			source, len(secret), MinSecretLength)
	}
	return nil
}

// LoadOrCreateSecret reads the webhook secret from path, generating a
// random one ("whsec_" and 64 hex digits) on first start. Like the token
// files, a file others can read is refused, and so is an empty or short
// one: nothing is overwritten, the operator fixes or deletes it.
func LoadOrCreateSecret(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		var b [32]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, err
		}
		s := "whsec_" + hex.EncodeToString(b[:])
		err := os.WriteFile(path, []byte(s+"\n"), 0o600)
		if err != nil {
			return nil, fmt.Errorf("write %s: %w", path, err)
		}
		return []byte(s), nil
	case err != nil:
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if err := common.CheckPrivateFile(path); err != nil {
		return nil, err
	}
	secret := []byte(strings.TrimSpace(string(data)))
	if err := CheckSecret(secret, path); err != nil {
		return nil, err
	}
	return secret, nil
}
