package common

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

// Access is what a credential may do.
type Access int

const (
	// AccessNone is an unauthenticated request.
	AccessNone Access = iota

	// AccessReadOnly may call GET endpoints.
	AccessReadOnly

	// AccessAdmin may call everything.
	AccessAdmin
)

// Token file names inside a daemon's data directory. Like lnd's
// macaroons, they are created on first start with 0600 permissions; a
// client sends one as "Authorization: Bearer <hex>".
const (
	AdminTokenFile    = "admin.token"
	ReadOnlyTokenFile = "readonly.token"
)

// Tokens are the daemon's two API credentials.
type Tokens struct {
	Admin    string
	ReadOnly string
}

// LoadOrCreateTokens reads the credentials from dir, creating random ones
// on first start. A token file readable by others is refused.
func LoadOrCreateTokens(dir string) (Tokens, error) {
	admin, err := loadOrCreateToken(filepath.Join(dir, AdminTokenFile))
	if err != nil {
		return Tokens{}, err
	}
	ro, err := loadOrCreateToken(filepath.Join(dir, ReadOnlyTokenFile))
	if err != nil {
		return Tokens{}, err
	}
	return Tokens{Admin: admin, ReadOnly: ro}, nil
}

func loadOrCreateToken(path string) (string, error) {
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		var b [32]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", err
		}
		tok := hex.EncodeToString(b[:])
		if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
			return "", fmt.Errorf("write %s: %w", path, err)
		}
		return tok, nil
	case err != nil:
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	if err := CheckPrivateFile(path); err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(data))
	if len(tok) != 64 {
		return "", fmt.Errorf("%s does not hold a 64-hex-character "+
			"token; delete it to make a new one", path)
	}
	return tok, nil
}

// ErrSecretFile reports a file holding a secret (token, key, webhook
// secret) that others can read, or that holds no usable secret.
var ErrSecretFile = errors.New("unsafe secret file")

// CheckPrivateFile refuses a secret file that its group or others may
// read or write, as lnd and ssh do: the fix is chmod 600.
func CheckPrivateFile(path string) error {
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%w: %s has permissions %v; run chmod 600 "+
			"on it", ErrSecretFile, path, perm)
	}
	return nil
}

// Check returns the access a request's bearer token grants.
func (t Tokens) Check(r *http.Request) Access {
	auth := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok {
		return AccessNone
	}
	if subtle.ConstantTimeCompare([]byte(tok), []byte(t.Admin)) == 1 {
		return AccessAdmin
	}
	if subtle.ConstantTimeCompare([]byte(tok), []byte(t.ReadOnly)) == 1 {
		return AccessReadOnly
	}
	return AccessNone
}

// Middleware rejects requests without a valid token (401) and non-GET
// requests with only the read-only token (403). Paths in open (such as
// /health) need no token.
func (t Tokens) Middleware(next http.Handler, open ...string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, p := range open {
			if r.URL.Path == p {
				next.ServeHTTP(w, r)
				return
			}
		}
		switch access := t.Check(r); {
		case access == AccessNone:
			WriteError(w, http.StatusUnauthorized, "unauthenticated",
				"", "send 'Authorization: Bearer <token>' with "+
					"the admin.token or readonly.token from "+
					"the daemon's data directory")
		case access == AccessReadOnly && r.Method != http.MethodGet &&
			r.Method != http.MethodHead:
			WriteError(w, http.StatusForbidden, "read_only", "",
				"the read-only token can't "+r.Method+
					"; use the admin token")
		default:
			next.ServeHTTP(w, r)
		}
	})
}

func isIP(h string) bool {
	return net.ParseIP(h) != nil
}
