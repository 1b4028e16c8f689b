//go:build itest

package receiver

import (
	"os"
	"syscall"
	"time"
)

// CrashEnv names the environment variable that, in binaries built with
// -tags itest only, makes the pipeline SIGKILL its own process at one of
// core's crash points ("before-credit", "after-credit", "after-settle").
const CrashEnv = "SATSTREAM_RECEIVER_CRASH_AT"

// DelayEnv names the environment variable that, in itest builds only,
// makes the pipeline stop for DelayForEnv (a Go duration) at one of core's
// crash points: a decision that comes late, after lnd's hold time.
const (
	DelayEnv    = "SATSTREAM_RECEIVER_DELAY_AT"
	DelayForEnv = "SATSTREAM_RECEIVER_DELAY"
)

// crashHook returns the hook that kills the process at the point named in
// CrashEnv, simulating a crash (no deferred code runs, nothing is flushed),
// or waits at the point named in DelayEnv.
func crashHook() func(string) {
	at := os.Getenv(CrashEnv)
	delayAt := os.Getenv(DelayEnv)
	delay, err := time.ParseDuration(os.Getenv(DelayForEnv))
	if err != nil {
		delayAt = ""
	}
	if at == "" && delayAt == "" {
		return nil
	}
	return func(point string) {
		if point == delayAt {
			time.Sleep(delay)
		}
		if point == at {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
	}
}
