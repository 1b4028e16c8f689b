package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Every request carries two signatures of the same body: satstream's own
// header in Stripe's style, and the three headers of the Standard Webhooks
// specification (https://www.standardwebhooks.com), so a provider can use
// an existing verifier library. Each lists one signature per active
// secret: while a secret is rotated both the old and the new one sign.
const (
	// SignatureHeader is satstream's header: "t=<unix>,v1=<hex>[,v1=...]".
	SignatureHeader = "Satstream-Signature"
	// IDHeader is Standard Webhooks' message id: the event's id (evt_...).
	IDHeader = "webhook-id"
	// TimestampHeader is Standard Webhooks' send time in Unix seconds.
	TimestampHeader = "webhook-timestamp"
	// StandardSignatureHeader is Standard Webhooks' signature list:
	// "v1,<base64>[ v1,<base64>...]".
	StandardSignatureHeader = "webhook-signature"
)

// ErrBadSignature is returned by Verify for a missing, malformed, stale or
// wrong signature.
var ErrBadSignature = errors.New("bad webhook signature")

// macHex is the hex HMAC-SHA256 of ts + "." + body under secret.
func macHex(secret []byte, ts string, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(ts))
	mac.Write([]byte("."))
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

// Sign returns the Satstream-Signature header value for body sent at t:
// "t=<unix>,v1=<hex HMAC-SHA256(secret, t + "." + body)>".
func Sign(secret []byte, t time.Time, body []byte) string {
	return SignAll([][]byte{secret}, t, body)
}

// SignAll is Sign with one v1 signature per secret, as Stripe sends while
// a secret is rotated.
func SignAll(secrets [][]byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	var b strings.Builder
	b.WriteString("t=" + ts)
	for _, s := range secrets {
		b.WriteString(",v1=" + macHex(s, ts, body))
	}
	return b.String()
}

// Verify checks a Satstream-Signature header the way a provider's endpoint
// should: one of its v1 signatures must match and the timestamp be within
// tolerance of now.
func Verify(secret []byte, header string, body []byte, now time.Time,
	tolerance time.Duration) error {

	var (
		ts   string
		sigs []string
	)
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sigs = append(sigs, v)
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return fmt.Errorf("%w: malformed header %q", ErrBadSignature, header)
	}
	want := []byte(macHex(secret, ts, body))
	ok := false
	for _, sig := range sigs {
		if hmac.Equal(want, []byte(sig)) {
			ok = true
		}
	}
	if !ok {
		return fmt.Errorf("%w: HMAC mismatch", ErrBadSignature)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: timestamp %d outside tolerance",
			ErrBadSignature, sec)
	}
	return nil
}

// standardPrefix marks a secret written the Standard Webhooks way: the
// prefix, then the key in padded standard base64.
const standardPrefix = "whsec_"

// StandardKey is the HMAC key a Standard Webhooks library derives from a
// secret: the base64 after "whsec_" decoded (the generated secrets,
// "whsec_" and 64 hex digits, are such base64; CheckSecret refuses a
// "whsec_" secret that does not decode). Any other secret is used as it
// is; a library then needs it as "whsec_" + base64(secret).
func StandardKey(secret []byte) []byte {
	if rest, ok := strings.CutPrefix(string(secret), standardPrefix); ok {
		if key, err := base64.StdEncoding.DecodeString(rest); err == nil &&
			len(key) > 0 {

			return key
		}
	}
	return secret
}

// SignStandard returns the webhook-signature value for message id with
// body sent at t: "v1,<base64 HMAC-SHA256(key, id.t.body)>", one per
// secret, separated by spaces.
func SignStandard(secrets [][]byte, id string, t time.Time,
	body []byte) string {

	ts := strconv.FormatInt(t.Unix(), 10)
	sigs := make([]string, 0, len(secrets))
	for _, s := range secrets {
		mac := hmac.New(sha256.New, StandardKey(s))
		mac.Write([]byte(id + "." + ts + "."))
		mac.Write(body)
		sigs = append(sigs, "v1,"+base64.StdEncoding.EncodeToString(
			mac.Sum(nil)))
	}
	return strings.Join(sigs, " ")
}

// SetSignatureHeaders signs a request carrying event id's body at t with
// every secret, in both formats.
func SetSignatureHeaders(h http.Header, secrets [][]byte, id string,
	t time.Time, body []byte) {

	h.Set(SignatureHeader, SignAll(secrets, t, body))
	h.Set(IDHeader, id)
	h.Set(TimestampHeader, strconv.FormatInt(t.Unix(), 10))
	h.Set(StandardSignatureHeader, SignStandard(secrets, id, t, body))
}
