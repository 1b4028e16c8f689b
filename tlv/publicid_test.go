package tlv

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPublicIDVectors pins the derivation (docs/protocol.md, "Public
// subscription id"): payer and provider must compute the same public id,
// and the values were computed independently (Python hashlib).
func TestPublicIDVectors(t *testing.T) {
	t.Parallel()
	tests := []struct{ secret, public string }{
		{"000102030405060708090a0b0c0d0e0f",
			"sub_8507e3b4e313aef5cf1ac41c08192373"},
		{"00000000000000000000000000000001",
			"sub_0ae17c7d49bd6c171799b05074cf2281"},
	}
	for _, tc := range tests {
		id, err := ParseSubscriptionID(tc.secret)
		require.NoError(t, err)
		pub := id.PublicID()
		require.Equal(t, tc.public, pub.String())
		require.NotContains(t, pub.String(), tc.secret)

		back, err := ParsePublicID(strings.ToUpper(tc.public[4:]))
		require.ErrorIs(t, err, ErrBadValue, "bare hex is the secret's form")
		require.True(t, back.IsZero())
		back, err = ParsePublicID("sub_" + strings.ToUpper(tc.public[4:]))
		require.NoError(t, err)
		require.Equal(t, pub, back)
	}
}

// TestParsePublicIDRefusesSecretForm: a parser that took bare hex would let
// an API confuse the secret with the public id.
func TestParsePublicIDRefusesSecretForm(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "sub_", "sub_00", "000102030405060708090a0b0c0d0e0f",
		"sub_zz0102030405060708090a0b0c0d0e0f", "SUB_000102030405060708090a0b0c0d0e0f",
		"sub_000102030405060708090a0b0c0d0e0f00"} {
		_, err := ParsePublicID(s)
		require.Error(t, err, s)
	}
}

// FuzzParsePublicID: any accepted input is the canonical form (up to hex
// case) of the id it parsed to, and nothing else panics.
func FuzzParsePublicID(f *testing.F) {
	f.Add("sub_8507e3b4e313aef5cf1ac41c08192373")
	f.Add("sub_8507E3B4E313AEF5CF1AC41C08192373")
	f.Add("8507e3b4e313aef5cf1ac41c08192373")
	f.Add("sub_")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePublicID(s)
		if err != nil {
			require.True(t, p.IsZero())
			return
		}
		require.Equal(t, strings.ToLower(s[:4])+strings.ToLower(s[4:]),
			"sub_"+strings.ToLower(s[4:]))
		require.Equal(t, strings.ToLower(s), p.String())
	})
}
