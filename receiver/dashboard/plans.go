package dashboard

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/satstream/satstream/store"
)

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
