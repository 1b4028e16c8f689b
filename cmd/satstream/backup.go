package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"

	"github.com/lightningnetwork/lnd/routing/route"
	"github.com/satstream/satstream/common"
	"github.com/satstream/satstream/receiver"
	"github.com/satstream/satstream/store"
	"github.com/urfave/cli"
)

func init() {
	receiverCommand.Subcommands = append(receiverCommand.Subcommands,
		backupCommands("receiver")...)
	senderCommand.Subcommands = append(senderCommand.Subcommands,
		backupCommands("sender")...)
}

// backupCommands are `backup` (online, through the running daemon) and
// `restore` (offline, into the data directory) for daemon name.
func backupCommands(name string) []cli.Command {
	return []cli.Command{{
		Name:      "backup",
		Usage:     "write a consistent, checksummed copy of the running daemon's ledger to a file",
		ArgsUsage: "<file>",
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return fmt.Errorf("backup takes one argument, the " +
					"file to write")
			}
			client, err := newClient(c, name)
			if err != nil {
				return err
			}
			return backupTo(context.Background(), client,
				c.Args().First())
		},
	}, {
		Name: "restore",
		Usage: "restore a backup into the data directory of a stopped " +
			"daemon (--" + name + ".datadir, --network)",
		ArgsUsage: "<file>",
		Flags: []cli.Flag{cli.StringFlag{
			Name: "node",
			Usage: "identity pubkey of the lnd the daemon will run " +
				"with (lncli getinfo): a backup of another " +
				"node is refused, an unbound one is bound to it",
		}},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return fmt.Errorf("restore takes one argument, the " +
					"backup file")
			}
			network := c.GlobalString("network")
			if err := common.CheckNetwork(network); err != nil {
				return err
			}
			var node *route.Vertex
			if s := c.String("node"); s != "" {
				v, err := route.NewVertexFromStr(s)
				if err != nil {
					return fmt.Errorf("--node=%q: not an lnd "+
						"identity pubkey (66 hex digits): %v",
						s, err)
				}
				node = &v
			}
			dataDir := common.ExpandHome(c.GlobalString(name +
				".datadir"))
			if name == "receiver" {
				if err := receiver.CheckRestorable(dataDir); err != nil {
					return fmt.Errorf("restore: %w", err)
				}
			}
			netDir := common.NetworkDir(dataDir, network)
			f, err := os.Open(c.Args().First())
			if err != nil {
				return err
			}
			defer f.Close()
			b, bound, err := common.RestoreLedger(
				context.Background(), netDir, network, node, f)
			if err != nil {
				return fmt.Errorf("restore: %w", err)
			}
			fmt.Printf("restored %s/ledger", netDir)
			if bound {
				fmt.Printf(" of lnd node %x on %s; satstream-%s "+
					"refuses to start against any other node",
					b.Node, b.Network, name)
			} else {
				fmt.Printf("; the backup names no lnd node: "+
					"satstream-%s binds it to the node it "+
					"first starts with (restore with --node "+
					"to bind it now)", name)
			}
			fmt.Println()
			return nil
		},
	}}
}

// backupTo streams the daemon's backup into file, checks its checksum and
// only then renames it into place, so file is either a whole backup or
// not there.
func backupTo(ctx context.Context, a *apiClient, file string) error {
	tmp := file + ".partial"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	defer f.Close()

	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		a.base+common.BackupPath, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	// A large ledger takes longer than the usual request timeout.
	hc := *a.http
	hc.Timeout = 0
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("satstream-%s: %w", a.name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		var e struct {
			Error common.APIError `json:"error"`
		}
		if resp.StatusCode == http.StatusNotImplemented &&
			json.Unmarshal(msg, &e) == nil && e.Error.Message != "" {

			// A PostgreSQL ledger: the message says to use
			// pg_dump.
			return fmt.Errorf("satstream-%s: %s", a.name,
				e.Error.Message)
		}
		return fmt.Errorf("satstream-%s answered %s: %s", a.name,
			resp.Status, msg)
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if err := store.VerifyBackup(ctx, f); err != nil {
		return fmt.Errorf("backup from satstream-%s is damaged, not "+
			"kept: %w", a.name, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, file); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(file)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	fmt.Printf("wrote %s\n", file)
	return nil
}
