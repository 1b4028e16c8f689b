package common

import (
	"net"
	"os"
	"path/filepath"
	"strings"
)

// ExpandHome turns a leading ~ into the user's home directory, so paths in
// config files and flags can be written the way people write them.
func ExpandHome(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, strings.TrimPrefix(p, "~"))
		}
	}
	return p
}

// splitHostPort is net.SplitHostPort, kept here so option checks share
// one spelling of it.
var splitHostPort = net.SplitHostPort
