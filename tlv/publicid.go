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
		return p, fmt.Errorf("%w: public subscription id %q does not "+
			"start with %q", ErrBadValue, s, PublicIDPrefix)
	}
	if err := parseID(rest, p[:], "public subscription id"); err != nil {
		return p, err
	}

	return p, nil
}

// IsPublicID reports whether s has the public id's prefix (whether or not
// the rest is valid), so an API can tell which form of id it was given.
func IsPublicID(s string) bool {
	return strings.HasPrefix(s, PublicIDPrefix)
}
