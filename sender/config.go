package sender

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	flags "github.com/jessevdk/go-flags"
	"github.com/satstream/satstream/common"
)

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("invalid configuration")

// ConfigFilename is the config file's name inside the data directory.
const ConfigFilename = "sender.conf"

// Defaults of the sender daemon.
const (
	DefaultAPIListen     = "127.0.0.1:7322"
	DefaultMetricsListen = "127.0.0.1:9732"
	DefaultNetwork       = "mainnet"
	DefaultDebugLevel    = "info"
)

// DefaultDataDir is where the sender keeps its ledger, TLS pair and tokens.
func DefaultDataDir() string {
	home, err := os.UserHomeDir()
	if err != nil {
		home = "."
	}
	return filepath.Join(home, ".satstream", "sender")
}

// PaymentsConfig is the "payments." option group.
type PaymentsConfig struct {
	MaxInFlight       int           `long:"maxinflight" description:"Most payments in flight over all subscriptions"`
	MaxInFlightPerSub int           `long:"maxinflightpersub" description:"Most payments in flight per subscription"`
	Timeout           time.Duration `long:"timeout" description:"lnd's route-finding timeout per payment"`
	RefusalLimit      uint32        `long:"refusallimit" description:"Refused payments in a row that mark a subscription refused"`
	BackoffInitial    time.Duration `long:"backoffinitial" description:"First wait after a failed payment"`
	BackoffMax        time.Duration `long:"backoffmax" description:"Longest wait between retries"`
	UnavailableAfter  time.Duration `long:"unavailableafter" description:"A payment the receiving lnd failed with incorrect_payment_details after holding it this long was cancelled at the end of its hold time (receiver daemon not answering): retry, don't count a refusal. Keep it below the receiver's keysend hold time"`
	RefusedRetry      time.Duration `long:"refusedretry" description:"First wait before a refused subscription probes the receiver again; doubles per refused probe"`
	RefusedRetryMax   time.Duration `long:"refusedretrymax" description:"Longest wait between probes of a refused subscription"`
}

// Config is the sender daemon's configuration.
type Config struct {
	DataDir    string `long:"datadir" description:"Base directory: the config file, and one directory per network (<datadir>/<network>) with its ledger, TLS pair, tokens and logs"`
	ConfigFile string `long:"configfile" description:"Config file (default <datadir>/sender.conf)"`
	Network    string `long:"network" description:"Bitcoin network of lnd: mainnet, testnet, testnet4, signet, regtest or simnet"`
	DebugLevel string `long:"debuglevel" description:"Log level for all subsystems, or TAG=level pairs (SNDR, SCHD, PAY, API, STOR, LNDC); show lists the subsystems"`
	Version    bool   `long:"version" description:"Print the version and exit"`

	common.LogConfig

	Lnd      common.LndConfig     `group:"lnd" namespace:"lnd"`
	API      common.APIConfig     `group:"api" namespace:"api"`
	Metrics  common.MetricsConfig `group:"metrics" namespace:"metrics"`
	Payments PaymentsConfig       `group:"payments" namespace:"payments"`
}

// NetworkDir is the directory of this network's ledger, TLS pair, tokens
// and logs: <datadir>/<network>.
func (c *Config) NetworkDir() string {
	return common.NetworkDir(c.DataDir, c.Network)
}

// DefaultConfig holds every default.
func DefaultConfig() *Config {
	ec := DefaultEngineConfig()
	return &Config{
		DataDir:    DefaultDataDir(),
		Network:    DefaultNetwork,
		DebugLevel: DefaultDebugLevel,
		Lnd:        common.DefaultLndConfig(),
		API:        common.APIConfig{Listen: DefaultAPIListen},
		Metrics:    common.MetricsConfig{Listen: DefaultMetricsListen},
		LogConfig:  common.DefaultLogConfig(),
		Payments: PaymentsConfig{
			MaxInFlight:       ec.MaxInFlight,
			MaxInFlightPerSub: ec.MaxInFlightPerSub,
			Timeout:           ec.PaymentTimeout,
			RefusalLimit:      ec.RefusalLimit,
			BackoffInitial:    ec.BackoffInitial,
			BackoffMax:        ec.BackoffMax,
			UnavailableAfter:  ec.UnavailableAfter,
			RefusedRetry:      ec.RefusedRetry,
			RefusedRetryMax:   ec.RefusedRetryMax,
		},
	}
}

// engineConfig extracts the engine's settings.
func (c *Config) engineConfig() EngineConfig {
	return EngineConfig{
		MaxInFlight:       c.Payments.MaxInFlight,
		MaxInFlightPerSub: c.Payments.MaxInFlightPerSub,
		PaymentTimeout:    c.Payments.Timeout,
		RefusalLimit:      c.Payments.RefusalLimit,
		BackoffInitial:    c.Payments.BackoffInitial,
		BackoffMax:        c.Payments.BackoffMax,
		UnavailableAfter:  c.Payments.UnavailableAfter,
		RefusedRetry:      c.Payments.RefusedRetry,
		RefusedRetryMax:   c.Payments.RefusedRetryMax,
	}
}

// Validate fills the paths derived from the data directory and turns the
// first bad value into an error naming the option.
func (c *Config) Validate() error {
	if c.DataDir == "" {
		return fmt.Errorf("%w: --datadir is empty", ErrConfig)
	}
	c.DataDir = common.ExpandHome(c.DataDir)
	if err := common.CheckNetwork(c.Network); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	c.Lnd.SetDefaults(c.Network)
	if err := c.API.Resolve(c.NetworkDir()); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if err := c.Metrics.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if err := c.LogConfig.Resolve(c.NetworkDir()); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if err := c.engineConfig().Validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if c.DebugLevel == common.ShowSubsystems {
		// Main lists the subsystems and exits.
	} else if err := common.NewLogManager(os.Stderr).SetLevels(
		levelOnly(c.DebugLevel)); err != nil {

		return fmt.Errorf("%w: --%v", ErrConfig, err)
	}
	if err := c.Lnd.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return nil
}

// levelOnly drops TAG=level parts so the level words can be checked before
// the loggers exist.
func levelOnly(spec string) string {
	var out []string
	for _, p := range strings.Split(spec, ",") {
		if _, lvl, ok := strings.Cut(p, "="); ok {
			out = append(out, lvl)
		} else {
			out = append(out, p)
		}
	}
	return strings.Join(out, ",")
}

// LoadConfig builds the configuration from defaults, the config file and
// the command line (flags win), then validates it.
func LoadConfig(args []string) (*Config, error) {
	// A first look at the command line finds the data directory and so
	// the default config file.
	pre := DefaultConfig()
	p := flags.NewParser(pre, flags.IgnoreUnknown)
	if _, err := p.ParseArgs(args); err != nil {
		return nil, err
	}
	defaultFile := filepath.Join(common.ExpandHome(pre.DataDir), ConfigFilename)

	cfg := DefaultConfig()
	cfg.ConfigFile = defaultFile
	if err := common.LoadConfig(cfg, args, &cfg.ConfigFile,
		defaultFile); err != nil {

		return nil, err
	}
	if cfg.Version || cfg.DebugLevel == common.ShowSubsystems {
		return cfg, nil
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}
