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
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/satstream/satstream/common"
	"github.com/satstream/satstream/receiver/webhook"
	"github.com/satstream/satstream/store/postgres"
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

// Ledger backends (--db.backend).
const (
	// BackendBadger is the embedded ledger in <datadir>/<network>/ledger:
	// one receiver, nothing to run beside it. The default.
	BackendBadger = "badger"

	// BackendPostgres is a PostgreSQL database that several receivers
	// (one per provider lnd node) share.
	BackendPostgres = "postgres"
)

// PostgresConfig is the [db] section's PostgreSQL part.
type PostgresConfig struct {
	DSN            string        `long:"dsn" description:"PostgreSQL connection string (postgres://user:password@host:5432/db?sslmode=... or key=value form); the password is never logged"`
	MaxConns       int32         `long:"maxconns" description:"Most connections in the pool"`
	MinConns       int32         `long:"minconns" description:"Connections kept open while idle"`
	ConnectTimeout time.Duration `long:"timeout" description:"Timeout of one connection attempt and of the leader lock's health check"`
	LockTimeout    time.Duration `long:"locktimeout" description:"Longest wait of one ledger step for a lock (a step retried twice runs alone and waits for the others); past it the payment is neither settled nor cancelled but decided again"`
}

// DBConfig chooses and configures the ledger backend.
type DBConfig struct {
	Backend  string         `long:"backend" description:"Ledger backend: badger (embedded, one receiver) or postgres (several receivers, one per lnd node, on one database)" choice:"badger" choice:"postgres"`
	Postgres PostgresConfig `group:"postgres" namespace:"postgres"`
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
	DB      DBConfig             `group:"db" namespace:"db"`
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
		DB: DBConfig{
			Backend: BackendBadger,
			Postgres: PostgresConfig{
				MaxConns:       10,
				MinConns:       2,
				ConnectTimeout: 10 * time.Second,
				LockTimeout:    postgres.LockTimeout,
			},
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
	return c.DB.validate()
}

// validate checks the [db] section. A DSN is named only redacted: its
// password must not reach a terminal or a log.
func (c *DBConfig) validate() error {
	switch c.Backend {
	case BackendBadger:
		return nil
	case BackendPostgres:
	default:
		return fmt.Errorf("%w: --db.backend=%q: use %s or %s", ErrConfig,
			c.Backend, BackendBadger, BackendPostgres)
	}
	p := &c.Postgres
	if p.DSN == "" {
		return fmt.Errorf("%w: --db.backend=postgres needs "+
			"--db.postgres.dsn", ErrConfig)
	}
	if _, err := pgconn.ParseConfig(p.DSN); err != nil {
		// pgconn's error quotes the DSN with its password masked.
		return fmt.Errorf("%w: --db.postgres.dsn: %v", ErrConfig, err)
	}
	if p.MaxConns < 1 {
		return fmt.Errorf("%w: --db.postgres.maxconns must be at least "+
			"1, got %d", ErrConfig, p.MaxConns)
	}
	if p.MinConns < 0 || p.MinConns > p.MaxConns {
		return fmt.Errorf("%w: --db.postgres.minconns must be between 0 "+
			"and --db.postgres.maxconns (%d), got %d", ErrConfig,
			p.MaxConns, p.MinConns)
	}
	if p.ConnectTimeout <= 0 {
		return fmt.Errorf("%w: --db.postgres.timeout must be positive, "+
			"got %v", ErrConfig, p.ConnectTimeout)
	}
	if p.LockTimeout <= 0 {
		return fmt.Errorf("%w: --db.postgres.locktimeout must be "+
			"positive, got %v", ErrConfig, p.LockTimeout)
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

// RedactDSN returns dsn with its password replaced by xxxxx, in URL or
// key=value form, for logs and error messages.
func RedactDSN(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.Scheme != "" {
		if u.User != nil {
			if _, ok := u.User.Password(); ok {
				u.User = url.UserPassword(u.User.Username(),
					"xxxxx")
			}
		}
		// libpq takes password and sslpassword from the query too,
		// with or without user info.
		q := u.Query()
		redacted := false
		for k := range q {
			if dsnSecretKey(k) {
				q.Set(k, "xxxxx")
				redacted = true
			}
		}
		if redacted {
			u.RawQuery = q.Encode()
		}
		return u.String()
	}
	// An unparsable URL still hides its user info's password.
	dsn = dsnUserinfo.ReplaceAllString(dsn, "${1}xxxxx@")
	return dsnPassword.ReplaceAllString(dsn, "${1}xxxxx")
}

// dsnSecretKey reports whether a DSN parameter holds a secret.
func dsnSecretKey(k string) bool {
	k = strings.ToLower(k)
	return k == "password" || k == "sslpassword"
}

// dsnUserinfo finds user:password@ in a URL url.Parse refused.
var dsnUserinfo = regexp.MustCompile(`^([a-zA-Z][a-zA-Z0-9+.-]*://[^:@/]*:)[^@]*@`)

// dsnPassword finds password=... in a key=value DSN, quoted or not.
var dsnPassword = regexp.MustCompile(`(?i)(\b(?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)
