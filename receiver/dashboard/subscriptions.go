package dashboard

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	kit "github.com/satstream/satstream/common/dashboard"
	"github.com/satstream/satstream/tlv"

	"github.com/satstream/satstream/receiver/core"
	"github.com/satstream/satstream/store"
)

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

	pub, err := tlv.ParsePublicID(ref)
	if err != nil {
		return nil, errNoSub
	}
	var found *store.ReceiverSubscription
	err = d.cfg.Store.View(ctx, func(tx store.ReceiverTx) error {
		var err error
		found, err = tx.SubscriptionByPublicID(pub)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, errNoSub
	}
	return found, err
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
		// The subscription's newest events among the last
		// eventScan ids, newest first. A range read from the
		// highest id, not ids probed one by one: ids have gaps on
		// PostgreSQL (a rolled-back step burns its ids).
		last, err := tx.LastEventID()
		if err != nil {
			return err
		}
		after := store.EventID(0)
		if last > eventScan {
			after = last - eventScan
		}
		err = tx.ForEachEvent(after, 0, func(ev *store.Event) error {
			if ev.SubID != s.ID {
				return nil
			}
			data.Events = append(data.Events, eventRow{
				ID: uint64(ev.ID), Type: ev.Type.String(),
				CreatedAt: ev.CreatedAt, Delivered: ev.Delivered,
				Attempts: ev.Attempts, LastError: ev.LastError,
				NextAttempt: ev.NextAttempt})
			return nil
		})
		if err != nil {
			return err
		}
		if len(data.Events) > maxEventsShown {
			data.Events = data.Events[len(data.Events)-maxEventsShown:]
		}
		slices.Reverse(data.Events)
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
