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
	"strings"
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
	URLs   []string `long:"url" description:"Webhook URL events are POSTed to (repeatable)"`
	Secret string   `long:"secret" description:"HMAC secret signing the requests to every --webhook.url without a secret of its own, at least 32 bytes; config file only, refused on the command line (default: generated into <datadir>/<network>/webhook.secret, mode 0600)"`
	// EndpointSecrets are "<url> <secret>" pairs: a URL with any signs
	// with those instead of the global secret, with all of them at
	// once while one is being rotated.
	EndpointSecrets []string      `long:"endpointsecret" description:"'<url> <secret>': a secret of its own for one --webhook.url (at least 32 bytes); repeat it for the same URL to sign with several during a rotation; config file only, refused on the command line"`
	InitialBackoff  time.Duration `long:"initialbackoff" description:"First retry delay"`
	MaxBackoff      time.Duration `long:"maxbackoff" description:"Longest retry delay"`
	Timeout         time.Duration `long:"timeout" description:"Timeout of one delivery"`
	GiveUpAfter     time.Duration `long:"giveupafter" description:"Stop retrying an event at an endpoint this long after its first attempt there (the dead-letter state; POST /v1/webhooks/events/{id}/retry tries again)"`
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
	for _, u := range c.Webhook.URLs {
		pu, err := url.Parse(u)
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") ||
			pu.Host == "" {

			return fmt.Errorf("%w: --webhook.url %s is not an http(s) "+
				"URL", ErrConfig, webhook.RedactURL(u))
		}
	}
	if _, err := c.Webhook.SecretsByURL(); err != nil {
		return err
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

// SecretsByURL parses --webhook.endpointsecret into the secrets of each
// URL, in the order given. Each names a configured --webhook.url and holds
// a secret of at least webhook.MinSecretLength bytes; errors never repeat
// the secret.
func (w *WebhookConfig) SecretsByURL() (map[string][][]byte, error) {
	urls := make(map[string]bool, len(w.URLs))
	for _, u := range w.URLs {
		urls[u] = true
	}
	out := make(map[string][][]byte)
	for i, v := range w.EndpointSecrets {
		f := strings.Fields(v)
		if len(f) != 2 {
			return nil, fmt.Errorf("%w: --webhook.endpointsecret number "+
				"%d is not '<url> <secret>'", ErrConfig, i+1)
		}
		u, secret := f[0], []byte(f[1])
		if !urls[u] {
			return nil, fmt.Errorf("%w: --webhook.endpointsecret names "+
				"%s, which is not a --webhook.url", ErrConfig,
				webhook.RedactURL(u))
		}
		err := webhook.CheckSecret(secret, "--webhook.endpointsecret of "+
			webhook.RedactURL(u))
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrConfig, err)
		}
		out[u] = append(out[u], secret)
	}
	return out, nil
}
