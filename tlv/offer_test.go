package tlv

import (
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcutil/bech32"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/lightningnetwork/lnd/routing/route"
	"github.com/stretchr/testify/require"
)

// testOffer returns a valid personal offer for a fresh random node key.
func testOffer(t *testing.T) *Offer {
	t.Helper()

	key, err := btcec.NewPrivateKey()
	require.NoError(t, err)
	sub := mustSub(t)

	return &Offer{
		Node:             route.NewVertex(key.PubKey()),
		SubscriptionID:   &sub,
		PriceMsatPerSec:  1000,
		MinPayment:       60_000,
		DefaultIncrement: time.Minute,
		GracePeriod:      5 * time.Minute,
		MaxPrepay:        time.Hour,
		Label:            "Example",
	}
}

// TestOfferValidate walks each rule of Offer.Validate.
func TestOfferValidate(t *testing.T) {
	t.Parallel()

	plan, err := NewPlanID()
	require.NoError(t, err)

	tests := []struct {
		name   string
		mutate func(o *Offer)
		err    error
	}{
		{"valid", func(o *Offer) {}, nil},
		{"valid_plan", func(o *Offer) {
			o.SubscriptionID, o.PlanID = nil, &plan
		}, nil},
		{"valid_no_label_no_grace_no_min", func(o *Offer) {
			o.Label, o.GracePeriod, o.MinPayment = "", 0, 0
		}, nil},
		{"bad_node", func(o *Offer) { o.Node = route.Vertex{} },
			ErrBadOffer},
		{"no_id", func(o *Offer) { o.SubscriptionID = nil },
			ErrMissingRecord},
		{"both_ids", func(o *Offer) { o.PlanID = &plan }, ErrBadOffer},
		{"zero_sub", func(o *Offer) {
			o.SubscriptionID = &SubscriptionID{}
		}, ErrZeroID},
		{"zero_plan", func(o *Offer) {
			o.SubscriptionID, o.PlanID = nil, &PlanID{}
		}, ErrZeroID},
		{"zero_price", func(o *Offer) { o.PriceMsatPerSec = 0 },
			ErrBadValue},
		{"fractional_increment", func(o *Offer) {
			o.DefaultIncrement = 1500 * time.Millisecond
		}, ErrBadValue},
		{"zero_increment", func(o *Offer) { o.DefaultIncrement = 0 },
			ErrBadValue},
		{"negative_grace", func(o *Offer) { o.GracePeriod = -time.Second },
			ErrBadValue},
		{"grace_too_big", func(o *Offer) {
			o.GracePeriod = (1 << 32) * time.Second
		}, ErrBadValue},
		{"prepay_below_increment", func(o *Offer) {
			o.MaxPrepay = 59 * time.Second
		}, ErrBadValue},
		{"min_payment_unpayable", func(o *Offer) {
			o.MinPayment = 3_600_001
		}, ErrBadValue},
		{"label_too_long", func(o *Offer) {
			o.Label = strings.Repeat("é", 33)
		}, ErrOversized},
		{"label_control", func(o *Offer) { o.Label = "a\tb" },
			ErrBadValue},
		{"label_bidi", func(o *Offer) { o.Label = "a\u2067b" },
			ErrBadValue},
		{"label_bad_utf8", func(o *Offer) { o.Label = "a\xc3" },
			ErrBadValue},
		{"valid_extra_nodes", func(o *Offer) {
			o.ExtraNodes = []route.Vertex{newNode(t), newNode(t),
				newNode(t)}
		}, nil},
		{"extra_node_bad_point", func(o *Offer) {
			o.ExtraNodes = []route.Vertex{newNode(t), {}}
		}, ErrBadValue},
		{"extra_node_repeats_primary", func(o *Offer) {
			o.ExtraNodes = []route.Vertex{o.Node}
		}, ErrBadValue},
		{"extra_node_twice", func(o *Offer) {
			n := newNode(t)
			o.ExtraNodes = []route.Vertex{n, n}
		}, ErrBadValue},
		{"too_many_nodes", func(o *Offer) {
			o.ExtraNodes = []route.Vertex{newNode(t), newNode(t),
				newNode(t), newNode(t)}
		}, ErrOversized},
		{"extra_nodes_empty_not_nil", func(o *Offer) {
			o.ExtraNodes = []route.Vertex{}
		}, ErrBadValue},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := testOffer(t)
			tc.mutate(o)

			err := o.Validate()
			if tc.err == nil {
				require.NoError(t, err)
				got, err := ParseOffer(o.String())
				require.NoError(t, err)
				require.Equal(t, o, got)

				return
			}
			require.ErrorIs(t, err, ErrBadOffer)
			require.ErrorIs(t, err, tc.err)

			// An invalid offer never renders as a parseable string.
			s := o.String()
			require.True(t, strings.HasPrefix(s, "<invalid offer: "), s)
			_, err = ParseOffer(s)
			require.ErrorIs(t, err, ErrBadOffer)
		})
	}
}

// newNode returns a fresh random node key.
func newNode(t *testing.T) route.Vertex {
	t.Helper()

	key, err := btcec.NewPrivateKey()
	require.NoError(t, err)

	return route.NewVertex(key.PubKey())
}

// TestOfferNodesPrimaryFirst pins the order senders try destinations in:
// the primary node_id, then the extra nodes as listed.
func TestOfferNodesPrimaryFirst(t *testing.T) {
	t.Parallel()

	o := testOffer(t)
	require.Equal(t, []route.Vertex{o.Node}, o.Nodes())

	a, b := newNode(t), newNode(t)
	o.ExtraNodes = []route.Vertex{a, b}
	require.Equal(t, []route.Vertex{o.Node, a, b}, o.Nodes())

	got, err := ParseOffer(o.String())
	require.NoError(t, err)
	require.Equal(t, []route.Vertex{o.Node, a, b}, got.Nodes())
}

// TestOldParserPaysPrimaryOfMultiNodeOffer reproduces what a sender built
// before extra nodes existed does with a new offer: it must still parse it
// (the extra nodes ride in an odd field it skips) and pay node_id. The old
// parser is this one with the extra-node field unknown.
func TestOldParserPaysPrimaryOfMultiNodeOffer(t *testing.T) {
	t.Parallel()

	o := testOffer(t)
	o.ExtraNodes = []route.Vertex{newNode(t)}
	s := o.String()

	_, data, err := bech32.DecodeNoLimit(s)
	require.NoError(t, err)
	payload, err := bech32.ConvertBits(data, 5, 8, false)
	require.NoError(t, err)
	fields, err := streamToMap(payload)
	require.NoError(t, err)
	require.Contains(t, fields, offerTypeExtraNodes)
	require.Equal(t, uint64(1), offerTypeExtraNodes%2,
		"extra nodes must be an odd (skippable) type")

	// An old parser ignores the unknown odd field.
	delete(fields, offerTypeExtraNodes)
	old, err := offerFromFields(fields)
	require.NoError(t, err)
	require.Equal(t, o.Node, old.Node)
	require.Nil(t, old.ExtraNodes)
}

// TestOfferRoundTripRandom round-trips many random offers, including the
// extreme field values.
func TestOfferRoundTripRandom(t *testing.T) {
	t.Parallel()

	for i := 0; i < 200; i++ {
		o := testOffer(t)
		var b [8]byte
		_, err := rand.Read(b[:])
		require.NoError(t, err)
		o.PriceMsatPerSec = 1 + (lnwireMsat(b[:]) >> (i % 64))
		o.MinPayment = 0
		o.DefaultIncrement = time.Duration(1+i) * time.Second
		o.MaxPrepay = time.Duration(1<<32-1) * time.Second
		o.Label = strings.Repeat("x", i%(MaxLabelLength+1))

		s := o.String()
		require.LessOrEqual(t, len(s), 260)
		got, err := ParseOffer(s)
		require.NoError(t, err, s)
		require.Equal(t, o, got)
		require.Equal(t, s, got.String())

		up, err := ParseOffer(strings.ToUpper(s))
		require.NoError(t, err)
		require.Equal(t, o, up)
	}
}

// TestParseOfferErrorContext checks that errors say what is wrong in words a
// user can act on.
func TestParseOfferErrorContext(t *testing.T) {
	t.Parallel()

	s := testOffer(t).String()
	last := "q"
	if strings.HasSuffix(s, "q") {
		last = "p"
	}
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", "not a satstream offer"},
		{"invoice", "lnbc1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzq",
			`prefix "lnbc" is not "satoffer1"`},
		{"space", " " + s, "whitespace"},
		{"typo", s[:len(s)-1] + last, "typo"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseOffer(tc.in)
			require.ErrorIs(t, err, ErrBadOffer)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

// lnwireMsat reads 8 bytes as a big-endian amount.
func lnwireMsat(b []byte) (v lnwire.MilliSatoshi) {
	for _, c := range b {
		v = v<<8 | lnwire.MilliSatoshi(c)
	}

	return v
}

// TestOfferMaxLength pins the longest offer this version writes, which the
// spec and MaxOfferLength quote.
func TestOfferMaxLength(t *testing.T) {
	t.Parallel()

	o := testOffer(t)
	o.PriceMsatPerSec = ^lnwire.MilliSatoshi(0)
	o.MinPayment = ^lnwire.MilliSatoshi(0)
	o.DefaultIncrement = (1<<32 - 1) * time.Second
	o.GracePeriod = (1<<32 - 1) * time.Second
	o.MaxPrepay = (1<<32 - 1) * time.Second
	o.Label = strings.Repeat("x", MaxLabelLength)
	for len(o.ExtraNodes) < MaxOfferNodes-1 {
		o.ExtraNodes = append(o.ExtraNodes, newNode(t))
	}

	s := o.String()
	require.Len(t, s, 428)
	require.Less(t, len(s), MaxOfferLength)
	got, err := ParseOffer(s)
	require.NoError(t, err)
	require.Equal(t, o, got)
}

// offerWithRawExtra encodes o with its extra_node_ids field set to the raw
// bytes extra, valid or not, the way an old sender would have stored it.
func offerWithRawExtra(t *testing.T, o *Offer, extra []byte) string {
	t.Helper()

	o.ExtraNodes = nil
	p := o.payload()
	// The payload starts with node_id (type 2, 33 bytes); type 3 follows.
	require.Equal(t, byte(offerTypeNode), p[0])
	require.Less(t, len(extra), 253)
	raw := append([]byte{}, p[:35]...)
	raw = append(raw, byte(offerTypeExtraNodes), byte(len(extra)))
	raw = append(raw, extra...)
	raw = append(raw, p[35:]...)

	data, err := bech32.ConvertBits(raw, 8, 5, true)
	require.NoError(t, err)
	s, err := bech32.EncodeM(OfferHRP, data)
	require.NoError(t, err)

	return s
}

// TestStoredOfferWithInvalidExtraNodesStillLoads reproduces an upgrade
// that bricked the sender: an old sender (which skipped the odd type 3)
// accepted offers whose extra_node_ids this version refuses, and re-parsing
// the stored string failed. ParseStoredOffer drops the invalid field and
// keeps node_id; ParseOffer still refuses it for new subscriptions.
func TestStoredOfferWithInvalidExtraNodesStillLoads(t *testing.T) {
	t.Parallel()

	o := testOffer(t)
	a, b := newNode(t), newNode(t)
	var bad route.Vertex
	bad[0] = 0x05
	join := func(vs ...route.Vertex) []byte {
		var out []byte
		for _, v := range vs {
			out = append(out, v[:]...)
		}
		return out
	}

	tests := []struct {
		name  string
		extra []byte
	}{
		{"repeated key", join(a, a)},
		{"primary repeated", join(a, o.Node)},
		{"bad point", join(bad)},
		{"empty", nil},
		{"length not a multiple of 33", join(a)[:32]},
		{"too many nodes", join(a, b, newNode(t), newNode(t))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := offerWithRawExtra(t, o, tc.extra)

			_, err := ParseOffer(s)
			require.ErrorIs(t, err, ErrBadOffer)

			got, dropped, err := ParseStoredOffer(s)
			require.NoError(t, err)
			require.ErrorIs(t, dropped, ErrBadOffer)
			require.Equal(t, o.Node, got.Node)
			require.Nil(t, got.ExtraNodes)
			require.Equal(t, []route.Vertex{o.Node}, got.Nodes())
		})
	}

	// A valid stored offer keeps its extra nodes and drops nothing.
	s := offerWithRawExtra(t, o, join(a, b))
	got, dropped, err := ParseStoredOffer(s)
	require.NoError(t, err)
	require.NoError(t, dropped)
	require.Equal(t, []route.Vertex{o.Node, a, b}, got.Nodes())
}
