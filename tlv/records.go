package tlv

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	lndtlv "github.com/lightningnetwork/lnd/tlv"
)

// MaxPayloadSize is the size of the per-hop area of a Lightning onion (BOLT 4,
// lnwire.OnionPacketSize minus version, key and HMAC). No hop payload, and so
// no custom-records set that came through the network, can be larger; input
// beyond it is refused with ErrOversized before it is parsed.
const MaxPayloadSize = 1300

// Fixed value sizes of our records, in bytes.
const (
	versionSize  = 1
	sequenceSize = 8
	cancelSize   = 0
)

// Records is the decoded form of satstream's custom records in one keysend
// payment. The zero value is not valid: Version, SubscriptionID and Sequence
// are required.
type Records struct {
	// Version is the protocol version; only Version1 exists.
	Version uint8

	// SubscriptionID says which subscription the payment pays for.
	SubscriptionID SubscriptionID

	// Sequence numbers the sender's payments within one subscription,
	// starting at 1. The receiver credits each (subscription, sequence) at
	// most once.
	Sequence uint64

	// PlanID, when not nil, names the open-enrolment plan under which the
	// receiver should create SubscriptionID if it does not exist yet.
	PlanID *PlanID

	// Cancel marks the payment as the payer's cancel message. The receiver
	// records the cancel and refuses the payment.
	Cancel bool
}

// Validate checks the invariants both ends rely on, with the same errors
// Decode gives for the same faults, so a sender cannot emit what a receiver
// would refuse.
func (r *Records) Validate() error {
	if r.Version != Version1 {
		return fmt.Errorf("%w: %s has value %d, want %d",
			ErrUnknownVersion, recordName(TypeVersion), r.Version,
			Version1)
	}
	if r.SubscriptionID.IsZero() {
		return fmt.Errorf("%w: %s", ErrZeroID,
			recordName(TypeSubscriptionID))
	}
	if r.Sequence == 0 {
		return fmt.Errorf("%w: %s", ErrZeroSequence,
			recordName(TypeSequence))
	}
	if r.PlanID != nil && r.PlanID.IsZero() {
		return fmt.Errorf("%w: %s", ErrZeroID, recordName(TypePlanID))
	}

	return nil
}

// tlvRecords returns lnd tlv records for the fields that are present, in
// ascending type order, pointing into r so they serve for encoding and
// decoding alike.
func (r *Records) tlvRecords() []lndtlv.Record {
	recs := []lndtlv.Record{
		lndtlv.MakePrimitiveRecord(lndtlv.Type(TypeVersion), &r.Version),
		idRecord(TypeSubscriptionID,
			(*[IDSize]byte)(&r.SubscriptionID)),
		lndtlv.MakePrimitiveRecord(
			lndtlv.Type(TypeSequence), &r.Sequence,
		),
	}
	if r.PlanID != nil {
		recs = append(recs, idRecord(TypePlanID,
			(*[IDSize]byte)(r.PlanID)))
	}
	if r.Cancel {
		// A zero-length value, written by lnd's no-op codec.
		recs = append(recs, lndtlv.MakeStaticRecord(
			lndtlv.Type(TypeCancel), nil, cancelSize, lndtlv.ENOP,
			lndtlv.DNOP,
		))
	}

	return recs
}

// Encode validates r and returns the custom-records map to hand to lnd
// (lnrpc's dest_custom_records, lndclient's SendPaymentRequest.CustomRecords).
// The caller adds the keysend preimage (5482373484) itself. The map is fresh
// and owned by the caller.
func (r *Records) Encode() (map[uint64][]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}

	recs := r.tlvRecords()
	out := make(map[uint64][]byte, len(recs))
	for i := range recs {
		var b bytes.Buffer
		if err := recs[i].Encode(&b); err != nil {
			// Only a bug in tlvRecords can get here.
			return nil, fmt.Errorf("encode %s: %w",
				recordName(uint64(recs[i].Type())), err)
		}

		// Keep zero-length values non-nil so "present" survives.
		out[uint64(recs[i].Type())] = append([]byte{}, b.Bytes()...)
	}

	return out, nil
}

// EncodeStream validates r and writes our records as a canonical TLV stream
// (types ascending, BigSize framing), the bytes they occupy in the onion.
// It exists for test vectors, size accounting and tools; payments use Encode.
func (r *Records) EncodeStream(w io.Writer) error {
	if err := r.Validate(); err != nil {
		return err
	}

	stream, err := lndtlv.NewStream(r.tlvRecords()...)
	if err != nil {
		return fmt.Errorf("build tlv stream: %w", err)
	}

	return stream.Encode(w)
}

// IsSatstream reports whether custom carries at least one of our record types,
// i.e. whether the receiver must either credit the payment or refuse it,
// rather than leave it to other applications.
func IsSatstream(custom map[uint64][]byte) bool {
	for _, typ := range ourTypes {
		if _, ok := custom[typ]; ok {
			return true
		}
	}

	return false
}

// Decode strictly parses the custom records lnd reports for a received HTLC
// (lnrpc InvoiceHTLC.custom_records, lndclient InvoiceHtlc.CustomRecords).
//
// Records of other applications (the keysend preimage 5482373484, podcast
// 7629169, lnd's 106823, ...) are ignored whatever they hold. When none of our
// types is present Decode returns ErrNotSatstream. Otherwise our records are
// checked in ascending type order and the first fault is returned: the version
// first (so nothing is interpreted under an unknown version), then lengths
// and values. The total size check (ErrOversized) covers everything in the
// map, because nothing larger than an onion can have arrived over Lightning.
//
// Duplicates cannot occur here: a map holds each key once, and lnd refuses a
// non-canonical onion payload (ErrStreamNotCanonical) before building it. Use
// DecodeStream for raw streams, where duplicates are detected.
func Decode(custom map[uint64][]byte) (*Records, error) {
	if !IsSatstream(custom) {
		return nil, ErrNotSatstream
	}

	if size := mapStreamSize(custom); size > MaxPayloadSize {
		return nil, fmt.Errorf("%w: custom records take %d bytes as a "+
			"tlv stream, an onion carries at most %d",
			ErrOversized, size, MaxPayloadSize)
	}

	var r Records
	if err := decodeOne(custom, TypeVersion, versionSize,
		lndtlv.MakePrimitiveRecord(lndtlv.Type(TypeVersion), &r.Version),
		true); err != nil {

		return nil, err
	}
	if r.Version != Version1 {
		return nil, fmt.Errorf("%w: %s has value %d, want %d",
			ErrUnknownVersion, recordName(TypeVersion), r.Version,
			Version1)
	}

	err := decodeOne(custom, TypeSubscriptionID, IDSize,
		idRecord(TypeSubscriptionID, (*[IDSize]byte)(&r.SubscriptionID)),
		true)
	if err != nil {
		return nil, err
	}
	if r.SubscriptionID.IsZero() {
		return nil, fmt.Errorf("%w: %s", ErrZeroID,
			recordName(TypeSubscriptionID))
	}

	err = decodeOne(custom, TypeSequence, sequenceSize,
		lndtlv.MakePrimitiveRecord(lndtlv.Type(TypeSequence), &r.Sequence),
		true)
	if err != nil {
		return nil, err
	}
	if r.Sequence == 0 {
		return nil, fmt.Errorf("%w: %s", ErrZeroSequence,
			recordName(TypeSequence))
	}

	if _, ok := custom[TypePlanID]; ok {
		var plan PlanID
		err := decodeOne(custom, TypePlanID, IDSize,
			idRecord(TypePlanID, (*[IDSize]byte)(&plan)), false)
		if err != nil {
			return nil, err
		}
		if plan.IsZero() {
			return nil, fmt.Errorf("%w: %s", ErrZeroID,
				recordName(TypePlanID))
		}
		r.PlanID = &plan
	}

	if v, ok := custom[TypeCancel]; ok {
		if len(v) != cancelSize {
			return nil, badLength(TypeCancel, v, cancelSize)
		}
		r.Cancel = true
	}

	return &r, nil
}

// decodeOne checks the presence and exact length of one of our records and
// then lets lnd's codec read the value.
func decodeOne(custom map[uint64][]byte, typ uint64, size int,
	rec lndtlv.Record, required bool) error {

	v, ok := custom[typ]
	if !ok {
		if !required {
			return nil
		}

		return fmt.Errorf("%w: %s", ErrMissingRecord, recordName(typ))
	}
	if len(v) != size {
		return badLength(typ, v, size)
	}

	if err := rec.Decode(bytes.NewReader(v), uint64(len(v))); err != nil {
		// Lengths were checked above; only a codec bug gets here.
		return fmt.Errorf("%w: %s value %x: %v", ErrBadValue,
			recordName(typ), v, err)
	}

	return nil
}

// badLength builds the ErrBadLength error for a record, showing at most a
// short prefix of the value so logs stay readable.
func badLength(typ uint64, v []byte, want int) error {
	shown := v
	if len(shown) > 32 {
		shown = shown[:32]
	}

	return fmt.Errorf("%w: %s has %d bytes (%x), want %d", ErrBadLength,
		recordName(typ), len(v), shown, want)
}

// mapStreamSize returns how many bytes custom takes as a TLV stream. It
// cannot overflow: no map held in memory approaches 2^64 bytes.
func mapStreamSize(custom map[uint64][]byte) uint64 {
	var size uint64
	for typ, v := range custom {
		size += lndtlv.VarIntSize(typ) +
			lndtlv.VarIntSize(uint64(len(v))) + uint64(len(v))
	}

	return size
}

// DecodeStream parses a raw TLV stream, such as a final-hop onion payload or
// the records of a test vector, with lnd's stream decoder and then applies
// exactly Decode's rules to the result. Unlike Decode it can see, and refuses,
// duplicate types (ErrDuplicateRecord) and unsorted types (ErrUnsorted), as
// BOLT 1 requires. Streams longer than MaxPayloadSize give ErrOversized and
// are never read past that bound. Records of any other type, including the
// BOLT 4 payload types below 65536, are ignored.
func DecodeStream(r io.Reader) (*Records, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxPayloadSize+1))
	if err != nil {
		return nil, fmt.Errorf("read tlv stream: %w", err)
	}
	if len(data) > MaxPayloadSize {
		return nil, fmt.Errorf("%w: tlv stream longer than %d bytes",
			ErrOversized, MaxPayloadSize)
	}

	custom, err := streamToMap(data)
	if err != nil {
		return nil, err
	}

	return Decode(custom)
}

// streamToMap frames a TLV stream with lnd's decoder (which enforces
// canonical order and minimal BigSize encoding) and returns every record it
// holds as a map. It declares no known records, so lnd hands back every
// record's raw value in the TypeMap.
func streamToMap(data []byte) (map[uint64][]byte, error) {
	stream, err := lndtlv.NewStream()
	if err != nil {
		return nil, fmt.Errorf("build tlv stream: %w", err)
	}

	parsed, err := stream.DecodeWithParsedTypesP2P(bytes.NewReader(data))
	switch {
	case err == nil:

	case errors.Is(err, lndtlv.ErrStreamNotCanonical):
		return nil, classifyNonCanonical(data)

	case errors.Is(err, lndtlv.ErrRecordTooLarge):
		return nil, fmt.Errorf("%w: %v", ErrOversized, err)

	default:
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}

	custom := make(map[uint64][]byte, len(parsed))
	for typ, v := range parsed {
		if v == nil {
			v = []byte{}
		}
		custom[uint64(typ)] = v
	}

	return custom, nil
}

// classifyNonCanonical tells a duplicated type apart from an out-of-order one
// after lnd has reported ErrStreamNotCanonical (which covers both), so the
// caller gets ErrDuplicateRecord or ErrUnsorted naming the type.
func classifyNonCanonical(data []byte) error {
	var (
		buf  [8]byte
		r    = bytes.NewReader(data)
		seen = make(map[uint64]bool)
		prev uint64
	)
	for i := 0; ; i++ {
		typ, err := lndtlv.ReadVarInt(r, &buf)
		if err != nil {
			break
		}
		switch {
		case seen[typ]:
			return fmt.Errorf("%w: %s appears twice",
				ErrDuplicateRecord, recordName(typ))

		case i > 0 && typ < prev:
			return fmt.Errorf("%w: %s follows type %d", ErrUnsorted,
				recordName(typ), prev)
		}
		seen[typ] = true
		prev = typ

		length, err := lndtlv.ReadVarInt(r, &buf)
		if err != nil || length > uint64(r.Len()) {
			break
		}
		if _, err := r.Seek(int64(length), io.SeekCurrent); err != nil {
			break
		}
	}

	// lnd said non-canonical but the rescan found nothing wrong before the
	// framing broke; report it as malformed rather than guess.
	return fmt.Errorf("%w: %v", ErrMalformed, lndtlv.ErrStreamNotCanonical)
}
