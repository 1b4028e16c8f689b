package store

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestRecordRoundTrip checks that every stored record decodes to what was
// encoded, including zero times and empty strings.
func TestRecordRoundTrip(t *testing.T) {
	t.Parallel()
	terms := Terms{RatePerSecond: 1500, MinPayment: 10_000, Increment: 1000,
		Grace: 90 * time.Second, MaxPrepay: 24 * time.Hour}
	tests := []struct {
		name  string
		in    recorder
		fresh func() recorder
	}{
		{"plan", &Plan{ID: "pro", Label: "Pro ✓", Terms: terms, OpenEnrolment: true,
			CreatedAt: at(10), UpdatedAt: time.Unix(11, 123).UTC()},
			func() recorder { return &Plan{} }},
		{"plan zero", &Plan{ID: "x"}, func() recorder { return &Plan{} }},
		{"receiver subscription", &ReceiverSubscription{ID: subID(1), PlanID: "pro",
			Terms: terms, State: SubPastDue, PaidUntil: at(99), Remainder: 999,
			LastSeq: 7, TotalPaid: 123456, TotalSeconds: 80, Payments: 3,
			CreatedAt: at(1), UpdatedAt: at(2), CancelledAt: at(3)},
			func() recorder { return &ReceiverSubscription{} }},
		{"payment", &Payment{Hash: hashOf(1), SubID: subID(2), Seq: 9, Amount: 5000,
			Seconds: 5, SettleIndex: 77, State: PaymentRefused, Reason: "too small",
			ReceivedAt: at(5)},
			func() recorder { return &Payment{} }},
		{"event", &Event{ID: 4, SubID: subID(3), Type: EventSubscriptionExpired,
			Payload: []byte(`{"a":1}`), CreatedAt: at(3), Attempts: 2,
			NextAttempt: at(4), LastError: "503", Delivered: true, DeliveredAt: at(6)},
			func() recorder { return &Event{} }},
		{"sender subscription", &SenderSubscription{ID: subID(4),
			Offer: Offer{Destination: [33]byte{2, 3}, PlanID: "pro", Label: "a",
				Terms: terms},
			Limits: Limits{MaxPayment: 1, MaxPerDay: 2, MaxTotal: 3, MaxFee: 4},
			State:  SenderCapReached, NextSeq: 12, TotalSent: 100, TotalFees: 3,
			Payments: 11, CreatedAt: at(1), UpdatedAt: at(2)},
			func() recorder { return &SenderSubscription{} }},
		{"attempt", &Attempt{SubID: subID(5), Seq: 3, Preimage: Preimage{1},
			Hash: hashOf(3), Amount: 1000, Fee: 2, State: AttemptInFlight,
			FailureReason: "", CreatedAt: at(7), UpdatedAt: at(8)},
			func() recorder { return &Attempt{} }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := encodeRecord(tc.in)
			require.NoError(t, err)
			require.Equal(t, valueVersion, b[0])
			out := tc.fresh()
			require.NoError(t, decodeRecord(b, out))
			require.Equal(t, tc.in, out)
		})
	}
}

// TestDecodeValueErrors checks that damaged or newer values are refused with
// the right sentinel instead of decoding to garbage.
func TestDecodeValueErrors(t *testing.T) {
	t.Parallel()
	good, err := encodeRecord(&Payment{Hash: hashOf(1), State: PaymentCredited})
	require.NoError(t, err)
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, ErrCorrupt},
		{"version zero", append([]byte{0}, good[1:]...), ErrCorrupt},
		{"newer version", append([]byte{valueVersion + 1}, good[1:]...), ErrSchemaTooNew},
		{"truncated", good[:len(good)-2], ErrCorrupt},
		{"huge length", []byte{valueVersion, 8, 0xfe, 0xff, 0xff, 0xff, 0xff}, ErrCorrupt},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.ErrorIs(t, decodeRecord(tc.data, &Payment{}), tc.want)
		})
	}
}

// TestUnknownFieldsIgnored checks the cheap-extension promise: a value with
// a field this version does not know still decodes.
func TestUnknownFieldsIgnored(t *testing.T) {
	t.Parallel()
	p := &Payment{Hash: hashOf(2), Seq: 5, State: PaymentCredited}
	extra := uint64(42)
	b, err := encodeValue(append(p.records(), recU64(1000, &extra)))
	require.NoError(t, err)
	out := &Payment{}
	require.NoError(t, decodeRecord(b, out))
	require.Equal(t, p, out)
}

// TestCounterCodec covers the spend counter encoding.
func TestCounterCodec(t *testing.T) {
	t.Parallel()
	v, err := decodeCounter(encodeCounter(1 << 40))
	require.NoError(t, err)
	require.EqualValues(t, 1<<40, v)
	_, err = decodeCounter([]byte{1, 2})
	require.ErrorIs(t, err, ErrCorrupt)
}

// FuzzDecodeRecords makes sure no byte string makes a decoder panic or
// allocate without bound.
func FuzzDecodeRecords(f *testing.F) {
	for _, r := range []recorder{
		&Plan{ID: "a"}, &ReceiverSubscription{ID: subID(1)}, &Payment{Reason: "x"},
		&Event{Payload: []byte("{}")}, &SenderSubscription{}, &Attempt{},
	} {
		b, err := encodeRecord(r)
		require.NoError(f, err)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, r := range []recorder{
			&Plan{}, &ReceiverSubscription{}, &Payment{}, &Event{},
			&SenderSubscription{}, &Attempt{},
		} {
			_ = decodeRecord(data, r)
		}
	})
}
