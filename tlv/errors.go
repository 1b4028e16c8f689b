package tlv

import "errors"

// The errors below are the package's whole error vocabulary. Every error
// returned by Decode, DecodeStream, Records.Encode, ParseOffer and
// Offer.Validate wraps exactly one of the record sentinels, or, for offers,
// ErrBadOffer plus at most one more specific sentinel, with %w and context
// naming the record or field and the offending value. Callers branch with
// errors.Is; the receiver refuses (cancels) a held HTLC on any record error
// except ErrNotSatstream.
var (
	// ErrNotSatstream means none of satstream's record types is present: the
	// payment belongs to someone else (a tip, a podcast boost, a plain
	// keysend) and the receiver settles it untouched.
	ErrNotSatstream = errors.New("not a satstream payment")

	// ErrMissingRecord means a satstream payment lacks a required record, so
	// it cannot be attributed to a subscription.
	ErrMissingRecord = errors.New("required record missing")

	// ErrBadLength means a record's value does not have the exact length its
	// type prescribes; the value is never half-read or padded.
	ErrBadLength = errors.New("record has wrong length")

	// ErrUnknownVersion means the version record names a protocol version
	// this code does not speak; nothing else in the payment is interpreted.
	ErrUnknownVersion = errors.New("unknown protocol version")

	// ErrDuplicateRecord means a TLV stream carries the same type twice.
	// Only DecodeStream and ParseOffer can see it: a Go map cannot hold a
	// key twice, and lnd rejects a duplicated onion record before it builds
	// the custom-records map that Decode reads.
	ErrDuplicateRecord = errors.New("duplicate record")

	// ErrUnsorted means a TLV stream's types are not strictly ascending, which
	// BOLT 1 forbids so that every message has one canonical encoding.
	ErrUnsorted = errors.New("records not in ascending type order")

	// ErrMalformed means a TLV stream cannot be framed at all: it is
	// truncated, or a BigSize type or length is not minimally encoded.
	ErrMalformed = errors.New("malformed tlv stream")

	// ErrOversized means the input is larger than anything a Lightning onion
	// can carry (MaxPayloadSize), or an offer or label exceeds its bound; it
	// is refused before any allocation that size would need.
	ErrOversized = errors.New("data too large")

	// ErrZeroSequence means the sequence record is zero; sequences start at
	// 1 so that 0 can mean "nothing credited yet" in receiver state.
	ErrZeroSequence = errors.New("sequence number is zero")

	// ErrZeroID means a subscription or plan id is all zeroes: the value of
	// an id someone forgot to generate. Accepting it would put every such
	// buggy sender on one shared subscription.
	ErrZeroID = errors.New("id is all zeroes")

	// ErrBadValue means a value has the right length but is not allowed,
	// for example an id that is not hex.
	ErrBadValue = errors.New("invalid value")

	// ErrBadOffer is wrapped by every error ParseOffer and Offer.Validate
	// return, so callers can report "that is not a valid offer" with one
	// check and still show the detailed message.
	ErrBadOffer = errors.New("invalid offer")

	// ErrOfferChecksum means the offer string's bech32m checksum does not
	// match: almost certainly a typo or a truncated copy-paste.
	ErrOfferChecksum = errors.New("offer checksum mismatch")
)
