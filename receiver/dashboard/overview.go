package dashboard

import (
	"context"
	"fmt"
	"html/template"
	"net/http"
	"sort"
	"strings"
	"time"

	kit "github.com/satstream/satstream/common/dashboard"

	"github.com/satstream/satstream/receiver/core"
	"github.com/satstream/satstream/receiver/webhook"
	"github.com/satstream/satstream/store"
)

// overviewTTL bounds how often the overview's scan of the ledger runs,
// however often the pages refresh.
const overviewTTL = 5 * time.Second

// overview is the overview page's figures, from one scan of the ledger.
type overview struct {
	at       time.Time
	States   []stateCount
	Subs     int
	Credited uint64
	Hourly   template.HTML
	Daily    template.HTML
	ByPlan   []planIncome
	Refusals []reasonCount
	Refused  uint64
	// Recent counts the refused payments of known subscriptions in the
	// last 24 hours by reason (refusals naming no subscription leave
	// only the all-time counters).
	Recent      map[string]uint64
	Unclaimed   []core.PaymentView
	UnclaimedMs uint64
	Pending     int
	// Dead counts the dead letters: events given up at an endpoint,
	// out of the pending queue until retried.
	Dead        int
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
		o.Dead, err = webhook.CountDead(tx, d.cfg.Endpoints)
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
