// Package receiver is the satstream-receiver daemon: it follows the
// provider's lnd, credits satstream keysend payments as paid time (package
// core), serves the provider's REST API and metrics, and delivers webhooks.
package receiver

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/satstream/satstream/common"
	"github.com/satstream/satstream/receiver/webhook"
)

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("invalid configuration")

const (
	defaultConfigName = "receiver.conf"
	defaultAPIListen  = "127.0.0.1:7321"
	defaultMetrics    = "127.0.0.1:9731"
)

// WebhookConfig configures event delivery.
type WebhookConfig struct {
	URLs           []string      `long:"url" description:"Webhook URL events are POSTed to (repeatable)"`
	Secret         string        `long:"secret" description:"HMAC secret for the Satstream-Signature header, at least 32 bytes; config file only, refused on the command line (default: generated into <datadir>/<network>/webhook.secret, mode 0600)"`
	InitialBackoff time.Duration `long:"initialbackoff" description:"First retry delay"`
	MaxBackoff     time.Duration `long:"maxbackoff" description:"Longest retry delay"`
	Timeout        time.Duration `long:"timeout" description:"Timeout of one delivery"`
	GiveUpAfter    time.Duration `long:"giveupafter" description:"Stop retrying an event at an endpoint this long after it was created (the dead-letter state; POST /v1/webhooks/events/{id}/retry tries again)"`
}

// Config is the whole daemon configuration.
type Config struct {
	ConfigFile string `long:"configfile" description:"Path to the config file"`
	DataDir    string `long:"datadir" description:"Base directory: the config file, and one directory per network (<datadir>/<network>) with its ledger, TLS pair, tokens and logs"`
	Network    string `long:"network" description:"Bitcoin network of lnd: mainnet, testnet, testnet4, signet, regtest or simnet"`
	DebugLevel string `long:"debuglevel" description:"Log level for all subsystems, or a list like info,RCVR=debug; show lists the subsystems"`
	Version    bool   `long:"version" description:"Print the version and exit"`

	Log            common.LogConfig
	ExpiryInterval time.Duration `long:"expiryinterval" description:"How often subscriptions are checked for the end of paid time"`
	SeqWindow      uint64        `long:"seqwindow" description:"How far below the highest credited sequence a late payment is still accepted"`

	// AllowNoHoldTime runs the receiver against an lnd without
	// --keysend-hold-time. lnd then settles every keysend itself: a
	// payment that can't be credited is kept and recorded as unclaimed
	// (to refund out of band) instead of refused.
	AllowNoHoldTime bool `long:"allownoholdtime" description:"Run even if lnd has no --keysend-hold-time (lnd then settles every keysend itself, so payments that can't be credited are kept and recorded as unclaimed instead of refused)"`

	Lnd     common.LndConfig     `group:"lnd" namespace:"lnd"`
	API     common.APIConfig     `group:"api" namespace:"api"`
	Metrics common.MetricsConfig `group:"metrics" namespace:"metrics"`
	Webhook WebhookConfig        `group:"webhook" namespace:"webhook"`
	Offer   OfferConfig          `group:"offer" namespace:"offer"`
}

// NetworkDir is the directory of this network's ledger, TLS pair, tokens
// and webhook secret: <datadir>/<network>.
func (c *Config) NetworkDir() string {
	return common.NetworkDir(c.DataDir, c.Network)
}

// DefaultConfig returns every default.
func DefaultConfig() *Config {
	dir := defaultDataDir()
	return &Config{
		ConfigFile:     filepath.Join(dir, defaultConfigName),
		DataDir:        dir,
		Network:        "mainnet",
		DebugLevel:     "info",
		Metrics:        common.MetricsConfig{Listen: defaultMetrics},
		Log:            common.DefaultLogConfig(),
		ExpiryInterval: time.Second,
		SeqWindow:      1024,
		Lnd:            common.DefaultLndConfig(),
		API:            common.APIConfig{Listen: defaultAPIListen},
		Webhook: WebhookConfig{
			InitialBackoff: 5 * time.Second,
			MaxBackoff:     time.Hour,
			Timeout:        10 * time.Second,
			GiveUpAfter:    72 * time.Hour,
		},
	}
}

func defaultDataDir() string {
	home, err := os.UserHomeDir()
	if err != nil {
		home = "."
	}
	return filepath.Join(home, ".satstream", "receiver")
}

// Validate checks the configuration and fills in paths derived from the
// data directory. Errors name the option.
func (c *Config) Validate() error {
	c.DataDir = common.ExpandHome(c.DataDir)
	c.ConfigFile = common.ExpandHome(c.ConfigFile)
	if c.DataDir == "" {
		return fmt.Errorf("%w: --datadir is empty", ErrConfig)
	}
	if err := common.CheckNetwork(c.Network); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	c.Lnd.SetDefaults(c.Network)
	if err := c.Lnd.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if err := c.API.Resolve(c.NetworkDir()); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if err := c.Metrics.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if err := c.Log.Resolve(c.NetworkDir()); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if c.ExpiryInterval <= 0 {
		return fmt.Errorf("%w: --expiryinterval must be positive, got %v",
			ErrConfig, c.ExpiryInterval)
	}
	if c.SeqWindow < 1 {
		return fmt.Errorf("%w: --seqwindow must be at least 1", ErrConfig)
	}
	if err := c.Offer.Validate(); err != nil {
		return err
	}
	for _, u := range c.Webhook.URLs {
		pu, err := url.Parse(u)
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") ||
			pu.Host == "" {

			return fmt.Errorf("%w: --webhook.url %s is not an http(s) "+
				"URL", ErrConfig, webhook.RedactURL(u))
		}
	}
	if c.Webhook.InitialBackoff <= 0 || c.Webhook.MaxBackoff <
		c.Webhook.InitialBackoff {

		return fmt.Errorf("%w: --webhook.initialbackoff must be positive "+
			"and at most --webhook.maxbackoff", ErrConfig)
	}
	if c.Webhook.Timeout <= 0 {
		return fmt.Errorf("%w: --webhook.timeout must be positive",
			ErrConfig)
	}
	if c.Webhook.GiveUpAfter <= 0 {
		return fmt.Errorf("%w: --webhook.giveupafter must be positive",
			ErrConfig)
	}
	return nil
}
