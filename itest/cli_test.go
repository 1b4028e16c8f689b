//go:build itest

package itest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/satstream/satstream/common"
	"github.com/satstream/satstream/itest/regtest"
	"github.com/satstream/satstream/itest/stack"
	"github.com/satstream/satstream/receiver"
	"github.com/satstream/satstream/sender"
	"github.com/satstream/satstream/store"
	"github.com/stretchr/testify/require"
)

// cliRunner runs the satstream binary against the test's daemons.
type cliRunner struct {
	t      *testing.T
	bin    string
	global []string
}

// run returns the command's combined output and error.
func (c *cliRunner) run(args ...string) (string, error) {
	c.t.Helper()
	cmd := exec.Command(c.bin, append(append([]string{}, c.global...),
		args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// ok runs a command that must succeed.
func (c *cliRunner) ok(args ...string) string {
	c.t.Helper()
	out, err := c.run(args...)
	require.NoError(c.t, err, "satstream %v:\n%s", args, out)
	return out
}

// json runs a command with --json and decodes its output.
func (c *cliRunner) json(out any, args ...string) {
	c.t.Helper()
	text := c.ok(append([]string{"--json"}, args...)...)
	require.NoError(c.t, json.Unmarshal([]byte(text), out), text)
}

// fails runs a command that must fail with a message containing want.
func (c *cliRunner) fails(want string, args ...string) {
	c.t.Helper()
	out, err := c.run(args...)
	require.Error(c.t, err, "satstream %v should fail:\n%s", args, out)
	require.Contains(c.t, out, want, "satstream %v", args)
}

// TestCLI runs every satstream command against a real receiver and sender
// on the regtest network, and its error paths.
func TestCLI(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	_, nodes := holdLine(t, ctx)
	alice, carol := nodes[0], nodes[2]

	dir := t.TempDir()
	logs, err := os.Create(filepath.Join(dir, "daemons.log"))
	require.NoError(t, err)
	defer logs.Close()
	st, err := stack.Start(ctx, dir, carol, alice, logs)
	require.NoError(t, err)
	defer func() { require.NoError(t, st.Stop()) }()

	bin := filepath.Join(t.TempDir(), "satstream")
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin,
		"../cmd/satstream").CombinedOutput()
	require.NoError(t, err, "build: %s", out)

	c := &cliRunner{t: t, bin: bin, global: []string{
		"--receiver.rpcserver=" + st.Receiver.APIAddr(),
		"--network=regtest", "--receiver.datadir=" + st.ReceiverCfg.DataDir,
		"--sender.rpcserver=" + st.Sender.APIAddr(),
		"--sender.datadir=" + st.SenderCfg.DataDir,
	}}

	// Provider side: status and plans.
	require.Contains(t, c.ok("receiver", "status"), "lnd_connected")
	var plan struct {
		ID    string `json:"id"`
		Label string `json:"label"`
		Terms struct {
			Grace uint64 `json:"grace_period_sec"`
		} `json:"terms"`
	}
	c.json(&plan, "receiver", "plans", "create", "--label", "Gym",
		"--price_msat", "20000", "--min_msat", "1000", "--grace", "10s",
		"--max_prepay", "2m", "--default_increment", "10s")
	require.Len(t, plan.ID, 32)
	require.Contains(t, c.ok("receiver", "plans", "list"), plan.ID)
	require.Contains(t, c.ok("receiver", "plans", "get", plan.ID), "Gym")
	c.json(&plan, "receiver", "plans", "update", plan.ID, "--label",
		"Gym Plus", "--grace", "20s")
	require.Equal(t, "Gym Plus", plan.Label)
	require.EqualValues(t, 20, plan.Terms.Grace)

	// A subscription and its offer.
	var sub struct {
		ID    string `json:"id"`
		Offer string `json:"offer"`
		State string `json:"state"`
	}
	c.json(&sub, "receiver", "subs", "create", plan.ID)
	require.True(t, strings.HasPrefix(sub.Offer, "satoffer1"), sub.Offer)
	require.Contains(t, c.ok("receiver", "subs", "list"), sub.ID)
	require.Contains(t, c.ok("receiver", "subs", "get", sub.ID), "pending")
	require.Contains(t, c.ok("receiver", "subs", "offer", sub.ID), sub.Offer)
	require.Contains(t, c.ok("receiver", "subs", "paid", sub.ID), "false")
	decoded := c.ok("offer", "decode", sub.Offer)
	require.Contains(t, decoded, carol.PubKeyHex())
	require.Contains(t, decoded, "20000")

	// Payer side: subscribe and watch payments arrive on both sides.
	require.Contains(t, c.ok("sender", "status"), "ok")
	c.ok("sender", "subscribe", sub.Offer, "--increment", "10s",
		"--buffer", "20s", "--fee_limit_ppm", "50000")
	var payments struct {
		Payments []struct {
			Hash  string `json:"payment_hash"`
			State string `json:"state"`
		} `json:"payments"`
	}
	require.NoError(t, regtest.Poll(ctx, 60*time.Second, func() error {
		c.json(&payments, "sender", "subs", "payments", sub.ID)
		for _, p := range payments.Payments {
			if p.State == "succeeded" {
				return nil
			}
		}
		return fmt.Errorf("no succeeded payment yet: %+v", payments)
	}))
	hash := payments.Payments[0].Hash
	require.Contains(t, c.ok("sender", "subs", "list"), sub.ID)
	require.Contains(t, c.ok("sender", "subs", "get", sub.ID), "active")
	require.Contains(t, c.ok("receiver", "subs", "payments", sub.ID),
		"credited")
	require.Contains(t, c.ok("receiver", "payment", hash), "credited")
	require.Contains(t, c.ok("receiver", "subs", "paid", sub.ID), "true")
	require.Contains(t, c.ok("receiver", "events"), "payment.received")

	// Changing terms on both sides.
	c.ok("receiver", "subs", "update", sub.ID, "--grace", "60s")
	require.Contains(t, c.ok("sender", "subs", "update", sub.ID,
		"--buffer", "15s"), "15")

	// Pause, resume, cancel from the payer.
	require.Contains(t, c.ok("sender", "subs", "pause", sub.ID), "paused")
	require.Contains(t, c.ok("sender", "subs", "resume", sub.ID), "active")
	c.ok("sender", "subs", "cancel", sub.ID)
	require.NoError(t, regtest.Poll(ctx, 60*time.Second, func() error {
		out := c.ok("receiver", "subs", "get", sub.ID)
		if !strings.Contains(out, "cancelled_by_payer") {
			return fmt.Errorf("receiver not told of the cancel:\n%s",
				out)
		}
		return nil
	}))

	// The provider cancels an unpaid subscription.
	var other struct {
		ID string `json:"id"`
	}
	c.json(&other, "receiver", "subs", "create", plan.ID)
	require.Contains(t, c.ok("receiver", "subs", "cancel", other.ID),
		"cancelled_by_provider")
	require.Contains(t, c.ok("receiver", "subs", "list", "--state",
		"cancelled_by_provider"), other.ID)

	// Errors say what to do.
	c.fails("--price", "receiver", "plans", "create", "--label", "x")
	// Change the last character (to one it isn't) so the checksum fails.
	typo := "q"
	if strings.HasSuffix(sub.Offer, typo) {
		typo = "p"
	}
	c.fails("checksum", "sender", "subscribe", sub.Offer[:len(sub.Offer)-1]+typo)
	c.fails("exactly one argument", "receiver", "subs", "get")
	c.fails("not_found", "receiver", "subs", "get",
		strings.Repeat("ab", 16))
	bad := &cliRunner{t: t, bin: bin, global: []string{
		"--receiver.rpcserver=127.0.0.1:1",
		"--network=regtest", "--receiver.datadir=" + st.ReceiverCfg.DataDir,
	}}
	bad.fails("is satstream-receiver running", "receiver", "status")
	noToken := filepath.Join(t.TempDir(), "wrong.token")
	require.NoError(t, os.WriteFile(noToken,
		[]byte(strings.Repeat("0", 64)), 0o600))
	bad = &cliRunner{t: t, bin: bin, global: []string{
		"--receiver.rpcserver=" + st.Receiver.APIAddr(),
		"--network=regtest", "--receiver.datadir=" + st.ReceiverCfg.DataDir,
		"--receiver.tokenpath=" + noToken,
	}}
	bad.fails("--receiver.tokenpath", "receiver", "plans", "list")
	bad = &cliRunner{t: t, bin: bin, global: []string{
		"--network=regtest", "--receiver.datadir=" + t.TempDir(),
	}}
	bad.fails("--receiver.datadir", "receiver", "plans", "list")

	// Online backups of both running daemons, checked, then restored
	// into a fresh data directory; restoring over the running
	// receiver's ledger is refused.
	for _, d := range []string{"receiver", "sender"} {
		file := filepath.Join(t.TempDir(), d+".backup")
		require.Contains(t, c.ok(d, "backup", file), "wrote "+file)
		f, err := os.Open(file)
		require.NoError(t, err)
		require.NoError(t, store.VerifyBackup(ctx, f))
		f.Close()
		fresh := t.TempDir()
		out := (&cliRunner{t: t, bin: bin, global: []string{
			"--network=regtest", "--" + d + ".datadir=" + fresh,
		}}).ok(d, "restore", file)
		require.Contains(t, out, "on regtest")
		// Given the lnd node the daemon will run with, another
		// node's backup is refused, naming both.
		(&cliRunner{t: t, bin: bin, global: []string{
			"--network=regtest", "--" + d + ".datadir=" + t.TempDir(),
		}}).fails("not --node "+nodes[1].PubKeyHex(), d, "restore",
			"--node="+nodes[1].PubKeyHex(), file)
		if d == "receiver" {
			c.fails("daemon is running", d, "restore", file)
		}
	}

	// Each ledger is now bound to its node: pointed at the other node,
	// each daemon refuses to start, in one line.
	require.NoError(t, st.Receiver.Stop())
	rcfg := *st.ReceiverCfg
	rcfg.Lnd = stack.LndConfig(alice)
	rd, err := receiver.New(&rcfg, common.NewLogManager(logs))
	require.NoError(t, err)
	require.NoError(t, rd.Start(ctx))
	select {
	case err := <-rd.Err():
		require.ErrorIs(t, err, store.ErrWrongNode)
		require.ErrorContains(t, err, "refusing to start")
		require.NotContains(t, err.Error(), "\n")
	case <-ctx.Done():
		t.Fatal("the receiver followed another node's invoices")
	}
	require.NoError(t, rd.Stop())

	require.NoError(t, st.Sender.Stop())
	scfg := *st.SenderCfg
	scfg.Lnd = stack.LndConfig(carol)
	sd, err := sender.New(&scfg, common.NewLogManager(logs))
	require.NoError(t, err)
	require.NoError(t, sd.Start(ctx))
	select {
	case err := <-sd.Err():
		require.ErrorIs(t, err, store.ErrWrongNode)
	case <-ctx.Done():
		t.Fatal("the sender paid from another node's ledger")
	}
	require.NoError(t, sd.Stop())
}
