package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/satstream/satstream/common"
	"github.com/satstream/satstream/itest/bins"
	"github.com/satstream/satstream/itest/regtest"
	"github.com/satstream/satstream/itest/stack"
	"github.com/urfave/cli"
)

// demoBusiness is one fictional provider of the original idea, with terms
// scaled so a minute of demo shows many payments.
type demoBusiness struct {
	name      string
	price     uint64        // msat per second
	increment time.Duration // bought per payment
	buffer    time.Duration // kept paid ahead
}

// Each payment is at least 100 sat so that bob's 1 sat base fee fits in the
// demo's 5% fee limit (the sender's own default avoids payments below
// 1,000 sat for the same reason).
var demoBusinesses = []demoBusiness{
	{"Echelon Mobile", 20_000, 10 * time.Second, 20 * time.Second},
	{"Webflix", 20_000, 5 * time.Second, 10 * time.Second},
	{"Perpetual Insurance", 5_000, 20 * time.Second, 30 * time.Second},
	{"Digital Sea", 10_000, 10 * time.Second, 15 * time.Second},
	{"Pedal Bike Rental", 40_000, 3 * time.Second, 6 * time.Second},
}

// demoFeeLimitPPM is the payer's routing fee limit in the demo.
const demoFeeLimitPPM = 50_000

// demoStep is one scripted moment of the story, at an offset from the
// first subscription.
type demoStep struct {
	at   time.Duration
	what string
	do   func(ctx context.Context, d *demo) error
}

var demoCommand = cli.Command{
	Name:  "demo",
	Usage: "run a local regtest network where a payer streams sats to a provider",
	Description: `Builds (or reuses) lnd and btcd, starts btcd and three lnd nodes
   (payer alice -> router bob -> provider carol, carol holding keysends for
   the receiver to decide), starts satstream-receiver on carol and
   satstream-sender on alice, subscribes alice to five businesses and shows
   the stream live. Along the way it pauses one subscription, cancels one,
   and takes the provider's node offline to show back-off and recovery.`,
	Flags: []cli.Flag{
		cli.DurationFlag{
			Name:  "duration",
			Value: 90 * time.Second,
			Usage: "how long to stream before stopping",
		},
		cli.BoolFlag{
			Name: "keep",
			Usage: "after the story, keep everything running for " +
				"the CLI until Ctrl-C",
		},
		cli.BoolFlag{
			Name: "plain",
			Usage: "print status lines instead of a live screen " +
				"(the default when stdout is not a terminal)",
		},
		cli.StringFlag{
			Name:  "dir",
			Usage: "directory for the network (default: a new temp dir, removed at exit)",
		},
	},
	Action: runDemo,
}

// demo holds the running pieces.
type demo struct {
	out   io.Writer
	plain bool
	dir   string

	net     *regtest.Network
	alice   *regtest.Node
	carol   *regtest.Node
	stack   *stack.Stack
	rcvAPI  *apiClient
	sndAPI  *apiClient
	subs    map[string]string // subscription id -> business name
	log     []string
	started time.Time
	logFile *os.File
	cliHint string

	// dashboards are the dashboards' login links, shown on every frame.
	dashboards []string

	// lastFrame is the last 5-second frame printed in plain mode.
	lastFrame time.Duration
}

func runDemo(c *cli.Context) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt,
		syscall.SIGTERM)
	defer stop()

	d := &demo{out: c.App.Writer,
		plain: c.Bool("plain") || !isTerminal(c.App.Writer),
		subs:  map[string]string{}}

	d.dir = c.String("dir")
	if d.dir == "" {
		dir, err := os.MkdirTemp("", "satstream-demo-*")
		if err != nil {
			return err
		}
		d.dir = dir
		defer os.RemoveAll(dir)
	} else if err := os.MkdirAll(d.dir, 0o755); err != nil {
		return err
	}

	err := d.run(ctx, c.Duration("duration"), c.Bool("keep"))
	closeErr := d.close()
	if errors.Is(err, context.Canceled) {
		fmt.Fprintln(d.out, "\nstopped by Ctrl-C; everything shut down")
		err = nil
	}
	if err != nil {
		fmt.Fprintf(d.out, "demo failed: %v\n(network files in %s)\n",
			err, d.dir)
		return err
	}
	return closeErr
}

func (d *demo) say(format string, args ...any) {
	fmt.Fprintf(d.out, "==> "+format+"\n", args...)
}

func (d *demo) run(ctx context.Context, duration time.Duration,
	keep bool) error {

	d.say("building or reusing lnd and btcd (the first build takes " +
		"about 10 minutes)")
	paths, err := bins.Ensure(ctx, d.out)
	if err != nil {
		return err
	}

	d.say("starting btcd and lnd nodes alice (payer), bob (router), "+
		"carol (provider) in %s", d.dir)
	start := time.Now()
	d.net, err = regtest.New(ctx, regtest.Config{
		Dir: filepath.Join(d.dir, "network"), Bins: paths,
	})
	if err != nil {
		return err
	}
	nodes, err := d.net.AddNodes(ctx,
		regtest.NodeConfig{Name: "alice"},
		regtest.NodeConfig{Name: "bob"},
		regtest.NodeConfig{Name: "carol", ExtraArgs: []string{
			"--keysend-hold-time=30s",
		}},
	)
	if err != nil {
		return err
	}
	d.alice, d.carol = nodes[0], nodes[2]
	d.say("funding wallets and opening channels alice -> bob -> carol")
	if err := d.net.Line(ctx, 50_000_000, 10_000_000, nodes...); err != nil {
		return err
	}
	d.say("network ready in %v", time.Since(start).Round(time.Second))

	if err := d.startDaemons(ctx); err != nil {
		return err
	}
	if err := d.subscribeAll(ctx); err != nil {
		return err
	}

	steps := []demoStep{
		{15 * time.Second, "payer pauses Webflix", d.action("Webflix",
			"pause")},
		{22 * time.Second, "payer cancels Perpetual Insurance",
			d.action("Perpetual Insurance", "cancel")},
		{30 * time.Second, "provider's node carol goes offline",
			func(context.Context, *demo) error { return d.carol.Stop() }},
		{45 * time.Second, "provider's node carol comes back",
			func(ctx context.Context, _ *demo) error {
				return d.carol.Start(ctx)
			}},
		{60 * time.Second, "payer resumes Webflix", d.action("Webflix",
			"resume")},
	}

	errs := d.stack.Errs()
	d.started = time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	end := d.started.Add(duration)
	for {
		now := time.Now()
		for len(steps) > 0 && now.Sub(d.started) >= steps[0].at {
			s := steps[0]
			steps = steps[1:]
			d.log = append(d.log, fmt.Sprintf("t+%-3.0fs %s",
				s.at.Seconds(), s.what))
			if err := s.do(ctx, d); err != nil {
				return fmt.Errorf("%s: %w", s.what, err)
			}
		}
		if err := d.render(ctx); err != nil {
			d.log = append(d.log, "view: "+err.Error())
		}
		if !keep && now.After(end) {
			return d.summary(ctx)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-errs:
			return err
		case <-tick.C:
		}
	}
}

// startDaemons runs the receiver beside carol and the sender beside alice,
// in this process, logging to a file in the demo directory.
func (d *demo) startDaemons(ctx context.Context) error {
	f, err := os.Create(filepath.Join(d.dir, "daemons.log"))
	if err != nil {
		return err
	}
	d.logFile = f
	d.stack, err = stack.Start(ctx, d.dir, d.carol, d.alice, f)
	if err != nil {
		return err
	}
	rcv, snd := d.stack.Receiver, d.stack.Sender
	rcvDir, sndDir := d.stack.ReceiverCfg.NetworkDir(),
		d.stack.SenderCfg.NetworkDir()

	d.rcvAPI, err = dialClient("receiver", rcv.APIAddr(),
		filepath.Join(rcvDir, "tls.cert"),
		filepath.Join(rcvDir, common.AdminTokenFile))
	if err != nil {
		return err
	}
	d.sndAPI, err = dialClient("sender", snd.APIAddr(),
		filepath.Join(sndDir, "tls.cert"),
		filepath.Join(sndDir, common.AdminTokenFile))
	if err != nil {
		return err
	}

	d.cliHint = fmt.Sprintf("go run ./cmd/satstream --network=regtest "+
		"--receiver.rpcserver=%s --receiver.datadir=%s "+
		"--sender.rpcserver=%s --sender.datadir=%s",
		rcv.APIAddr(), d.stack.ReceiverCfg.DataDir, snd.APIAddr(),
		d.stack.SenderCfg.DataDir)
	d.say("receiver API https://%s, metrics http://%s/metrics",
		rcv.APIAddr(), rcv.MetricsAddr())
	d.say("sender   API https://%s, metrics http://%s/metrics",
		snd.APIAddr(), snd.MetricsAddr())
	for _, dash := range []struct {
		who    string
		client *apiClient
	}{{"provider", d.rcvAPI}, {"payer   ", d.sndAPI}} {
		url, _, err := dashboardLink(ctx, dash.client, false)
		if err != nil {
			return fmt.Errorf("dashboard login link: %w", err)
		}
		d.dashboards = append(d.dashboards, fmt.Sprintf(
			"%s dashboard: %s", dash.who, url))
		d.say("%s dashboard (one-time login link): %s", dash.who, url)
	}
	d.say("daemon logs: %s", f.Name())
	d.say("explore with the CLI:\n    %s receiver subs list", d.cliHint)
	return nil
}

// subscribeAll creates a plan and a subscription per business at the
// provider and hands each offer to the payer.
func (d *demo) subscribeAll(ctx context.Context) error {
	for _, b := range demoBusinesses {
		var plan struct {
			ID string `json:"id"`
		}
		err := d.rcvAPI.do(ctx, "POST", "/v1/plans", map[string]any{
			"label":                 b.name,
			"price_msat_per_sec":    b.price,
			"min_payment_msat":      1000,
			"grace_period_sec":      10,
			"max_prepay_sec":        120,
			"default_increment_sec": uint64(b.increment.Seconds()),
		}, &plan)
		if err != nil {
			return fmt.Errorf("create plan %s: %w", b.name, err)
		}
		var sub struct {
			ID    string `json:"id"`
			Offer string `json:"offer"`
		}
		err = d.rcvAPI.do(ctx, "POST", "/v1/subscriptions",
			map[string]any{"plan_id": plan.ID}, &sub)
		if err != nil {
			return fmt.Errorf("create subscription %s: %w", b.name,
				err)
		}
		err = d.sndAPI.do(ctx, "POST", "/v1/subscriptions",
			map[string]any{
				"offer":         sub.Offer,
				"increment_sec": uint64(b.increment / time.Second),
				"buffer_sec":    uint64(b.buffer / time.Second),
				"fee_limit_ppm": demoFeeLimitPPM,
			}, nil)
		if err != nil {
			return fmt.Errorf("subscribe to %s: %w", b.name, err)
		}
		d.subs[sub.ID] = b.name
		d.say("%-20s plan %s, offer %s...", b.name, plan.ID,
			sub.Offer[:24])
	}
	return nil
}

// action returns a step that pauses, resumes or cancels a business's
// subscription at the sender, as the payer would.
func (d *demo) action(business, op string) func(context.Context, *demo) error {
	return func(ctx context.Context, _ *demo) error {
		for id, name := range d.subs {
			if name == business {
				return d.sndAPI.do(ctx, "POST",
					"/v1/subscriptions/"+id+"/"+op, nil, nil)
			}
		}
		return fmt.Errorf("no subscription for %s", business)
	}
}

// row is what the live view shows of one subscription.
type row struct {
	name, payerState, provState, paidFor string
	payments                             uint64
	spentMsat                            uint64
}

// snapshot reads both daemons' view of every subscription.
func (d *demo) snapshot(ctx context.Context) ([]row, error) {
	var snd struct {
		Subscriptions []struct {
			ID        string    `json:"id"`
			State     string    `json:"state"`
			Waiting   string    `json:"waiting"`
			Reason    string    `json:"reason"`
			PaidUntil time.Time `json:"paid_until"`
			Payments  uint64    `json:"payments"`
			SentMsat  uint64    `json:"sent_msat"`
			FeesMsat  uint64    `json:"fees_msat"`
		} `json:"subscriptions"`
	}
	if err := d.sndAPI.do(ctx, "GET", "/v1/subscriptions", nil,
		&snd); err != nil {
		return nil, err
	}
	var rcv struct {
		Subscriptions []struct {
			ID    string `json:"id"`
			State string `json:"state"`
			Paid  bool   `json:"paid"`
		} `json:"subscriptions"`
	}
	provider := map[string]string{}
	if err := d.rcvAPI.do(ctx, "GET", "/v1/subscriptions?limit=100", nil,
		&rcv); err == nil {
		for _, s := range rcv.Subscriptions {
			paid := "unpaid"
			if s.Paid {
				paid = "paid"
			}
			provider[s.ID] = s.State + ", " + paid
		}
	}

	rows := make([]row, 0, len(snd.Subscriptions))
	for _, s := range snd.Subscriptions {
		state := s.State
		if s.Waiting != "" {
			state = "waiting: " + s.Waiting
		} else if s.Reason != "" {
			state += ": " + s.Reason
		}
		left := time.Until(s.PaidUntil).Round(time.Second)
		paidFor := "-"
		if !s.PaidUntil.IsZero() {
			paidFor = left.String()
			if left <= 0 {
				paidFor = "over"
			}
		}
		prov := provider[s.ID]
		if prov == "" {
			prov = "(provider unreachable)"
		}
		rows = append(rows, row{
			name:       d.subs[s.ID],
			payerState: state,
			provState:  prov,
			paidFor:    paidFor,
			payments:   s.Payments,
			spentMsat:  s.SentMsat + s.FeesMsat,
		})
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].name < rows[j].name })
	return rows, nil
}

// render draws the live view (or, with --plain, prints it every 5 s).
func (d *demo) render(ctx context.Context) error {
	elapsed := time.Since(d.started).Round(time.Second)
	if d.plain {
		frame := elapsed / (5 * time.Second)
		if frame == d.lastFrame {
			return nil
		}
		d.lastFrame = frame
	}
	rows, err := d.snapshot(ctx)
	if err != nil {
		return err
	}

	var b strings.Builder
	if !d.plain {
		b.WriteString("\033[H\033[2J")
	}
	fmt.Fprintf(&b, "satstream demo, t+%v (Ctrl-C stops everything)\n\n",
		elapsed)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "BUSINESS\tPAID FOR\tPAYMENTS\tSATS SPENT\tPAYER\tPROVIDER")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.3f\t%s\t%s\n", r.name, r.paidFor,
			r.payments, float64(r.spentMsat)/1000, r.payerState,
			r.provState)
	}
	_ = tw.Flush()
	if len(d.log) > 0 {
		fmt.Fprintf(&b, "\n%s\n", strings.Join(d.log, "\n"))
	}
	if !d.plain {
		fmt.Fprintf(&b, "\nCLI: %s sender subs list\n", d.cliHint)
		fmt.Fprintf(&b, "Open in a browser (each link logs in once):\n"+
			"  %s\n", strings.Join(d.dashboards, "\n  "))
	}
	_, err = io.WriteString(d.out, b.String())
	return err
}

// summary prints the totals the demo ends with, one line a script can
// check.
func (d *demo) summary(ctx context.Context) error {
	rows, err := d.snapshot(ctx)
	if err != nil {
		return err
	}
	var payments, msat uint64
	for _, r := range rows {
		payments += r.payments
		msat += r.spentMsat
	}
	fmt.Fprintf(d.out, "\ndemo summary: subscriptions=%d payments=%d "+
		"spent_msat=%d\n", len(rows), payments, msat)
	for _, r := range rows {
		fmt.Fprintf(d.out, "demo final: %s | payer %s | provider %s | "+
			"payments %d\n", r.name, r.payerState, r.provState,
			r.payments)
	}
	return nil
}

// close stops the daemons, then the network, whatever state they are in.
func (d *demo) close() error {
	var errs []error
	if d.stack != nil {
		errs = append(errs, d.stack.Stop())
	}
	if d.net != nil {
		errs = append(errs, d.net.Close())
	}
	if d.logFile != nil {
		errs = append(errs, d.logFile.Close())
	}
	return errors.Join(errs...)
}

// isTerminal tells a live screen (a character device, TERM not "dumb")
// from a pipe, file or CI log, where clearing the screen would only write
// escape codes into the log.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("TERM") == "dumb" {
		return false
	}
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}
