package receiver

import (
	"strings"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/lightningnetwork/lnd/routing/route"
	"github.com/satstream/satstream/tlv"
	"github.com/stretchr/testify/require"
)

// testNodeHex returns a fresh node key in hex.
func testNodeHex(t *testing.T) string {
	t.Helper()

	key, err := btcec.NewPrivateKey()
	require.NoError(t, err)

	return route.NewVertex(key.PubKey()).String()
}

// TestBadExtraNodeRefusedAtStart reproduces a receiver that would hand out
// offers a sender refuses (or pays the wrong node from): every bad
// --offer.extranode stops the daemon with an error naming the option.
func TestBadExtraNodeRefusedAtStart(t *testing.T) {
	t.Parallel()

	a, b, c, d := testNodeHex(t), testNodeHex(t), testNodeHex(t),
		testNodeHex(t)
	tests := []struct {
		name   string
		nodes  []string
		errHas string
	}{
		{"none", nil, ""},
		{"three", []string{a, b, c}, ""},
		{"not hex", []string{"xyz"}, "not a hex node public key"},
		{"short", []string{a[:64]}, "not a hex node public key"},
		{"not a point", []string{"02" + strings.Repeat("ff", 32)},
			"not a valid public key"},
		{"twice", []string{a, b, a}, "given twice"},
		{"four (this node's key among them)", []string{a, b, c, d}, ""},
		{"five", []string{a, b, c, d, testNodeHex(t)}, "at most 4"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := validConfig(t)
			c.Offer.ExtraNodes = tc.nodes
			err := c.Validate()
			if tc.errHas == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrConfig)
			require.Contains(t, err.Error(), "--offer.extranode")
			require.Contains(t, err.Error(), tc.errHas)
		})
	}
}

// TestOfferListsClusterNodes reproduces offers that name only this node
// when the provider runs several: the plan and subscription offers list
// this node first, then the configured extra nodes, and an extra node equal
// to this node (a config shared by the whole cluster) is left out instead
// of making the offer invalid.
func TestOfferListsClusterNodes(t *testing.T) {
	t.Parallel()
	a := newAPIHarness(t)
	self, ok := a.api.node()
	require.True(t, ok)

	other, err := route.NewVertexFromStr(testNodeHex(t))
	require.NoError(t, err)
	a.api.extraNodes = []route.Vertex{self, other}

	code, plan := a.call(a.tokens.Admin, "POST", "/v1/plans",
		map[string]any{
			"label": "cluster", "price_msat_per_sec": 10,
			"min_payment_msat": 0, "grace_period_sec": 60,
			"max_prepay_sec": 3600, "default_increment_sec": 60,
			"open_enrolment": true,
		})
	require.Equal(t, 201, code, "%v", plan)
	o, err := tlv.ParseOffer(plan["offer"].(string))
	require.NoError(t, err)
	require.Equal(t, self, o.Node)
	require.Len(t, o.ExtraNodes, 1)
	require.Equal(t, other, o.ExtraNodes[0])
}

// TestFourNodeClusterCannotShareExtraNodeList reproduces a 4-node cluster
// whose nodes could not share one --offer.extranode list: Validate refused
// the 4 keys before this node's own key was dropped. Four keys with this
// node's among them are fine; four others are refused once this node's key
// is known.
func TestFourNodeClusterCannotShareExtraNodeList(t *testing.T) {
	t.Parallel()

	keys := []string{testNodeHex(t), testNodeHex(t), testNodeHex(t),
		testNodeHex(t)}
	c := validConfig(t)
	c.Offer.ExtraNodes = keys
	require.NoError(t, c.Validate())

	for _, k := range keys {
		self, err := route.NewVertexFromStr(k)
		require.NoError(t, err)
		require.NoError(t, c.Offer.CheckSelf(self))
		require.Len(t, offerExtraNodes(self, c.Offer.Keys()), 3)
	}

	outsider, err := route.NewVertexFromStr(testNodeHex(t))
	require.NoError(t, err)
	err = c.Offer.CheckSelf(outsider)
	require.ErrorIs(t, err, ErrConfig)
	require.Contains(t, err.Error(), "--offer.extranode")
}
