package tlv

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcutil/bech32"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/lightningnetwork/lnd/routing/route"
	lndtlv "github.com/lightningnetwork/lnd/tlv"
)

// OfferHRP is the human-readable prefix of every offer string. It tells a
// human and a parser at once what the string is, the way "lnbc" and "lno" do
// for BOLT 11 invoices and BOLT 12 offers.
const OfferHRP = "satoffer"

// MaxOfferLength bounds the offer string accepted by ParseOffer, so a pasted
// blob is refused before any decoding work. The longest offer this version
// writes is 428 characters (four nodes); the rest leaves room for future odd
// fields.
const MaxOfferLength = 1024

// MaxOfferNodes bounds how many nodes of one provider an offer lists
// (node_id plus extra_node_ids): enough for a small cluster, few enough that
// the offer stays pasteable and a sender's failover stays short.
const MaxOfferNodes = 4

// MaxLabelLength bounds Offer.Label in bytes: enough for a product name, small
// enough that the offer stays pasteable and fits in a QR code.
const MaxLabelLength = 64

// The field types of the offer's TLV payload. Fields every reader must
// understand are even: a parser that meets an even type it does not know
// refuses the offer instead of silently mis-reading it. Purely informational
// fields are odd and may be ignored ("it's OK to be odd").
const (
	offerTypeNode             uint64 = 2
	offerTypeExtraNodes       uint64 = 3
	offerTypeSubscriptionID   uint64 = 4
	offerTypePlanID           uint64 = 6
	offerTypePriceMsatPerSec  uint64 = 8
	offerTypeMinPaymentMsat   uint64 = 10
	offerTypeDefaultIncrement uint64 = 12
	offerTypeGracePeriod      uint64 = 14
	offerTypeMaxPrepay        uint64 = 16
	offerTypeLabel            uint64 = 17
)

// offerFieldNames names the offer's fields for error messages and the spec.
var offerFieldNames = map[uint64]string{
	offerTypeNode:             "node_id",
	offerTypeExtraNodes:       "extra_node_ids",
	offerTypeSubscriptionID:   "subscription_id",
	offerTypePlanID:           "plan_id",
	offerTypePriceMsatPerSec:  "price_msat_per_sec",
	offerTypeMinPaymentMsat:   "min_payment_msat",
	offerTypeDefaultIncrement: "default_increment_sec",
	offerTypeGracePeriod:      "grace_period_sec",
	offerTypeMaxPrepay:        "max_prepay_sec",
	offerTypeLabel:            "label",
}

// offerField names an offer field for errors.
func offerField(typ uint64) string {
	return fmt.Sprintf("field %s (type %d)", offerFieldNames[typ], typ)
}

// Offer is everything a sender needs to start paying a provider, as one
// string the provider hands to the payer. For a personal offer it carries the
// subscription id the provider created; for an open-enrolment plan it carries
// the plan id and each sender makes up its own subscription id.
type Offer struct {
	// Node is the receiver's node public key, the keysend destination a
	// sender tries first. Senders that predate ExtraNodes pay only this one.
	Node route.Vertex

	// ExtraNodes are the provider's other nodes, in the order a sender
	// fails over to them when Node is unreachable. Nil when the provider
	// runs one node; never empty but non-nil. At most MaxOfferNodes-1, all
	// distinct from each other and from Node.
	ExtraNodes []route.Vertex

	// SubscriptionID is set for a personal offer. Exactly one of
	// SubscriptionID and PlanID is set. Because the id authorises cancels,
	// a personal offer must be shared privately.
	SubscriptionID *SubscriptionID

	// PlanID is set for an open-enrolment offer, which may be published.
	PlanID *PlanID

	// PriceMsatPerSec is the price of one second of service.
	PriceMsatPerSec lnwire.MilliSatoshi

	// MinPayment is the smallest payment the receiver credits; smaller ones
	// are refused. It lets a provider keep per-payment overhead bounded.
	MinPayment lnwire.MilliSatoshi

	// DefaultIncrement is how much time a sender buys per payment unless
	// configured otherwise. Whole seconds, > 0.
	DefaultIncrement time.Duration

	// GracePeriod is how long the provider keeps serving after paid time
	// runs out before it suspends. Whole seconds, >= 0.
	GracePeriod time.Duration

	// MaxPrepay is the most paid time a subscription may hold ahead; a
	// payment that would exceed it is refused, which caps what a payer can
	// lose to a provider that disappears. Whole seconds, >= DefaultIncrement.
	MaxPrepay time.Duration

	// Label is an optional human description shown to the payer: UTF-8, at
	// most MaxLabelLength bytes, no control or bidi-override characters.
	Label string
}

// Validate checks that the offer can be encoded and honoured. It returns
// errors wrapping ErrBadOffer (and, where one applies, a more specific
// sentinel) naming the field and value.
func (o *Offer) Validate() error {
	if _, err := btcec.ParsePubKey(o.Node[:]); err != nil {
		return offerErr(nil, "node_id %x is not a valid compressed "+
			"public key: %v", o.Node[:], err)
	}

	if err := o.validateExtraNodes(); err != nil {
		return err
	}

	switch {
	case o.SubscriptionID == nil && o.PlanID == nil:
		return offerErr(ErrMissingRecord, "offer needs a subscription_id "+
			"or a plan_id")

	case o.SubscriptionID != nil && o.PlanID != nil:
		return offerErr(nil, "offer has both subscription_id and "+
			"plan_id, want exactly one")

	case o.SubscriptionID != nil && o.SubscriptionID.IsZero():
		return offerErr(ErrZeroID, "subscription_id")

	case o.PlanID != nil && o.PlanID.IsZero():
		return offerErr(ErrZeroID, "plan_id")
	}

	if o.PriceMsatPerSec == 0 {
		return offerErr(ErrBadValue, "price_msat_per_sec is 0, want > 0")
	}

	durations := []struct {
		name string
		d    time.Duration
		min  time.Duration
	}{
		{"default_increment", o.DefaultIncrement, time.Second},
		{"grace_period", o.GracePeriod, 0},
		{"max_prepay", o.MaxPrepay, o.DefaultIncrement},
	}
	for _, f := range durations {
		if _, err := durationSeconds(f.d); err != nil {
			return offerErr(ErrBadValue, "%s %v: %v", f.name, f.d, err)
		}
		if f.d < f.min {
			return offerErr(ErrBadValue, "%s %v is below %v", f.name,
				f.d, f.min)
		}
	}

	// A provider whose minimum exceeds the most a subscription may prepay
	// has published an offer no payment can satisfy.
	maxPrepaySecs := uint64(o.MaxPrepay / time.Second)
	hi, maxAmt := bits.Mul64(uint64(o.PriceMsatPerSec), maxPrepaySecs)
	if hi == 0 && uint64(o.MinPayment) > maxAmt {
		return offerErr(ErrBadValue, "min_payment_msat %d exceeds "+
			"price_msat_per_sec * max_prepay_sec = %d: no payment "+
			"could be accepted", uint64(o.MinPayment), maxAmt)
	}

	return validateLabel(o.Label)
}

// Nodes returns every destination of the offer in the order a sender tries
// them: node_id first, then the extra nodes as listed.
func (o *Offer) Nodes() []route.Vertex {
	nodes := make([]route.Vertex, 0, 1+len(o.ExtraNodes))
	nodes = append(nodes, o.Node)

	return append(nodes, o.ExtraNodes...)
}

// validateExtraNodes refuses extra nodes that a sender could not pay (not a
// valid point), that would make it pay one node under two entries
// (duplicates, or the primary repeated), or more than MaxOfferNodes in all.
func (o *Offer) validateExtraNodes() error {
	field := offerField(offerTypeExtraNodes)
	switch {
	case o.ExtraNodes == nil:
		return nil

	case len(o.ExtraNodes) == 0:
		// No extra nodes is encoded by omission; accepting an empty
		// field too would give one offer two strings.
		return offerErr(ErrBadValue, "%s is present but empty", field)

	case len(o.ExtraNodes)+1 > MaxOfferNodes:
		return offerErr(ErrOversized, "%s lists %d nodes, so the offer "+
			"has %d; at most %d", field, len(o.ExtraNodes),
			len(o.ExtraNodes)+1, MaxOfferNodes)
	}

	seen := map[route.Vertex]bool{o.Node: true}
	for i, n := range o.ExtraNodes {
		if _, err := btcec.ParsePubKey(n[:]); err != nil {
			return offerErr(ErrBadValue, "%s entry %d: %x is not a "+
				"valid compressed public key: %v", field, i,
				n[:], err)
		}
		if seen[n] {
			return offerErr(ErrBadValue, "%s entry %d: node %x is "+
				"listed twice (node_id included)", field, i,
				n[:])
		}
		seen[n] = true
	}

	return nil
}

// validateLabel rejects labels that are too long, not UTF-8, or that could
// disguise themselves on the payer's screen (control and bidi characters).
func validateLabel(label string) error {
	if len(label) > MaxLabelLength {
		return offerErr(ErrOversized, "label has %d bytes, at most %d",
			len(label), MaxLabelLength)
	}
	if !utf8.ValidString(label) {
		return offerErr(ErrBadValue, "label %q is not valid UTF-8", label)
	}
	for i, r := range label {
		if unicode.IsControl(r) || isBidiControl(r) {
			return offerErr(ErrBadValue, "label %q has forbidden "+
				"character %U at byte %d", label, r, i)
		}
	}

	return nil
}

// isBidiControl reports the Unicode bidirectional embedding, override and
// isolate characters, which can make a label display differently from what it
// says (Trojan Source, CVE-2021-42574).
func isBidiControl(r rune) bool {
	return (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) ||
		r == 0x200e || r == 0x200f || r == 0x061c
}

// durationSeconds converts a duration that must be whole seconds and fit the
// offer's 32-bit field.
func durationSeconds(d time.Duration) (uint32, error) {
	switch {
	case d < 0:
		return 0, errors.New("negative")

	case d%time.Second != 0:
		return 0, errors.New("not whole seconds")

	case d/time.Second > math.MaxUint32:
		return 0, fmt.Errorf("more than %d seconds",
			uint64(math.MaxUint32))
	}

	return uint32(d / time.Second), nil
}

// offerErr wraps ErrBadOffer and, when given, one more specific sentinel.
func offerErr(specific error, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if specific == nil {
		return fmt.Errorf("%w: %s", ErrBadOffer, msg)
	}

	return fmt.Errorf("%w: %w: %s", ErrBadOffer, specific, msg)
}

// payload returns the offer's canonical TLV stream. It assumes Validate
// passed.
func (o *Offer) payload() []byte {
	var (
		node      = [33]byte(o.Node)
		price     = uint64(o.PriceMsatPerSec)
		minPay    = uint64(o.MinPayment)
		increment = uint32(o.DefaultIncrement / time.Second)
		grace     = uint32(o.GracePeriod / time.Second)
		maxPrepay = uint32(o.MaxPrepay / time.Second)
		label     = []byte(o.Label)
	)

	recs := []lndtlv.Record{
		lndtlv.MakePrimitiveRecord(lndtlv.Type(offerTypeNode), &node),
	}
	if len(o.ExtraNodes) > 0 {
		extra := make([]byte, 0, len(o.ExtraNodes)*33)
		for _, n := range o.ExtraNodes {
			extra = append(extra, n[:]...)
		}
		recs = append(recs, lndtlv.MakePrimitiveRecord(
			lndtlv.Type(offerTypeExtraNodes), &extra,
		))
	}
	if o.SubscriptionID != nil {
		recs = append(recs, idRecord(offerTypeSubscriptionID,
			(*[IDSize]byte)(o.SubscriptionID)))
	}
	if o.PlanID != nil {
		recs = append(recs, idRecord(offerTypePlanID,
			(*[IDSize]byte)(o.PlanID)))
	}
	recs = append(recs,
		tu64Record(offerTypePriceMsatPerSec, &price),
		tu64Record(offerTypeMinPaymentMsat, &minPay),
		tu32Record(offerTypeDefaultIncrement, &increment),
		tu32Record(offerTypeGracePeriod, &grace),
		tu32Record(offerTypeMaxPrepay, &maxPrepay),
	)
	if len(label) > 0 {
		recs = append(recs, lndtlv.MakePrimitiveRecord(
			lndtlv.Type(offerTypeLabel), &label,
		))
	}

	var b bytes.Buffer
	stream := lndtlv.MustNewStream(recs...)
	if err := stream.Encode(&b); err != nil {
		// Writing to a bytes.Buffer with our codecs cannot fail.
		panic(fmt.Sprintf("encode offer: %v", err))
	}

	return b.Bytes()
}

// tu64Record is a truncated (minimal big-endian) uint64 record, as BOLT 4 uses
// for amounts: small prices cost few bytes, and the minimal form keeps the
// encoding canonical.
func tu64Record(typ uint64, v *uint64) lndtlv.Record {
	return lndtlv.MakeDynamicRecord(lndtlv.Type(typ), v, func() uint64 {
		return lndtlv.SizeTUint64(*v)
	}, lndtlv.ETUint64, lndtlv.DTUint64)
}

// tu32Record is the truncated uint32 counterpart of tu64Record.
func tu32Record(typ uint64, v *uint32) lndtlv.Record {
	return lndtlv.MakeDynamicRecord(lndtlv.Type(typ), v, func() uint64 {
		return lndtlv.SizeTUint32(*v)
	}, lndtlv.ETUint32, lndtlv.DTUint32)
}

// String returns the offer as a lowercase bech32m string with prefix
// "satoffer1". ParseOffer(o.String()) gives back an equal offer. String does
// not repair anything: an offer that fails Validate renders as an
// "<invalid offer: ...>" text that no parser accepts, so a broken offer is
// never handed out by accident.
func (o *Offer) String() string {
	if err := o.Validate(); err != nil {
		return fmt.Sprintf("<invalid offer: %v>", err)
	}

	data, err := bech32.ConvertBits(o.payload(), 8, 5, true)
	if err != nil {
		return fmt.Sprintf("<invalid offer: %v>", err)
	}
	s, err := bech32.EncodeM(OfferHRP, data)
	if err != nil {
		return fmt.Sprintf("<invalid offer: %v>", err)
	}

	return s
}

// ParseOffer strictly parses an offer string. It accepts the all-lowercase
// form String produces and its all-uppercase form (for QR codes); it refuses
// mixed case, surrounding whitespace or any other extra character, a wrong
// prefix, a bad or bech32 (non-m) checksum (ErrOfferChecksum), non-zero
// padding, a non-canonical payload, unknown even field types, and any offer
// that fails Validate. Unknown odd fields are ignored. Every error wraps
// ErrBadOffer.
func ParseOffer(s string) (*Offer, error) {
	o, _, err := parseOffer(s, false)
	return o, err
}

// ParseStoredOffer parses an offer a sender accepted earlier and stored. It
// is ParseOffer except for extra_node_ids (type 3): a sender that predates
// type 3 ignored the odd field and accepted offers whose type 3 this version
// refuses (a repeated or bad key, the primary repeated, an empty field, a
// length not a multiple of 33, too many nodes). Refusing them now would stop
// the daemon from loading its subscriptions, so an invalid type 3 is dropped
// instead: the offer is paid at node_id only, as the old sender paid it, and
// dropped says why (nil when nothing was dropped) for the caller to log.
// New offers must go through ParseOffer.
func ParseStoredOffer(s string) (o *Offer, dropped error, err error) {
	return parseOffer(s, true)
}

// parseOffer is ParseOffer; with lenient set, an invalid extra_node_ids
// field is dropped (and returned as dropped) instead of refused.
func parseOffer(s string, lenient bool) (*Offer, error, error) {
	if len(s) > MaxOfferLength {
		return nil, nil, offerErr(ErrOversized, "offer has %d characters, "+
			"at most %d", len(s), MaxOfferLength)
	}

	var hasLower, hasUpper bool
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 33 || c > 126 {
			return nil, nil, offerErr(nil, "invalid character %q at "+
				"position %d (whitespace or non-ASCII; copy the "+
				"offer exactly)", rune(c), i)
		}
		hasLower = hasLower || (c >= 'a' && c <= 'z')
		hasUpper = hasUpper || (c >= 'A' && c <= 'Z')
	}
	if hasLower && hasUpper {
		return nil, nil, offerErr(nil, "offer mixes upper and lower case")
	}

	lower := strings.ToLower(s)
	sep := strings.LastIndexByte(lower, '1')
	if sep < 0 || lower[:sep] != OfferHRP {
		prefix := lower
		if sep >= 0 {
			prefix = lower[:sep]
		}
		if len(prefix) > 16 {
			prefix = prefix[:16] + "..."
		}

		return nil, nil, offerErr(nil, "prefix %q is not %q: not a "+
			"satstream offer", prefix, OfferHRP+"1")
	}

	hrp, data, version, err := bech32.DecodeNoLimitWithVersion(lower)
	var checksumErr bech32.ErrInvalidChecksum
	switch {
	case errors.As(err, &checksumErr):
		return nil, nil, offerErr(ErrOfferChecksum, "checksum %q does not "+
			"match the offer (typo or truncated copy?)",
			checksumErr.Actual)

	case err != nil:
		return nil, nil, offerErr(nil, "not bech32: %v", err)

	case hrp != OfferHRP:
		// Unreachable after the prefix check; kept for safety.
		return nil, nil, offerErr(nil, "prefix %q is not %q", hrp, OfferHRP)

	case version != bech32.VersionM:
		return nil, nil, offerErr(ErrOfferChecksum, "offer carries a bech32 "+
			"checksum, offers use bech32m")
	}

	payload, err := bech32.ConvertBits(data, 5, 8, false)
	if err != nil {
		return nil, nil, offerErr(ErrMalformed, "bad padding: %v", err)
	}

	fields, err := streamToMap(payload)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrBadOffer, err)
	}

	var dropped error
	if extra, ok := fields[offerTypeExtraNodes]; ok && lenient {
		o := Offer{ExtraNodes: []route.Vertex{}}
		nodes, err := decodeExtraNodes(extra)
		if err == nil {
			o.ExtraNodes = nodes
			if len(fields[offerTypeNode]) == 33 {
				copy(o.Node[:], fields[offerTypeNode])
			}
			err = o.validateExtraNodes()
		}
		if err != nil {
			dropped = err
			delete(fields, offerTypeExtraNodes)
		}
	}

	o, err := offerFromFields(fields)
	if err != nil {
		return nil, nil, err
	}
	if err := o.Validate(); err != nil {
		return nil, nil, err
	}

	return o, dropped, nil
}

// offerFromFields maps the decoded payload onto an Offer, checking presence,
// lengths and canonical (minimal) integer encodings, and refusing unknown even
// types.
func offerFromFields(fields map[uint64][]byte) (*Offer, error) {
	for typ := range fields {
		if _, known := offerFieldNames[typ]; !known && typ%2 == 0 {
			return nil, offerErr(nil, "unknown required field type %d "+
				"(offer from a newer version?)", typ)
		}
	}

	var (
		o                       Offer
		node                    [33]byte
		price, minPay           uint64
		increment, grace, maxPr uint32
	)

	fixed := []struct {
		typ      uint64
		size     int
		required bool
		rec      lndtlv.Record
	}{
		{offerTypeNode, 33, true, lndtlv.MakePrimitiveRecord(
			lndtlv.Type(offerTypeNode), &node)},
	}
	for _, f := range fixed {
		if err := offerDecodeField(fields, f.typ, f.size, f.size,
			f.required, f.rec); err != nil {

			return nil, err
		}
	}
	o.Node = node

	if extra, ok := fields[offerTypeExtraNodes]; ok {
		nodes, err := decodeExtraNodes(extra)
		if err != nil {
			return nil, err
		}
		o.ExtraNodes = nodes
	}

	if _, ok := fields[offerTypeSubscriptionID]; ok {
		var id SubscriptionID
		err := offerDecodeField(fields, offerTypeSubscriptionID, IDSize,
			IDSize, true, idRecord(offerTypeSubscriptionID,
				(*[IDSize]byte)(&id)))
		if err != nil {
			return nil, err
		}
		o.SubscriptionID = &id
	}
	if _, ok := fields[offerTypePlanID]; ok {
		var id PlanID
		err := offerDecodeField(fields, offerTypePlanID, IDSize, IDSize,
			true, idRecord(offerTypePlanID, (*[IDSize]byte)(&id)))
		if err != nil {
			return nil, err
		}
		o.PlanID = &id
	}

	ints := []struct {
		typ uint64
		max int
		rec lndtlv.Record
	}{
		{offerTypePriceMsatPerSec, 8,
			tu64Record(offerTypePriceMsatPerSec, &price)},
		{offerTypeMinPaymentMsat, 8,
			tu64Record(offerTypeMinPaymentMsat, &minPay)},
		{offerTypeDefaultIncrement, 4,
			tu32Record(offerTypeDefaultIncrement, &increment)},
		{offerTypeGracePeriod, 4,
			tu32Record(offerTypeGracePeriod, &grace)},
		{offerTypeMaxPrepay, 4, tu32Record(offerTypeMaxPrepay, &maxPr)},
	}
	for _, f := range ints {
		err := offerDecodeField(fields, f.typ, 0, f.max, true, f.rec)
		if err != nil {
			return nil, err
		}
	}
	o.PriceMsatPerSec = lnwire.MilliSatoshi(price)
	o.MinPayment = lnwire.MilliSatoshi(minPay)
	o.DefaultIncrement = time.Duration(increment) * time.Second
	o.GracePeriod = time.Duration(grace) * time.Second
	o.MaxPrepay = time.Duration(maxPr) * time.Second

	if label, ok := fields[offerTypeLabel]; ok {
		if len(label) == 0 {
			// An empty label is encoded by omission; accepting
			// both forms would give one offer two strings.
			return nil, offerErr(ErrBadLength, "%s is present but "+
				"empty", offerField(offerTypeLabel))
		}
		o.Label = string(label)
	}

	return &o, nil
}

// decodeExtraNodes splits the extra_node_ids field into 33-byte keys. The
// count and the keys themselves are checked by Validate.
func decodeExtraNodes(v []byte) ([]route.Vertex, error) {
	field := offerField(offerTypeExtraNodes)
	switch {
	case len(v) == 0:
		return nil, offerErr(ErrBadLength, "%s is present but empty",
			field)

	case len(v)%33 != 0:
		return nil, offerErr(ErrBadLength, "%s has %d bytes, want a "+
			"multiple of 33", field, len(v))

	case len(v)/33+1 > MaxOfferNodes:
		return nil, offerErr(ErrOversized, "%s lists %d nodes, so the "+
			"offer has %d; at most %d", field, len(v)/33,
			len(v)/33+1, MaxOfferNodes)
	}

	nodes := make([]route.Vertex, len(v)/33)
	for i := range nodes {
		copy(nodes[i][:], v[i*33:(i+1)*33])
	}

	return nodes, nil
}

// offerDecodeField checks one field's presence and length bounds and decodes
// it with lnd's codec, which also rejects non-minimal truncated integers.
func offerDecodeField(fields map[uint64][]byte, typ uint64, minLen,
	maxLen int, required bool, rec lndtlv.Record) error {

	v, ok := fields[typ]
	switch {
	case !ok && required:
		return offerErr(ErrMissingRecord, "%s", offerField(typ))

	case !ok:
		return nil

	case len(v) < minLen || len(v) > maxLen:
		want := fmt.Sprintf("%d", maxLen)
		if minLen != maxLen {
			want = fmt.Sprintf("%d to %d", minLen, maxLen)
		}

		return offerErr(ErrBadLength, "%s has %d bytes (%x), want %s",
			offerField(typ), len(v), v, want)
	}

	err := rec.Decode(bytes.NewReader(v), uint64(len(v)))
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return offerErr(ErrBadLength, "%s value %x is short",
			offerField(typ), v)
	}
	if err != nil {
		return offerErr(ErrBadValue, "%s value %x: %v", offerField(typ),
			v, err)
	}

	return nil
}
