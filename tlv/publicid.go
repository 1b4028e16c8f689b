package tlv

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// PublicIDPrefix starts the text form of every public subscription id, so
// a public id can never be mistaken for (or accepted as) the secret
// subscription id, which is bare hex.
const PublicIDPrefix = "sub_"

// publicIDTag separates the public id's hash from every other use of
// sha256 over a subscription id. It is part of the derivation: changing it
// changes every public id.
const publicIDTag = "satstream/public-subscription-id/v1"

// PublicID names a subscription without revealing its SubscriptionID: the
// first 16 bytes of sha256(tag || subscription id). The subscription id is
// a bearer secret (whoever knows it can pay into the subscription, cancel
// it from the payer's side or poison its sequence), so APIs, webhooks,
// logs and dashboards show the public id instead. It is derived, not
// stored or sent: payer and provider compute the same public id from the
// secret they share, with no protocol change, and a subscription made
// before public ids existed has one too. The hash is one-way, so the public
// id gives nothing towards the secret.
type PublicID [IDSize]byte

// PublicID derives the subscription's public id.
func (id SubscriptionID) PublicID() PublicID {
	h := sha256.New()
	h.Write([]byte(publicIDTag))
	h.Write(id[:])
	var p PublicID
	copy(p[:], h.Sum(nil))

	return p
}

// String returns "sub_" and 32 lowercase hex characters.
func (p PublicID) String() string {
	return PublicIDPrefix + hex.EncodeToString(p[:])
}

// IsZero reports the unset public id.
func (p PublicID) IsZero() bool {
	return p == PublicID{}
}

// ParsePublicID parses the form String produces ("sub_" and 32 hex
// characters, either case). Bare hex is refused with ErrBadValue: that is
// the form of the secret subscription id, and a caller that accepts both
// must decide which one it was given.
func ParsePublicID(s string) (PublicID, error) {
	var p PublicID
	rest, ok := strings.CutPrefix(s, PublicIDPrefix)
	if !ok {
		return p, fmt.Errorf("%w: public subscription id %s does not "+
			"start with %q", ErrBadValue, shortQuote(s), PublicIDPrefix)
	}
	if len(rest) != 2*IDSize {
		return p, fmt.Errorf("%w: public subscription id %s has %d hex "+
			"characters, want %d", ErrBadLength, shortQuote(s),
			len(rest), 2*IDSize)
	}
	if _, err := hex.Decode(p[:], []byte(rest)); err != nil {
		return PublicID{}, fmt.Errorf("%w: public subscription id %s "+
			"is not hex", ErrBadValue, shortQuote(s))
	}

	return p, nil
}

// shortQuote quotes at most the first 8 bytes of s for an error message:
// whatever a caller passed where a public id belongs (perhaps the secret
// itself) is not echoed back in full.
func shortQuote(s string) string {
	const max = 8
	if len(s) <= max {
		return fmt.Sprintf("%+q", s)
	}
	return fmt.Sprintf("%+q...", s[:max])
}

// IsPublicID reports whether s has the public id's prefix (whether or not
// the rest is valid), so an API can tell which form of id it was given.
func IsPublicID(s string) bool {
	return strings.HasPrefix(s, PublicIDPrefix)
}

// RedactSecrets replaces every standalone run of exactly 32 hex characters
// in text (one not touching another hex character) by the public id of
// the 16 bytes it spells, except a public id's own hex (after "sub_") and
// a plan id (after "plan ", public: it is in every offer). Older versions
// wrote the secret subscription id into free text (refusal reasons of
// unknown subscriptions, whose row carries no id); this turns any such
// text into one safe to show or log. A 64-hex payment hash is left alone.
func RedactSecrets(text string) string {
	return redactHex(text, func(before string) bool {
		return !strings.HasSuffix(before, PublicIDPrefix) &&
			!strings.HasSuffix(before, "plan ")
	})
}

// RedactSecretsAfter is RedactSecrets for the runs that directly follow
// lead only, for text (such as JSON) in which other 32-hex values are
// plan ids to keep.
func RedactSecretsAfter(text, lead string) string {
	return redactHex(text, func(before string) bool {
		return strings.HasSuffix(before, lead)
	})
}

// redactHex replaces each standalone 32-hex run of text for which
// replace, given the text before it, says so, by its public id.
func redactHex(text string, replace func(before string) bool) string {
	isHex := func(c byte) bool {
		return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' ||
			c >= 'A' && c <= 'F'
	}
	const n = 2 * IDSize
	var b strings.Builder
	last := 0
	for i := 0; i < len(text); {
		if !isHex(text[i]) {
			i++
			continue
		}
		j := i
		for j < len(text) && isHex(text[j]) {
			j++
		}
		if j-i == n && replace(text[:i]) {
			var id SubscriptionID
			_, err := hex.Decode(id[:], []byte(text[i:j]))
			if err == nil {
				b.WriteString(text[last:i])
				b.WriteString(id.PublicID().String())
				last = j
			}
		}
		i = j
	}
	if last == 0 {
		return text
	}
	b.WriteString(text[last:])

	return b.String()
}
