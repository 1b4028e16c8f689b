// Package dashboard is the provider's dashboard, served by
// satstream-receiver at / on its API listener: income, subscriptions with
// their paid time counting down, one subscription's payments and webhook
// events, refusals, unclaimed payments, plans with their offers (copy and
// QR code), webhook delivery and the node's health.
//
// A read-only session never sees a subscription's id, which is the payer's
// cancel secret: subscriptions are shown and addressed by PublicID.
package dashboard

import (
	"context"
	"embed"
	"html/template"
	"net/http"
	"sync"
	"time"

	"github.com/lightningnetwork/lnd/lnwire"
	kit "github.com/satstream/satstream/common/dashboard"
	"github.com/satstream/satstream/store"
)

//go:embed templates/*.html
var templates embed.FS

// PublicID is the name the dashboard shows and links a subscription by:
// its public id (tlv.PublicID), which says nothing about the secret id.
func PublicID(sub *store.ReceiverSubscription) string {
	return sub.ID.PublicID().String()
}

// PlanInput is a plan form in the units a person uses.
type PlanInput struct {
	Label            string
	Open             bool
	PriceMsatPerSec  uint64
	MinPaymentMsat   uint64
	Grace            time.Duration
	MaxPrepay        time.Duration
	DefaultIncrement time.Duration
}

// Config is what the dashboard needs from the receiver.
type Config struct {
	Store store.ReceiverStore
	// Offer renders a plan's open offer (sub nil) or a subscription's
	// personal offer; "" if lnd's key is not known yet.
	Offer func(p *store.Plan, sub *store.ReceiverSubscription) string
	// SavePlan creates (id "") or updates a plan with the API's rules;
	// its error is shown to the provider.
	SavePlan func(ctx context.Context, id string, in PlanInput) (*store.Plan, error)
	// Webhooks counts the webhook URLs (0: events are kept, not sent).
	Webhooks int
	// Endpoints are the configured webhook endpoints, whose dead
	// letters the overview counts.
	Endpoints []store.EndpointID
	// RetryDeadLetters retries the oldest dead letters as the API's
	// retry of an event does, and reports how many.
	RetryDeadLetters func(ctx context.Context) (int, error)
	// Health is the body of /v1/health.
	Health func() map[string]any
	// Now is the clock (time.Now if nil).
	Now func() time.Time
	// Changes, if set, signals changes of the ledger: the overview's
	// figures are recomputed after one instead of when they are
	// overviewTTL old.
	Changes *kit.Notifier
}

// Nav is the provider dashboard's navigation.
var Nav = []kit.NavLink{
	{Path: "/", Label: "Overview"},
	{Path: "/subscriptions", Label: "Subscriptions"},
	{Path: "/plans", Label: "Plans"},
}

// Dashboard serves the provider's pages.
type Dashboard struct {
	cfg   Config
	pages *kit.Pages

	mu       sync.Mutex
	overview *overview
	changes  <-chan struct{}
}

// New parses the pages over the kit's layout.
func New(k *kit.Kit, cfg Config) (*Dashboard, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	pages, err := k.Parse(templates, "templates", template.FuncMap{
		"pubid":   PublicID,
		"state":   func(s store.SubState) string { return s.String() },
		"msat":    func(m lnwire.MilliSatoshi) uint64 { return uint64(m) },
		"graceTo": func(s *store.ReceiverSubscription) time.Time { return s.PaidUntil.Add(s.Terms.Grace) },
		"mul":     func(secs uint64) time.Duration { return time.Duration(secs) * time.Second },
	})
	if err != nil {
		return nil, err
	}
	d := &Dashboard{cfg: cfg, pages: pages}
	if cfg.Changes != nil {
		// One subscription for the daemon's life: it only ever
		// holds one coalesced signal.
		d.changes, _ = cfg.Changes.Subscribe()
	}
	return d, nil
}

// Handler routes the pages; wrap it in the kit's Handler.
func (d *Dashboard) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", d.index)
	mux.HandleFunc("GET /subscriptions", d.subscriptions)
	mux.HandleFunc("GET /subscriptions/{ref}", d.subscription)
	mux.HandleFunc("GET /plans", d.plans)
	mux.HandleFunc("POST /plans", d.savePlan)
	mux.HandleFunc("GET /plans/{id}", d.plan)
	mux.HandleFunc("POST /plans/{id}", d.savePlan)
	mux.HandleFunc("POST /webhooks/retry", d.retryWebhooks)
	return mux
}
