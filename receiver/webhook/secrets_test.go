package webhook_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btclog/v2"
	rt "github.com/satstream/satstream/receiver/receivertest"
	"github.com/satstream/satstream/receiver/webhook"
	"github.com/stretchr/testify/require"
)

// verifyStandard is a Standard Webhooks verifier written from the
// specification (https://www.standardwebhooks.com), not from our signer:
// the key is the base64 after "whsec_" decoded; the signed content is
// "<webhook-id>.<webhook-timestamp>.<raw body>"; webhook-signature holds
// space-separated "v1,<base64 HMAC-SHA256>" entries, one match is enough;
// the timestamp must be within 5 minutes of now.
func verifyStandard(secret string, h http.Header, body []byte,
	now time.Time) error {

	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"),
		h.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return errors.New("missing header")
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errors.New("bad timestamp")
	}
	if d := now.Sub(time.Unix(sec, 0)); d > 5*time.Minute ||
		d < -5*time.Minute {

		return errors.New("timestamp too old or new")
	}
	key, err := base64.StdEncoding.DecodeString(
		strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return err
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "." + string(body)))
	want := mac.Sum(nil)
	for _, entry := range strings.Split(sigs, " ") {
		version, sig, ok := strings.Cut(entry, ",")
		if !ok || version != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(sig)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return errors.New("no matching signature")
}

// TestRotationSignedWithOneGlobalSecret reproduces the single global
// secret: an endpoint could not have a secret of its own, a rotation could
// not keep the old secret valid while endpoints switch to the new one,
// and providers could not use a Standard Webhooks library. Each endpoint
// now signs with its own secrets (all of them during a rotation), in both
// satstream's header and the Standard Webhooks headers; an endpoint
// without one keeps the global secret.
func TestRotationSignedWithOneGlobalSecret(t *testing.T) {
	t.Parallel()
	const (
		global = "whsec_0000000000000000000000000000000000000000000000000000000000000000"
		oldSec = "whsec_1111111111111111111111111111111111111111111111111111111111111111"
		newSec = "whsec_2222222222222222222222222222222222222222222222222222222222222222"
	)
	type request struct {
		h    http.Header
		body []byte
	}
	var mu sync.Mutex
	got := map[string][]request{}
	handler := func(name string) http.Handler {
		return http.HandlerFunc(func(_ http.ResponseWriter,
			r *http.Request) {

			body, _ := io.ReadAll(r.Body)
			mu.Lock()
			defer mu.Unlock()
			got[name] = append(got[name], request{r.Header, body})
		})
	}
	rotating := httptest.NewServer(handler("rotating"))
	t.Cleanup(rotating.Close)
	plain := httptest.NewServer(handler("plain"))
	t.Cleanup(plain.Close)

	db := rt.OpenStore(t).Receiver()
	appendEvents(t, db, 1, time.Now())
	runDispatcher(t, webhook.New(webhook.Config{Store: db,
		URLs:   []string{rotating.URL, plain.URL},
		Secret: []byte(global),
		EndpointSecrets: map[string][][]byte{
			rotating.URL: {[]byte(oldSec), []byte(newSec)},
		},
		Log: btclog.Disabled, InitialBackoff: time.Millisecond,
		MaxBackoff: time.Millisecond}))
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got["rotating"]) == 1 && len(got["plain"]) == 1
	}, 10*time.Second, 5*time.Millisecond)

	mu.Lock()
	defer mu.Unlock()
	now := time.Now()
	tests := []struct {
		name     string
		endpoint string
		secret   string
		ok       bool
	}{
		{"old secret during rotation", "rotating", oldSec, true},
		{"new secret during rotation", "rotating", newSec, true},
		{"global not used where the endpoint has its own", "rotating",
			global, false},
		{"global where the endpoint has none", "plain", global, true},
		{"another endpoint's secret", "plain", newSec, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := got[tc.endpoint][0]
			var env webhook.Envelope
			require.NoError(t, json.Unmarshal(r.body, &env))
			require.Equal(t, env.ID, r.h.Get("webhook-id"),
				"the message id is the event id consumers "+
					"deduplicate by")
			stdErr := verifyStandard(tc.secret, r.h, r.body, now)
			ownErr := webhook.Verify([]byte(tc.secret),
				r.h.Get(webhook.SignatureHeader), r.body, now,
				5*time.Minute)
			if tc.ok {
				require.NoError(t, stdErr)
				require.NoError(t, ownErr)
			} else {
				require.Error(t, stdErr)
				require.ErrorIs(t, ownErr, webhook.ErrBadSignature)
			}
		})
	}
	require.Len(t, strings.Split(got["rotating"][0].h.Get(
		"webhook-signature"), " "), 2)
	require.Equal(t, 2, strings.Count(got["rotating"][0].h.Get(
		webhook.SignatureHeader), "v1="))
}

// TestStandardKeyOfAnyOtherSecret: a secret that is not "whsec_" and
// base64 is used as it is, and a library given "whsec_" + base64(secret)
// verifies it.
func TestStandardKeyOfAnyOtherSecret(t *testing.T) {
	t.Parallel()
	secret := []byte(strings.Repeat("not base64 !", 3))
	require.Equal(t, secret, webhook.StandardKey(secret))
	body := []byte(`{"id":"evt_1"}`)
	ts := time.Now()
	h := http.Header{}
	webhook.SetSignatureHeaders(h, [][]byte{secret}, "evt_1", ts, body)
	require.NoError(t, verifyStandard("whsec_"+
		base64.StdEncoding.EncodeToString(secret), h, body, ts))
}

// TestWhsecSecretThatIsNotBase64Accepted: a secret written "whsec_..."
// whose rest is not valid padded base64 (here 62 hex digits, e.g.
// `openssl rand -hex 31`) passed the config check, and the Standard
// Webhooks key silently fell back to the raw bytes, so a Standard
// Webhooks library given the secret "as it is" (what the docs say for
// whsec_ secrets) failed to decode it or verified with a different key.
// "whsec_" + 28 base64 characters is 34 bytes, enough for the length
// check, but its Standard Webhooks key was only 21 bytes. Both are now
// refused, naming the option and never repeating the secret.
func TestWhsecSecretThatIsNotBase64Accepted(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		secret string
		refuse bool
	}{
		{"rest not base64", "whsec_" + strings.Repeat("ab", 31), true},
		{"rest unpadded base64", "whsec_" + strings.Repeat("QUFB", 11) +
			"QQ", true},
		{"decoded key of 21 bytes", "whsec_" +
			strings.Repeat("QUFB", 7), true},
		{"generated (64 hex digits)", "whsec_" +
			strings.Repeat("0f", 32), false},
		{"base64 of 32 bytes", "whsec_" + base64.StdEncoding.
			EncodeToString([]byte(strings.Repeat("k", 32))), false},
		{"no prefix", strings.Repeat("ab", 31), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := webhook.CheckSecret([]byte(tc.secret),
				"--the.option")
			if !tc.refuse {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, webhook.ErrWeakSecret)
			require.Contains(t, err.Error(), "--the.option")
			rest := strings.TrimPrefix(tc.secret, "whsec_")
			require.NotContains(t, err.Error(), rest)
		})
	}
}
