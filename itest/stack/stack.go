// Package stack runs satstream-receiver and satstream-sender in-process
// beside two lnd nodes of a regtest network, the way the demo and the CLI
// tests need them: the receiver beside the provider's node, the sender
// beside the payer's, each with its own data directory and free ports.
package stack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/satstream/satstream/common"
	"github.com/satstream/satstream/itest/regtest"
	"github.com/satstream/satstream/receiver"
	"github.com/satstream/satstream/sender"
)

// Stack is a running receiver and sender.
type Stack struct {
	Receiver    *receiver.Daemon
	Sender      *sender.Daemon
	ReceiverCfg *receiver.Config
	SenderCfg   *sender.Config
}

// LndConfig is how a daemon reaches a harness node.
func LndConfig(n *regtest.Node) common.LndConfig {
	cfg := common.DefaultLndConfig()
	cfg.Host = n.RPCAddr
	cfg.TLSPath = n.TLSCertPath
	cfg.MacaroonPath = n.AdminMacPath
	return cfg
}

// Start runs the receiver beside provider and the sender beside payer,
// with data under dir and logs to w. Either may be nil to run only one.
func Start(ctx context.Context, dir string, provider, payer *regtest.Node,
	w io.Writer) (*Stack, error) {

	logs := common.NewLogManager(w)
	s := &Stack{}

	if provider != nil {
		cfg := receiver.DefaultConfig()
		cfg.DataDir = filepath.Join(dir, "receiver")
		cfg.ConfigFile = filepath.Join(cfg.DataDir, "receiver.conf")
		cfg.Network = "regtest"
		cfg.API.Listen = "127.0.0.1:0"
		cfg.Metrics.Listen = "127.0.0.1:0"
		cfg.Lnd = LndConfig(provider)
		if err := cfg.Validate(); err != nil {
			return nil, err
		}
		d, err := receiver.New(cfg, logs)
		if err != nil {
			return nil, err
		}
		if err := d.Start(ctx); err != nil {
			return nil, fmt.Errorf("start receiver: %w", err)
		}
		s.Receiver, s.ReceiverCfg = d, cfg
	}

	if payer != nil {
		cfg := sender.DefaultConfig()
		cfg.DataDir = filepath.Join(dir, "sender")
		cfg.ConfigFile = filepath.Join(cfg.DataDir, "sender.conf")
		cfg.Network = "regtest"
		cfg.API.Listen = "127.0.0.1:0"
		cfg.Metrics.Listen = "127.0.0.1:0"
		cfg.Lnd = LndConfig(payer)
		// Regtest outages last seconds; don't wait minutes.
		cfg.Payments.BackoffMax = 5 * time.Second
		if err := cfg.Validate(); err != nil {
			_ = s.Stop()
			return nil, err
		}
		d, err := sender.New(cfg, logs)
		if err != nil {
			_ = s.Stop()
			return nil, err
		}
		if err := d.Start(ctx); err != nil {
			_ = s.Stop()
			return nil, fmt.Errorf("start sender: %w", err)
		}
		s.Sender, s.SenderCfg = d, cfg
	}
	return s, nil
}

// Errs returns a channel that yields the first fatal error of either
// daemon.
func (s *Stack) Errs() <-chan error {
	out := make(chan error, 2)
	forward := func(name string, ch <-chan error) {
		go func() {
			if err, ok := <-ch; ok && err != nil {
				out <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	if s.Receiver != nil {
		forward("receiver", s.Receiver.Err())
	}
	if s.Sender != nil {
		forward("sender", s.Sender.Err())
	}
	return out
}

// Stop stops the sender, then the receiver.
func (s *Stack) Stop() error {
	var errs []error
	if s.Sender != nil {
		errs = append(errs, s.Sender.Stop())
	}
	if s.Receiver != nil {
		errs = append(errs, s.Receiver.Stop())
	}
	return errors.Join(errs...)
}
