package tlv

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// mustSub returns a fresh random subscription id.
func mustSub(t *testing.T) SubscriptionID {
	t.Helper()
	id, err := NewSubscriptionID()
	require.NoError(t, err)

	return id
}

// TestRecordTypes pins the properties the const block promises.
func TestRecordTypes(t *testing.T) {
	t.Parallel()

	taken := map[uint64]bool{
		696969: true, 7629169: true, 7629171: true, 7629173: true,
		7629175: true, 133773310: true, 5482373484: true, 106823: true,
	}
	seen := map[uint64]bool{}
	for i, typ := range ourTypes {
		require.Equal(t, uint64(1), typ%2, "type %d must be odd", typ)
		require.GreaterOrEqual(t, typ, uint64(65536))
		require.False(t, taken[typ], "type %d is taken", typ)
		require.False(t, typ >= 34349334 && typ < 34349344,
			"type %d is in Whatsat's range", typ)
		require.False(t, seen[typ])
		seen[typ] = true
		if i > 0 {
			require.Greater(t, typ, ourTypes[i-1])
		}
		require.Contains(t, recordNames, typ)
	}
}

// TestRecordsRoundTrip encodes random records of every shape and decodes them
// through both the map and the stream path.
func TestRecordsRoundTrip(t *testing.T) {
	t.Parallel()

	plan, err := NewPlanID()
	require.NoError(t, err)

	tests := []struct {
		name     string
		rec      Records
		wireSize int
	}{
		{"minimal", Records{Version: Version1, Sequence: 1}, 43},
		{"max_sequence", Records{Version: Version1, Sequence: ^uint64(0)},
			43},
		{"plan", Records{Version: Version1, Sequence: 9, PlanID: &plan},
			65},
		{"cancel", Records{Version: Version1, Sequence: 2, Cancel: true},
			49},
		{"all", Records{Version: Version1, Sequence: 3, PlanID: &plan,
			Cancel: true}, 71},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := tc.rec
			rec.SubscriptionID = mustSub(t)

			m, err := rec.Encode()
			require.NoError(t, err)
			require.True(t, IsSatstream(m))

			// lnd adds the keysend preimage; it must not disturb us.
			m[5482373484] = bytes.Repeat([]byte{7}, 32)
			got, err := Decode(m)
			require.NoError(t, err)
			require.Equal(t, &rec, got)

			var b bytes.Buffer
			require.NoError(t, rec.EncodeStream(&b))
			require.Equal(t, tc.wireSize, b.Len())
			got, err = DecodeStream(&b)
			require.NoError(t, err)
			require.Equal(t, &rec, got)
		})
	}
}

// TestEncodeValidates makes sure a sender cannot emit records a receiver
// refuses.
func TestEncodeValidates(t *testing.T) {
	t.Parallel()

	sub := SubscriptionID{1}
	var zeroPlan PlanID
	tests := []struct {
		name string
		rec  Records
		err  error
	}{
		{"zero_version", Records{SubscriptionID: sub, Sequence: 1},
			ErrUnknownVersion},
		{"version_2", Records{Version: 2, SubscriptionID: sub,
			Sequence: 1}, ErrUnknownVersion},
		{"zero_sub", Records{Version: Version1, Sequence: 1}, ErrZeroID},
		{"zero_seq", Records{Version: Version1, SubscriptionID: sub},
			ErrZeroSequence},
		{"zero_plan", Records{Version: Version1, SubscriptionID: sub,
			Sequence: 1, PlanID: &zeroPlan}, ErrZeroID},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := tc.rec.Encode()
			require.ErrorIs(t, err, tc.err)
			require.ErrorIs(t, tc.rec.EncodeStream(&bytes.Buffer{}),
				tc.err)
		})
	}
}

// TestDecodeErrorsNameTheRecord checks that errors carry the context a log
// reader needs.
func TestDecodeErrorsNameTheRecord(t *testing.T) {
	t.Parallel()

	m, err := (&Records{Version: Version1, SubscriptionID: SubscriptionID{1},
		Sequence: 1}).Encode()
	require.NoError(t, err)
	m[TypeSequence] = []byte{1, 2, 3}

	_, err = Decode(m)
	require.ErrorIs(t, err, ErrBadLength)
	require.Contains(t, err.Error(), "sequence record (type 1397948421)")
	require.Contains(t, err.Error(), "010203")
}

// TestDecodeStreamBounds checks the reader is never read past the bound.
func TestDecodeStreamBounds(t *testing.T) {
	t.Parallel()

	r := strings.NewReader(strings.Repeat("x", 10*MaxPayloadSize))
	_, err := DecodeStream(r)
	require.ErrorIs(t, err, ErrOversized)
	require.Equal(t, 10*MaxPayloadSize-MaxPayloadSize-1, r.Len())

	_, err = DecodeStream(bytes.NewReader(nil))
	require.ErrorIs(t, err, ErrNotSatstream)
}

// TestIDs covers the id helpers others use in configs and APIs.
func TestIDs(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name string
		in   string
		err  error
	}{
		{"lower", "000102030405060708090a0b0c0d0e0f", nil},
		{"upper", "000102030405060708090A0B0C0D0E0F", nil},
		{"short", "0001", ErrBadLength},
		{"long", "000102030405060708090a0b0c0d0e0f00", ErrBadLength},
		{"not_hex", "zz0102030405060708090a0b0c0d0e0f", ErrBadValue},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sub, err := ParseSubscriptionID(tc.in)
			plan, err2 := ParsePlanID(tc.in)
			if tc.err != nil {
				require.ErrorIs(t, err, tc.err)
				require.ErrorIs(t, err2, tc.err)

				return
			}
			require.NoError(t, err)
			require.NoError(t, err2)
			require.Equal(t, strings.ToLower(tc.in), sub.String())
			require.Equal(t, strings.ToLower(tc.in), plan.String())
		})
	}

	a, b := mustSub(t), mustSub(t)
	require.NotEqual(t, a, b)
	require.False(t, a.IsZero())
	require.True(t, SubscriptionID{}.IsZero())
}
