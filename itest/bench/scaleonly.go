package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/satstream/satstream/itest/bins"
	"github.com/satstream/satstream/itest/regtest"
)

// OnlyScale is the Options.Only value that runs the receiver at scale
// alone (a minute instead of the full run's nine), to measure the paid
// check while working on it.
const OnlyScale = "scale"

// pprofEnv is cmd/satstream-receiver's profiling listener variable (built
// with -tags benchpprof only).
const pprofEnv = "SATSTREAM_PPROF_ADDR"

// runScaleOnly starts btcd and carol alone (the receiver needs an lnd to
// be ready, not channels) and runs the receiver at scale. It writes no
// report: the caller prints the figures. With opts.ProfileDir set, the
// receiver is built with its profiling listener and CPU, allocation,
// mutex and block profiles and an execution trace of the paced paid load
// are written there.
func runScaleOnly(ctx context.Context, opts Options, res *Result,
	binDir string, logf io.Writer) error {

	opts.say("building satstream-receiver")
	var tags []string
	if opts.ProfileDir != "" {
		tags = []string{"-tags", "benchpprof"}
	}
	if err := buildDaemon(ctx, binDir, "satstream-receiver", logf,
		tags...); err != nil {
		return err
	}
	paths, err := bins.Ensure(ctx, opts.Log)
	if err != nil {
		return err
	}
	opts.say("starting btcd and carol")
	n, err := regtest.New(ctx, regtest.Config{
		Dir: filepath.Join(opts.WorkDir, "network"), Bins: paths,
	})
	if err != nil {
		return err
	}
	defer n.Close()
	nodes, err := n.AddNodes(ctx, regtest.NodeConfig{Name: "carol",
		ExtraArgs: []string{holdTime}})
	if err != nil {
		return err
	}
	var prof *scaleProfiler
	if opts.ProfileDir != "" {
		addr, err := freeAddr()
		if err != nil {
			return err
		}
		os.Setenv(pprofEnv, addr)
		defer os.Unsetenv(pprofEnv)
		prof = &scaleProfiler{addr: addr, dir: opts.ProfileDir}
	}
	sz := opts.sizes()
	opts.say("receiver with %d subscriptions (%d expiring), %d clients, "+
		"load %s", sz.rcvSubs, sz.expiring, sz.clients, loadAvg())
	rsc, err := receiverScaleProf(ctx, filepath.Join(binDir,
		"satstream-receiver"), filepath.Join(opts.WorkDir,
		"scale-receiver"), nodes[0], sz.rcvSubs, sz.expiring,
		sz.clients, sz.load, logf, prof)
	if err != nil {
		return fmt.Errorf("receiver scale: %w", err)
	}
	res.RcvScale = &rsc
	opts.say("paid check paced: %.0f req/s, p50 %.2f ms, p90 %.2f ms, "+
		"p99 %.2f ms, p99.9 %.2f ms, max %.2f ms, %d errors, %d new "+
		"connections; load %s",
		rsc.PaidRate, ms(rsc.PaidLat.Pct(50)), ms(rsc.PaidLat.Pct(90)),
		ms(rsc.PaidLat.Pct(99)), ms(rsc.PaidLat.Pct(99.9)),
		ms(rsc.PaidLat.Pct(100)), rsc.PaidErrs, rsc.PaidConns, loadAvg())
	opts.say("paid check saturated: %.0f req/s, p50 %.2f ms, p99 %.2f ms, "+
		"%d errors, %d new connections", rsc.PaidSatRate,
		ms(rsc.PaidSatLat.Pct(50)), ms(rsc.PaidSatLat.Pct(99)),
		rsc.PaidSatErrs, rsc.PaidSatConns)
	return nil
}

// scaleProfiler fetches the receiver's profiles over its pprof listener.
type scaleProfiler struct {
	addr, dir string
}

// during profiles the receiver for d: CPU, allocations, mutex and block
// contention as deltas over d, and an execution trace (GC pauses and
// scheduling latency) of its first seconds.
func (p *scaleProfiler) during(ctx context.Context, d time.Duration) <-chan error {
	done := make(chan error, 1)
	secs := max(1, int(d.Seconds())-1)
	fetch := []struct{ name, path string }{
		{"paid.cpu.pprof", fmt.Sprintf("profile?seconds=%d", secs)},
		{"paid.alloc.pprof", fmt.Sprintf("allocs?seconds=%d", secs)},
		{"paid.mutex.pprof", fmt.Sprintf("mutex?seconds=%d", secs)},
		{"paid.block.pprof", fmt.Sprintf("block?seconds=%d", secs)},
		{"paid.trace", fmt.Sprintf("trace?seconds=%d", min(secs, 3))},
	}
	go func() {
		if err := os.MkdirAll(p.dir, 0o755); err != nil {
			done <- err
			return
		}
		errs := make(chan error, len(fetch))
		for _, f := range fetch {
			go func() {
				errs <- p.get(ctx, f.path, filepath.Join(p.dir, f.name))
			}()
		}
		var first error
		for range fetch {
			if err := <-errs; err != nil && first == nil {
				first = err
			}
		}
		done <- first
	}()
	return done
}

func (p *scaleProfiler) get(ctx context.Context, path, file string) error {
	req, err := http.NewRequestWithContext(ctx, "GET",
		"http://"+p.addr+"/debug/pprof/"+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("pprof %s: %s", path, resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	return err
}
