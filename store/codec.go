package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"time"

	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/lightningnetwork/lnd/tlv"
)

// Stored values are one version byte followed by an lnd TLV stream. A new
// field is a new TLV type: old values simply lack it (it decodes to the zero
// value), so adding a field needs no rewrite of old records. Old code,
// though, would skip it and drop it when it rewrites the record: every new
// type bumps SchemaVersion so old code refuses the store (see the package
// comment). The version byte is for the day the framing itself has to
// change.
const valueVersion byte = 1

// maxFieldLen bounds one variable-length field so a damaged length can not
// make the decoder allocate gigabytes.
const maxFieldLen = 16 << 20

// encodeValue frames records as a versioned value. The records must be in
// ascending type order.
func encodeValue(recs []tlv.Record) ([]byte, error) {
	s, err := tlv.NewStream(recs...)
	if err != nil {
		return nil, fmt.Errorf("build tlv stream: %w", err)
	}
	var b bytes.Buffer
	b.Grow(128)
	b.WriteByte(valueVersion)
	if err := s.Encode(&b); err != nil {
		return nil, fmt.Errorf("encode tlv stream: %w", err)
	}
	return b.Bytes(), nil
}

// decodeValue checks the version byte and decodes the TLV stream into recs.
func decodeValue(data []byte, recs []tlv.Record) error {
	if len(data) == 0 {
		return fmt.Errorf("%w: empty value", ErrCorrupt)
	}
	switch v := data[0]; {
	case v > valueVersion:
		return fmt.Errorf("%w: value version %d, this program reads up to %d",
			ErrSchemaTooNew, v, valueVersion)
	case v != valueVersion:
		return fmt.Errorf("%w: unknown value version %d", ErrCorrupt, v)
	}
	s, err := tlv.NewStream(recs...)
	if err != nil {
		return fmt.Errorf("build tlv stream: %w", err)
	}
	if err := s.Decode(bytes.NewReader(data[1:])); err != nil {
		return fmt.Errorf("%w: decode value: %v", ErrCorrupt, err)
	}
	return nil
}

// The helpers below make a TLV record that points at a struct field, so each
// record type lists its fields once for both directions.

func recU8(t tlv.Type, v *uint8) tlv.Record   { return tlv.MakePrimitiveRecord(t, v) }
func recU16(t tlv.Type, v *uint16) tlv.Record { return tlv.MakePrimitiveRecord(t, v) }
func recU32(t tlv.Type, v *uint32) tlv.Record { return tlv.MakePrimitiveRecord(t, v) }
func recU64(t tlv.Type, v *uint64) tlv.Record { return tlv.MakePrimitiveRecord(t, v) }
func recBool(t tlv.Type, v *bool) tlv.Record  { return tlv.MakePrimitiveRecord(t, v) }

func recMsat(t tlv.Type, v *lnwire.MilliSatoshi) tlv.Record {
	return tlv.MakePrimitiveRecord(t, (*uint64)(v))
}

func rec32(t tlv.Type, v *[32]byte) tlv.Record { return tlv.MakePrimitiveRecord(t, v) }
func rec33(t tlv.Type, v *[33]byte) tlv.Record { return tlv.MakePrimitiveRecord(t, v) }

func rec16(t tlv.Type, v *[16]byte) tlv.Record {
	return tlv.MakeStaticRecord(t, v, 16, e16, d16)
}

func recTime(t tlv.Type, v *time.Time) tlv.Record {
	return tlv.MakeStaticRecord(t, v, 8, eTime, dTime)
}

func recDuration(t tlv.Type, v *time.Duration) tlv.Record {
	return tlv.MakeStaticRecord(t, v, 8, eDuration, dDuration)
}

func recString(t tlv.Type, v *string) tlv.Record {
	return tlv.MakeDynamicRecord(t, v, func() uint64 { return uint64(len(*v)) },
		eString, dString)
}

func recBytes(t tlv.Type, v *[]byte) tlv.Record {
	return tlv.MakeDynamicRecord(t, v, func() uint64 { return uint64(len(*v)) },
		tlv.EVarBytes, dBytes)
}

// recEndpoints stores a list of endpoint ids as their bytes, one after
// the other. A record of length zero (written for a nil list) reads as
// nil: "not kept".
func recEndpoints(t tlv.Type, v *[]EndpointID) tlv.Record {
	return tlv.MakeDynamicRecord(t, v, func() uint64 {
		return uint64(len(*v) * len(EndpointID{}))
	}, eEndpoints, dEndpoints)
}

func eEndpoints(w io.Writer, val interface{}, _ *[8]byte) error {
	v, ok := val.(*[]EndpointID)
	if !ok {
		return tlv.NewTypeForEncodingErr(val, "[]EndpointID")
	}
	for _, ep := range *v {
		if _, err := w.Write(ep[:]); err != nil {
			return err
		}
	}
	return nil
}

func dEndpoints(r io.Reader, val interface{}, _ *[8]byte, l uint64) error {
	v, ok := val.(*[]EndpointID)
	size := uint64(len(EndpointID{}))
	if !ok || l > maxFieldLen || l%size != 0 {
		return tlv.NewTypeForDecodingErr(val, "[]EndpointID", l,
			maxFieldLen)
	}
	b, err := readN(r, l)
	if err != nil || l == 0 {
		*v = nil
		return err
	}
	out := make([]EndpointID, 0, l/size)
	for i := uint64(0); i < l; i += size {
		out = append(out, EndpointID(b[i:i+size]))
	}
	*v = out
	return nil
}

func e16(w io.Writer, val interface{}, _ *[8]byte) error {
	v, ok := val.(*[16]byte)
	if !ok {
		return tlv.NewTypeForEncodingErr(val, "[16]byte")
	}
	_, err := w.Write(v[:])
	return err
}

func d16(r io.Reader, val interface{}, _ *[8]byte, l uint64) error {
	v, ok := val.(*[16]byte)
	if !ok || l != 16 {
		return tlv.NewTypeForDecodingErr(val, "[16]byte", l, 16)
	}
	_, err := io.ReadFull(r, v[:])
	return err
}

// eTime stores a time as Unix nanoseconds; the zero time is stored as 0 so
// "never" survives a round trip.
func eTime(w io.Writer, val interface{}, buf *[8]byte) error {
	v, ok := val.(*time.Time)
	if !ok {
		return tlv.NewTypeForEncodingErr(val, "time.Time")
	}
	var n uint64
	if !v.IsZero() {
		n = uint64(v.UnixNano())
	}
	return tlv.EUint64T(w, n, buf)
}

func dTime(r io.Reader, val interface{}, buf *[8]byte, l uint64) error {
	v, ok := val.(*time.Time)
	if !ok || l != 8 {
		return tlv.NewTypeForDecodingErr(val, "time.Time", l, 8)
	}
	var n uint64
	if err := tlv.DUint64(r, &n, buf, 8); err != nil {
		return err
	}
	if n == 0 {
		*v = time.Time{}
	} else {
		*v = time.Unix(0, int64(n)).UTC()
	}
	return nil
}

func eDuration(w io.Writer, val interface{}, buf *[8]byte) error {
	v, ok := val.(*time.Duration)
	if !ok {
		return tlv.NewTypeForEncodingErr(val, "time.Duration")
	}
	return tlv.EUint64T(w, uint64(*v), buf)
}

func dDuration(r io.Reader, val interface{}, buf *[8]byte, l uint64) error {
	v, ok := val.(*time.Duration)
	if !ok || l != 8 {
		return tlv.NewTypeForDecodingErr(val, "time.Duration", l, 8)
	}
	var n uint64
	if err := tlv.DUint64(r, &n, buf, 8); err != nil {
		return err
	}
	*v = time.Duration(n)
	return nil
}

func eString(w io.Writer, val interface{}, _ *[8]byte) error {
	v, ok := val.(*string)
	if !ok {
		return tlv.NewTypeForEncodingErr(val, "string")
	}
	_, err := io.WriteString(w, *v)
	return err
}

func dString(r io.Reader, val interface{}, _ *[8]byte, l uint64) error {
	v, ok := val.(*string)
	if !ok || l > maxFieldLen {
		return tlv.NewTypeForDecodingErr(val, "string", l, maxFieldLen)
	}
	b, err := readN(r, l)
	if err != nil {
		return err
	}
	*v = string(b)
	return nil
}

func dBytes(r io.Reader, val interface{}, _ *[8]byte, l uint64) error {
	v, ok := val.(*[]byte)
	if !ok || l > maxFieldLen {
		return tlv.NewTypeForDecodingErr(val, "[]byte", l, maxFieldLen)
	}
	b, err := readN(r, l)
	if err != nil {
		return err
	}
	*v = b
	return nil
}

// readN reads exactly n bytes, refusing before allocating when the reader
// is known to hold fewer (a damaged length).
func readN(r io.Reader, n uint64) ([]byte, error) {
	if br, ok := r.(*bytes.Reader); ok && uint64(br.Len()) < n {
		return nil, io.ErrUnexpectedEOF
	}
	b := make([]byte, n)
	_, err := io.ReadFull(r, b)
	return b, err
}

// termsRecords lists the Terms fields at types base..base+4.
func termsRecords(base tlv.Type, t *Terms) []tlv.Record {
	return []tlv.Record{
		recMsat(base, &t.RatePerSecond),
		recMsat(base+1, &t.MinPayment),
		recMsat(base+2, &t.Increment),
		recDuration(base+3, &t.Grace),
		recDuration(base+4, &t.MaxPrepay),
	}
}

// The TLV types of every stored record. Once released a type number keeps
// its meaning forever; new fields take new numbers.

func (p *Plan) records() []tlv.Record {
	recs := []tlv.Record{
		recString(1, (*string)(&p.ID)),
		recString(2, &p.Label),
		recBool(3, &p.OpenEnrolment),
		recTime(4, &p.CreatedAt),
		recTime(5, &p.UpdatedAt),
		recDuration(6, &p.DefaultIncrement),
	}
	return append(recs, termsRecords(10, &p.Terms)...)
}

func (s *ReceiverSubscription) records() []tlv.Record {
	recs := []tlv.Record{
		rec16(1, (*[16]byte)(&s.ID)),
		recString(2, (*string)(&s.PlanID)),
		recU8(3, (*uint8)(&s.State)),
		recTime(4, &s.PaidUntil),
		recMsat(5, &s.Remainder),
		recU64(6, &s.LastSeq),
		recMsat(7, &s.TotalPaid),
		recU64(8, &s.TotalSeconds),
		recU64(9, &s.Payments),
	}
	recs = append(recs, termsRecords(10, &s.Terms)...)
	return append(recs,
		recTime(15, &s.CreatedAt),
		recTime(16, &s.UpdatedAt),
		recTime(17, &s.CancelledAt),
		recU64(18, &s.CreditCount),
	)
}

func (p *Payment) records() []tlv.Record {
	return []tlv.Record{
		rec32(1, (*[32]byte)(&p.Hash)),
		rec16(2, (*[16]byte)(&p.SubID)),
		recU64(3, &p.Seq),
		recMsat(4, &p.Amount),
		recU64(5, &p.Seconds),
		recU64(6, &p.SettleIndex),
		recU8(7, (*uint8)(&p.State)),
		recString(8, &p.Reason),
		recTime(9, &p.ReceivedAt),
		recMsat(10, &p.Rate),
		recTime(11, &p.BeforePaidUntil),
		recMsat(12, &p.BeforeRemainder),
		recU8(13, (*uint8)(&p.BeforeState)),
		recU64(14, &p.CreditNo),
	}
}

func (e *Event) records() []tlv.Record {
	return []tlv.Record{
		recU64(1, (*uint64)(&e.ID)),
		rec16(2, (*[16]byte)(&e.SubID)),
		recU16(3, (*uint16)(&e.Type)),
		recBytes(4, &e.Payload),
		recTime(5, &e.CreatedAt),
		recU32(6, &e.Attempts),
		recTime(7, &e.NextAttempt),
		recString(8, &e.LastError),
		recBool(9, &e.Delivered),
		recTime(10, &e.DeliveredAt),
		rec16(11, (*[16]byte)(&e.UID)),
		recEndpoints(12, &e.FinishedAt),
	}
}

func (s *SenderSubscription) records() []tlv.Record {
	recs := []tlv.Record{
		rec16(1, (*[16]byte)(&s.ID)),
		recU8(2, (*uint8)(&s.State)),
		recU64(3, &s.NextSeq),
		recMsat(4, &s.TotalSent),
		recMsat(5, &s.TotalFees),
		recU64(6, &s.Payments),
		recTime(7, &s.CreatedAt),
		recTime(8, &s.UpdatedAt),
		rec33(10, &s.Offer.Destination),
		recString(11, (*string)(&s.Offer.PlanID)),
		recString(12, &s.Offer.Label),
	}
	recs = append(recs, termsRecords(20, &s.Offer.Terms)...)
	return append(recs,
		recMsat(30, &s.Limits.MaxPayment),
		recMsat(31, &s.Limits.MaxPerDay),
		recMsat(32, &s.Limits.MaxTotal),
		recMsat(33, &s.Limits.MaxFee),
		recString(40, &s.OfferString),
		recDuration(41, &s.Increment),
		recDuration(42, &s.Buffer),
		recMsat(43, &s.MaxPrice),
		recU32(44, &s.FeeLimitPPM),
		recTime(45, &s.PaidUntil),
		recMsat(46, &s.Remainder),
		recMsat(47, &s.Reserved),
		recString(48, &s.Reason),
		recTime(49, &s.ResumeAt),
		recU32(50, &s.Refusals),
		recBool(51, &s.CancelPending),
		recU64(52, &s.Revision),
		recTime(53, &s.CancelledAt),
	)
}

func (a *Attempt) records() []tlv.Record {
	return []tlv.Record{
		rec16(1, (*[16]byte)(&a.SubID)),
		recU64(2, &a.Seq),
		rec32(3, (*[32]byte)(&a.Preimage)),
		rec32(4, (*[32]byte)(&a.Hash)),
		recMsat(5, &a.Amount),
		recMsat(6, &a.Fee),
		recU8(7, (*uint8)(&a.State)),
		recString(8, &a.FailureReason),
		recTime(9, &a.CreatedAt),
		recTime(10, &a.UpdatedAt),
		recMsat(11, &a.MaxFee),
		recU32(12, (*uint32)(&a.Day)),
		recBool(13, &a.Cancel),
		recU32(14, &a.Tries),
		rec33(15, &a.Destination),
	}
}

// recorder is what every stored record type implements.
type recorder interface {
	records() []tlv.Record
}

// encodeRecord is encodeValue for a stored record.
func encodeRecord(r recorder) ([]byte, error) { return encodeValue(r.records()) }

// decodeRecord is decodeValue for a stored record.
func decodeRecord(data []byte, r recorder) error { return decodeValue(data, r.records()) }

// Counters (spend per day) are a version byte and a big-endian u64: they are
// rewritten on every payment and have nothing to add later.
func encodeCounter(v uint64) []byte {
	b := make([]byte, 9)
	b[0] = valueVersion
	binary.BigEndian.PutUint64(b[1:], v)
	return b
}

func decodeCounter(b []byte) (uint64, error) {
	if len(b) != 9 || b[0] != valueVersion {
		return 0, fmt.Errorf("%w: counter value of %d bytes", ErrCorrupt, len(b))
	}
	return binary.BigEndian.Uint64(b[1:]), nil
}
