package common

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lightningnetwork/lnd/lnrpc/verrpc"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// fakeNode is a nodeInspector with canned answers.
type fakeNode struct {
	version *verrpc.Version
	network string
	config  map[string]string
	confErr error
}

func (f *fakeNode) Version() *verrpc.Version { return f.version }

func (f *fakeNode) Network(context.Context) (string, error) {
	return f.network, nil
}

func (f *fakeNode) Config(context.Context) (map[string]string, error) {
	return f.config, f.confErr
}

func TestCheckNode(t *testing.T) {
	t.Parallel()
	good := func() *fakeNode {
		return &fakeNode{
			version: &verrpc.Version{Version: "0.21.3-beta",
				AppMinor: 21, AppPatch: 3,
				BuildTags: []string{"routerrpc", "invoicesrpc",
					"signrpc"}},
			network: "regtest",
			config: map[string]string{"accept-keysend": "true",
				"keysend-hold-time": "30s"},
		}
	}
	receiver := ReceiverRequirements("regtest", false)
	tests := []struct {
		name     string
		mutate   func(*fakeNode)
		req      Requirements
		wantErr  error
		wantMsg  string
		wantWarn string
	}{
		{"all good", func(*fakeNode) {}, receiver, nil, "", ""},
		{"keysend off", func(f *fakeNode) {
			f.config["accept-keysend"] = "false"
		}, receiver, ErrKeysendOff, "add accept-keysend=true to lnd.conf", ""},
		{"no hold time", func(f *fakeNode) {
			f.config["keysend-hold-time"] = "0s"
		}, receiver, ErrNoHoldTime, "add keysend-hold-time=30s to " +
			"lnd.conf (or start lnd with --keysend-hold-time=30s) " +
			"and restart lnd, or pass --allownoholdtime", ""},
		{"no hold time, allowed", func(f *fakeNode) {
			f.config["keysend-hold-time"] = "0s"
		}, ReceiverRequirements("regtest", true), nil, "",
			"has no keysend-hold-time"},
		{"short hold time", func(f *fakeNode) {
			f.config["keysend-hold-time"] = "2s"
		}, receiver, nil, "", "keysend-hold-time=2s"},
		{"wrong network", func(f *fakeNode) { f.network = "mainnet" },
			receiver, ErrWrongNetwork, "runs on mainnet, not regtest: " +
				"set --network=mainnet", ""},
		{"too old", func(f *fakeNode) {
			f.version = &verrpc.Version{Version: "0.17.4-beta",
				AppMinor: 17, AppPatch: 4,
				BuildTags: []string{"routerrpc", "invoicesrpc"}}
		}, receiver, ErrLndTooOld, "is 0.17.4-beta; satstream needs " +
			"lnd 0.18.0 or newer", ""},
		{"no invoicesrpc", func(f *fakeNode) {
			f.version.BuildTags = []string{"routerrpc"}
		}, receiver, ErrLndTooOld, "built without invoicesrpc", ""},
		{"settings unreadable", func(f *fakeNode) {
			f.confErr = status.Error(codes.Unknown,
				"permission denied")
		}, receiver, nil, "", "uri:/lnrpc.Lightning/GetDebugInfo"},
		{"settings error", func(f *fakeNode) {
			f.confErr = errors.New("boom")
		}, receiver, nil, "read settings", ""},
		{"sender ignores keysend settings", func(f *fakeNode) {
			f.config["accept-keysend"] = "false"
			f.config["keysend-hold-time"] = "0s"
		}, Requirements{Network: "regtest"}, nil, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := good()
			tc.mutate(f)
			s, err := checkNode(context.Background(), f,
				"127.0.0.1:10009", tc.req)
			switch {
			case tc.wantErr != nil:
				require.ErrorIs(t, err, tc.wantErr)
				var ne *NodeError
				require.ErrorAs(t, err, &ne)
				require.Contains(t, err.Error(), tc.wantMsg)
				require.Contains(t, err.Error(), "127.0.0.1:10009")
				require.NotContains(t, err.Error(), "\n")
				return
			case tc.wantMsg != "":
				require.ErrorContains(t, err, tc.wantMsg)
				return
			}
			require.NoError(t, err)
			if tc.wantWarn == "" {
				require.Empty(t, s.Warnings)
				return
			}
			require.Len(t, s.Warnings, 1)
			require.Contains(t, s.Warnings[0], tc.wantWarn)
		})
	}
}

func TestCheckMacaroon(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cert := filepath.Join(dir, "tls.cert")
	require.NoError(t, os.WriteFile(cert, []byte("c"), 0o600))
	write := func(name string, mac []byte) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, mac, 0o600))
		return p
	}
	receiverPerms := []string{"info:read", "invoices:read",
		"invoices:write"}
	var receiverURIs []string
	for _, r := range ReceiverMacaroonRPCs() {
		receiverURIs = append(receiverURIs, "uri:"+r.Method)
	}

	tests := []struct {
		name    string
		mac     []byte
		rpcs    []RPCPermission
		wantErr string
	}{
		// Before, the receiver also demanded offchain:read,
		// onchain:read and peers:read for its settings check and
		// refused this macaroon.
		{"receiver least privilege", testMacaroon(t, receiverPerms...),
			ReceiverMacaroonRPCs(), ""},
		{"receiver uri-scoped", testMacaroon(t, receiverURIs...),
			ReceiverMacaroonRPCs(), ""},
		{"receiver uri-scoped without settle", testMacaroon(t,
			receiverURIs[:len(receiverURIs)-2]...),
			ReceiverMacaroonRPCs(), "lacks invoices:write (for " +
				"SettleInvoice, CancelInvoice)"},
		{"sender least privilege", testMacaroon(t, "info:read",
			"offchain:read", "offchain:write"), SenderMacaroonRPCs(), ""},
		{"admin-like", testMacaroon(t, append(receiverPerms,
			"offchain:write", "onchain:write")...),
			ReceiverMacaroonRPCs(), ""},
		{"invoice.macaroon-like lacks info and write", testMacaroon(t,
			"invoices:read", "address:read", "onchain:read"),
			ReceiverMacaroonRPCs(), "lacks info:read (for GetInfo, " +
				"GetVersion), invoices:write (for " +
				"SettleInvoice, CancelInvoice)"},
		{"sender without write", testMacaroon(t, "info:read",
			"offchain:read"), SenderMacaroonRPCs(),
			"lacks offchain:write (for SendPaymentV2): bake one with " +
				"`lncli bakemacaroon --save_to=satstream.macaroon " +
				"info:read offchain:read offchain:write`"},
		{"uri permissions count", testMacaroon(t, "info:read",
			"uri:/routerrpc.Router/SendPaymentV2",
			"uri:/routerrpc.Router/TrackPaymentV2"),
			SenderMacaroonRPCs(), ""},
		{"not a macaroon", []byte("junk"), SenderMacaroonRPCs(),
			"not a macaroon"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := DefaultLndConfig()
			c.TLSPath = cert
			c.MacaroonPath = write(strings.Repeat("m", i+1), tc.mac)
			err := c.CheckMacaroon(tc.rpcs)
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrMacaroonPermissions)
			require.ErrorContains(t, err, tc.wantErr)
			require.ErrorContains(t, err, c.MacaroonPath)
			require.NotContains(t, err.Error(), "\n")
		})
	}
}

func TestBakeCommand(t *testing.T) {
	t.Parallel()
	require.Equal(t, "lncli bakemacaroon --save_to=r.macaroon info:read "+
		"invoices:read invoices:write", BakeCommand("r.macaroon",
		ReceiverMacaroonRPCs()))
	require.Equal(t, "lncli bakemacaroon --save_to=r.macaroon "+
		"uri:/lnrpc.Lightning/GetInfo uri:/verrpc.Versioner/GetVersion "+
		"uri:/lnrpc.Lightning/SubscribeInvoices "+
		"uri:/lnrpc.Lightning/LookupInvoice "+
		"uri:/lnrpc.Lightning/ListInvoices "+
		"uri:/invoicesrpc.Invoices/SubscribeSingleInvoice "+
		"uri:/invoicesrpc.Invoices/SettleInvoice "+
		"uri:/invoicesrpc.Invoices/CancelInvoice",
		BakeURICommand("r.macaroon", ReceiverMacaroonRPCs()))
	require.Equal(t, "lncli bakemacaroon --save_to=s.macaroon info:read "+
		"offchain:read offchain:write",
		BakeCommand("s.macaroon", SenderMacaroonRPCs()))
}

// TestLndConfigOneWay: exactly one way of naming the node, and the
// conflict is named.
func TestLndConfigOneWay(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	require.NoError(t, os.WriteFile(file, nil, 0o600))

	c := DefaultLndConfig()
	c.TLSPath, c.MacaroonPath = file, file
	require.NoError(t, c.Validate())
	require.Equal(t, "localhost:10009", c.Addr())

	tests := []struct {
		name    string
		mutate  func(*LndConfig)
		wantErr string
	}{
		{"connect and polar", func(c *LndConfig) {
			c.Connect, c.Polar = "lndconnect://h:1", "1/alice"
		}, "--lnd.connect and --lnd.polar"},
		{"connect and macaroonpath", func(c *LndConfig) {
			c.Connect = "lndconnect://h:1"
			c.TLSPath, c.Host = "", ""
		}, "--lnd.connect and --lnd.macaroonpath"},
		{"polar and tlspath", func(c *LndConfig) { c.Polar = "1/alice" },
			"--lnd.polar and --lnd.tlspath"},
		{"nothing at all", func(c *LndConfig) {
			c.TLSPath, c.MacaroonPath = "", ""
		}, "--lnd.tlspath is required (or use --lnd.connect or " +
			"--lnd.polar)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultLndConfig()
			c.TLSPath, c.MacaroonPath = file, file
			tc.mutate(&c)
			err := c.Validate()
			require.ErrorIs(t, err, ErrLndConfig)
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}
