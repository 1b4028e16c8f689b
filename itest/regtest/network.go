// Package regtest runs a local Lightning test network of the same shape
// users build in Polar: one btcd on regtest and several lnd nodes on
// 127.0.0.1, built from pinned versions by package bins. Integration tests
// and the demo use it; nothing in it mocks lnd.
package regtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/btcsuite/btcd/btcutil"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/txscript"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/satstream/satstream/itest/bins"
	"golang.org/x/sync/errgroup"
)

// initialBlocks is mined before any lnd starts: lnd waits for a backend
// whose tip is recent, and the coinbases of the first blocks fund wallets.
const initialBlocks = coinbaseMaturity + 20

// Config says where the network lives and which binaries it runs.
type Config struct {
	// Dir is the base directory for all node data and logs.
	Dir string

	// Bins are the lnd and btcd binaries to run.
	Bins *bins.Paths
}

// Network is btcd plus a set of lnd nodes. Close tears everything down.
type Network struct {
	cfg  Config
	Btcd *Btcd

	mu    sync.Mutex
	nodes []*Node
}

// New starts btcd and mines enough blocks for wallets to be funded.
func New(ctx context.Context, cfg Config) (*Network, error) {
	if cfg.Bins == nil {
		return nil, errors.New("regtest: Config.Bins is required")
	}
	btcd, err := newBtcd(filepath.Join(cfg.Dir, "btcd"), cfg.Bins.Btcd)
	if err != nil {
		return nil, err
	}
	n := &Network{cfg: cfg, Btcd: btcd}
	if err := btcd.start(ctx); err != nil {
		_ = n.Close()
		return nil, err
	}
	if _, err := btcd.Mine(initialBlocks); err != nil {
		_ = n.Close()
		return nil, err
	}
	return n, nil
}

// AddNodes starts lnd nodes in parallel and returns them in order.
func (n *Network) AddNodes(ctx context.Context, cfgs ...NodeConfig) ([]*Node,
	error) {

	nodes := make([]*Node, len(cfgs))
	for i, c := range cfgs {
		node, err := newNode(n.cfg.Dir, c, n.cfg.Bins.Lnd, n.Btcd)
		if err != nil {
			return nil, err
		}
		nodes[i] = node
		n.mu.Lock()
		n.nodes = append(n.nodes, node)
		n.mu.Unlock()
	}

	g, gctx := errgroup.WithContext(ctx)
	for _, node := range nodes {
		g.Go(func() error { return node.Start(gctx) })
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return nodes, nil
}

// Nodes returns every node added so far.
func (n *Network) Nodes() []*Node {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]*Node(nil), n.nodes...)
}

// Mine mines blocks and waits until every running node has seen them.
func (n *Network) Mine(ctx context.Context, blocks uint32) (
	[]*chainhash.Hash, error) {

	hashes, err := n.Btcd.Mine(blocks)
	if err != nil {
		return nil, err
	}
	return hashes, n.WaitSynced(ctx)
}

// WaitSynced waits until every running node's tip is the miner's tip.
func (n *Network) WaitSynced(ctx context.Context) error {
	height := uint32(n.Btcd.Height())
	for _, node := range n.Nodes() {
		if !node.Running() {
			continue
		}
		err := poll(ctx, 60*time.Second, func() error {
			info, err := node.RPC().GetInfo(ctx, &lnrpc.GetInfoRequest{})
			if err != nil {
				return err
			}
			if info.BlockHeight < height || !info.SyncedToChain {
				return fmt.Errorf("%s at height %d (synced=%v), "+
					"want %d", node.Name, info.BlockHeight,
					info.SyncedToChain, height)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// Fund sends amt on-chain to each node's wallet, confirms it, and waits
// until each wallet shows the confirmed balance.
func (n *Network) Fund(ctx context.Context, amt btcutil.Amount,
	nodes ...*Node) error {

	for _, node := range nodes {
		resp, err := node.RPC().NewAddress(ctx, &lnrpc.NewAddressRequest{
			Type: lnrpc.AddressType_WITNESS_PUBKEY_HASH,
		})
		if err != nil {
			return fmt.Errorf("new address for %s: %w", node.Name, err)
		}
		addr, err := btcutil.DecodeAddress(resp.Address,
			node.Services().ChainParams)
		if err != nil {
			return err
		}
		script, err := txscript.PayToAddrScript(addr)
		if err != nil {
			return err
		}
		if _, err := n.Btcd.SendTo(script, amt); err != nil {
			return fmt.Errorf("fund %s: %w", node.Name, err)
		}
	}
	if _, err := n.Mine(ctx, 1); err != nil {
		return err
	}
	for _, node := range nodes {
		err := poll(ctx, 60*time.Second, func() error {
			bal, err := node.RPC().WalletBalance(ctx,
				&lnrpc.WalletBalanceRequest{})
			if err != nil {
				return err
			}
			if btcutil.Amount(bal.ConfirmedBalance) < amt {
				return fmt.Errorf("%s confirmed balance %d < %d",
					node.Name, bal.ConfirmedBalance, amt)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// ChannelSpec is one channel to open: From funds Capacity and pushes Push
// to To.
type ChannelSpec struct {
	From, To *Node
	Capacity btcutil.Amount
	Push     btcutil.Amount
}

// OpenChannels opens all channels, mines the six blocks a channel needs to
// be announced, and waits until both ends see each channel active and every
// node's graph has both directions of it, so routes exist when it returns.
func (n *Network) OpenChannels(ctx context.Context, specs ...ChannelSpec) (
	[]*lnrpc.ChannelPoint, error) {

	points := make([]*lnrpc.ChannelPoint, len(specs))
	for i, s := range specs {
		if err := s.From.Connect(ctx, s.To); err != nil {
			return nil, err
		}
		var cp *lnrpc.ChannelPoint
		err := poll(ctx, 30*time.Second, func() error {
			var err error
			cp, err = s.From.RPC().OpenChannelSync(ctx,
				&lnrpc.OpenChannelRequest{
					NodePubkey:         s.To.PubKey[:],
					LocalFundingAmount: int64(s.Capacity),
					PushSat:            int64(s.Push),
					// Several channels from one node in
					// one round spend each other's change.
					SpendUnconfirmed: true,
				})
			// lnd refuses while the peer is still starting
			// up; retrying a refused open is safe.
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("open channel %s -> %s: %w",
				s.From.Name, s.To.Name, err)
		}
		points[i] = cp
	}

	// Wait for the funding transactions to reach the mempool, then mine
	// past the announcement depth.
	err := poll(ctx, 30*time.Second, func() error {
		mempool, err := n.Btcd.client.GetRawMempool()
		if err != nil {
			return err
		}
		if len(mempool) < len(specs) {
			return fmt.Errorf("%d of %d funding txs in mempool",
				len(mempool), len(specs))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if _, err := n.Mine(ctx, 6); err != nil {
		return nil, err
	}

	for i, s := range specs {
		for _, node := range []*Node{s.From, s.To} {
			if err := waitChannelActive(ctx, node, points[i]); err != nil {
				return nil, err
			}
		}
	}
	for _, node := range n.Nodes() {
		if !node.Running() {
			continue
		}
		for _, cp := range points {
			if err := waitEdgeKnown(ctx, node, cp); err != nil {
				return nil, err
			}
		}
	}
	return points, nil
}

func waitChannelActive(ctx context.Context, node *Node,
	cp *lnrpc.ChannelPoint) error {

	want := channelPointString(cp)
	return poll(ctx, 60*time.Second, func() error {
		resp, err := node.RPC().ListChannels(ctx,
			&lnrpc.ListChannelsRequest{ActiveOnly: true})
		if err != nil {
			return err
		}
		for _, c := range resp.Channels {
			if c.ChannelPoint == want {
				return nil
			}
		}
		return fmt.Errorf("channel %s not active on %s", want, node.Name)
	})
}

// waitEdgeKnown waits until node's graph has the channel with both
// directions' policies, which is what path finding needs.
func waitEdgeKnown(ctx context.Context, node *Node,
	cp *lnrpc.ChannelPoint) error {

	want := channelPointString(cp)
	return poll(ctx, 60*time.Second, func() error {
		graph, err := node.RPC().DescribeGraph(ctx,
			&lnrpc.ChannelGraphRequest{})
		if err != nil {
			return err
		}
		for _, e := range graph.Edges {
			if e.ChanPoint == want && e.Node1Policy != nil &&
				e.Node2Policy != nil {
				return nil
			}
		}
		return fmt.Errorf("%s does not know channel %s with both "+
			"policies yet", node.Name, want)
	})
}

// WaitForRoute waits until from can find a route to to for amt.
func (n *Network) WaitForRoute(ctx context.Context, from, to *Node,
	amt btcutil.Amount) error {

	return poll(ctx, 60*time.Second, func() error {
		_, err := from.RPC().QueryRoutes(ctx, &lnrpc.QueryRoutesRequest{
			PubKey: to.PubKeyHex(),
			Amt:    int64(amt),
		})
		if err != nil {
			return fmt.Errorf("route %s -> %s: %w", from.Name, to.Name,
				err)
		}
		return nil
	})
}

// Close stops every node and btcd, killing whatever does not stop in
// time. Only processes this network started are signalled, by PID.
func (n *Network) Close() error {
	var errs []error
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, node := range n.Nodes() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := node.Stop(); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if n.Btcd != nil {
		if err := n.Btcd.stop(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// LogFiles lists every log file of the network, for a failed test to print
// or keep.
func (n *Network) LogFiles() []string {
	files := []string{filepath.Join(n.Btcd.dir, "btcd.log")}
	for _, node := range n.Nodes() {
		files = append(files, node.LogPath())
	}
	var out []string
	for _, f := range files {
		if _, err := os.Stat(f); err == nil {
			out = append(out, f)
		}
	}
	return out
}

func channelPointString(cp *lnrpc.ChannelPoint) string {
	var hash chainhash.Hash
	switch {
	case cp.GetFundingTxidBytes() != nil:
		copy(hash[:], cp.GetFundingTxidBytes())
	default:
		h, err := chainhash.NewHashFromStr(cp.GetFundingTxidStr())
		if err == nil {
			hash = *h
		}
	}
	return fmt.Sprintf("%s:%d", hash, cp.OutputIndex)
}

// Line builds the usual shape: every node but the last gets walletFunds
// on-chain and opens a channel of capacity to the next one, pushing half so
// payments can flow both ways; it returns once the first node has a route
// to every other one.
func (n *Network) Line(ctx context.Context, walletFunds,
	capacity btcutil.Amount, nodes ...*Node) error {

	if len(nodes) < 2 {
		return errors.New("regtest: a line needs at least two nodes")
	}
	if err := n.Fund(ctx, walletFunds, nodes[:len(nodes)-1]...); err != nil {
		return err
	}
	specs := make([]ChannelSpec, 0, len(nodes)-1)
	for i := 0; i+1 < len(nodes); i++ {
		specs = append(specs, ChannelSpec{
			From: nodes[i], To: nodes[i+1],
			Capacity: capacity, Push: capacity / 2,
		})
	}
	if _, err := n.OpenChannels(ctx, specs...); err != nil {
		return err
	}
	for _, to := range nodes[1:] {
		if err := n.WaitForRoute(ctx, nodes[0], to, 1000); err != nil {
			return err
		}
	}
	return nil
}
