package sender

import (
	"context"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/satstream/satstream/common"
	kit "github.com/satstream/satstream/common/dashboard"
	"github.com/satstream/satstream/sender/dashboard"
	"github.com/satstream/satstream/store"
	"github.com/satstream/satstream/tlv"
)

// dashBackend is the payer dashboard's view of the engine.
type dashBackend struct {
	engine *Engine
	health func() map[string]any
}

var _ dashboard.Backend = (*dashBackend)(nil)

func parseTime(s string) time.Time {
	t, _ := time.Parse(time.RFC3339, s)
	return t
}

// Subscriptions implements dashboard.Backend.
func (b *dashBackend) Subscriptions(ctx context.Context) ([]dashboard.Sub, error) {
	views := b.engine.List("")
	today := store.DayOf(b.engine.clock.Now())
	spend := make([]uint64, len(views))
	err := b.engine.db.View(ctx, func(tx store.SenderTx) error {
		for i, v := range views {
			id, err := tlv.ParseSubscriptionID(v.Secret)
			if err != nil {
				return err
			}
			amt, err := tx.SpendOn(store.SubID(id), today)
			if err != nil {
				return err
			}
			spend[i] = uint64(amt)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]dashboard.Sub, len(views))
	for i, v := range views {
		inc := time.Duration(v.Terms.Increment) * time.Second
		buf := time.Duration(v.Terms.Buffer) * time.Second
		out[i] = dashboard.Sub{
			ID: v.ID, Label: v.Label, Node: v.Node, State: v.State,
			PayingNode: v.PayingNode, Nodes: len(v.Nodes),
			Reason: v.Reason, Waiting: v.Waiting,
			RetryAt:         parseTime(v.RetryAt),
			PaidUntil:       parseTime(v.PaidUntil),
			ServiceUntil:    parseTime(v.ServiceUntil),
			CapResumesAt:    parseTime(v.CapResumesAt),
			PriceMsatPerSec: v.PriceMsatPS,
			Increment:       inc, Buffer: buf,
			PaymentMsat:  v.PaymentMsat,
			Payments:     v.Payments,
			SentMsat:     v.SentMsat,
			FeesMsat:     v.FeesMsat,
			ReservedMsat: v.ReservedMsat,
			TodayMsat:    spend[i],
			MaxPerDay:    v.Terms.MaxPerDay,
			MaxTotal:     v.Terms.MaxTotal,

			CancelPending: v.CancelPending,
		}
	}
	return out, nil
}

// SpendPerDay implements dashboard.Backend from the daily spend counters
// (spent plus reserved, fees included).
func (b *dashBackend) SpendPerDay(ctx context.Context,
	days int) ([]dashboard.DaySpend, error) {

	views := b.engine.List("")
	today := store.DayOf(b.engine.clock.Now())
	out := make([]dashboard.DaySpend, days)
	err := b.engine.db.View(ctx, func(tx store.SenderTx) error {
		for i := range out {
			day := today - store.Day(days-1-i)
			out[i] = dashboard.DaySpend{Day: day.Start()}
			for _, v := range views {
				id, err := tlv.ParseSubscriptionID(v.Secret)
				if err != nil {
					return err
				}
				amt, err := tx.SpendOn(store.SubID(id), day)
				if err != nil {
					return err
				}
				out[i].Msat += uint64(amt)
			}
		}
		return nil
	})
	return out, err
}

// Apply implements dashboard.Backend; id is the public id.
func (b *dashBackend) Apply(ctx context.Context, id, op string) error {
	pub, err := tlv.ParsePublicID(id)
	if err != nil {
		return err
	}
	sid, err := b.engine.ByPublicID(pub)
	if err != nil {
		return err
	}
	_, err = b.engine.Apply(ctx, sid, Op(op), true)
	return err
}

// Add implements dashboard.Backend.
func (b *dashBackend) Add(ctx context.Context, req dashboard.AddRequest) error {
	tr := TermsRequest{Preset: req.Preset}
	if req.Buffer > 0 {
		tr.Buffer = &req.Buffer
	}
	_, err := b.engine.Add(ctx, req.Offer, tr, false)
	return err
}

// Presets implements dashboard.Backend.
func (b *dashBackend) Presets() []dashboard.Preset {
	var out []dashboard.Preset
	for name, p := range Presets {
		out = append(out, dashboard.Preset{Name: name,
			Increment: p.Increment, Buffer: p.Buffer})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Health implements dashboard.Backend.
func (b *dashBackend) Health() dashboard.Health {
	lnd, _ := b.health()["lnd"].(string)
	return dashboard.Health{Lnd: lnd,
		Connected: strings.HasPrefix(lnd, "connected")}
}

// newDashboard builds the payer dashboard and mounts it beside the API:
// /v1/ stays the REST API (behind its bearer tokens), everything else is
// the dashboard (behind its sessions). The engine's changes are streamed
// to open pages through the returned kit's notifier.
func newDashboard(engine *Engine, tokens common.Tokens, api http.Handler,
	health func() map[string]any) (*kit.Kit, http.Handler, error) {

	events := kit.NewNotifier()
	engine.SetOnChange(events.Notify)
	k := kit.New(kit.Config{Name: "Payer dashboard",
		Cookie: "satstream_sender", Tokens: tokens, Nav: dashboard.Nav,
		Events: events})
	d, err := dashboard.New(k, &dashBackend{engine: engine, health: health})
	if err != nil {
		return nil, nil, err
	}
	v1 := http.NewServeMux()
	v1.Handle("/v1/dashboard/login-link", k.LinkHandler())
	v1.Handle("/", tokens.Middleware(api))
	return k, kit.Mount(v1, k.Handler(d.Handler())), nil
}

// logDashboard prints where the dashboard is, with a one-time login link.
func (d *Daemon) logDashboard() {
	link, exp, err := d.dash.LoginLink(common.AccessAdmin)
	if err != nil {
		return
	}
	d.log.Infof("Dashboard on https://%s/ (one-time login link, valid "+
		"until %s: https://%s%s ; `satstream sender dashboard` makes "+
		"another)", d.apiSrv.Addr(), exp.UTC().Format(time.RFC3339),
		d.apiSrv.Addr(), link)
}
