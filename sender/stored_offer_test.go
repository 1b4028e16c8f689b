package sender

import (
	"context"
	"testing"
	"time"

	btclog "github.com/btcsuite/btclog/v2"
	"github.com/satstream/satstream/store"
	"github.com/stretchr/testify/require"
)

// TestUpgradeWithOldAcceptedOfferBricksLoad: an offer with a type 3 field this version refuses (duplicate
// node, bad point, five nodes, empty) is a valid single-node offer to a
// sender that predates type 3 (odd: ignored), so an old sender subscribed
// to it and stored the string. After the upgrade Load re-parses every
// stored offer and fails: the whole daemon refuses to start, so no
// subscription pays and no open attempt is tracked. A hostile provider can
// plant such an offer on purpose.
func TestUpgradeWithOldAcceptedOfferBricksLoad(t *testing.T) {
	const oldAccepted = "satoffer1qgssy7d7vel0nh9m4326qc54e6rskpczn07dktww9rv4nu5ptvt0s9ucqdpq93sy072yrmtad5cy2srwjhq8ekzuw78yhr808jn6htqfh9w8p8h9qtrqglu5g8kh6mfsg4qxa9wq0nv9cauwfwxw70984wkqnw2uwz0w2pqsqqqsyqcyq5rqwzqfpg9scrgwpuyqyqlgpgpw5cqvqy7quqsp9sgqyrss0uxfyz"
	h := newHarness(t, nil)
	h.run()
	id := h.add(testOffer(t, 1000, time.Hour, false), TermsRequest{
		Increment: dur(time.Minute), Buffer: dur(0),
	})
	h.eventually(func() bool { return h.view(id).Payments >= 1 }, "paid")
	h.stop()

	// What the old sender stored for the offer it accepted.
	require.NoError(t, h.db.Sender().Update(context.Background(),
		func(tx store.SenderTx) error {
			s, err := tx.Subscription(id)
			if err != nil {
				return err
			}
			s.OfferString = oldAccepted
			return tx.PutSubscription(s)
		}))

	h.eng = NewEngine(h.cfg, h.db.Sender(), h.clock, btclog.Disabled,
		btclog.Disabled, nil)
	require.NoError(t, h.eng.Load(context.Background()),
		"one stored offer the old version accepted stops the daemon")
}
