package common

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/btcsuite/btclog/v2"
	"github.com/cenkalti/backoff/v4"
	"github.com/lightninglabs/lndclient"
	"github.com/lightningnetwork/lnd/lnrpc/verrpc"
)

// MinLndVersion is the oldest lnd satstream supports: 0.18.0, the first
// release with the GetDebugInfo RPC, which the start-up check reads
// accept-keysend and keysend-hold-time from (lnd 0.18.0 release notes).
// Keysend hold mode itself (--keysend-hold-time) is older (lnd 0.11, PR
// 4167), as are the invoice and router RPCs we call. lndclient's own
// default asks for 0.21 and sub-servers we don't need (signrpc, walletrpc,
// chainrpc); ConnectLnd checks this instead, with a message that names
// the version found. routerrpc is needed to send and track payments,
// invoicesrpc to settle and cancel.
var MinLndVersion = &verrpc.Version{
	AppMajor:  0,
	AppMinor:  18,
	AppPatch:  0,
	BuildTags: []string{"routerrpc", "invoicesrpc"},
}

// anyLndVersion lets lndclient accept every lnd that has the version RPC,
// so that checkVersion can say which version it found.
var anyLndVersion = &verrpc.Version{}

// defaultLndHost is where lnd listens for gRPC unless told otherwise.
const defaultLndHost = "localhost:10009"

// ErrLndConfig reports a connection setting that can't work, before any
// attempt to connect.
var ErrLndConfig = errors.New("invalid lnd connection settings")

// LndConfig is the "lnd." option group of both daemons. There are three
// ways to name a node: --lnd.host with --lnd.tlspath and
// --lnd.macaroonpath; --lnd.connect with an lndconnect URI; or
// --lnd.polar with a Polar network id and node name.
type LndConfig struct {
	Host         string `long:"host" description:"lnd's gRPC host:port (default localhost:10009; with --lnd.polar it overrides the port found in Polar)"`
	TLSPath      string `long:"tlspath" description:"Path to lnd's tls.cert (default ~/.lnd/tls.cert)"`
	MacaroonPath string `long:"macaroonpath" description:"Path to a macaroon with the permissions listed in docs/operators.md (default ~/.lnd/data/chain/bitcoin/<network>/admin.macaroon; with --lnd.polar it replaces Polar's admin.macaroon)"`
	Connect      string `long:"connect" description:"lndconnect://host:port?cert=...&macaroon=... URI, instead of --lnd.host, --lnd.tlspath and --lnd.macaroonpath"`
	Polar        string `long:"polar" description:"<network id>/<node name> of a local Polar network, e.g. 1/alice, instead of --lnd.tlspath and --lnd.macaroonpath"`

	// RPCTimeout bounds each unary call to lnd.
	RPCTimeout time.Duration `long:"rpctimeout" description:"Timeout of each call to lnd"`

	// target is what Validate resolved the options to.
	target lndTarget
}

// lndTarget is one resolved way of reaching lnd.
type lndTarget struct {
	// via names the option the user chose, for messages.
	via string

	host       string
	tlsPath    string
	tlsPEM     string
	systemCert bool

	macPath string
	mac     []byte
}

// macaroonSource names the macaroon in messages.
func (t lndTarget) macaroonSource() string {
	if t.macPath != "" {
		return "macaroon " + t.macPath
	}
	return "the macaroon in " + t.via
}

// macaroon returns the macaroon's bytes.
func (t lndTarget) macaroon() ([]byte, error) {
	if t.mac != nil {
		return t.mac, nil
	}
	b, err := os.ReadFile(t.macPath)
	if err != nil {
		return nil, fmt.Errorf("read macaroon: %w", err)
	}
	return b, nil
}

// DefaultLndConfig holds the defaults; the host defaults to
// localhost:10009 when neither --lnd.connect nor --lnd.polar is used.
func DefaultLndConfig() LndConfig {
	return LndConfig{
		RPCTimeout: 30 * time.Second,
	}
}

// SetDefaults fills --lnd.tlspath and --lnd.macaroonpath with the paths
// of a local lnd, as lndclient and loop do (~/.lnd/tls.cert and the
// network's admin.macaroon), unless the node is named another way, so a
// local node needs only --network.
func (c *LndConfig) SetDefaults(network string) {
	c.TLSPath = ExpandHome(c.TLSPath)
	c.MacaroonPath = ExpandHome(c.MacaroonPath)
	if strings.TrimSpace(c.Connect) != "" || strings.TrimSpace(c.Polar) != "" {
		return
	}
	if c.TLSPath == "" {
		c.TLSPath = ExpandHome(DefaultLndTLSPath)
	}
	if c.MacaroonPath == "" {
		c.MacaroonPath = ExpandHome(DefaultLndMacaroonPath(network))
	}
}

// DefaultLndTLSPath is where a local lnd keeps its TLS certificate.
const DefaultLndTLSPath = "~/.lnd/tls.cert"

// DefaultLndMacaroonPath is where a local lnd keeps the admin macaroon of
// network (lnd's data/chain/bitcoin/<network> directory).
func DefaultLndMacaroonPath(network string) string {
	return "~/.lnd/data/chain/bitcoin/" + network + "/admin.macaroon"
}

// Addr is the gRPC address the daemon connects to (valid after Validate).
func (c *LndConfig) Addr() string {
	if c.target.host != "" {
		return c.target.host
	}
	if c.Host != "" {
		return c.Host
	}
	return defaultLndHost
}

// Validate checks the settings without connecting, naming the bad option,
// and resolves --lnd.connect and --lnd.polar. Exactly one way of naming
// the node is accepted; with --lnd.polar, --lnd.host and
// --lnd.macaroonpath may override what Polar's files say.
func (c *LndConfig) Validate() error {
	if c.RPCTimeout <= 0 {
		return fmt.Errorf("%w: --lnd.rpctimeout must be positive, got %v",
			ErrLndConfig, c.RPCTimeout)
	}
	connect := strings.TrimSpace(c.Connect)
	polar := strings.TrimSpace(c.Polar)
	conflict := func(chosen string, opts ...string) error {
		vals := map[string]string{"--lnd.host": c.Host,
			"--lnd.tlspath":      c.TLSPath,
			"--lnd.macaroonpath": c.MacaroonPath,
			"--lnd.polar":        polar}
		for _, o := range opts {
			if vals[o] != "" {
				return fmt.Errorf("%w: %s and %s both say how to "+
					"reach lnd; use one (command line or "+
					"config file)", ErrLndConfig, chosen, o)
			}
		}
		return nil
	}

	var t lndTarget
	switch {
	case connect != "":
		if err := conflict("--lnd.connect", "--lnd.polar", "--lnd.host",
			"--lnd.tlspath", "--lnd.macaroonpath"); err != nil {
			return err
		}
		lc, err := ParseLndConnect(connect)
		if err != nil {
			return fmt.Errorf("%w: --lnd.connect: %w", ErrLndConfig, err)
		}
		t = lndTarget{via: "--lnd.connect", host: lc.Host,
			tlsPEM: lc.CertPEM, systemCert: lc.CertPEM == "",
			mac: lc.Macaroon}

	case polar != "":
		if err := conflict("--lnd.polar", "--lnd.tlspath"); err != nil {
			return err
		}
		node, err := FindPolarNode(polar)
		if err != nil {
			return fmt.Errorf("%w: --lnd.polar: %w", ErrLndConfig, err)
		}
		t = lndTarget{via: "--lnd.polar", host: node.Host,
			tlsPath: node.TLSCertPath, macPath: node.AdminMacaroonPath}
		if c.Host != "" {
			t.host = c.Host
		}
		if c.MacaroonPath != "" {
			t.macPath = c.MacaroonPath
		}
		if t.host == "" {
			return fmt.Errorf("%w: --lnd.polar: Polar's networks.json "+
				"doesn't list %s; add --lnd.host=127.0.0.1:<the "+
				"GRPC port Polar shows for the node>", ErrLndConfig,
				polar)
		}
		for what, path := range map[string]string{
			"TLS certificate": t.tlsPath, "macaroon": t.macPath,
		} {
			if _, err := os.Stat(path); err != nil {
				return fmt.Errorf("%w: --lnd.polar: %s %s not "+
					"found; start the network in Polar first",
					ErrLndConfig, what, path)
			}
		}

	default:
		t = lndTarget{via: "--lnd.host", host: c.Host,
			tlsPath: c.TLSPath, macPath: c.MacaroonPath}
		if t.host == "" {
			t.host = defaultLndHost
		}
		for _, o := range []struct{ opt, path string }{
			{"--lnd.tlspath", c.TLSPath},
			{"--lnd.macaroonpath", c.MacaroonPath},
		} {
			if o.path == "" {
				return fmt.Errorf("%w: %s is required (or use "+
					"--lnd.connect or --lnd.polar)",
					ErrLndConfig, o.opt)
			}
			if _, err := os.Stat(o.path); err != nil {
				return fmt.Errorf("%w: %s: %v (set %s to lnd's "+
					"file, or use --lnd.connect or "+
					"--lnd.polar)", ErrLndConfig, o.opt, err,
					o.opt)
			}
		}
	}
	c.target = t
	return nil
}

// CheckMacaroon reads the configured macaroon, offline, and reports the
// permissions it lacks for rpcs as one line that says how to bake a
// better one. It needs no connection, so a daemon can call it before
// connecting.
func (c *LndConfig) CheckMacaroon(rpcs []RPCPermission) error {
	if c.target.via == "" {
		if err := c.Validate(); err != nil {
			return err
		}
	}
	t := c.target
	mac, err := t.macaroon()
	if err != nil {
		return err
	}
	have, err := MacaroonPermissions(mac)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrMacaroonPermissions,
			t.macaroonSource(), err)
	}
	missing := MissingPermissions(have, rpcs)
	if len(missing) == 0 {
		return nil
	}
	return &NodeError{Err: ErrMacaroonPermissions, Msg: fmt.Sprintf(
		"%s lacks %s: bake one with `%s` and pass it with "+
			"--lnd.macaroonpath", t.macaroonSource(),
		describeMissing(missing),
		BakeCommand("satstream.macaroon", rpcs))}
}

// ConnectLnd connects to lnd, retrying with exponential backoff and jitter
// while lnd is unreachable or still starting, until ctx ends. Version,
// network and permission problems are not retried: they need the
// operator, and each comes back as one line saying what to change. With
// reqs, the macaroon is checked before dialing and the node with
// CheckNode after connecting.
func ConnectLnd(ctx context.Context, cfg LndConfig, network string,
	log btclog.Logger, reqs ...Requirements) (*lndclient.GrpcLndServices,
	error) {

	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	t := cfg.target
	for _, r := range reqs {
		if len(r.RPCs) > 0 {
			if err := cfg.CheckMacaroon(r.RPCs); err != nil {
				return nil, err
			}
		}
	}

	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = 500 * time.Millisecond
	bo.MaxInterval = 30 * time.Second
	bo.MaxElapsedTime = 0

	lcfg := &lndclient.LndServicesConfig{
		LndAddress:         t.host,
		Network:            lndclient.Network(network),
		CustomMacaroonPath: t.macPath,
		TLSPath:            t.tlsPath,
		TLSData:            t.tlsPEM,
		SystemCert:         t.systemCert,
		CheckVersion:       anyLndVersion,
		BlockUntilUnlocked: true,
		CallerCtx:          ctx,
		RPCTimeout:         cfg.RPCTimeout,
	}
	if t.mac != nil {
		lcfg.CustomMacaroonHex = hex.EncodeToString(t.mac)
	}

	var services *lndclient.GrpcLndServices
	op := func() error {
		s, err := lndclient.NewLndServices(lcfg)
		if err != nil {
			if permanentLndError(err) {
				return backoff.Permanent(
					explainLndError(t, network, err))
			}
			log.Warnf("lnd at %s not reachable yet: %v%s", t.host,
				err, RESTPortHint(t.host))
			return err
		}
		services = s
		return nil
	}
	err := backoff.Retry(op, backoff.WithContext(bo, ctx))
	if err != nil {
		var ne *NodeError
		if errors.As(err, &ne) {
			return nil, ne
		}
		return nil, fmt.Errorf("connect to lnd at %s: %w%s", t.host, err,
			RESTPortHint(t.host))
	}
	if err := checkVersion(t.host, services.Version); err != nil {
		services.Close()
		return nil, err
	}
	log.Infof("connected to lnd %s (%s, %v) at %s", services.NodeAlias,
		services.NodePubkey, services.Version.Version, t.host)

	for _, r := range reqs {
		if r.Network == "" {
			r.Network = network
		}
		settings, err := CheckNode(ctx, &services.LndServices, cfg, r)
		if err != nil {
			services.Close()
			return nil, err
		}
		for _, w := range settings.Warnings {
			log.Warnf("%s", w)
		}
	}
	return services, nil
}

// permanentLndError tells errors no retry can fix (wrong network, lnd too
// old or missing sub-servers, a macaroon lnd rejects, unreadable files)
// from an lnd that is down or still starting. lndclient only gives us
// strings for these.
func permanentLndError(err error) bool {
	msg := err.Error()
	for _, s := range []string{
		"compatibility check failed", "at least version",
		"network mismatch", "verification failed", "permission denied",
		"unable to read macaroon", "unable to load TLS cert",
		"no such file", "unable to get tls creds",
	} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// networkMismatch picks the networks out of lndclient's message.
var networkMismatch = regexp.MustCompile(`wanted '([^']*)', got '([^']*)'`)

// explainLndError turns lndclient's permanent errors into one line saying
// what to change.
func explainLndError(t lndTarget, network string, err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "network mismatch"):
		got := "another network"
		if m := networkMismatch.FindStringSubmatch(msg); m != nil {
			got = m[2]
		}
		return &NodeError{Err: ErrWrongNetwork, Msg: fmt.Sprintf(
			"lnd at %s runs on %s, not %s: set --network=%s or "+
				"connect to a %s node", t.host, got, network,
			got, network)}

	case strings.Contains(msg, "verification failed"),
		strings.Contains(msg, "permission denied"):

		return &NodeError{Err: ErrMacaroonPermissions, Msg: fmt.Sprintf(
			"lnd at %s rejected %s (%s): use a macaroon baked by "+
				"this node with at least info:read", t.host,
			t.macaroonSource(), oneLine(msg))}
	}
	return fmt.Errorf("connect to lnd at %s: %s%s", t.host, oneLine(msg),
		RESTPortHint(t.host))
}

// RESTPortHint returns a hint when host uses port 8080, lnd's REST port
// (the one Zeus and Umbrel put in lndconnect URIs): satstream speaks
// gRPC, usually on port 10009.
func RESTPortHint(host string) string {
	if _, port, err := splitHostPort(host); err == nil && port == "8080" {
		return " (port 8080 is usually lnd's REST port; satstream " +
			"needs gRPC, usually port 10009: change the port in " +
			"--lnd.connect or --lnd.host)"
	}
	return ""
}

// checkVersion compares lnd's version with MinLndVersion and names both.
func checkVersion(host string, v *verrpc.Version) error {
	if v == nil {
		return &NodeError{Err: ErrLndTooOld, Msg: fmt.Sprintf(
			"lnd at %s did not report its version; satstream needs "+
				"lnd %s or newer: upgrade lnd", host,
			lndclient.VersionString(MinLndVersion))}
	}
	if err := lndclient.AssertVersionCompatible(v, MinLndVersion); err != nil {
		return &NodeError{Err: ErrLndTooOld, Msg: fmt.Sprintf(
			"lnd at %s is %s; satstream needs lnd %d.%d.%d or "+
				"newer (for the GetDebugInfo settings check): "+
				"upgrade lnd", host, v.Version,
			MinLndVersion.AppMajor, MinLndVersion.AppMinor,
			MinLndVersion.AppPatch)}
	}
	tags := map[string]bool{}
	for _, tag := range v.BuildTags {
		tags[tag] = true
	}
	var missing []string
	for _, tag := range MinLndVersion.BuildTags {
		if !tags[tag] {
			missing = append(missing, tag)
		}
	}
	if len(missing) > 0 {
		return &NodeError{Err: ErrLndTooOld, Msg: fmt.Sprintf(
			"lnd at %s was built without %s: use an official lnd "+
				"release or build with tags=\"%s\"", host,
			strings.Join(missing, ", "),
			strings.Join(MinLndVersion.BuildTags, " "))}
	}
	return nil
}

// oneLine keeps the first line of a message.
func oneLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}
