package receiver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/btcsuite/btclog/v2"
	flags "github.com/jessevdk/go-flags"
	"github.com/lightninglabs/lndclient"
	"github.com/lightningnetwork/lnd/lntypes"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/lightningnetwork/lnd/routing/route"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/satstream/satstream/common"
	"github.com/satstream/satstream/common/dashboard"
	"github.com/satstream/satstream/common/idem"
	"github.com/satstream/satstream/receiver/core"
	"github.com/satstream/satstream/receiver/webhook"
	"github.com/satstream/satstream/store"
)

// storeLogOnce guards store.UseLogger, a process-wide setting that must
// not change while a store is open.
var storeLogOnce sync.Once

// ErrAlreadyStarted is returned by a second Start.
var ErrAlreadyStarted = errors.New("receiver already started")

// Daemon is a running satstream-receiver.
type Daemon struct {
	cfg  *Config
	logs *common.LogManager
	log  btclog.Logger

	db Ledger
	// rs is db's receiver store as the daemon's writers and the API
	// use it: wrapped by the paid index on badger (every write forgets
	// what the index holds of the subscriptions it put), then by the
	// event notifier (a step that queued an event wakes events).
	rs store.ReceiverStore
	// events wakes the long polls of GET /v1/events.
	events  *dashboard.Notifier
	metrics *metrics
	hooks   *webhook.Dispatcher

	started atomic.Bool
	stopped sync.Once
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	errs    chan error

	apiSrv     *common.Server
	metricsSrv *common.Server
	dash       *dashboard.Kit

	node atomic.Pointer[route.Vertex]
	// lnd is the lnd connection state /healthz, /v1/health and
	// satstream_lnd_connected follow.
	lnd        *common.LndLink
	autoSettle atomic.Bool

	// ledgerReported is set once the ledger's failure has been logged,
	// by watchStore or, when the failure raced shutdown, by Stop.
	ledgerReported atomic.Bool

	// badger is db when the backend is badger (backups); nil on
	// postgres, whose backups are pg_dump's job.
	badger *store.DB

	// elector picks the cluster's leader; leader is true while this
	// receiver is it and runs the singletons under leadCancel/leadWG
	// (touched only from the elector's goroutine).
	elector    elector
	leader     atomic.Bool
	leadCancel context.CancelFunc
	leadWG     sync.WaitGroup
	runCtx     context.Context

	// storeOpts lets tests change the ledger's options (to inject disk
	// failures); nil in the daemon.
	storeOpts func(*store.Options)
	// eventReread lets tests change how often a long poll of
	// GET /v1/events reads again without a wake-up; 0 in the daemon
	// (the backend's interval).
	eventReread time.Duration
}

// New prepares a daemon from a configuration (validated here).
func New(cfg *Config, logs *common.LogManager) (*Daemon, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logs == nil {
		logs = common.NewLogManager(os.Stdout)
	}
	for _, t := range subsystems {
		logs.Logger(t)
	}
	if err := logs.SetLevels(cfg.DebugLevel); err != nil {
		return nil, fmt.Errorf("%w: --%v", ErrConfig, err)
	}
	// The store's logger is process-wide: the first daemon's wins.
	storeLogOnce.Do(func() { store.UseLogger(logs.Logger(tagStore)) })
	metrics := newMetrics()
	return &Daemon{
		cfg:     cfg,
		logs:    logs,
		log:     logs.Logger(tagDaemon),
		metrics: metrics,
		lnd:     common.NewLndLink(metrics.lndConnected),
		errs:    make(chan error, 1),
	}, nil
}

// APIAddr is the address the API actually listens on.
func (d *Daemon) APIAddr() string {
	if d.apiSrv == nil {
		return ""
	}
	return d.apiSrv.Addr()
}

// MetricsAddr is the address /metrics listens on ("" if disabled).
func (d *Daemon) MetricsAddr() string {
	if d.metricsSrv == nil {
		return ""
	}
	return d.metricsSrv.Addr()
}

// Err delivers the first fatal error of a running daemon.
func (d *Daemon) Err() <-chan error { return d.errs }

// fatal reports err once.
func (d *Daemon) fatal(err error) {
	select {
	case d.errs <- err:
	default:
	}
}

// Start opens the ledger, starts the API and metrics listeners and the
// background work (lnd pipeline, expiry, webhooks). It returns once the
// listeners are bound; lnd is connected in the background, with backoff.
func (d *Daemon) Start(ctx context.Context) (err error) {
	if !d.started.CompareAndSwap(false, true) {
		return ErrAlreadyStarted
	}
	defer func() {
		if err != nil {
			d.closeAll()
		}
	}()
	if err := common.CheckOldLayout(d.cfg.DataDir, d.cfg.Network,
		"tls.cert", "tls.key", common.AdminTokenFile,
		common.ReadOnlyTokenFile, webhook.SecretFile); err != nil {

		return err
	}
	netDir := d.cfg.NetworkDir()
	if err := os.MkdirAll(netDir, 0o700); err != nil {
		return fmt.Errorf("create --datadir: %w", err)
	}
	if err := d.openLedger(ctx, netDir); err != nil {
		return err
	}
	tokens, err := common.LoadOrCreateTokens(netDir)
	if err != nil {
		return fmt.Errorf("API tokens: %w", err)
	}
	host, _, _ := net.SplitHostPort(d.cfg.API.Listen)
	tlsConf, err := common.LoadOrCreateTLS(d.cfg.API.TLSCert,
		d.cfg.API.TLSKey, append([]string{host}, d.cfg.API.ExtraHosts...))
	if err != nil {
		return err
	}
	secret, err := d.webhookSecret()
	if err != nil {
		return err
	}

	rs := d.db.Receiver()
	var paidIdx *paidIndex
	reread := eventRereadPostgres
	if d.badger != nil {
		// One process writes a badger ledger: this one.
		paidIdx = newLedgerPaidIndex(d.badger)
		rs = paidIdx
		reread = eventRereadBadger
	}
	if d.eventReread > 0 {
		reread = d.eventReread
	}
	// Outermost, so every writer's steps wake the long polls.
	events := newEventNotifier(rs)
	rs = events
	d.rs = rs
	d.events = events.n
	api := &apiServer{
		db:     rs,
		log:    d.logs.Logger(tagAPI),
		now:    time.Now,
		tokens: tokens,
		node: func() (route.Vertex, bool) {
			v := d.node.Load()
			if v == nil {
				return route.Vertex{}, false
			}
			return *v, true
		},
		health:  d.health,
		notify:  d.notifyEvents,
		network: d.cfg.Network,
		idem:    idem.New(d.db, d.logs.Logger(tagAPI)),

		webhookURLs: d.cfg.Webhook.URLs,
		extraNodes:  d.cfg.Offer.Keys(),
		paidIdx:     paidIdx,

		events:       events.n,
		eventReread:  reread,
		maxEventWait: maxEventWait(d.cfg.API.Limits().WriteTimeout),
	}
	dash, handler, err := newDashboard(api, len(d.cfg.Webhook.URLs))
	if err != nil {
		return err
	}
	d.dash = dash
	handler = common.WithHealthz(handler, d.healthState().Err)
	if d.badger != nil {
		handler = common.WithBackup(handler, tokens,
			func() *store.DB { return d.badger })
	} else {
		handler = refuseBackup(handler, tokens)
	}
	d.apiSrv, err = common.Listen("API", d.cfg.API.Listen, handler,
		tlsConf, d.cfg.API.Limits())
	if err != nil {
		return fmt.Errorf("--api.listen %s: %w", d.cfg.API.Listen, err)
	}
	if d.cfg.Metrics.Listen != "" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(d.metrics.reg,
			promhttp.HandlerOpts{}))
		d.metricsSrv, err = common.Listen("metrics", d.cfg.Metrics.Listen,
			mux, nil, common.DefaultServerLimits())
		if err != nil {
			return fmt.Errorf("--metrics.listen %s: %w",
				d.cfg.Metrics.Listen, err)
		}
	}

	if len(d.cfg.Webhook.URLs) > 0 {
		secrets, err := d.cfg.Webhook.SecretsByURL()
		if err != nil {
			return err
		}
		d.hooks = webhook.New(webhook.Config{
			Store:           rs,
			URLs:            d.cfg.Webhook.URLs,
			Secret:          secret,
			EndpointSecrets: secrets,
			Network:         d.cfg.Network,
			Client:          &http.Client{Timeout: d.cfg.Webhook.Timeout},
			Log:             d.logs.Logger(tagWebhook),
			InitialBackoff:  d.cfg.Webhook.InitialBackoff,
			MaxBackoff:      d.cfg.Webhook.MaxBackoff,
			GiveUpAfter:     d.cfg.Webhook.GiveUpAfter,
			OnResult:        d.metrics.webhookResult,
		})
		api.webhookRetried = d.hooks.Rewind
	}

	runCtx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	d.runCtx = runCtx
	// Stop cancels runCtx before it shuts the API server down: the long
	// polls answer at once instead of holding the shutdown.
	api.done = runCtx.Done()
	for _, srv := range []*common.Server{d.apiSrv, d.metricsSrv} {
		if srv == nil {
			continue
		}
		d.goRun(func() {
			if err := srv.Serve(); err != nil {
				d.fatal(err)
			}
		})
	}
	d.goRun(func() { d.watchStore(runCtx, d.db) })
	d.goRun(func() { d.lndLoop(runCtx) })
	if d.metricsSrv != nil {
		// The gauges' refresh walks every subscription (0.8 s of CPU
		// every 10 s at 100,000): only for a /metrics someone reads.
		d.goRun(func() { d.metricsLoop(runCtx) })
	}
	// Webhook delivery and the expiry sweep run on the leader only.
	d.goRun(func() { d.elector.Run(runCtx, d.setLeader) })
	d.log.Infof("satstream-receiver version %s started: API https://%s, data in "+
		"%s", common.ReadBuildInfo(), d.APIAddr(), netDir)
	d.logDashboard()
	return nil
}

// openLedger opens the ledger of the configured backend and the elector
// that goes with it: badger's directory lock admits one receiver, which
// always leads; on postgres the receivers of a cluster elect one.
func (d *Daemon) openLedger(ctx context.Context, netDir string) error {
	if d.cfg.DB.Backend == BackendPostgres {
		el, err := newPGLeader(d.cfg.DB.Postgres.DSN,
			d.cfg.DB.Postgres.ConnectTimeout, d.logs.Logger(tagCluster))
		if err != nil {
			return err
		}
		db, err := openPostgres(ctx, d)
		if err != nil {
			return fmt.Errorf("open ledger: %w", err)
		}
		d.db, d.elector = db, el
		d.log.Infof("ledger in PostgreSQL at %s",
			RedactDSN(d.cfg.DB.Postgres.DSN))
		return nil
	}
	opts := store.DefaultOptions()
	if d.storeOpts != nil {
		d.storeOpts(&opts)
	}
	db, err := store.Open(ctx, filepath.Join(netDir, "ledger"), opts)
	if err != nil {
		return fmt.Errorf("open ledger: %w", err)
	}
	d.db, d.badger, d.elector = db, db, alwaysLeader{}
	return nil
}

// watchStore stops the daemon when the ledger fails (a write or fsync
// error): what it holds in memory can no longer be trusted, and looping on
// would only log the same error; a restart re-reads the ledger from disk.
func (d *Daemon) watchStore(ctx context.Context, db Ledger) {
	select {
	case <-ctx.Done():
	case <-db.Failed():
		err := fmt.Errorf("ledger failed, stopping: %w", db.Err())
		d.ledgerReported.Store(true)
		d.log.Errorf("%v", err)
		d.fatal(err)
		d.cancel()
	}
}

func (d *Daemon) goRun(f func()) {
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		f()
	}()
}

// Stop shuts everything down and closes the ledger after every goroutine
// that uses it has returned. It is safe to call more than once. It returns
// the ledger's failure, if the ledger failed, even one that raced the
// shutdown (watchStore then returned on the cancelled context without
// seeing it): the steps in flight may be lost, and the daemon must exit
// non-zero, with the cause logged once, rather than report a clean stop.
func (d *Daemon) Stop() error {
	var err error
	d.stopped.Do(func() {
		db := d.db
		if d.cancel != nil {
			d.cancel()
		}
		d.dash.Stop()
		ctx, cancel := context.WithTimeout(context.Background(),
			5*time.Second)
		defer cancel()
		if d.apiSrv != nil {
			_ = d.apiSrv.Shutdown(ctx)
		}
		if d.metricsSrv != nil {
			_ = d.metricsSrv.Shutdown(ctx)
		}
		d.wg.Wait()
		err = d.closeAll()
		if lerr := ledgerErr(db); lerr != nil {
			if !d.ledgerReported.Swap(true) {
				d.log.Errorf("ledger failed: %v", lerr)
			}
			if err == nil || !errors.Is(err, store.ErrFailed) {
				err = fmt.Errorf("ledger failed: %w", lerr)
			}
		}
		d.log.Infof("satstream-receiver stopped")
	})
	return err
}

// ledgerErr is the failure of db (nil if db is nil or did not fail).
func ledgerErr(db Ledger) error {
	if db == nil {
		return nil
	}
	return db.Err()
}

// closeAll releases what Start opened.
func (d *Daemon) closeAll() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for _, srv := range []*common.Server{d.apiSrv, d.metricsSrv} {
		if srv != nil {
			_ = srv.Shutdown(ctx)
		}
	}
	if d.db != nil {
		err := d.db.Close()
		d.db = nil
		d.badger = nil
		return err
	}
	return nil
}

// webhookSecret returns the configured secret or the one generated in the
// data directory on first start.
func (d *Daemon) webhookSecret() ([]byte, error) {
	if d.cfg.Webhook.Secret != "" {
		secret := []byte(d.cfg.Webhook.Secret)
		err := webhook.CheckSecret(secret, "webhook.secret in the "+
			"config file")
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrConfig, err)
		}
		return secret, nil
	}
	return webhook.LoadOrCreateSecret(filepath.Join(d.cfg.NetworkDir(),
		webhook.SecretFile))
}

// notifyEvents wakes the webhook dispatcher and the open dashboards.
func (d *Daemon) notifyEvents() {
	d.dash.Notify()
	if d.hooks != nil {
		d.hooks.Notify()
	}
}

// lndLoop connects to lnd and runs the payment pipeline, reconnecting with
// backoff whenever lnd goes away.
func (d *Daemon) lndLoop(ctx context.Context) {
	lndLog := d.logs.Logger(tagLnd)
	reqs := common.ReceiverRequirements(d.cfg.Network,
		d.cfg.AllowNoHoldTime)

	// A macaroon without the permissions we need is found before
	// dialing, offline.
	if err := d.cfg.Lnd.CheckMacaroon(reqs.RPCs); err != nil {
		d.log.Errorf("cannot use lnd: %v", err)
		d.fatal(err)
		return
	}
	delay := time.Second
	// Shared by every pipeline of this process: each decision is
	// reported once even when a reconnect interrupts it.
	reported := core.NewReported(0)
	for {
		services, err := common.ConnectLnd(ctx, d.cfg.Lnd, d.cfg.Network,
			lndLog)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			d.log.Errorf("cannot use lnd: %v", err)
			d.fatal(err)
			return
		}
		// Bound before anything else, and before the pipeline reads a
		// stored index: the indices of another node's invoices would
		// skip this node's payments.
		bound, err := common.BindLedger(ctx, d.db, services.NodePubkey,
			d.cfg.Network, d.cfg.NetworkDir())
		if err != nil {
			services.Close()
			if ctx.Err() != nil {
				return
			}
			d.log.Errorf("%v", err)
			d.fatal(err)
			return
		}
		if bound {
			d.log.Infof("ledger bound to lnd node %s on %s",
				services.NodePubkey, d.cfg.Network)
		}
		if err := d.checkLnd(ctx, services, reqs); err != nil {
			services.Close()
			if ctx.Err() != nil {
				return
			}
			// A setting only the operator can change stops us; a
			// call that failed because lnd went away again is
			// retried like any lost connection.
			var nodeErr *common.NodeError
			if errors.As(err, &nodeErr) {
				d.log.Errorf("cannot use lnd: %v", err)
				d.fatal(err)
				return
			}
			d.log.Warnf("checking lnd failed (%v); retrying in %v",
				err, delay)
			select {
			case <-ctx.Done():
				return
			case <-time.After(delay):
			}
			if delay *= 2; delay > 30*time.Second {
				delay = 30 * time.Second
			}
			continue
		}
		node := services.NodePubkey
		if err := d.cfg.Offer.CheckSelf(node); err != nil {
			services.Close()
			d.log.Errorf("cannot use lnd: %v", err)
			d.fatal(err)
			return
		}
		d.node.Store(&node)
		d.lnd.Set(true)
		// The connection's state, not only the invoice stream,
		// says whether lnd is there.
		followCtx, stopFollow := context.WithCancel(ctx)
		followed := make(chan struct{})
		go func() {
			defer close(followed)
			d.lnd.Follow(followCtx, services.ClientConn)
		}()

		pipe := core.NewPipeline(core.PipelineConfig{
			Store:     d.rs,
			SpaceErr:  func() error { return spaceErr(d.db) },
			Source:    &lndSource{lnd: &services.LndServices},
			Log:       d.logs.Logger(tagInvoices),
			Window:    d.cfg.SeqWindow,
			OnOutcome: d.metrics.outcome,
			OnReversed: func(core.Outcome) {
				d.metrics.reversed.Inc()
			},
			OnExcess: func(_ lntypes.Hash, credited,
				settled lnwire.MilliSatoshi) {

				d.metrics.excess.Add(float64(settled - credited))
			},
			OnEvents:  d.notifyEvents,
			CrashHook: crashHook(),
			Reported:  reported,
		})
		start := time.Now()
		err = pipe.Run(ctx)
		if pipe.AutoSettleDetected() {
			d.autoSettle.Store(true)
		}
		stopFollow()
		<-followed
		d.lnd.Set(false)
		services.Close()
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > time.Minute {
			delay = time.Second
		}
		d.log.Warnf("lost lnd (%v); reconnecting in %v", err, delay)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		if delay *= 2; delay > 30*time.Second {
			delay = 30 * time.Second
		}
	}
}

// checkLnd checks, on every (re)connect, that lnd accepts keysend and
// holds it for us, and says exactly what to change if not. Running
// without a hold time (--allownoholdtime) is logged loudly and shown in
// /v1/health, as when the pipeline sees lnd settle on its own.
func (d *Daemon) checkLnd(ctx context.Context,
	services *lndclient.GrpcLndServices, reqs common.Requirements) error {

	settings, err := common.CheckNode(ctx, &services.LndServices,
		d.cfg.Lnd, reqs)
	if err != nil {
		return err
	}
	for _, w := range settings.Warnings {
		d.log.Warnf("%s", w)
	}
	if !settings.ConfigKnown {
		return nil
	}
	if settings.KeysendHoldTime == 0 {
		d.autoSettle.Store(true)
		d.log.Warnf("RUNNING WITHOUT REFUSALS (--allownoholdtime): lnd " +
			"settles every keysend itself; payments that can't be " +
			"credited are kept and recorded as unclaimed")
		return nil
	}
	d.log.Infof("lnd at %s: accept-keysend on, keysend-hold-time %v",
		d.cfg.Lnd.Addr(), settings.KeysendHoldTime)
	if settings.KeysendHoldTime < 2*core.DefaultSweepInterval {
		// After a restart a payment accepted while we were away may
		// be found only by a sweep: one must come well within the
		// hold time.
		d.log.Warnf("lnd's keysend-hold-time %v is short: the "+
			"receiver looks for held payments every %v, so some "+
			"may expire before they are decided after a restart; "+
			"use --keysend-hold-time=30s", settings.KeysendHoldTime,
			core.DefaultSweepInterval)
	}
	return nil
}

// expiryLoop moves subscriptions whose paid time is over to past due and
// expired, found through the paid-until index.
func (d *Daemon) expiryLoop(ctx context.Context) {
	t := time.NewTicker(d.cfg.ExpiryInterval)
	defer t.Stop()
	rs := d.rs
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		var ids []store.SubID
		err := rs.View(ctx, func(tx store.ReceiverTx) error {
			var err error
			ids, err = core.DueSubscriptions(tx, now, 1000)
			return err
		})
		if err != nil {
			if ctx.Err() == nil {
				d.log.Errorf("expiry scan: %v", err)
			}
			continue
		}
		if ageSubscriptions(ctx, rs, d.log, ids, now) {
			d.notifyEvents()
		}
	}
}

// ageSubscriptions moves the subscriptions ids to the state their paid
// time gives at now, in batches (see core.AgeSubscriptions), and reports
// whether any changed. A change is logged once committed. A step refused
// for a full disk ends the pass (the next tick tries again): every other
// step would be refused too.
func ageSubscriptions(ctx context.Context, rs store.ReceiverStore,
	log btclog.Logger, ids []store.SubID, now time.Time) bool {

	aged, err := core.AgeSubscriptions(ctx, rs, ids, now,
		func(id store.SubID, err error) {
			log.Errorf("ageing subscription %v: %v", id, err)
		})
	for _, a := range aged {
		log.Infof("subscription %v is now %v", a.ID, a.State)
	}
	switch {
	case err == nil, ctx.Err() != nil:
	case errors.Is(err, store.ErrDiskFull):
		log.Errorf("ageing subscriptions: %v; trying again at the "+
			"next pass", err)
	default:
		log.Errorf("ageing subscriptions: %v", err)
	}
	return len(aged) > 0
}

// metricsLoop refreshes the gauges that come from the store.
func (d *Daemon) metricsLoop(ctx context.Context) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		if err := d.metrics.refresh(ctx, d.db.Receiver()); err != nil &&
			ctx.Err() == nil {
			d.log.Warnf("refresh metrics: %v", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// healthState is what /healthz and /v1/health are made of.
func (d *Daemon) healthState() common.Health {
	return common.Health{DB: func() common.HealthLedger {
		if db := d.db; db != nil {
			return db
		}
		return nil
	}, Lnd: d.lnd}
}

// health is the body of GET /v1/health: "ok" only when /healthz would
// answer 200; "degraded" while lnd is away, "failing" when the ledger
// can no longer be written (the daemon is stopping).
func (d *Daemon) health() map[string]any {
	h := d.healthState().Status()
	h["lnd_settles_keysend_itself"] = d.autoSettle.Load()
	h["network"] = d.cfg.Network
	h["db_backend"] = d.cfg.DB.Backend
	h["leader"] = d.leader.Load()
	if v := d.node.Load(); v != nil {
		h["node_pubkey"] = v.String()
	}
	return h
}

// Main is the satstream-receiver program: parse options, run until SIGINT
// or SIGTERM, shut down cleanly.
func Main(args []string) error {
	cfg := DefaultConfig()
	defaultFile := cfg.ConfigFile

	// A --datadir given on the command line moves the default config file
	// into it.
	pre := DefaultConfig()
	if _, err := flags.NewParser(pre, flags.IgnoreUnknown).ParseArgs(args); err == nil &&
		pre.ConfigFile == defaultFile && pre.DataDir != cfg.DataDir {
		defaultFile = filepath.Join(common.ExpandHome(pre.DataDir), defaultConfigName)
		cfg.ConfigFile = defaultFile
	}
	// The webhook secret belongs in its 0600 file or the config file,
	// not in the process list.
	if err := common.RefuseSecretFlags(args, "webhook.secret",
		"webhook.endpointsecret"); err != nil {
		return fmt.Errorf("%w: %w (or leave it out to use <datadir>/<network>/%s)",
			ErrConfig, err, webhook.SecretFile)
	}
	if err := common.LoadConfig(cfg, args, &cfg.ConfigFile, defaultFile); err != nil {
		if errors.Is(err, common.ErrHelp) {
			return nil
		}
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}

	if cfg.Version {
		fmt.Println("satstream-receiver version", common.ReadBuildInfo())
		return nil
	}
	if cfg.DebugLevel == common.ShowSubsystems {
		common.PrintSubsystems(os.Stdout, subsystems)
		return nil
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	out, closeLog, err := cfg.Log.Open(os.Stdout, "satstream-receiver.log")
	if err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	defer closeLog()
	logs := common.NewLogManager(out)
	common.UseLogger(logs.Logger(tagDaemon))
	d, err := New(cfg, logs)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt,
		syscall.SIGTERM)
	defer stop()
	if err := d.Start(ctx); err != nil {
		return err
	}
	var runErr error
	select {
	case <-ctx.Done():
		d.log.Infof("signal received, shutting down")
	case runErr = <-d.Err():
	}
	if err := d.Stop(); err != nil && runErr == nil {
		runErr = err
	}
	return runErr
}
