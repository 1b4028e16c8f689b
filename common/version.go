package common

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// BuildInfo is what the binary knows about its own build, from the Go
// build info: the module version (a tag, or "(devel)" for a local build)
// and the VCS revision it was built from.
type BuildInfo struct {
	Version   string
	Revision  string
	Modified  bool
	GoVersion string
}

// ReadBuildInfo reads the running binary's build info.
func ReadBuildInfo() BuildInfo {
	bi := BuildInfo{Version: "unknown", Revision: "unknown",
		GoVersion: runtime.Version()}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return bi
	}
	if info.Main.Version != "" {
		bi.Version = info.Main.Version
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			bi.Revision = s.Value
		case "vcs.modified":
			bi.Modified = s.Value == "true"
		}
	}
	return bi
}

// String is the --version line after "<binary> version ", e.g.
// "v0.1.0 commit 1c10a28... go1.24.0".
func (b BuildInfo) String() string {
	rev := b.Revision
	if b.Modified {
		rev += "-dirty"
	}
	return fmt.Sprintf("%s commit %s %s", b.Version, rev,
		b.GoVersion)
}
