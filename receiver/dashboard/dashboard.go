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
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lightningnetwork/lnd/lnwire"
	kit "github.com/satstream/satstream/common/dashboard"
	"github.com/satstream/satstream/receiver/core"
	"github.com/satstream/satstream/store"
)

//go:embed templates/*.html
var templates embed.FS

// PublicID is the name the dashboard shows and links a subscription by: a
// hash of its id, which says nothing about the id itself.
func PublicID(sub *store.ReceiverSubscription) string {
	h := sha256.Sum256(sub.ID[:])
	return "sub_" + hex.EncodeToString(h[:8])
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
	// WakeWebhooks makes the webhook dispatcher look at its queue now.
	WakeWebhooks func()
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

// overviewTTL bounds how often the overview's scan of the ledger runs,
// however often the pages refresh.
const overviewTTL = 5 * time.Second

// overview is the overview page's figures, from one scan of the ledger.
type overview struct {
	at          time.Time
	States      []stateCount
	Subs        int
	Credited    uint64
	Hourly      template.HTML
	Daily       template.HTML
	ByPlan      []planIncome
	Refusals    []reasonCount
	Refused     uint64
	// Recent counts the refused payments of known subscriptions in the
	// last 24 hours by reason (refusals naming no subscription leave
	// only the all-time counters).
	Recent map[string]uint64
	Unclaimed   []core.PaymentView
	UnclaimedMs uint64
	Pending     int
	Webhooks    int
	LastError   string
	NextAttempt time.Time
	Health      []kv
}

type stateCount struct {
	State string
	N     int
}

type planIncome struct {
	Plan  string
	Label string
	Last  uint64
	Total uint64
}

type reasonCount struct {
	Reason string
	N      uint64
}

type kv struct{ K, V string }

// maxUnclaimedShown bounds the unclaimed payments listed.
const maxUnclaimedShown = 100

func (d *Dashboard) loadOverview(ctx context.Context) (*overview, error) {
	now := d.cfg.Now()
	d.mu.Lock()
	select {
	case <-d.changes:
		d.overview = nil
	default:
	}
	if o := d.overview; o != nil && now.Sub(o.at) < overviewTTL &&
		!now.Before(o.at) {

		d.mu.Unlock()
		return o, nil
	}
	d.mu.Unlock()

	hourStart := now.Truncate(time.Hour).Add(-47 * time.Hour)
	dayStart := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0,
		time.UTC).AddDate(0, 0, -13)
	var (
		hours  [48]uint64
		days   [14]uint64
		o      *overview
		plans  map[store.PlanID]*planIncome
		states map[store.SubState]int
	)
	err := d.cfg.Store.View(ctx, func(tx store.ReceiverTx) error {
		o = &overview{at: now, Webhooks: d.cfg.Webhooks,
			Recent: map[string]uint64{}}
		hours, days = [48]uint64{}, [14]uint64{}
		plans = map[store.PlanID]*planIncome{}
		states = map[store.SubState]int{}
		err := tx.ForEachPlan(func(p *store.Plan) error {
			plans[p.ID] = &planIncome{Plan: string(p.ID), Label: p.Label}
			return nil
		})
		if err != nil {
			return err
		}
		pay := func(p *store.Payment) error {
			switch p.State {
			case store.PaymentRefused:
				if now.Sub(p.ReceivedAt) < 24*time.Hour {
					o.Recent[p.Reason]++
				}
			case store.PaymentUnclaimed:
				o.UnclaimedMs += uint64(p.Amount)
				if len(o.Unclaimed) < maxUnclaimedShown {
					o.Unclaimed = append(o.Unclaimed,
						core.NewPaymentView(p))
				}
			case store.PaymentCredited:
				amt := uint64(p.Amount)
				if h := int(p.ReceivedAt.Sub(hourStart) / time.Hour); h >= 0 && h < 48 {
					hours[h] += amt
				}
				if dd := int(p.ReceivedAt.Sub(dayStart) / (24 * time.Hour)); dd >= 0 && dd < 14 {
					days[dd] += amt
				}
			}
			return nil
		}
		err = tx.ForEachSubscription(0, store.Page{},
			func(s *store.ReceiverSubscription) error {
				o.Subs++
				states[s.State]++
				o.Credited += uint64(s.TotalPaid)
				pi := plans[s.PlanID]
				if pi == nil {
					pi = &planIncome{Plan: string(s.PlanID)}
					plans[s.PlanID] = pi
				}
				pi.Total += uint64(s.TotalPaid)
				before := days
				if err := tx.ForEachPayment(s.ID, 0, pay); err != nil {
					return err
				}
				for i := range days {
					pi.Last += days[i] - before[i]
				}
				return nil
			})
		if err != nil {
			return err
		}
		// Payments that named no subscription we know.
		if err := tx.ForEachPayment(store.SubID{}, 0, pay); err != nil {
			return err
		}
		err = tx.ForEachRefusalCount(func(reason string, n uint64) error {
			o.Refusals = append(o.Refusals, reasonCount{reason, n})
			o.Refused += n
			return nil
		})
		if err != nil {
			return err
		}
		return tx.ForEachPendingEvent(0, func(ev *store.Event) error {
			o.Pending++
			if ev.LastError != "" {
				o.LastError = ev.LastError
				o.NextAttempt = ev.NextAttempt
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	for s := store.SubPending; s <= store.SubCancelledByPayer; s++ {
		o.States = append(o.States, stateCount{s.String(), states[s]})
	}
	hb := make([]kit.Bar, 48)
	for i := range hb {
		t := hourStart.Add(time.Duration(i) * time.Hour)
		hb[i] = kit.Bar{Label: t.Format("15h"), Value: hours[i],
			Title: t.Format("2006-01-02 15:00") + ": " + kit.Sats(hours[i])}
	}
	db := make([]kit.Bar, 14)
	for i := range db {
		t := dayStart.AddDate(0, 0, i)
		db[i] = kit.Bar{Label: t.Format("01-02"), Value: days[i],
			Title: t.Format("2006-01-02") + ": " + kit.Sats(days[i])}
	}
	o.Hourly = kit.BarChart(hb, "income per hour, last 48 hours")
	o.Daily = kit.BarChart(db, "income per day, last 14 days")
	for _, p := range plans {
		o.ByPlan = append(o.ByPlan, *p)
	}
	sort.Slice(o.ByPlan, func(i, j int) bool {
		return o.ByPlan[i].Total > o.ByPlan[j].Total
	})
	sort.Slice(o.Refusals, func(i, j int) bool {
		return o.Refusals[i].N > o.Refusals[j].N
	})
	h := d.cfg.Health()
	for k, v := range h {
		o.Health = append(o.Health, kv{strings.ReplaceAll(k, "_", " "),
			fmt.Sprint(v)})
	}
	sort.Slice(o.Health, func(i, j int) bool { return o.Health[i].K < o.Health[j].K })
	d.mu.Lock()
	d.overview = o
	d.mu.Unlock()
	return o, nil
}

func (d *Dashboard) index(w http.ResponseWriter, r *http.Request) {
	o, err := d.loadOverview(r.Context())
	if err != nil {
		d.pages.Error(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	d.pages.Render(w, r, http.StatusOK, "index", "Overview", o)
}

// pageSize is how many subscriptions one page lists.
const pageSize = 50

type subsData struct {
	Subs   []*store.ReceiverSubscription
	State  string
	Q      string
	Page   int
	Pages  int
	Total  int
	States []string
	Prev   string
	Next   string
	Now    time.Time
}

// subscriptions lists subscriptions by state, with search (public id
// prefix, plan id or plan label) and paging.
func (d *Dashboard) subscriptions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	data := subsData{State: q.Get("state"),
		Q: strings.ToLower(strings.TrimSpace(q.Get("q"))), Now: d.cfg.Now()}
	for s := store.SubPending; s <= store.SubCancelledByPayer; s++ {
		data.States = append(data.States, s.String())
	}
	var state store.SubState
	for s := store.SubPending; s <= store.SubCancelledByPayer; s++ {
		if s.String() == data.State {
			state = s
		}
	}
	if data.State != "" && state == 0 {
		d.pages.Error(w, r, http.StatusBadRequest, "unknown state "+
			data.State)
		return
	}
	data.Page, _ = strconv.Atoi(q.Get("page"))
	if data.Page < 1 {
		data.Page = 1
	}
	skip := (data.Page - 1) * pageSize
	err := d.cfg.Store.View(r.Context(), func(tx store.ReceiverTx) error {
		data.Subs, data.Total = nil, 0
		labels := map[store.PlanID]string{}
		err := tx.ForEachPlan(func(p *store.Plan) error {
			labels[p.ID] = strings.ToLower(p.Label)
			return nil
		})
		if err != nil {
			return err
		}
		return tx.ForEachSubscription(state, store.Page{},
			func(s *store.ReceiverSubscription) error {
				if data.Q != "" &&
					!strings.HasPrefix(PublicID(s), data.Q) &&
					!strings.Contains(strings.ToLower(
						string(s.PlanID)), data.Q) &&
					!strings.Contains(labels[s.PlanID], data.Q) {

					return nil
				}
				data.Total++
				if data.Total > skip && len(data.Subs) < pageSize {
					data.Subs = append(data.Subs, s)
				}
				return nil
			})
	})
	if err != nil {
		d.pages.Error(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	data.Pages = (data.Total + pageSize - 1) / pageSize
	link := func(page int) string {
		v := r.URL.Query()
		v.Set("page", strconv.Itoa(page))
		return "/subscriptions?" + v.Encode()
	}
	if data.Page > 1 {
		data.Prev = link(data.Page - 1)
	}
	if data.Page < data.Pages {
		data.Next = link(data.Page + 1)
	}
	d.pages.Render(w, r, http.StatusOK, "subscriptions", "Subscriptions",
		data)
}

var errNoSub = errors.New("no such subscription")

// find returns the subscription with a public id.
func (d *Dashboard) find(ctx context.Context, ref string) (
	*store.ReceiverSubscription, error) {

	var found *store.ReceiverSubscription
	err := d.cfg.Store.View(ctx, func(tx store.ReceiverTx) error {
		found = nil
		return tx.ForEachSubscription(0, store.Page{},
			func(s *store.ReceiverSubscription) error {
				if PublicID(s) == ref {
					found = s
					return store.ErrStop
				}
				return nil
			})
	})
	if err != nil && !errors.Is(err, store.ErrStop) {
		return nil, err
	}
	if found == nil {
		return nil, errNoSub
	}
	return found, nil
}

type subData struct {
	Sub      *store.ReceiverSubscription
	View     core.SubscriptionView
	Plan     *store.Plan
	Payments []core.PaymentView
	Events   []eventRow
	Offer    string
}

type eventRow struct {
	ID          uint64
	Type        string
	CreatedAt   time.Time
	Delivered   bool
	Attempts    uint32
	LastError   string
	NextAttempt time.Time
}

// maxPaymentsShown and eventScan bound the subscription page's lists.
const (
	maxPaymentsShown = 100
	maxEventsShown   = 50
	eventScan        = 5000
)

func (d *Dashboard) subscription(w http.ResponseWriter, r *http.Request) {
	s, err := d.find(r.Context(), r.PathValue("ref"))
	if errors.Is(err, errNoSub) {
		d.pages.Error(w, r, http.StatusNotFound, err.Error())
		return
	}
	if err != nil {
		d.pages.Error(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	data := subData{Sub: s, View: core.NewSubscriptionView(s, d.cfg.Now())}
	err = d.cfg.Store.View(r.Context(), func(tx store.ReceiverTx) error {
		data.Payments, data.Events = nil, nil
		p, err := tx.Plan(s.PlanID)
		if err == nil {
			data.Plan = p
		}
		err = tx.ForEachPayment(s.ID, 0, func(p *store.Payment) error {
			data.Payments = append(data.Payments, core.NewPaymentView(p))
			return nil
		})
		if err != nil {
			return err
		}
		// Newest events first, from the last id down.
		last := lastEventID(tx)
		for id := last; id > 0 && last-id < eventScan &&
			len(data.Events) < maxEventsShown; id-- {

			ev, err := tx.Event(store.EventID(id))
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if ev.SubID != s.ID {
				continue
			}
			data.Events = append(data.Events, eventRow{
				ID: uint64(ev.ID), Type: ev.Type.String(),
				CreatedAt: ev.CreatedAt, Delivered: ev.Delivered,
				Attempts: ev.Attempts, LastError: ev.LastError,
				NextAttempt: ev.NextAttempt})
		}
		return nil
	})
	if err != nil {
		d.pages.Error(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	// Newest payments first.
	for i, j := 0, len(data.Payments)-1; i < j; i, j = i+1, j-1 {
		data.Payments[i], data.Payments[j] = data.Payments[j], data.Payments[i]
	}
	if len(data.Payments) > maxPaymentsShown {
		data.Payments = data.Payments[:maxPaymentsShown]
	}
	// The personal offer holds the id: admin sessions only.
	if kit.SessionFrom(r.Context()).Admin() && data.Plan != nil {
		data.Offer = d.cfg.Offer(data.Plan, s)
	}
	d.pages.Render(w, r, http.StatusOK, "subscription", PublicID(s), data)
}

// lastEventID finds the newest event id by doubling then bisecting (ids
// are handed out in order from 1).
func lastEventID(tx store.ReceiverTx) uint64 {
	exists := func(id uint64) bool {
		_, err := tx.Event(store.EventID(id))
		return err == nil
	}
	if !exists(1) {
		return 0
	}
	lo, hi := uint64(1), uint64(2)
	for exists(hi) {
		lo, hi = hi, hi*2
	}
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if exists(mid) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo
}

type planRow struct {
	Plan  *store.Plan
	Offer string
}

type plansData struct {
	Plans   []planRow
	Edit    *store.Plan
	Problem string
	Form    planForm
}

// planForm is the plan form as typed (so a refused form keeps its values).
type planForm struct {
	Label, Price, MinPayment, Grace, MaxPrepay, Increment string
	Open                                                  bool
}

func formOf(p *store.Plan) planForm {
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	return planForm{
		Label:      p.Label,
		Open:       p.OpenEnrolment,
		Price:      f(float64(p.Terms.RatePerSecond) * 3.6),
		MinPayment: f(float64(p.Terms.MinPayment) / 1000),
		Grace:      f(p.Terms.Grace.Minutes()),
		MaxPrepay:  f(p.Terms.MaxPrepay.Minutes()),
		Increment:  f(p.DefaultIncrement.Minutes()),
	}
}

func (d *Dashboard) loadPlans(ctx context.Context) ([]planRow, error) {
	var rows []planRow
	err := d.cfg.Store.View(ctx, func(tx store.ReceiverTx) error {
		rows = nil
		return tx.ForEachPlan(func(p *store.Plan) error {
			rows = append(rows, planRow{Plan: p})
			return nil
		})
	})
	for i := range rows {
		if rows[i].Plan.OpenEnrolment {
			rows[i].Offer = d.cfg.Offer(rows[i].Plan, nil)
		}
	}
	return rows, err
}

func (d *Dashboard) plans(w http.ResponseWriter, r *http.Request) {
	rows, err := d.loadPlans(r.Context())
	if err != nil {
		d.pages.Error(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	d.pages.Render(w, r, http.StatusOK, "plans", "Plans", plansData{
		Plans: rows, Form: planForm{Price: "3600", MinPayment: "0",
			Grace: "5", MaxPrepay: "60", Increment: "1", Open: true}})
}

func (d *Dashboard) plan(w http.ResponseWriter, r *http.Request) {
	rows, err := d.loadPlans(r.Context())
	if err != nil {
		d.pages.Error(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	data := plansData{Plans: rows}
	for _, row := range rows {
		if string(row.Plan.ID) == r.PathValue("id") {
			data.Edit = row.Plan
			data.Form = formOf(row.Plan)
		}
	}
	if data.Edit == nil {
		d.pages.Error(w, r, http.StatusNotFound, "no such plan")
		return
	}
	d.pages.Render(w, r, http.StatusOK, "plans", "Edit plan", data)
}

// parsePlanForm converts the form's human units: price in sat per hour
// (stored as whole msat per second, so in steps of 3.6 sat/hour), minimum
// payment in sat (whole msat), durations in minutes (whole seconds).
func parsePlanForm(f planForm) (PlanInput, error) {
	num := func(name, s string) (float64, error) {
		v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || v < 0 || v > 1e15 {
			return 0, fmt.Errorf("%s: %q is not a number of 0 or "+
				"more", name, s)
		}
		return v, nil
	}
	in := PlanInput{Label: strings.TrimSpace(f.Label), Open: f.Open}
	price, err := num("price", f.Price)
	if err != nil {
		return in, err
	}
	in.PriceMsatPerSec = uint64(price/3.6 + 0.5)
	if in.PriceMsatPerSec == 0 {
		return in, fmt.Errorf("price: at least 3.6 sat/hour (1 msat " +
			"per second)")
	}
	minPay, err := num("minimum payment", f.MinPayment)
	if err != nil {
		return in, err
	}
	in.MinPaymentMsat = uint64(minPay*1000 + 0.5)
	for _, d := range []struct {
		name string
		s    string
		out  *time.Duration
	}{
		{"grace", f.Grace, &in.Grace},
		{"prepay limit", f.MaxPrepay, &in.MaxPrepay},
		{"payment step", f.Increment, &in.DefaultIncrement},
	} {
		v, err := num(d.name, d.s)
		if err != nil {
			return in, err
		}
		*d.out = (time.Duration(v*60) * time.Second)
	}
	return in, nil
}

func (d *Dashboard) savePlan(w http.ResponseWriter, r *http.Request) {
	form := planForm{
		Label:      r.PostFormValue("label"),
		Open:       r.PostFormValue("open") == "on",
		Price:      r.PostFormValue("price_sat_per_hour"),
		MinPayment: r.PostFormValue("min_payment_sat"),
		Grace:      r.PostFormValue("grace_min"),
		MaxPrepay:  r.PostFormValue("max_prepay_min"),
		Increment:  r.PostFormValue("increment_min"),
	}
	id := r.PathValue("id")
	in, err := parsePlanForm(form)
	if err == nil {
		_, err = d.cfg.SavePlan(r.Context(), id, in)
	}
	if err != nil {
		rows, _ := d.loadPlans(r.Context())
		data := plansData{Plans: rows, Problem: err.Error(), Form: form}
		for _, row := range rows {
			if string(row.Plan.ID) == id {
				data.Edit = row.Plan
			}
		}
		d.pages.Render(w, r, http.StatusBadRequest, "plans", "Plans", data)
		return
	}
	http.Redirect(w, r, "/plans", http.StatusSeeOther)
}

// maxRetryBatch bounds the events one retry click reschedules (one store
// transaction).
const maxRetryBatch = 1000

// retryWebhooks makes every queued event due now (the oldest
// maxRetryBatch) and wakes the dispatcher, instead of waiting out the
// backoff after an endpoint was fixed.
func (d *Dashboard) retryWebhooks(w http.ResponseWriter, r *http.Request) {
	now := d.cfg.Now()
	err := d.cfg.Store.Update(r.Context(), func(tx store.ReceiverTx) error {
		var due []*store.Event
		err := tx.ForEachPendingEvent(0, func(ev *store.Event) error {
			if ev.NextAttempt.After(now) {
				due = append(due, ev)
			}
			if len(due) >= maxRetryBatch {
				return store.ErrStop
			}
			return nil
		})
		if err != nil && !errors.Is(err, store.ErrStop) {
			return err
		}
		for _, ev := range due {
			ev.NextAttempt = now
			if err := tx.PutEvent(ev); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		d.pages.Error(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	if d.cfg.WakeWebhooks != nil {
		d.cfg.WakeWebhooks()
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}
