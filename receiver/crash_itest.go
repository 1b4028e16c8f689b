//go:build itest

package receiver

import (
	"os"
	"syscall"
)

// CrashEnv names the environment variable that, in binaries built with
// -tags itest only, makes the pipeline SIGKILL its own process at one of
// core's crash points ("before-credit", "after-credit", "after-settle").
const CrashEnv = "SATSTREAM_RECEIVER_CRASH_AT"

// crashHook returns the hook that kills the process at the point named in
// CrashEnv, simulating a crash (no deferred code runs, nothing is flushed).
func crashHook() func(string) {
	at := os.Getenv(CrashEnv)
	if at == "" {
		return nil
	}
	return func(point string) {
		if point == at {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
	}
}
