package regtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcutil"
	"github.com/btcsuite/btcd/chaincfg"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/rpcclient"
	"github.com/btcsuite/btcd/txscript"
	"github.com/btcsuite/btcd/wire"
)

const (
	btcdUser = "satstream"
	btcdPass = "satstream"

	// coinbaseMaturity is how deep a coinbase must be before it can be
	// spent.
	coinbaseMaturity = 100

	// fundingFee is the flat fee of our funding transactions (one input,
	// two outputs, ~140 vbytes), well above btcd's relay minimum.
	fundingFee = btcutil.Amount(5000)
)

// utxo is an output the miner key can spend.
type utxo struct {
	op       wire.OutPoint
	value    btcutil.Amount
	coinbase bool
	height   int64
}

// Btcd is the chain backend: a btcd on regtest with RPC on loopback, no P2P
// listener, and a throw-away key that receives every block reward. btcd has
// no wallet, so the harness spends the key's outputs itself.
type Btcd struct {
	dir      string
	bin      string
	rpcAddr  string
	certPath string
	args     []string

	proc   *process
	client *rpcclient.Client

	key    *btcec.PrivateKey
	script []byte

	mu     sync.Mutex
	utxos  []utxo
	height int64
}

func newBtcd(dir, bin string) (*Btcd, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	key, err := btcec.NewPrivateKey()
	if err != nil {
		return nil, err
	}
	addr, err := btcutil.NewAddressWitnessPubKeyHash(
		btcutil.Hash160(key.PubKey().SerializeCompressed()),
		&chaincfg.RegressionNetParams,
	)
	if err != nil {
		return nil, err
	}
	script, err := txscript.PayToAddrScript(addr)
	if err != nil {
		return nil, err
	}

	b := &Btcd{
		dir:      dir,
		bin:      bin,
		rpcAddr:  loopback(port),
		certPath: filepath.Join(dir, "rpc.cert"),
		key:      key,
		script:   script,
	}
	b.args = []string{
		"--regtest",
		"--datadir=" + filepath.Join(dir, "data"),
		"--logdir=" + filepath.Join(dir, "logs"),
		"--rpclisten=" + b.rpcAddr,
		"--rpcuser=" + btcdUser,
		"--rpcpass=" + btcdPass,
		"--rpccert=" + b.certPath,
		"--rpckey=" + filepath.Join(dir, "rpc.key"),
		"--rpcmaxwebsockets=200",
		"--miningaddr=" + addr.EncodeAddress(),
		"--nolisten",
		"--txindex",
		"--nobanning",
		"--nostalldetect",
		"--debuglevel=info",
	}
	return b, nil
}

// start runs btcd and waits until its RPC answers.
func (b *Btcd) start(ctx context.Context) error {
	proc, err := startProcess("btcd", b.bin, b.args,
		filepath.Join(b.dir, "btcd.log"))
	if err != nil {
		return err
	}
	b.proc = proc

	err = poll(ctx, 30*time.Second, func() error {
		if !proc.running() {
			return fmt.Errorf("%w: btcd exited: %v (see %s)",
				errFatal, proc.err, filepath.Join(b.dir, "btcd.log"))
		}
		cert, err := os.ReadFile(b.certPath)
		if err != nil {
			return err
		}
		client, err := rpcclient.New(&rpcclient.ConnConfig{
			Host:         b.rpcAddr,
			User:         btcdUser,
			Pass:         btcdPass,
			HTTPPostMode: true,
			Certificates: cert,
		}, nil)
		if err != nil {
			return err
		}
		if _, err := client.GetBlockCount(); err != nil {
			client.Shutdown()
			return err
		}
		b.client = client
		return nil
	})
	if err != nil {
		return fmt.Errorf("btcd RPC on %s: %w", b.rpcAddr, err)
	}
	return nil
}

// Mine generates n blocks, remembering their coinbases as spendable once
// mature, and returns the block hashes.
func (b *Btcd) Mine(n uint32) ([]*chainhash.Hash, error) {
	b.mu.Lock()
	defer b.mu.Unlock()

	hashes, err := b.client.Generate(n)
	if err != nil {
		return nil, fmt.Errorf("generate %d blocks: %w", n, err)
	}
	for _, h := range hashes {
		block, err := b.client.GetBlock(h)
		if err != nil {
			return nil, fmt.Errorf("get block %v: %w", h, err)
		}
		b.height++
		for _, tx := range block.Transactions {
			for i, out := range tx.TxOut {
				if !bytesEqual(out.PkScript, b.script) {
					continue
				}
				b.utxos = append(b.utxos, utxo{
					op: wire.OutPoint{
						Hash:  tx.TxHash(),
						Index: uint32(i),
					},
					value:    btcutil.Amount(out.Value),
					coinbase: tx == block.Transactions[0],
					height:   b.height,
				})
			}
		}
	}
	return hashes, nil
}

// Height is the height of the chain tip as seen by the harness.
func (b *Btcd) Height() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.height
}

// SendTo pays amt to pkScript from the miner key's outputs and returns the
// transaction id. The transaction is in the mempool; mine a block to
// confirm it.
func (b *Btcd) SendTo(pkScript []byte, amt btcutil.Amount) (*chainhash.Hash,
	error) {

	b.mu.Lock()
	defer b.mu.Unlock()

	idx := -1
	for i, u := range b.utxos {
		mature := !u.coinbase || b.height-u.height+1 > coinbaseMaturity
		if mature && u.value >= amt+fundingFee {
			idx = i
			break
		}
	}
	if idx < 0 {
		return nil, fmt.Errorf("miner has no mature output worth %v; "+
			"mine more blocks", amt+fundingFee)
	}
	in := b.utxos[idx]
	b.utxos = append(b.utxos[:idx], b.utxos[idx+1:]...)

	tx := wire.NewMsgTx(2)
	tx.AddTxIn(wire.NewTxIn(&in.op, nil, nil))
	tx.AddTxOut(wire.NewTxOut(int64(amt), pkScript))
	change := in.value - amt - fundingFee
	if change > 0 {
		tx.AddTxOut(wire.NewTxOut(int64(change), b.script))
	}

	fetcher := txscript.NewCannedPrevOutputFetcher(b.script, int64(in.value))
	witness, err := txscript.WitnessSignature(
		tx, txscript.NewTxSigHashes(tx, fetcher), 0, int64(in.value),
		b.script, txscript.SigHashAll, b.key, true,
	)
	if err != nil {
		return nil, fmt.Errorf("sign funding tx: %w", err)
	}
	tx.TxIn[0].Witness = witness

	txid, err := b.client.SendRawTransaction(tx, true)
	if err != nil {
		b.utxos = append(b.utxos, in)
		return nil, fmt.Errorf("broadcast funding tx: %w", err)
	}
	if change > 0 {
		// The change is spendable once mined; tests mine right after
		// funding, and height 0 keeps it out of the coinbase rule.
		b.utxos = append(b.utxos, utxo{
			op:    wire.OutPoint{Hash: *txid, Index: 1},
			value: change,
		})
	}
	return txid, nil
}

func (b *Btcd) stop() error {
	if b.client != nil {
		b.client.Shutdown()
	}
	if b.proc == nil {
		return nil
	}
	return b.proc.stop(10 * time.Second)
}

func bytesEqual(a, b []byte) bool {
	return string(a) == string(b)
}
