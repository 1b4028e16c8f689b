package common

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/btcsuite/btclog/v2"
	"github.com/cenkalti/backoff/v4"
	"github.com/lightninglabs/lndclient"
	"github.com/lightningnetwork/lnd/lnrpc/verrpc"
)

// MinLndVersion is the oldest lnd satstream supports. Keysend hold mode
// (--keysend-hold-time) and the invoice and router RPCs we use are all in
// 0.18; lndclient's own default check asks for 0.21 and sub-servers we don't
// need (signrpc, walletrpc, chainrpc), so we pass this instead. routerrpc is
// needed to send and track payments, invoicesrpc to settle and cancel.
var MinLndVersion = &verrpc.Version{
	AppMajor:  0,
	AppMinor:  18,
	AppPatch:  0,
	BuildTags: []string{"routerrpc", "invoicesrpc"},
}

// ErrLndConfig reports a connection setting that can't work, before any
// attempt to connect.
var ErrLndConfig = errors.New("invalid lnd connection settings")

// LndConfig is the "lnd." option group of both daemons.
type LndConfig struct {
	Host         string `long:"host" description:"lnd's gRPC host:port"`
	TLSPath      string `long:"tlspath" description:"Path to lnd's tls.cert"`
	MacaroonPath string `long:"macaroonpath" description:"Path to a macaroon with the permissions listed in docs/operators.md"`

	// RPCTimeout bounds each unary call to lnd.
	RPCTimeout time.Duration `long:"rpctimeout" description:"Timeout of each call to lnd"`
}

// DefaultLndConfig points at a local lnd with its usual ports.
func DefaultLndConfig() LndConfig {
	return LndConfig{
		Host:       "localhost:10009",
		RPCTimeout: 30 * time.Second,
	}
}

// Validate checks the settings without connecting, naming the bad option.
func (c *LndConfig) Validate() error {
	if c.Host == "" {
		return fmt.Errorf("%w: --lnd.host is empty", ErrLndConfig)
	}
	for opt, path := range map[string]string{
		"--lnd.tlspath":      c.TLSPath,
		"--lnd.macaroonpath": c.MacaroonPath,
	} {
		if path == "" {
			return fmt.Errorf("%w: %s is required", ErrLndConfig, opt)
		}
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrLndConfig, opt, err)
		}
	}
	if c.RPCTimeout <= 0 {
		return fmt.Errorf("%w: --lnd.rpctimeout must be positive, got %v",
			ErrLndConfig, c.RPCTimeout)
	}
	return nil
}

// ConnectLnd connects to lnd, retrying with exponential backoff and jitter
// while lnd is unreachable or still starting, until ctx ends. Version and
// permission problems are not retried: they need the operator.
func ConnectLnd(ctx context.Context, cfg LndConfig, network string,
	log btclog.Logger) (*lndclient.GrpcLndServices, error) {

	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = 500 * time.Millisecond
	bo.MaxInterval = 30 * time.Second
	bo.MaxElapsedTime = 0

	var services *lndclient.GrpcLndServices
	op := func() error {
		s, err := lndclient.NewLndServices(&lndclient.LndServicesConfig{
			LndAddress:         cfg.Host,
			Network:            lndclient.Network(network),
			CustomMacaroonPath: cfg.MacaroonPath,
			TLSPath:            cfg.TLSPath,
			CheckVersion:       MinLndVersion,
			BlockUntilUnlocked: true,
			CallerCtx:          ctx,
			RPCTimeout:         cfg.RPCTimeout,
		})
		if err != nil {
			if permanentLndError(err) {
				return backoff.Permanent(err)
			}
			log.Warnf("lnd at %s not reachable yet: %v", cfg.Host, err)
			return err
		}
		services = s
		return nil
	}
	err := backoff.Retry(op, backoff.WithContext(bo, ctx))
	if err != nil {
		return nil, fmt.Errorf("connect to lnd at %s: %w", cfg.Host, err)
	}
	log.Infof("connected to lnd %s (%s, %v) at %s", services.NodeAlias,
		services.NodePubkey, services.Version.Version, cfg.Host)
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
		"no such file",
	} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}
