package common

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/lightninglabs/lndclient"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/lnrpc/verrpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Sentinel errors of the start-up check. Each comes wrapped in a
// *NodeError whose message is one line saying what to change.
var (
	// ErrKeysendOff: lnd refuses keysend payments.
	ErrKeysendOff = errors.New("lnd has accept-keysend off")

	// ErrNoHoldTime: lnd settles keysend payments itself, so the
	// receiver can't refuse one.
	ErrNoHoldTime = errors.New("lnd has no keysend-hold-time")

	// ErrWrongNetwork: lnd runs on another chain than --network says.
	ErrWrongNetwork = errors.New("lnd runs on another network")

	// ErrLndTooOld: lnd is older than MinLndVersion or lacks a
	// sub-server.
	ErrLndTooOld = errors.New("lnd is too old")
)

// NodeError is a problem with the lnd node or its credentials that only
// the operator can fix. Its message is one line naming the change to
// make; errors.Is matches the sentinel in Err.
type NodeError struct {
	Err error
	Msg string
}

// Error implements error.
func (e *NodeError) Error() string { return e.Msg }

// Unwrap lets errors.Is find the sentinel.
func (e *NodeError) Unwrap() error { return e.Err }

// Requirements say what a daemon needs from its lnd.
type Requirements struct {
	// Keysend: lnd must run with accept-keysend (the receiver).
	Keysend bool

	// HoldTime: lnd must run with keysend-hold-time, so the receiver
	// can refuse payments (the receiver, unless told to accept lnd
	// settling on its own).
	HoldTime bool

	// HoldTimeOptOut, when set, is appended to the hold-time message
	// as the way to run without it (e.g. a daemon flag).
	HoldTimeOptOut string

	// Network is the chain lnd must be on ("regtest", "mainnet", ...);
	// empty skips the check.
	Network string

	// RPCs the macaroon must allow; empty skips the check.
	RPCs []RPCPermission
}

// ReceiverRequirements are satstream-receiver's needs. allowNoHoldTime
// turns a missing keysend-hold-time into a warning.
func ReceiverRequirements(network string, allowNoHoldTime bool) Requirements {
	return Requirements{
		Keysend:        true,
		HoldTime:       !allowNoHoldTime,
		HoldTimeOptOut: "--allownoholdtime",
		Network:        network,
		RPCs:           ReceiverMacaroonRPCs(),
	}
}

// SenderRequirements are satstream-sender's needs: the network (filled
// by ConnectLnd from its network argument when empty) and a macaroon that
// can send and track payments. A payer's lnd needs no keysend settings.
func SenderRequirements() Requirements {
	return Requirements{RPCs: SenderMacaroonRPCs()}
}

// NodeSettings is what CheckNode learned about lnd.
type NodeSettings struct {
	// Version is lnd's version string.
	Version string

	// Network is the chain lnd runs on.
	Network string

	// ConfigKnown says whether lnd's settings could be read
	// (GetDebugInfo); the two fields below are valid only then.
	ConfigKnown     bool
	AcceptKeysend   bool
	KeysendHoldTime time.Duration

	// Warnings are problems that don't stop the daemon, one line each.
	Warnings []string
}

// minSafeHoldTime is below what a receiver under load can be trusted to
// decide in; shorter hold times are allowed with a warning.
const minSafeHoldTime = 10 * time.Second

// nodeInspector is the part of lnd CheckNode reads; lndInspector is the
// real one, unit tests use a fake.
type nodeInspector interface {
	// Version is what lnd reported on connecting.
	Version() *verrpc.Version
	// Network is the chain lnd runs on.
	Network(ctx context.Context) (string, error)
	// Config is lnd's effective configuration, flattened.
	Config(ctx context.Context) (map[string]string, error)
}

// lndInspector reads a connected lnd through lndclient.
type lndInspector struct {
	lnd *lndclient.LndServices
}

var _ nodeInspector = (*lndInspector)(nil)

// Version implements nodeInspector.
func (l *lndInspector) Version() *verrpc.Version { return l.lnd.Version }

// Network implements nodeInspector.
func (l *lndInspector) Network(ctx context.Context) (string, error) {
	info, err := l.lnd.Client.GetInfo(ctx)
	if err != nil {
		return "", err
	}
	return info.Network, nil
}

// Config implements nodeInspector with GetDebugInfo (lnd 0.18+), which
// returns lnd's effective config keyed by option name. Older lnd also
// returns its log file; 0.21 only does when asked.
func (l *lndInspector) Config(ctx context.Context) (map[string]string,
	error) {

	rctx, timeout, raw := l.lnd.Client.RawClientWithMacAuth(ctx)
	rctx, cancel := context.WithTimeout(rctx, timeout)
	defer cancel()
	resp, err := raw.GetDebugInfo(rctx, &lnrpc.GetDebugInfoRequest{})
	if err != nil {
		return nil, err
	}
	return resp.Config, nil
}

// CheckNode checks, right after connecting, that lnd can do what the
// daemon needs: version, network, macaroon permissions, accept-keysend
// and keysend-hold-time. The error, if any, is a *NodeError whose message
// is one line saying what to change; lesser problems come back as
// NodeSettings.Warnings.
func CheckNode(ctx context.Context, lnd *lndclient.LndServices,
	cfg LndConfig, req Requirements) (*NodeSettings, error) {

	if cfg.target.via == "" {
		if err := cfg.Validate(); err != nil {
			return nil, err
		}
	}
	if len(req.RPCs) > 0 {
		if err := cfg.CheckMacaroon(req.RPCs); err != nil {
			return nil, err
		}
	}
	return checkNode(ctx, &lndInspector{lnd: lnd}, cfg.Addr(), req)
}

// checkNode is CheckNode after the macaroon check.
func checkNode(ctx context.Context, lnd nodeInspector, host string,
	req Requirements) (*NodeSettings, error) {

	s := &NodeSettings{}
	if err := checkVersion(host, lnd.Version()); err != nil {
		return nil, err
	}
	s.Version = lnd.Version().Version

	if req.Network != "" {
		net, err := lnd.Network(ctx)
		if err != nil {
			return nil, fmt.Errorf("lnd at %s: get info: %w", host,
				err)
		}
		s.Network = net
		if net != req.Network {
			return nil, &NodeError{Err: ErrWrongNetwork, Msg: fmt.Sprintf(
				"lnd at %s runs on %s, not %s: set --network=%s "+
					"or connect to a %s node", host, net,
				req.Network, net, req.Network)}
		}
	}

	if !req.Keysend && !req.HoldTime && req.HoldTimeOptOut == "" {
		return s, nil
	}
	conf, err := lnd.Config(ctx)
	switch {
	case err != nil && isPermissionDenied(err):
		s.Warnings = append(s.Warnings, fmt.Sprintf("cannot check "+
			"lnd's accept-keysend and keysend-hold-time at %s: the "+
			"macaroon doesn't allow GetDebugInfo (%s, or "+
			"uri:%s); running anyway, and lnd settling keysend "+
			"itself is noticed when it happens; add either to the "+
			"macaroon to have the settings checked at start-up",
			host, permString(SettingsRPCs), SettingsRPCs[0].Method))
		return s, nil
	case err != nil:
		return nil, fmt.Errorf("lnd at %s: read settings "+
			"(GetDebugInfo): %w", host, err)
	}

	keysend, errK := strconv.ParseBool(conf["accept-keysend"])
	hold, errH := time.ParseDuration(conf["keysend-hold-time"])
	if errK != nil || errH != nil {
		s.Warnings = append(s.Warnings, fmt.Sprintf("cannot check "+
			"lnd's accept-keysend and keysend-hold-time at %s: "+
			"GetDebugInfo doesn't list them", host))
		return s, nil
	}
	s.ConfigKnown, s.AcceptKeysend, s.KeysendHoldTime = true, keysend, hold

	if req.Keysend && !keysend {
		return nil, &NodeError{Err: ErrKeysendOff, Msg: fmt.Sprintf(
			"lnd at %s has accept-keysend off: add "+
				"accept-keysend=true to lnd.conf (or start lnd "+
				"with --accept-keysend) and restart lnd", host)}
	}
	switch {
	case hold == 0:
		msg := fmt.Sprintf("lnd at %s has no keysend-hold-time, so "+
			"it settles every keysend itself and payments that "+
			"can't be credited can't be refused: add "+
			"keysend-hold-time=30s to lnd.conf (or start lnd with "+
			"--keysend-hold-time=30s) and restart lnd", host)
		if req.HoldTime {
			if req.HoldTimeOptOut != "" {
				msg += ", or pass " + req.HoldTimeOptOut +
					" to run without refusals"
			}
			return nil, &NodeError{Err: ErrNoHoldTime, Msg: msg}
		}
		s.Warnings = append(s.Warnings, msg)
	case hold < minSafeHoldTime:
		s.Warnings = append(s.Warnings, fmt.Sprintf("lnd at %s has "+
			"keysend-hold-time=%v: a payment not decided in that "+
			"time is refused by lnd itself; 30s is the usual "+
			"setting", host, hold))
	}
	return s, nil
}

// isPermissionDenied recognises lnd's answer to a macaroon without the
// method's permissions.
func isPermissionDenied(err error) bool {
	if st, ok := status.FromError(err); ok &&
		st.Code() == codes.PermissionDenied {

		return true
	}
	return strings.Contains(err.Error(), "permission denied")
}

// permString lists the permissions the RPCs need, space separated.
func permString(rpcs []RPCPermission) string {
	var parts []string
	for _, p := range PermissionList(rpcs) {
		parts = append(parts, p.String())
	}
	return strings.Join(parts, " ")
}
