package sender

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/btcsuite/btclog/v2"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/satstream/satstream/common"
	"github.com/satstream/satstream/common/dashboard"
	"github.com/satstream/satstream/common/idem"
	"github.com/satstream/satstream/store"
)

// Log subsystem tags of the sender.
const (
	TagDaemon    = "SNDR"
	TagScheduler = "SCHD"
	TagPayments  = "PAY"
	TagAPI       = "API"
	TagLnd       = "LNDC"
)

// subsystems are the tags --debuglevel accepts.
var subsystems = []string{TagDaemon, TagScheduler, TagPayments, TagAPI,
	TagLnd, store.Subsystem}

// ErrAlreadyStarted is returned by a second Start.
var ErrAlreadyStarted = errors.New("sender already started")

// Daemon is the satstream-sender: store, engine, lnd connection, API and
// metrics, with one lifecycle.
type Daemon struct {
	cfg  *Config
	logs *common.LogManager
	log  btclog.Logger

	db      *store.DB
	engine  *Engine
	metrics *Metrics

	apiSrv    *common.Server
	metricsSv *common.Server
	dash      *dashboard.Kit

	lndState atomic.Value // string
	// lnd is the lnd connection state /healthz, /v1/health and
	// satstream_lnd_connected follow.
	lnd *common.LndLink

	started  atomic.Bool
	stopOnce sync.Once
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	errCh    chan error

	// stopErr is what Stop returns: the ledger's failure, if any.
	stopErr error

	// ledgerReported is set once the ledger's failure has been logged,
	// by watchStore or, when the failure raced shutdown, by Stop.
	ledgerReported atomic.Bool

	// storeOpts lets tests change the ledger's options (to inject disk
	// failures); nil in the daemon.
	storeOpts func(*store.Options)
}

// New prepares a daemon; nothing is opened until Start.
func New(cfg *Config, logs *common.LogManager) (*Daemon, error) {
	if cfg == nil {
		return nil, fmt.Errorf("%w: nil config", ErrConfig)
	}
	if logs == nil {
		logs = common.NewLogManager(os.Stderr)
	}
	for _, tag := range subsystems {
		logs.Logger(tag)
	}
	if err := logs.SetLevels(cfg.DebugLevel); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	d := &Daemon{cfg: cfg, logs: logs, log: logs.Logger(TagDaemon),
		errCh: make(chan error, 1)}
	d.lndState.Store("not connected")
	return d, nil
}

// Start opens the ledger, loads the subscriptions, serves the API and
// connects to lnd in the background (with backoff); payments start once lnd
// is reachable and every payment open at the last stop is tracked.
func (d *Daemon) Start(ctx context.Context) error {
	if !d.started.CompareAndSwap(false, true) {
		return ErrAlreadyStarted
	}
	cfg := d.cfg
	store.UseLogger(d.logs.Logger(store.Subsystem))
	if err := common.CheckOldLayout(cfg.DataDir, cfg.Network, "tls.cert",
		"tls.key", common.AdminTokenFile,
		common.ReadOnlyTokenFile); err != nil {

		return err
	}
	netDir := cfg.NetworkDir()
	if err := os.MkdirAll(netDir, 0o700); err != nil {
		return fmt.Errorf("data directory %s: %w", netDir, err)
	}
	opts := store.DefaultOptions()
	if d.storeOpts != nil {
		d.storeOpts(&opts)
	}
	db, err := store.Open(ctx, filepath.Join(netDir, "ledger"), opts)
	if err != nil {
		return fmt.Errorf("open ledger: %w", err)
	}
	d.db = db

	runCtx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	fail := func(err error) error {
		cancel()
		d.closeAll()
		return err
	}

	d.metrics = NewMetrics(func() map[string]int {
		return d.engine.StateCounts()
	})
	d.lnd = common.NewLndLink(d.metrics.lndConnected)
	d.engine = NewEngine(cfg.engineConfig(), db.Sender(), nil,
		d.logs.Logger(TagScheduler), d.logs.Logger(TagPayments),
		d.metrics)
	if err := d.engine.Load(ctx); err != nil {
		return fail(err)
	}

	tlsCfg, err := common.LoadOrCreateTLS(cfg.API.TLSCert, cfg.API.TLSKey,
		cfg.API.ExtraHosts)
	if err != nil {
		return fail(fmt.Errorf("api tls: %w", err))
	}
	tokens, err := common.LoadOrCreateTokens(netDir)
	if err != nil {
		return fail(fmt.Errorf("api tokens: %w", err))
	}
	api := &apiServer{engine: d.engine, log: d.logs.Logger(TagAPI),
		health: d.health, tokens: tokens,
		idem: idem.New(d.db, d.logs.Logger(TagAPI))}
	dash, handler, err := newDashboard(d.engine, tokens, api.routes(),
		d.health)
	if err != nil {
		return fail(err)
	}
	d.dash = dash
	d.apiSrv, err = common.Listen("API", cfg.API.Listen,
		common.WithBackup(common.WithHealthz(handler, d.healthState().Err), tokens,
			func() *store.DB { return d.db }),
		tlsCfg, cfg.API.Limits())
	if err != nil {
		return fail(fmt.Errorf("--api.listen=%s: %w", cfg.API.Listen, err))
	}
	d.serve(d.apiSrv)
	d.log.Infof("API listening on https://%s", d.apiSrv.Addr())
	d.logDashboard()

	if cfg.Metrics.Listen != "" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(
			d.metrics.Registry(), promhttp.HandlerOpts{}))
		d.metricsSv, err = common.Listen("metrics", cfg.Metrics.Listen,
			mux, nil, common.DefaultServerLimits())
		if err != nil {
			return fail(fmt.Errorf("--metrics.listen=%s: %w",
				cfg.Metrics.Listen, err))
		}
		d.serve(d.metricsSv)
		d.log.Infof("Metrics on http://%s/metrics", d.metricsSv.Addr())
	}

	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		d.watchStore(runCtx, db)
	}()
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		d.runPayments(runCtx)
	}()
	return nil
}

// watchStore stops the daemon when the ledger fails (a write or fsync
// error): what it holds in memory can no longer be trusted; a restart
// re-reads the ledger from disk.
func (d *Daemon) watchStore(ctx context.Context, db *store.DB) {
	select {
	case <-ctx.Done():
	case <-db.Failed():
		d.ledgerReported.Store(true)
		d.fatal(fmt.Errorf("ledger failed, stopping: %w", db.Err()))
		d.cancel()
	}
}

// serve runs an HTTP server until it is shut down.
func (d *Daemon) serve(srv *common.Server) {
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		if err := srv.Serve(); err != nil {
			d.fatal(err)
		}
	}()
}

// runPayments connects to lnd (retrying with backoff) and runs the engine.
func (d *Daemon) runPayments(ctx context.Context) {
	lndLog := d.logs.Logger(TagLnd)
	d.lndState.Store("connecting to " + d.cfg.Lnd.Addr())
	services, err := common.ConnectLnd(ctx, d.cfg.Lnd, d.cfg.Network,
		lndLog, common.SenderRequirements())
	if err != nil {
		if ctx.Err() == nil {
			d.lndState.Store("failed: " + err.Error())
			d.fatal(err)
		}
		return
	}
	defer services.Close()
	// Bound before any payment: the ledger's open payments belong to
	// the node that made them.
	bound, err := common.BindLedger(ctx, d.db, services.NodePubkey,
		d.cfg.Network, d.cfg.NetworkDir())
	if err != nil {
		if ctx.Err() == nil {
			d.lndState.Store("failed: " + err.Error())
			d.fatal(err)
		}
		return
	}
	if bound {
		d.log.Infof("Ledger bound to lnd node %s on %s",
			services.NodePubkey, d.cfg.Network)
	}
	d.lndState.Store("connected to " + services.NodeAlias)
	// The engine runs on through lnd going away (its calls fail and
	// back off), so the connection's state says whether lnd is there.
	d.lnd.Set(true)
	followCtx, stopFollow := context.WithCancel(ctx)
	followed := make(chan struct{})
	go func() {
		defer close(followed)
		d.lnd.Follow(followCtx, services.ClientConn)
	}()
	defer func() {
		stopFollow()
		<-followed
		d.lnd.Set(false)
	}()
	err = d.engine.Run(ctx, &routerAdapter{router: services.Router,
		lightning: services.Client})
	if err != nil && ctx.Err() == nil {
		d.fatal(err)
	}
}

// fatal reports the first fatal error.
func (d *Daemon) fatal(err error) {
	d.log.Errorf("Fatal: %v", err)
	select {
	case d.errCh <- err:
	default:
	}
}

// Err delivers the first fatal error after Start.
func (d *Daemon) Err() <-chan error { return d.errCh }

// APIAddr is the address the API is bound to.
func (d *Daemon) APIAddr() string {
	if d.apiSrv == nil {
		return ""
	}
	return d.apiSrv.Addr()
}

// MetricsAddr is the address of the metrics endpoint, empty if disabled.
func (d *Daemon) MetricsAddr() string {
	if d.metricsSv == nil {
		return ""
	}
	return d.metricsSv.Addr()
}

// Engine gives in-process users (tests, the future CLI) the engine.
func (d *Daemon) Engine() *Engine { return d.engine }

// healthState is what /healthz and /v1/health are made of.
func (d *Daemon) healthState() common.Health {
	return common.Health{DB: func() common.HealthLedger {
		if db := d.db; db != nil {
			return db
		}
		return nil
	},
		Lnd: d.lnd}
}

// health is the /v1/health body: "ok" only when /healthz would answer
// 200; "degraded" while lnd is away or the disk is full (no payment is
// sent until its attempt can be written), "failing" when the ledger can no
// longer be written (the daemon is stopping).
func (d *Daemon) health() map[string]any {
	h := d.healthState().Status()
	h["lnd"] = d.lndState.Load()
	h["network"] = d.cfg.Network
	h["subscriptions"] = d.engine.StateCounts()
	return h
}

// Stop shuts down: servers first, then the engine (payments in flight stay
// open in the ledger and are tracked at the next start), then the ledger.
// It returns the ledger's failure, if the ledger failed, even one that
// raced the shutdown (watchStore then returned on the cancelled context
// without seeing it), logged once, so the sender exits non-zero instead of
// reporting a clean stop.
func (d *Daemon) Stop() error {
	d.stopOnce.Do(func() {
		if d.cancel != nil {
			d.cancel()
		}
		d.dash.Stop()
		d.closeAll()
		if d.db != nil {
			if err := d.db.Err(); err != nil {
				if !d.ledgerReported.Swap(true) {
					d.log.Errorf("Ledger failed: %v", err)
				}
				d.stopErr = fmt.Errorf("ledger failed: %w", err)
			}
		}
		d.log.Infof("Stopped")
	})
	return d.stopErr
}

// closeAll stops the servers, waits for every goroutine and closes the
// store last.
func (d *Daemon) closeAll() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, srv := range []*common.Server{d.apiSrv, d.metricsSv} {
		if srv != nil {
			_ = srv.Shutdown(ctx)
		}
	}
	d.wg.Wait()
	if d.db != nil {
		if err := d.db.Close(); err != nil {
			d.log.Errorf("Close ledger: %v", err)
		}
	}
}

// Main runs the daemon from command-line arguments until SIGINT/SIGTERM or a
// fatal error.
func Main(args []string) error {
	cfg, err := LoadConfig(args)
	if err != nil {
		if errors.Is(err, common.ErrHelp) {
			return nil
		}
		return err
	}
	if cfg.Version {
		fmt.Println("satstream-sender version", common.ReadBuildInfo())
		return nil
	}
	if cfg.DebugLevel == common.ShowSubsystems {
		common.PrintSubsystems(os.Stdout, subsystems)
		return nil
	}
	out, closeLog, err := cfg.LogConfig.Open(os.Stdout,
		"satstream-sender.log")
	if err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	defer closeLog()
	logs := common.NewLogManager(out)
	common.UseLogger(logs.Logger(TagDaemon))
	d, err := New(cfg, logs)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(),
		os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := d.Start(ctx); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		d.log.Infof("Shutting down")
		return d.Stop()
	case err := <-d.Err():
		_ = d.Stop()
		return err
	}
}
