package tlv

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/btcsuite/btcd/btcutil/bech32"
	"github.com/stretchr/testify/require"
)

// recordSentinels are the errors Decode and DecodeStream may return; every
// failure must be one of them so the receiver can always classify it.
var recordSentinels = []error{
	ErrNotSatstream, ErrMissingRecord, ErrBadLength, ErrUnknownVersion,
	ErrDuplicateRecord, ErrUnsorted, ErrMalformed, ErrOversized,
	ErrZeroSequence, ErrZeroID,
}

// fuzzTypes is the palette of types the map-shaped fuzz input draws from:
// ours, other applications', and lnd's.
var fuzzTypes = []uint64{
	TypeVersion, TypeSubscriptionID, TypeSequence, TypePlanID, TypeCancel,
	5482373484, 7629169, 106823, 65536, 696969,
}

// mapFromFuzz turns arbitrary bytes into a custom-records map: each entry is
// a palette-index byte, a length byte and that many value bytes. This reaches
// Decode's map path with shapes a canonical stream rarely produces.
func mapFromFuzz(data []byte) map[uint64][]byte {
	m := make(map[uint64][]byte)
	for len(data) >= 2 {
		typ := fuzzTypes[int(data[0])%len(fuzzTypes)]
		n := int(data[1])
		data = data[2:]
		if n > len(data) {
			n = len(data)
		}
		m[typ] = append([]byte{}, data[:n]...)
		data = data[n:]
	}

	return m
}

// checkAccepted asserts the round-trip properties of an accepted decode:
// the result validates, and encoding it reproduces exactly our records of
// the input, so decode -> encode is the identity on what we accepted.
func checkAccepted(t *testing.T, r *Records, in map[uint64][]byte) {
	require.NoError(t, r.Validate())

	enc, err := r.Encode()
	require.NoError(t, err)

	ours := make(map[uint64][]byte)
	for _, typ := range ourTypes {
		if v, ok := in[typ]; ok {
			ours[typ] = v
		}
	}
	require.Equal(t, ours, enc)

	var b bytes.Buffer
	require.NoError(t, r.EncodeStream(&b))
	again, err := DecodeStream(&b)
	require.NoError(t, err)
	require.Equal(t, r, again)
}

// checkClassified asserts that a decode error is one of our sentinels.
func checkClassified(t *testing.T, err error) {
	for _, s := range recordSentinels {
		if errors.Is(err, s) {
			return
		}
	}
	t.Fatalf("unclassified error: %v", err)
}

// FuzzDecodeRecords feeds arbitrary bytes to DecodeStream, and the same bytes
// reshaped as a map to Decode, checking that decoding never panics, every
// error is classified, and everything accepted round-trips.
func FuzzDecodeRecords(f *testing.F) {
	v := loadVectors(f)
	for _, vec := range v.RecordsValid {
		f.Add(canonicalStream(hexMap(f, vec.CustomRecords)))
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := DecodeStream(bytes.NewReader(data))
		if err != nil {
			checkClassified(t, err)
		} else {
			in, err := streamToMap(data)
			require.NoError(t, err)
			checkAccepted(t, r, in)

			// The map path agrees with the stream path.
			r2, err := Decode(in)
			require.NoError(t, err)
			require.Equal(t, r, r2)
		}

		m := mapFromFuzz(data)
		r, err = Decode(m)
		if err != nil {
			checkClassified(t, err)
			require.Equal(t, errors.Is(err, ErrNotSatstream),
				!IsSatstream(m))

			return
		}
		checkAccepted(t, r, m)
	})
}

// FuzzParseOffer feeds arbitrary strings to ParseOffer and checks that every
// error wraps ErrBadOffer, and that an accepted offer validates, re-encodes
// to a string that parses back to the same offer, and that this string is
// the lowercase input unless the input carried unknown odd fields.
func FuzzParseOffer(f *testing.F) {
	v := loadVectors(f)
	for _, vec := range v.OffersValid {
		f.Add(vec.Offer)
	}
	for _, vec := range v.OffersInvalid {
		f.Add(vec.Offer)
	}

	f.Fuzz(func(t *testing.T, s string) {
		o, err := ParseOffer(s)
		if err != nil {
			require.ErrorIs(t, err, ErrBadOffer)

			return
		}
		require.NoError(t, o.Validate())

		out := o.String()
		again, err := ParseOffer(out)
		require.NoError(t, err)
		require.Equal(t, o, again)
		require.Equal(t, out, again.String())

		if !hasUnknownOddField(t, s) {
			require.Equal(t, strings.ToLower(s), out)
		}
	})
}

// hasUnknownOddField reports whether an accepted offer string carries a field
// ParseOffer ignored, the one case where String differs from the input.
func hasUnknownOddField(t *testing.T, s string) bool {
	_, data, err := bech32.DecodeNoLimit(strings.ToLower(s))
	require.NoError(t, err)
	payload, err := bech32.ConvertBits(data, 5, 8, false)
	require.NoError(t, err)
	fields, err := streamToMap(payload)
	require.NoError(t, err)

	for typ := range fields {
		if _, known := offerFieldNames[typ]; !known {
			return true
		}
	}

	return false
}
