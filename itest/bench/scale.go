package bench

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"github.com/satstream/satstream/common"
	"io"
	"math/big"
	"net"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/satstream/satstream/itest/regtest"
	"github.com/satstream/satstream/itest/stack"
	"github.com/satstream/satstream/receiver/core"
	"github.com/satstream/satstream/store"
)

// daemon is a satstream daemon run as its own process, so its RSS and CPU
// are its own.
type daemon struct {
	cmd  *exec.Cmd
	addr string
	dir  string
	done chan error
}

// buildDaemons builds satstream-receiver and satstream-sender into dir.
func buildDaemons(ctx context.Context, dir string, log io.Writer) error {
	root, err := moduleRoot(ctx)
	if err != nil {
		return err
	}
	for _, name := range []string{"satstream-receiver", "satstream-sender"} {
		if err := buildIn(ctx, root, dir, name, log); err != nil {
			return err
		}
	}
	return nil
}

// buildDaemon builds one daemon into dir, with extra go build arguments
// (build tags).
func buildDaemon(ctx context.Context, dir, name string, log io.Writer,
	extra ...string) error {

	root, err := moduleRoot(ctx)
	if err != nil {
		return err
	}
	return buildIn(ctx, root, dir, name, log, extra...)
}

func buildIn(ctx context.Context, root, dir, name string, log io.Writer,
	extra ...string) error {

	args := append(append([]string{"build"}, extra...), "-o",
		filepath.Join(dir, name), "./cmd/"+name)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build %s: %w", name, err)
	}
	return nil
}

func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the satstream module")
	}
	return filepath.Dir(mod), nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// startDaemon runs bin beside node with its data in dir and waits until
// its API answers /v1/health with lnd connected. It returns the time that
// took.
func startDaemon(ctx context.Context, bin, dir string, node *regtest.Node,
	log io.Writer, extra ...string) (*daemon, time.Duration, error) {

	addr, err := freeAddr()
	if err != nil {
		return nil, 0, err
	}
	lc := stack.LndConfig(node)
	args := append([]string{
		"--datadir=" + dir, "--network=regtest",
		"--api.listen=" + addr, "--metrics.listen=",
		"--lnd.host=" + lc.Host, "--lnd.tlspath=" + lc.TLSPath,
		"--lnd.macaroonpath=" + lc.MacaroonPath,
	}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, 0, err
	}
	d := &daemon{cmd: cmd, addr: addr, dir: dir, done: make(chan error, 1)}
	go func() { d.done <- cmd.Wait() }()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if api, err := newAPIClient(addr, netDir(dir), 1); err == nil {
			var h struct {
				LndConnected bool   `json:"lnd_connected"`
				Status       string `json:"status"`
			}
			err := api.do(ctx, "GET", "/v1/health", nil, &h)
			api.close()
			if err == nil && (h.LndConnected || h.Status == "ok") {
				return d, time.Since(start), nil
			}
		}
		select {
		case err := <-d.done:
			return nil, 0, fmt.Errorf("%s exited: %v", filepath.Base(bin), err)
		case <-ctx.Done():
			d.stop()
			return nil, 0, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			d.stop()
			return nil, 0, fmt.Errorf("%s not ready after 2 minutes",
				filepath.Base(bin))
		}
	}
}

// stop ends the process with SIGTERM, then SIGKILL after 30 s.
func (d *daemon) stop() error {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.done:
		d.done <- err
		return nil
	case <-time.After(30 * time.Second):
		_ = d.cmd.Process.Kill()
		return errors.New("daemon did not stop within 30 s; killed")
	}
}

// rss is the process's resident set size in bytes.
func (d *daemon) rss() (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.Fields(v)[0], 10, 64)
			return kb * 1024, err
		}
	}
	return 0, errors.New("no VmRSS")
}

// cpu is the process's user plus system CPU time.
func (d *daemon) cpu() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", d.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name (which may hold spaces).
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	// USER_HZ is 100 on Linux.
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}

// ReceiverScale is the receiver with many subscriptions.
type ReceiverScale struct {
	Subs, Expiring int
	SeedTime       time.Duration
	RSSReady       uint64
	RSSAfterLoad   uint64
	Restart        time.Duration
	ExpiryPass     time.Duration
	ExpiryAged     int
	ExpiryScan     time.Duration
	ExpiryDue      int
	Clients        int
	// PaidLat is the paid check paced at paidPerClient per client,
	// PaidSatLat saturated (no pause between a client's checks).
	PaidLat     Latencies
	PaidRate    float64
	PaidErrs    int
	PaidSatLat  Latencies
	PaidSatRate float64
	PaidSatErrs int
	// PaidConns and PaidSatConns count the connections (TLS
	// handshakes) the paced and saturated loads opened: the clients
	// keep theirs alive, so the paced load, run second, should open
	// none.
	PaidConns, PaidSatConns int
}

// paidPerClient is how often each paced client checks a subscription.
const paidPerClient = 5.0

// paidLoad runs clients concurrent clients checking random subscriptions'
// paid status for d, each perClient times a second (0: back to back). It
// returns the latencies, the errors and how many new connections the
// checks opened.
func paidLoad(ctx context.Context, api *apiClient, ids []store.SubID,
	clients int, d time.Duration, perClient float64) (Latencies, int, int) {

	var (
		mu    sync.Mutex
		wg    sync.WaitGroup
		all   Latencies
		errs  int
		conns atomic.Int64
	)
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(i httptrace.GotConnInfo) {
			if !i.Reused {
				conns.Add(1)
			}
		},
	})
	start := time.Now()
	end := start.Add(d)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat Latencies
			for n := 0; time.Now().Before(end) && ctx.Err() == nil; n++ {
				if perClient > 0 {
					// Spread the clients' phases evenly.
					next := start.Add(time.Duration((float64(n) +
						float64(c)/float64(clients)) / perClient *
						float64(time.Second)))
					if w := time.Until(next); w > 0 {
						time.Sleep(w)
					}
					if !time.Now().Before(end) {
						break
					}
				}
				i, _ := rand.Int(rand.Reader, big.NewInt(int64(len(ids))))
				t := time.Now()
				err := api.do(ctx, "GET", "/v1/subscriptions/"+
					ids[i.Int64()].String()+"/paid", nil, nil)
				if err != nil {
					mu.Lock()
					errs++
					mu.Unlock()
					continue
				}
				lat = append(lat, time.Since(t))
			}
			mu.Lock()
			all = append(all, lat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return all, errs, int(conns.Load())
}

// receiverScale seeds a receiver ledger with subs subscriptions (expiring
// of them run out within the load window), restarts the daemon on it,
// measures its RSS, its restart time and the paid check under clients
// concurrent clients, then one expiry pass on the ledger.
func receiverScale(ctx context.Context, bin, dir string, carol *regtest.Node,
	subs, expiring, clients int, load time.Duration,
	log io.Writer) (ReceiverScale, error) {

	return receiverScaleProf(ctx, bin, dir, carol, subs, expiring, clients,
		load, log, nil)
}

// receiverScaleProf is receiverScale, profiling the receiver during the
// paced paid load when prof is set.
func receiverScaleProf(ctx context.Context, bin, dir string,
	carol *regtest.Node, subs, expiring, clients int, load time.Duration,
	log io.Writer, prof *scaleProfiler) (ReceiverScale, error) {

	res := ReceiverScale{Subs: subs, Expiring: expiring, Clients: clients}
	ledger := filepath.Join(netDir(dir), "ledger")
	if err := os.MkdirAll(netDir(dir), 0o700); err != nil {
		return res, err
	}
	db, err := store.Open(ctx, ledger, store.DefaultOptions())
	if err != nil {
		return res, err
	}
	now := time.Now()
	plan, err := benchPlan(now)
	if err != nil {
		db.Close()
		return res, err
	}
	t0 := time.Now()
	ids, err := seedSubs(ctx, db.Receiver(), plan, subs, now,
		func(i int) time.Time {
			if i < expiring {
				// Run out during the load window.
				return now.Add(load * time.Duration(i) /
					time.Duration(expiring))
			}
			return now.Add(24 * time.Hour)
		})
	res.SeedTime = time.Since(t0)
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return res, err
	}

	// The first start makes the TLS pair and tokens; the second is the
	// restart measured.
	d, _, err := startDaemon(ctx, bin, dir, carol, log)
	if err != nil {
		return res, err
	}
	if err := d.stop(); err != nil {
		return res, err
	}
	d, res.Restart, err = startDaemon(ctx, bin, dir, carol, log)
	if err != nil {
		return res, err
	}
	defer d.stop()
	if res.RSSReady, err = d.rss(); err != nil {
		return res, err
	}

	api, err := newAPIClient(d.addr, netDir(dir), clients)
	if err != nil {
		return res, err
	}
	defer api.close()
	// Saturated (every client sends its next check as soon as the last
	// is answered), then paced (each client checks paidPerClient times a
	// second, as a provider's servers would between page views).
	res.PaidSatLat, res.PaidSatErrs, res.PaidSatConns = paidLoad(ctx, api,
		ids, clients, load/2, 0)
	res.PaidSatRate = float64(len(res.PaidSatLat)) / (load / 2).Seconds()
	var profDone <-chan error
	if prof != nil {
		profDone = prof.during(ctx, load/2)
	}
	res.PaidLat, res.PaidErrs, res.PaidConns = paidLoad(ctx, api, ids,
		clients, load/2, paidPerClient)
	if profDone != nil {
		if err := <-profDone; err != nil {
			return res, fmt.Errorf("profile the receiver: %w", err)
		}
	}
	res.PaidRate = float64(len(res.PaidLat)) / (load / 2).Seconds()
	if res.RSSAfterLoad, err = d.rss(); err != nil {
		return res, err
	}
	if err := d.stop(); err != nil {
		return res, err
	}

	// One expiry pass as the daemon runs it (at most 1,000 ageings, in
	// transactions of core.AgeBatch), at a time when every expiring subscription is
	// past its grace period.
	db, err = store.Open(ctx, ledger, store.DefaultOptions())
	if err != nil {
		return res, err
	}
	defer db.Close()
	rs := db.Receiver()
	at := now.Add(load + plan.Terms.Grace + time.Minute)
	t0 = time.Now()
	var due []store.SubID
	err = rs.View(ctx, func(tx store.ReceiverTx) error {
		var err error
		due, err = core.DueSubscriptions(tx, at, 0)
		return err
	})
	if err != nil {
		return res, err
	}
	res.ExpiryScan, res.ExpiryDue = time.Since(t0), len(due)
	t0 = time.Now()
	err = rs.View(ctx, func(tx store.ReceiverTx) error {
		var err error
		due, err = core.DueSubscriptions(tx, at, 1000)
		return err
	})
	if err != nil {
		return res, err
	}
	var ageErr error
	_, err = core.AgeSubscriptions(ctx, rs, due, at,
		func(id store.SubID, err error) {
			ageErr = fmt.Errorf("age %v: %w", id, err)
		})
	if err == nil {
		err = ageErr
	}
	if err != nil {
		return res, err
	}
	res.ExpiryPass, res.ExpiryAged = time.Since(t0), len(due)
	return res, nil
}

// SenderScale is the sender with many idle subscriptions.
type SenderScale struct {
	Subs    int
	Window  time.Duration
	CPU     time.Duration
	RSS     uint64
	Restart time.Duration
}

// senderScale subscribes a sender to an open-enrolment plan of rcv once (a
// payment buys a day), clones that subscription subs-1 times in the
// ledger, restarts the sender and measures its CPU over window and RSS.
func senderScale(ctx context.Context, bin, dir string, alice *regtest.Node,
	rcv *apiClient, subs int, window time.Duration,
	log io.Writer) (SenderScale, error) {

	res := SenderScale{Subs: subs, Window: window}
	var plan struct {
		ID    string `json:"id"`
		Offer string `json:"offer"`
	}
	err := rcv.do(ctx, "POST", "/v1/plans", map[string]any{
		"label":                 "idle",
		"open_enrolment":        true,
		"price_msat_per_sec":    10,
		"min_payment_msat":      1000,
		"grace_period_sec":      60,
		"max_prepay_sec":        3 * 24 * 3600,
		"default_increment_sec": 24 * 3600,
	}, &plan)
	if err != nil {
		return res, fmt.Errorf("create open plan: %w", err)
	}
	d, _, err := startDaemon(ctx, bin, dir, alice, log)
	if err != nil {
		return res, err
	}
	api, err := newAPIClient(d.addr, netDir(dir), 2)
	if err != nil {
		d.stop()
		return res, err
	}
	var sub struct {
		ID string `json:"id"`
	}
	err = api.do(ctx, "POST", "/v1/subscriptions", map[string]any{
		"offer": plan.Offer, "increment_sec": 24 * 3600, "buffer_sec": 3600,
		"fee_limit_ppm": 50_000,
	}, &sub)
	if err == nil {
		err = pollUntil(ctx, time.Minute, func() error {
			var v struct {
				Payments uint64 `json:"payments"`
			}
			if err := api.do(ctx, "GET", "/v1/subscriptions/"+sub.ID,
				nil, &v); err != nil {
				return err
			}
			if v.Payments == 0 {
				return errors.New("first payment not settled")
			}
			return nil
		})
	}
	api.close()
	if serr := d.stop(); err == nil {
		err = serr
	}
	if err != nil {
		return res, err
	}

	db, err := store.Open(ctx, filepath.Join(netDir(dir), "ledger"),
		store.DefaultOptions())
	if err != nil {
		return res, err
	}
	ss := db.Sender()
	var orig *store.SenderSubscription
	err = ss.View(ctx, func(tx store.SenderTx) error {
		return tx.ForEachSubscription(0, store.Page{},
			func(s *store.SenderSubscription) error {
				orig = s
				return nil
			})
	})
	for lo := 1; err == nil && lo < subs; lo += 500 {
		hi := min(subs, lo+500)
		err = ss.Update(ctx, func(tx store.SenderTx) error {
			for i := lo; i < hi; i++ {
				c := *orig
				if _, err := rand.Read(c.ID[:]); err != nil {
					return err
				}
				if err := tx.PutSubscription(&c); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return res, fmt.Errorf("seed sender subscriptions: %w", err)
	}

	d, res.Restart, err = startDaemon(ctx, bin, dir, alice, log)
	if err != nil {
		return res, err
	}
	defer d.stop()
	// Let start-up work (loading, scheduling) pass before measuring.
	if err := sleepUntil(ctx, time.Now().Add(2*time.Second)); err != nil {
		return res, err
	}
	c0, err := d.cpu()
	if err != nil {
		return res, err
	}
	if err := sleepUntil(ctx, time.Now().Add(window)); err != nil {
		return res, err
	}
	c1, err := d.cpu()
	if err != nil {
		return res, err
	}
	res.CPU = c1 - c0
	res.RSS, err = d.rss()
	return res, err
}

func pollUntil(ctx context.Context, timeout time.Duration,
	f func() error) error {

	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// netDir is where a daemon run with --datadir=dir --network=regtest keeps
// its ledger, TLS pair and tokens.
func netDir(dir string) string { return common.NetworkDir(dir, "regtest") }
