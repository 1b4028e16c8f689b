// Package dashboard is the payer's dashboard, served by satstream-sender
// at / on its API listener: every subscription with a live countdown of
// its paid time, spend against the caps, pause, resume and cancel, and
// adding a subscription from an offer shown in plain words first.
//
// It reads and acts through Backend, which the sender package implements
// over its engine, so this package does not import the sender (which
// mounts it).
package dashboard

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/satstream/satstream/common/dashboard"
	"github.com/satstream/satstream/tlv"
)

//go:embed templates/*.html
var templates embed.FS

// Sub is one subscription as the payer's dashboard shows it.
type Sub struct {
	// ID is the subscription's public id ("sub_..."), never the secret
	// id its payments carry.
	ID    string
	Label string
	Node  string
	// PayingNode is the node new payments go to, and Nodes how many
	// nodes the offer lists: PayingNode differs from Node while the
	// sender has failed over from the offer's primary.
	PayingNode string
	Nodes      int
	State      string
	Reason     string
	Waiting    string
	RetryAt    time.Time

	PaidUntil    time.Time
	ServiceUntil time.Time
	CapResumesAt time.Time

	PriceMsatPerSec uint64
	Increment       time.Duration
	Buffer          time.Duration
	PaymentMsat     uint64

	Payments     uint64
	SentMsat     uint64
	FeesMsat     uint64
	ReservedMsat uint64
	// TodayMsat is spent plus reserved today (UTC), what the daily cap
	// is checked against.
	TodayMsat uint64
	MaxPerDay uint64
	MaxTotal  uint64

	CancelPending bool
}

// Short is how the page names a subscription: its public id, which
// payer and provider both see (the secret id is the receiver's cancel
// authority and is never shown).
func (s Sub) Short() string { return s.ID }

// Name is the subscription's label, or its short name.
func (s Sub) Name() string {
	if s.Label != "" {
		return s.Label
	}
	return s.Short()
}

// Total is what the subscription cost so far, fees included.
func (s Sub) Total() uint64 { return s.SentMsat + s.FeesMsat }

// Stopped reports whether the subscription no longer pays.
func (s Sub) Stopped() bool { return s.State == "cancelled" }

// DaySpend is one day's spend over all subscriptions.
type DaySpend struct {
	Day  time.Time
	Msat uint64
}

// Health is what the payer should know about the node.
type Health struct {
	Lnd       string
	Connected bool
}

// AddRequest is the payer's choice when subscribing.
type AddRequest struct {
	Offer  string
	Preset string
	// Buffer overrides the preset's buffer when not zero.
	Buffer time.Duration
}

// Backend is what the dashboard needs from the sender.
type Backend interface {
	// Subscriptions lists every subscription.
	Subscriptions(ctx context.Context) ([]Sub, error)
	// SpendPerDay sums the spend of all subscriptions over the last
	// days, oldest first.
	SpendPerDay(ctx context.Context, days int) ([]DaySpend, error)
	// Apply pauses, resumes or cancels a subscription; op is "pause",
	// "resume" or "cancel".
	Apply(ctx context.Context, id, op string) error
	// Add subscribes; its error is shown to the payer.
	Add(ctx context.Context, req AddRequest) error
	// Presets names the use-case presets with their increment and
	// buffer.
	Presets() []Preset
	// Health reports lnd's state.
	Health() Health
}

// Preset is a named choice of increment and buffer.
type Preset struct {
	Name      string
	Increment time.Duration
	Buffer    time.Duration
}

// Nav is the payer dashboard's navigation.
var Nav = []dashboard.NavLink{
	{Path: "/", Label: "Subscriptions"},
	{Path: "/add", Label: "Add"},
}

// Dashboard serves the payer's pages.
type Dashboard struct {
	b     Backend
	pages *dashboard.Pages
	now   func() time.Time
}

// New parses the pages over the kit's layout.
func New(kit *dashboard.Kit, b Backend) (*Dashboard, error) {
	pages, err := kit.Parse(templates, "templates", template.FuncMap{
		"chart": dashboard.BarChart,
	})
	if err != nil {
		return nil, err
	}
	return &Dashboard{b: b, pages: pages, now: time.Now}, nil
}

// Handler routes the pages; wrap it in the kit's Handler.
func (d *Dashboard) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", d.index)
	mux.HandleFunc("GET /add", d.addForm)
	mux.HandleFunc("POST /add", d.add)
	mux.HandleFunc("GET /subscriptions/{id}/cancel", d.cancelForm)
	mux.HandleFunc("POST /subscriptions/{id}/{op}", d.apply)
	return mux
}

type indexData struct {
	Subs      []Sub
	Health    Health
	Chart     template.HTML
	Today     uint64
	MaxToday  uint64
	Sent      uint64
	Fees      uint64
	FeeShare  string
	Active    int
	Stopped   int
	Generated time.Time
}

func (d *Dashboard) index(w http.ResponseWriter, r *http.Request) {
	subs, err := d.b.Subscriptions(r.Context())
	if err != nil {
		d.pages.Error(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	days, err := d.b.SpendPerDay(r.Context(), 14)
	if err != nil {
		d.pages.Error(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	// Stopped subscriptions last, then by name.
	sort.SliceStable(subs, func(i, j int) bool {
		if subs[i].Stopped() != subs[j].Stopped() {
			return !subs[i].Stopped()
		}
		return subs[i].Name() < subs[j].Name()
	})
	data := indexData{Subs: subs, Health: d.b.Health(), Generated: d.now()}
	for _, s := range subs {
		data.Today += s.TodayMsat
		data.MaxToday += s.MaxPerDay
		data.Sent += s.SentMsat
		data.Fees += s.FeesMsat
		if s.Stopped() {
			data.Stopped++
		} else {
			data.Active++
		}
	}
	if t := data.Sent + data.Fees; t > 0 {
		data.FeeShare = fmt.Sprintf("%.2f%%", float64(data.Fees)*100/
			float64(t))
	}
	bars := make([]dashboard.Bar, len(days))
	for i, day := range days {
		bars[i] = dashboard.Bar{Label: day.Day.Format("01-02"),
			Value: day.Msat, Title: day.Day.Format("2006-01-02") +
				": " + dashboard.Sats(day.Msat)}
	}
	data.Chart = dashboard.BarChart(bars, "spend per day")
	d.pages.Render(w, r, http.StatusOK, "index", "Subscriptions", data)
}

// addData is the add page: the form, and once an offer was pasted, the
// offer in plain words.
type addData struct {
	Offer   string
	Decoded *decodedOffer
	Presets []Preset
	Preset  string
	Buffer  string
	Problem string
}

// decodedOffer is an offer in the words a payer reads.
type decodedOffer struct {
	Label string
	Node  string
	// Extra are the provider's other nodes the offer lists, which the
	// sender fails over to.
	Extra        []string
	Open         bool
	PerHour      uint64
	PerDay       uint64
	PerMonth     uint64
	MinPayment   uint64
	Increment    time.Duration
	Grace        time.Duration
	MaxPrepay    time.Duration
	MaxPrepayFor uint64
}

func decode(offer string) (*decodedOffer, error) {
	o, err := tlv.ParseOffer(offer)
	if err != nil {
		return nil, err
	}
	p := uint64(o.PriceMsatPerSec)
	return &decodedOffer{
		Label:        o.Label,
		Node:         o.Node.String(),
		Extra:        extraNodes(o),
		Open:         o.PlanID != nil,
		PerHour:      p * 3600,
		PerDay:       p * 86400,
		PerMonth:     p * 86400 * 30,
		MinPayment:   uint64(o.MinPayment),
		Increment:    o.DefaultIncrement,
		Grace:        o.GracePeriod,
		MaxPrepay:    o.MaxPrepay,
		MaxPrepayFor: p * uint64(o.MaxPrepay/time.Second),
	}, nil
}

func (d *Dashboard) addForm(w http.ResponseWriter, r *http.Request) {
	d.pages.Render(w, r, http.StatusOK, "add", "Add a subscription",
		addData{Presets: d.b.Presets()})
}

// add previews the pasted offer (step "preview") or subscribes to it
// (step "confirm").
func (d *Dashboard) add(w http.ResponseWriter, r *http.Request) {
	data := addData{
		Offer:   strings.TrimSpace(r.PostFormValue("offer")),
		Presets: d.b.Presets(),
		Preset:  r.PostFormValue("preset"),
		Buffer:  strings.TrimSpace(r.PostFormValue("buffer")),
	}
	dec, err := decode(data.Offer)
	if err != nil {
		data.Problem = "This is not a valid offer: " + err.Error()
		d.pages.Render(w, r, http.StatusBadRequest, "add",
			"Add a subscription", data)
		return
	}
	data.Decoded = dec
	if r.PostFormValue("step") != "confirm" {
		d.pages.Render(w, r, http.StatusOK, "add", "Add a subscription",
			data)
		return
	}
	req := AddRequest{Offer: data.Offer, Preset: data.Preset}
	if data.Preset == "custom" {
		req.Preset = ""
	}
	if data.Buffer != "" {
		req.Buffer, err = time.ParseDuration(data.Buffer)
		if err != nil || req.Buffer <= 0 {
			data.Problem = fmt.Sprintf("%q is not a duration like "+
				"15m, 2h or 24h", data.Buffer)
			d.pages.Render(w, r, http.StatusBadRequest, "add",
				"Add a subscription", data)
			return
		}
	}
	if err := d.b.Add(r.Context(), req); err != nil {
		data.Problem = err.Error()
		d.pages.Render(w, r, http.StatusBadRequest, "add",
			"Add a subscription", data)
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// find returns the subscription with the id in the path.
func (d *Dashboard) find(r *http.Request) (Sub, error) {
	subs, err := d.b.Subscriptions(r.Context())
	if err != nil {
		return Sub{}, err
	}
	for _, s := range subs {
		if s.ID == r.PathValue("id") {
			return s, nil
		}
	}
	return Sub{}, errNoSub
}

var errNoSub = errors.New("no such subscription")

func (d *Dashboard) cancelForm(w http.ResponseWriter, r *http.Request) {
	s, err := d.find(r)
	if err != nil {
		d.pages.Error(w, r, http.StatusNotFound, err.Error())
		return
	}
	d.pages.Render(w, r, http.StatusOK, "cancel", "Cancel "+s.Name(), s)
}

func (d *Dashboard) apply(w http.ResponseWriter, r *http.Request) {
	op := r.PathValue("op")
	switch op {
	case "pause", "resume", "cancel":
	default:
		d.pages.Error(w, r, http.StatusNotFound, "no action "+op)
		return
	}
	if _, err := d.find(r); err != nil {
		d.pages.Error(w, r, http.StatusNotFound, err.Error())
		return
	}
	if err := d.b.Apply(r.Context(), r.PathValue("id"), op); err != nil {
		d.pages.Error(w, r, http.StatusConflict, err.Error())
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// extraNodes lists the offer's nodes after the primary, as hex.
func extraNodes(o *tlv.Offer) []string {
	var out []string
	for _, n := range o.ExtraNodes {
		out = append(out, n.String())
	}
	return out
}
