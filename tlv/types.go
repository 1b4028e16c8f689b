// Package tlv defines satstream's wire protocol: the custom TLV records a
// satstream sender attaches to every keysend payment, and the offer string a
// provider hands to a payer. The normative description is docs/protocol.md;
// its test vectors live in testdata/vectors.json and are checked by this
// package's tests so that code and document cannot drift apart.
//
// Everything here is pure: no lnd connection, no storage, no clock. Both
// daemons (satstream-sender and satstream-receiver) share it so that the two
// ends agree byte for byte.
package tlv

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"

	lndtlv "github.com/lightningnetwork/lnd/tlv"
)

// The custom record types satstream puts in a keysend payment's final-hop
// onion payload. They are kept in this single block so that a reviewer can
// check at one glance that they are odd (other nodes that do not know them
// ignore them instead of failing the payment: "it's OK to be odd"), at least
// 65536 (lnd's record.CustomTypeStart; lower numbers belong to the BOLTs) and
// distinct from every number in the community registry (696969, 7629169,
// 7629171, 7629173, 7629175, 34349334.., 133773310, 5482373484) and from
// lnd's experimental 106823. All five share the prefix 0x5353 ("SS") and so
// encode as a 5-byte BigSize type.
const (
	// TypeVersion carries the protocol version (one byte, Version1). It comes
	// first so a receiver can refuse a future format before it interprets
	// anything else.
	TypeVersion uint64 = 1397948417 // 0x53530001

	// TypeSubscriptionID carries the 16-byte random subscription id: the key
	// under which the receiver credits time, and a bearer secret between
	// payer and provider.
	TypeSubscriptionID uint64 = 1397948419 // 0x53530003

	// TypeSequence carries the per-subscription sequence number (8-byte
	// big-endian, >= 1) that lets the receiver credit each payment at most
	// once even when the payer retries with a new payment hash.
	TypeSequence uint64 = 1397948421 // 0x53530005

	// TypePlanID carries the optional 16-byte plan id of an open-enrolment
	// offer, so the receiver can create the subscription on first payment.
	TypePlanID uint64 = 1397948423 // 0x53530007

	// TypeCancel is the optional, zero-length payer-cancel flag. A payment
	// carrying it is a cancel message that the receiver records and then
	// refuses, so cancelling costs the payer nothing.
	TypeCancel uint64 = 1397948425 // 0x53530009
)

// ourTypes lists our record types in ascending order, which is also the
// order in which Decode checks them so that its errors are deterministic.
var ourTypes = [...]uint64{
	TypeVersion, TypeSubscriptionID, TypeSequence, TypePlanID, TypeCancel,
}

// recordNames gives each record a human name for error messages and docs.
var recordNames = map[uint64]string{
	TypeVersion:        "version",
	TypeSubscriptionID: "subscription_id",
	TypeSequence:       "sequence",
	TypePlanID:         "plan_id",
	TypeCancel:         "cancel",
}

// recordName returns the name of one of our record types, for errors.
func recordName(typ uint64) string {
	if n, ok := recordNames[typ]; ok {
		return fmt.Sprintf("%s record (type %d)", n, typ)
	}

	return fmt.Sprintf("record type %d", typ)
}

// Version1 is the only protocol version defined so far. The version record is
// a single byte so that a receiver can tell an incompatible future sender
// apart from garbage and refuse its payments instead of crediting them wrongly.
const Version1 uint8 = 1

// IDSize is the size of subscription and plan ids: 128 random bits make
// collisions and guessing infeasible while costing only 16 onion bytes.
const IDSize = 16

// SubscriptionID identifies one subscription between one payer and one
// provider. It is random (NewSubscriptionID), never derived from anything the
// provider or the route can see, because knowing it is what allows a payment
// to be credited to, or a cancel to be sent for, the subscription.
type SubscriptionID [IDSize]byte

// NewSubscriptionID returns a fresh random id from crypto/rand, because ids
// must be unguessable (they authorise cancel messages).
func NewSubscriptionID() (SubscriptionID, error) {
	var id SubscriptionID
	if _, err := rand.Read(id[:]); err != nil {
		return id, fmt.Errorf("generate subscription id: %w", err)
	}

	return id, nil
}

// ParseSubscriptionID parses the 32-character lowercase or uppercase hex form
// produced by String, so ids can travel through configs, logs and APIs.
func ParseSubscriptionID(s string) (SubscriptionID, error) {
	var id SubscriptionID
	if err := parseID(s, id[:], "subscription id"); err != nil {
		return id, err
	}

	return id, nil
}

// String returns the id as 32 lowercase hex characters, the form used in logs,
// APIs and lncli's --data.
func (id SubscriptionID) String() string {
	return hex.EncodeToString(id[:])
}

// IsZero reports whether the id is all zeroes, the value of a forgotten,
// never-initialised id, which is never valid on the wire.
func (id SubscriptionID) IsZero() bool {
	return id == SubscriptionID{}
}

// PlanID identifies an open-enrolment plan: an offer any number of payers may
// take up, each under its own sender-chosen SubscriptionID.
type PlanID [IDSize]byte

// NewPlanID returns a fresh random plan id from crypto/rand, so plan ids of
// different providers never collide.
func NewPlanID() (PlanID, error) {
	var id PlanID
	if _, err := rand.Read(id[:]); err != nil {
		return id, fmt.Errorf("generate plan id: %w", err)
	}

	return id, nil
}

// ParsePlanID parses the 32-character hex form produced by String.
func ParsePlanID(s string) (PlanID, error) {
	var id PlanID
	if err := parseID(s, id[:], "plan id"); err != nil {
		return id, err
	}

	return id, nil
}

// String returns the plan id as 32 lowercase hex characters.
func (id PlanID) String() string {
	return hex.EncodeToString(id[:])
}

// IsZero reports whether the plan id is all zeroes (never valid on the wire).
func (id PlanID) IsZero() bool {
	return id == PlanID{}
}

// parseID decodes exactly IDSize bytes of hex into dst.
func parseID(s string, dst []byte, what string) error {
	if len(s) != 2*IDSize {
		return fmt.Errorf("%w: %s %q has %d hex characters, want %d",
			ErrBadLength, what, s, len(s), 2*IDSize)
	}

	b, err := hex.DecodeString(s)
	if err != nil {
		return fmt.Errorf("%w: %s %q is not hex: %v", ErrBadValue,
			what, s, err)
	}
	copy(dst, b)

	return nil
}

// idRecord builds an lnd tlv record for a 16-byte id. lnd's primitive
// records have no [16]byte case, so this supplies a codec that insists on the
// exact length instead of trusting the length prefix.
func idRecord(typ uint64, id *[IDSize]byte) lndtlv.Record {
	return lndtlv.MakeStaticRecord(
		lndtlv.Type(typ), id, IDSize, encodeID, decodeID,
	)
}

// encodeID is the lnd tlv Encoder for *[IDSize]byte.
func encodeID(w io.Writer, val interface{}, _ *[8]byte) error {
	id, ok := val.(*[IDSize]byte)
	if !ok {
		return lndtlv.NewTypeForEncodingErr(val, "[16]byte")
	}
	_, err := w.Write(id[:])

	return err
}

// decodeID is the lnd tlv Decoder for *[IDSize]byte; it refuses any length
// but IDSize so a short or long id can never be half-read.
func decodeID(r io.Reader, val interface{}, _ *[8]byte, l uint64) error {
	id, ok := val.(*[IDSize]byte)
	if !ok || l != IDSize {
		return lndtlv.NewTypeForDecodingErr(val, "[16]byte", l, IDSize)
	}
	_, err := io.ReadFull(r, id[:])

	return err
}
