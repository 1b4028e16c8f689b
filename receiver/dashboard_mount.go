package receiver

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/satstream/satstream/common"
	kit "github.com/satstream/satstream/common/dashboard"
	"github.com/satstream/satstream/receiver/dashboard"
	"github.com/satstream/satstream/receiver/webhook"
	"github.com/satstream/satstream/store"
	"github.com/satstream/satstream/tlv"
)

// newDashboard builds the provider dashboard and mounts it beside the
// API: /v1/ stays the REST API (behind its bearer tokens), everything else
// is the dashboard (behind its sessions). The daemon's notifyEvents feeds
// the kit's notifier, so open pages follow every change.
func newDashboard(api *apiServer, webhooks int) (*kit.Kit, http.Handler,
	error) {

	changes := kit.NewNotifier()
	k := kit.New(kit.Config{Name: "Provider dashboard",
		Cookie: "satstream_receiver", Tokens: api.tokens,
		Nav: dashboard.Nav, Events: changes})
	d, err := dashboard.New(k, dashboard.Config{
		Store: api.db,
		Offer: func(p *store.Plan, sub *store.ReceiverSubscription) string {
			if sub == nil {
				pid, err := tlv.ParsePlanID(string(p.ID))
				if err != nil {
					return ""
				}
				return api.offer(p, p.Terms, nil, &pid)
			}
			id := tlv.SubscriptionID(sub.ID)
			return api.offer(p, sub.Terms, &id, nil)
		},
		SavePlan:  api.savePlanFromDashboard,
		Health:    api.health,
		Webhooks:  webhooks,
		Endpoints: webhook.Endpoints(api.webhookURLs),
		// The API's retry, so the button does what it does (the
		// dispatcher's rewind included, read at each click: the
		// daemon sets it after building the dashboard).
		RetryDeadLetters: api.retryDeadLetters,
		Now:              api.now,
		Changes:          changes,
	})
	if err != nil {
		return nil, nil, err
	}
	v1 := http.NewServeMux()
	v1.Handle("/v1/dashboard/login-link", k.LinkHandler())
	v1.Handle("/", api.handler())
	return k, kit.Mount(v1, k.Handler(d.Handler())), nil
}

// savePlanFromDashboard creates (id "") or updates a plan from the
// dashboard's form, by the API's rules (fillPlan).
func (s *apiServer) savePlanFromDashboard(ctx context.Context, id string,
	in dashboard.PlanInput) (*store.Plan, error) {

	secs := func(d time.Duration) *uint64 {
		v := uint64(d / time.Second)
		return &v
	}
	req := planRequest{Label: &in.Label, OpenEnrolment: &in.Open,
		termsInput: termsInput{
			PriceMsatPerSec:     &in.PriceMsatPerSec,
			MinPaymentMsat:      &in.MinPaymentMsat,
			GracePeriodSec:      secs(in.Grace),
			MaxPrepaySec:        secs(in.MaxPrepay),
			DefaultIncrementSec: secs(in.DefaultIncrement),
		}}
	now := s.now()
	var p *store.Plan
	err := s.db.Update(ctx, func(tx store.ReceiverTx) error {
		if id == "" {
			pid, err := tlv.NewPlanID()
			if err != nil {
				return err
			}
			p = &store.Plan{ID: store.PlanID(pid.String()),
				CreatedAt: now}
		} else {
			var err error
			p, err = tx.Plan(store.PlanID(id))
			if errors.Is(err, store.ErrNotFound) {
				return notFound("plan")
			}
			if err != nil {
				return err
			}
		}
		p.UpdatedAt = now
		if err := s.fillPlan(p, &req); err != nil {
			return err
		}
		return tx.PutPlan(p)
	})
	var apiErr *common.APIError
	if errors.As(err, &apiErr) {
		// Name the form's field, not the API's.
		return nil, errors.New(dashboardField(apiErr.Field) + ": " +
			apiErr.Message)
	}
	return p, err
}

// dashboardField names an API field the way the plan form does.
func dashboardField(f string) string {
	switch f {
	case "price_msat_per_sec":
		return "price"
	case "min_payment_msat":
		return "smallest payment"
	case "grace_period_sec":
		return "grace"
	case "max_prepay_sec":
		return "prepay limit"
	case "default_increment_sec":
		return "suggested payment step"
	}
	return f
}

// logDashboard prints where the dashboard is, with a one-time login link.
func (d *Daemon) logDashboard() {
	link, exp, err := d.dash.LoginLink(common.AccessAdmin)
	if err != nil {
		return
	}
	d.log.Infof("dashboard on https://%s/ (one-time login link, valid "+
		"until %s: https://%s%s ; `satstream receiver dashboard` makes "+
		"another)", d.APIAddr(), exp.UTC().Format(time.RFC3339),
		d.APIAddr(), link)
}
