package common

import (
	"errors"
	"fmt"
	"os"
	"strings"

	flags "github.com/jessevdk/go-flags"
)

// ErrHelp is returned by LoadConfig when --help was given; the caller
// exits with status 0.
var ErrHelp = errors.New("help requested")

// LoadConfig fills cfg (already holding its defaults) from the command line
// and an ini file, loop's way: a first pass finds the config file, the file
// is read, then the command line is parsed again so flags win. The file
// path is read from the value configFile points to after the first pass;
// a missing file at the default path is fine, a missing file the user named
// is an error.
func LoadConfig(cfg any, args []string, configFile *string,
	defaultConfigFile string) error {

	if _, err := newParser(cfg).ParseArgs(args); err != nil {
		var fe *flags.Error
		if errors.As(err, &fe) && fe.Type == flags.ErrHelp {
			fmt.Fprintln(os.Stdout, fe.Message)
			return ErrHelp
		}
		return err
	}

	path := *configFile
	if _, err := os.Stat(path); err != nil {
		if path != defaultConfigFile || !os.IsNotExist(err) {
			return fmt.Errorf("config file %s: %w", path, err)
		}
	} else {
		err := flags.NewIniParser(newParser(cfg)).
			ParseFile(path)
		if err != nil {
			return fmt.Errorf("config file %s: %w", path, err)
		}
	}

	// Flags win over the file.
	if _, err := newParser(cfg).ParseArgs(args); err != nil {
		return err
	}
	return nil
}

// newParser makes a parser that leaves printing to the caller, so an error
// is reported once.
func newParser(cfg any) *flags.Parser {
	return flags.NewParser(cfg, flags.HelpFlag|flags.PassDoubleDash)
}

// ErrSecretOnCommandLine reports a secret passed as a command-line
// option, which every user of the machine can read from the process list.
var ErrSecretOnCommandLine = errors.New("secret on the command line")

// RefuseSecretFlags returns an error if args set one of the options named
// (without "--"), e.g. "webhook.secret". The config file (mode 0600) or
// the option's own file is the place for a secret.
func RefuseSecretFlags(args []string, names ...string) error {
	for _, a := range args {
		if a == "--" {
			return nil
		}
		opt, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") {
			continue
		}
		for _, n := range names {
			if opt == n {
				return fmt.Errorf("%w: --%s is visible to every "+
					"user in the process list; put it in the "+
					"config file (mode 0600) instead",
					ErrSecretOnCommandLine, n)
			}
		}
	}
	return nil
}
