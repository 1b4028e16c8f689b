package webhook_test

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btclog/v2"
	"github.com/satstream/satstream/receiver/core"
	rt "github.com/satstream/satstream/receiver/receivertest"
	"github.com/satstream/satstream/receiver/webhook"
	"github.com/satstream/satstream/store"
	"github.com/stretchr/testify/require"
)

// TestWebhookBodyCarriedPayersSecret reproduces issue 11 item 4 and issue
// 14 item 15 at the webhook: every body carried the payer's secret
// subscription id (envelope, subscription and payment views, refusal
// reason), and event ids were evt_<counter>, which a new or restored
// ledger hands out again to a consumer that deduplicates by them. Bodies
// as delivered now name the public id only, carry a random evt_ id and
// say which api_version and network they come from.
func TestWebhookBodyCarriedPayersSecret(t *testing.T) {
	t.Parallel()
	secret := store.SubID{0x5e, 0xc2, 0xe7, 9, 8, 7, 6, 5, 4, 3, 2, 1}
	pub := secret.PublicID().String()

	var (
		mu     sync.Mutex
		bodies [][]byte
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter,
		r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, body)
		mu.Unlock()
	}))
	defer srv.Close()

	// Two ledgers, as a new or restored one after the first: both count
	// their events from 1.
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for range 2 {
		db := rt.OpenStore(t).Receiver()
		require.NoError(t, db.Update(context.Background(),
			func(tx store.ReceiverTx) error {
				sub := core.NewSubscription(secret, &store.Plan{
					ID: "p", Terms: store.Terms{RatePerSecond: 1,
						MaxPrepay: time.Hour}}, now)
				if err := tx.PutSubscription(sub); err != nil {
					return err
				}
				pay := &store.Payment{Hash: store.Hash{1},
					SubID: secret, Seq: 1, Amount: 10,
					State: store.PaymentRefused, ReceivedAt: now,
					Reason: "below_minimum: subscription " +
						secret.Hex()}
				if err := core.AppendEvent(tx,
					store.EventSubscriptionCreated, sub, nil, "",
					now); err != nil {
					return err
				}
				return core.AppendEvent(tx, store.EventPaymentRefused,
					sub, pay, pay.Reason, now)
			}))
		ctx, cancel := context.WithCancel(context.Background())
		d := webhook.New(webhook.Config{
			Store: db, URLs: []string{srv.URL}, Secret: []byte("s"),
			Network:        "regtest",
			Log:            btclog.NewSLogger(btclog.NewDefaultHandler(os.Stderr)),
			InitialBackoff: 10 * time.Millisecond,
			MaxBackoff:     50 * time.Millisecond,
		})
		done := make(chan struct{})
		go func() { _ = d.Run(ctx); close(done) }()
		require.Eventually(t, func() bool {
			pending := 0
			_ = db.View(context.Background(), func(tx store.ReceiverTx) error {
				return tx.ForEachPendingEvent(0, func(*store.Event) error {
					pending++
					return nil
				})
			})
			return pending == 0
		}, 10*time.Second, 5*time.Millisecond)
		cancel()
		<-done
	}

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, bodies, 4)
	forbidden := []string{secret.Hex(), hex.EncodeToString(secret[:6]),
		base64.StdEncoding.EncodeToString(secret[:]),
		base64.RawURLEncoding.EncodeToString(secret[:])}
	evtID := regexp.MustCompile(`^evt_[0-9a-f]{32}$`)
	ids := map[string]bool{}
	for _, body := range bodies {
		for _, s := range forbidden {
			require.NotContains(t, string(body), s)
		}
		var env struct {
			webhook.Envelope
			Data struct {
				Subscription struct {
					ID string `json:"id"`
				} `json:"subscription"`
				Payment *struct {
					SubscriptionID string `json:"subscription_id"`
				} `json:"payment"`
			} `json:"data"`
		}
		require.NoError(t, json.Unmarshal(body, &env))
		require.Regexp(t, evtID, env.ID)
		require.False(t, ids[env.ID], "event id %s reused", env.ID)
		ids[env.ID] = true
		require.Equal(t, webhook.APIVersion, env.APIVersion)
		require.Equal(t, "regtest", env.Network)
		require.Equal(t, pub, env.SubscriptionID)
		require.Equal(t, pub, env.Data.Subscription.ID)
		if env.Data.Payment != nil {
			require.Equal(t, pub, env.Data.Payment.SubscriptionID)
		}
	}
}
