package regtest

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/lightninglabs/lndclient"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/lnrpc/verrpc"
	"github.com/lightningnetwork/lnd/routing/route"
)

// NodeConfig says how to run one lnd node.
type NodeConfig struct {
	// Name is the node's alias and directory name.
	Name string

	// NoAcceptKeysend leaves out --accept-keysend, to test what a payer
	// sees when the receiver refuses keysend.
	NoAcceptKeysend bool

	// ExtraArgs are appended last, so they can override the defaults,
	// e.g. "--keysend-hold-time=30s".
	ExtraArgs []string
}

// Node is one running (or stopped) lnd on the test network.
type Node struct {
	Name string

	// Dir is the node's --lnddir.
	Dir string

	// RPCAddr, RESTAddr and P2PAddr are the node's loopback listeners.
	RPCAddr  string
	RESTAddr string
	P2PAddr  string

	// TLSCertPath and AdminMacPath are what a daemon needs to connect.
	TLSCertPath  string
	AdminMacPath string
	MacaroonDir  string

	// PubKey is the node's identity key.
	PubKey route.Vertex

	cfg  NodeConfig
	bin  string
	btcd *Btcd

	mu       sync.Mutex
	proc     *process
	services *lndclient.GrpcLndServices
	rpc      lnrpc.LightningClient
	rpcClose func()
}

// LogPath is where the node's own log file is written.
func (n *Node) LogPath() string {
	return filepath.Join(n.Dir, "logs", "bitcoin", "regtest", "lnd.log")
}

// Services is the node's lndclient connection, as a daemon would have it.
func (n *Node) Services() *lndclient.LndServices {
	n.mu.Lock()
	defer n.mu.Unlock()
	return &n.services.LndServices
}

// RPC is a raw lnrpc client for the harness's own chores (opening channels,
// querying routes) and for assertions on lnd's own view.
func (n *Node) RPC() lnrpc.LightningClient {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.rpc
}

// Running reports whether the node's process is alive.
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.proc != nil && n.proc.running()
}

func newNode(base string, cfg NodeConfig, bin string, btcd *Btcd) (*Node,
	error) {

	dir := filepath.Join(base, cfg.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var ports [3]int
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		ports[i] = p
	}
	macDir := filepath.Join(dir, "data", "chain", "bitcoin", "regtest")
	return &Node{
		Name:         cfg.Name,
		Dir:          dir,
		RPCAddr:      loopback(ports[0]),
		RESTAddr:     loopback(ports[1]),
		P2PAddr:      loopback(ports[2]),
		TLSCertPath:  filepath.Join(dir, "tls.cert"),
		AdminMacPath: filepath.Join(macDir, "admin.macaroon"),
		MacaroonDir:  macDir,
		cfg:          cfg,
		bin:          bin,
		btcd:         btcd,
	}, nil
}

// args builds lnd's command line: regtest on our btcd, loopback listeners,
// no seed backup, and the fast settings lnd's own itests use.
func (n *Node) args() []string {
	args := []string{
		"--lnddir=" + n.Dir,
		"--alias=" + n.Name,
		"--bitcoin.regtest",
		"--bitcoin.node=btcd",
		"--btcd.rpchost=" + n.btcd.rpcAddr,
		"--btcd.rpcuser=" + btcdUser,
		"--btcd.rpcpass=" + btcdPass,
		"--btcd.rpccert=" + n.btcd.certPath,
		"--rpclisten=" + n.RPCAddr,
		"--restlisten=" + n.RESTAddr,
		"--listen=" + n.P2PAddr,
		"--externalip=" + n.P2PAddr,
		"--noseedbackup",
		"--nobootstrap",
		"--debuglevel=debug",
		"--bitcoin.defaultchanconfs=1",
		"--bitcoin.defaultremotedelay=4",
		"--trickledelay=50",
		"--db.batch-commit-interval=10ms",
		"--gossip.sub-batch-delay=5ms",
		"--caches.rpc-graph-cache-duration=100ms",
		"--keep-failed-payment-attempts",
		"--dev.unsafedisconnect",
		// After a failed hop, mission control avoids it for about an
		// hour by default; tests that take a node offline and expect
		// recovery within seconds need it to forgive quickly.
		"--routerrpc.apriori.penaltyhalflife=5s",
	}
	if !n.cfg.NoAcceptKeysend {
		args = append(args, "--accept-keysend")
	}
	return append(args, n.cfg.ExtraArgs...)
}

// SetExtraArgs replaces the extra arguments used the next time the node
// starts (for example to turn --keysend-hold-time on for a restart).
func (n *Node) SetExtraArgs(args ...string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cfg.ExtraArgs = args
}

// SetAcceptKeysend changes --accept-keysend for the next start.
func (n *Node) SetAcceptKeysend(on bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cfg.NoAcceptKeysend = !on
}

// Start runs lnd and waits until its wallet is unlocked, it is synced to
// the chain, and both the lndclient and raw RPC connections work.
func (n *Node) Start(ctx context.Context) error {
	n.mu.Lock()
	if n.proc != nil && n.proc.running() {
		n.mu.Unlock()
		return fmt.Errorf("node %s is already running", n.Name)
	}
	proc, err := startProcess("lnd "+n.Name, n.bin, n.args(),
		filepath.Join(n.Dir, "stdout.log"))
	if err != nil {
		n.mu.Unlock()
		return err
	}
	n.proc = proc
	n.mu.Unlock()

	exited := func() error {
		if !proc.running() {
			return fmt.Errorf("%w: lnd %s exited: %v (see %s)",
				errFatal, n.Name, proc.err,
				filepath.Join(n.Dir, "stdout.log"))
		}
		return nil
	}

	// The admin macaroon is the last file lnd writes before serving.
	err = poll(ctx, 60*time.Second, func() error {
		if err := exited(); err != nil {
			return err
		}
		_, err := os.Stat(n.AdminMacPath)
		return err
	})
	if err != nil {
		return fmt.Errorf("lnd %s: wait for macaroon: %w", n.Name, err)
	}

	var services *lndclient.GrpcLndServices
	err = poll(ctx, 60*time.Second, func() error {
		if err := exited(); err != nil {
			return err
		}
		connCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		s, err := lndclient.NewLndServices(&lndclient.LndServicesConfig{
			LndAddress:            n.RPCAddr,
			Network:               lndclient.NetworkRegtest,
			CustomMacaroonPath:    n.AdminMacPath,
			TLSPath:               n.TLSCertPath,
			CheckVersion:          harnessVersion,
			BlockUntilUnlocked:    true,
			BlockUntilChainSynced: true,
			CallerCtx:             connCtx,
		})
		if err != nil {
			return err
		}
		services = s
		return nil
	})
	if err != nil {
		return fmt.Errorf("lnd %s: connect lndclient: %w", n.Name, err)
	}

	rpc, closeRPC, err := n.dialRPC()
	if err != nil {
		services.Close()
		return err
	}

	n.mu.Lock()
	n.services = services
	n.rpc = rpc
	n.rpcClose = closeRPC
	n.PubKey = services.NodePubkey
	n.mu.Unlock()
	return nil
}

// harnessVersion is what the harness asks of the lnd it built: the pinned
// release with the sub-servers lndclient's services use.
var harnessVersion = &verrpc.Version{
	AppMajor:  0,
	AppMinor:  21,
	BuildTags: []string{"signrpc", "walletrpc", "chainrpc", "invoicesrpc", "routerrpc"},
}

func (n *Node) dialRPC() (lnrpc.LightningClient, func(), error) {
	conn, err := lndclient.NewBasicConn(
		n.RPCAddr, n.TLSCertPath, n.MacaroonDir, "regtest",
		lndclient.MacFilename("admin.macaroon"),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("lnd %s: dial rpc: %w", n.Name, err)
	}
	return lnrpc.NewLightningClient(conn), func() { conn.Close() }, nil
}

func (n *Node) closeClients() {
	if n.services != nil {
		n.services.Close()
		n.services = nil
	}
	if n.rpcClose != nil {
		n.rpcClose()
		n.rpcClose = nil
	}
}

// Stop shuts lnd down gracefully (SIGTERM), killing it after 30 seconds.
func (n *Node) Stop() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.closeClients()
	if n.proc == nil {
		return nil
	}
	return n.proc.stop(30 * time.Second)
}

// Kill stops lnd with SIGKILL, as a crash or power cut would.
func (n *Node) Kill() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.closeClients()
	if n.proc == nil {
		return nil
	}
	return n.proc.kill()
}

// Restart stops the node gracefully and starts it again.
func (n *Node) Restart(ctx context.Context) error {
	if err := n.Stop(); err != nil {
		return err
	}
	return n.Start(ctx)
}

// Connect makes a P2P connection to peer (no error if already connected).
func (n *Node) Connect(ctx context.Context, peer *Node) error {
	_, err := n.RPC().ConnectPeer(ctx, &lnrpc.ConnectPeerRequest{
		Addr: &lnrpc.LightningAddress{
			Pubkey: peer.PubKey.String(),
			Host:   peer.P2PAddr,
		},
		Perm:    false,
		Timeout: 10,
	})
	if err != nil && !isAlreadyConnected(err) {
		return fmt.Errorf("connect %s -> %s: %w", n.Name, peer.Name, err)
	}
	return poll(ctx, 30*time.Second, func() error {
		return n.hasPeer(ctx, peer)
	})
}

// Disconnect drops the P2P connection to peer. Channels stay open, and lnd
// reconnects channel peers by itself within moments, so this is a brief
// cut; for a lasting outage, Stop the node.
func (n *Node) Disconnect(ctx context.Context, peer *Node) error {
	_, err := n.RPC().DisconnectPeer(ctx, &lnrpc.DisconnectPeerRequest{
		PubKey: peer.PubKey.String(),
	})
	if err != nil {
		return fmt.Errorf("disconnect %s -> %s: %w", n.Name, peer.Name,
			err)
	}
	return nil
}

func (n *Node) hasPeer(ctx context.Context, peer *Node) error {
	resp, err := n.RPC().ListPeers(ctx, &lnrpc.ListPeersRequest{})
	if err != nil {
		return err
	}
	for _, p := range resp.Peers {
		if p.PubKey == peer.PubKey.String() {
			return nil
		}
	}
	return fmt.Errorf("%s is not a peer of %s yet", peer.Name, n.Name)
}

// PubKeyHex is the node's identity key in hex, as lncli wants it.
func (n *Node) PubKeyHex() string {
	return hex.EncodeToString(n.PubKey[:])
}

func isAlreadyConnected(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "already connected") ||
		strings.Contains(err.Error(), "already exists"))
}
