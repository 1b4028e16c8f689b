package receiver

import (
	"encoding/hex"
	"fmt"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/lightningnetwork/lnd/routing/route"
	"github.com/satstream/satstream/tlv"
)

// OfferConfig configures the offers this receiver hands out.
type OfferConfig struct {
	ExtraNodes []string `long:"extranode" description:"Public key (hex) of another lnd node of this provider, whose own receiver shares this ledger; offers list this node first, then these, and senders fail over to them in this order when this node is unreachable (repeatable, at most 3 besides this node; this node's own key is skipped, so one list of up to 4 keys can serve the whole cluster)"`
}

// Validate refuses extra nodes a sender could not pay or that would make
// every offer invalid: not a key, not a point, listed twice, too many. The
// list may hold this node's own key (one list shared by the whole cluster,
// so up to tlv.MaxOfferNodes keys); CheckSelf checks what remains once
// this node's key is known.
func (c *OfferConfig) Validate() error {
	if len(c.ExtraNodes) > tlv.MaxOfferNodes {
		return fmt.Errorf("%w: --offer.extranode given %d times, at "+
			"most %d (an offer lists at most %d nodes, this one "+
			"included)", ErrConfig, len(c.ExtraNodes),
			tlv.MaxOfferNodes, tlv.MaxOfferNodes)
	}
	seen := make(map[route.Vertex]bool, len(c.ExtraNodes))
	for _, s := range c.ExtraNodes {
		b, err := hex.DecodeString(s)
		if err != nil || len(b) != 33 {
			return fmt.Errorf("%w: --offer.extranode %q is not a hex "+
				"node public key (66 hex characters)", ErrConfig, s)
		}
		if _, err := btcec.ParsePubKey(b); err != nil {
			return fmt.Errorf("%w: --offer.extranode %s is not a "+
				"valid public key: %v", ErrConfig, s, err)
		}
		v := route.Vertex(b)
		if seen[v] {
			return fmt.Errorf("%w: --offer.extranode %s given twice",
				ErrConfig, s)
		}
		seen[v] = true
	}

	return nil
}

// CheckSelf refuses a list that, without this node's own key self, still
// names more than tlv.MaxOfferNodes-1 other nodes: every offer would be
// invalid.
func (c *OfferConfig) CheckSelf(self route.Vertex) error {
	if n := len(offerExtraNodes(self, c.Keys())); n > tlv.MaxOfferNodes-1 {
		return fmt.Errorf("%w: --offer.extranode names %d nodes other "+
			"than this node %s, at most %d (an offer lists at most "+
			"%d nodes)", ErrConfig, n, self, tlv.MaxOfferNodes-1,
			tlv.MaxOfferNodes)
	}

	return nil
}

// Keys returns the validated extra nodes in the configured order.
func (c *OfferConfig) Keys() []route.Vertex {
	keys := make([]route.Vertex, 0, len(c.ExtraNodes))
	for _, s := range c.ExtraNodes {
		if v, err := route.NewVertexFromStr(s); err == nil {
			keys = append(keys, v)
		}
	}

	return keys
}

// offerExtraNodes is the extra_node_ids of this receiver's offers: the
// configured nodes without this node itself, or nil when none remain.
func offerExtraNodes(self route.Vertex, configured []route.Vertex) []route.Vertex {
	var extra []route.Vertex
	for _, v := range configured {
		if v != self {
			extra = append(extra, v)
		}
	}

	return extra
}
