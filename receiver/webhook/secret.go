package webhook

import (
	"crypto/rand"
	"encoding/base64"
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

// CheckSecret refuses a secret shorter than MinSecretLength bytes, and a
// "whsec_" secret whose rest is not padded standard base64 or decodes to
// fewer than MinSecretLength bytes: Standard Webhooks libraries take such
// a secret's decoded rest as the HMAC key, so that key is what must be
// valid and long enough. source names where it came from, for the
// message; the secret itself is never repeated.
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
	rest, ok := strings.CutPrefix(string(secret), standardPrefix)
	if !ok {
		return nil
	}
	key, err := base64.StdEncoding.DecodeString(rest)
	switch {
	case err != nil:
		// err quotes a byte offset, never the secret.
		return fmt.Errorf("%w: %s starts with %q but the rest is not "+
			"padded standard base64 (Standard Webhooks libraries "+
			"decode it as the key); write it as %q + base64 of "+
			"the key (e.g. `echo %s$(openssl rand -base64 32)`), "+
			"or without the prefix", ErrWeakSecret, source,
			standardPrefix, standardPrefix, standardPrefix)
	case len(key) < MinSecretLength:
		return fmt.Errorf("%w: %s is a %q secret whose key (the "+
			"base64 after the prefix) decodes to %d bytes, at "+
			"least %d are needed (e.g. `echo %s$(openssl rand "+
			"-base64 32)`)", ErrWeakSecret, source,
			standardPrefix, len(key), MinSecretLength,
			standardPrefix)
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
		s := standardPrefix + hex.EncodeToString(b[:])
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
