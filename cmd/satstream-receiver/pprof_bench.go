//go:build benchpprof

package main

import (
	"net/http"
	_ "net/http/pprof" // The profiling endpoints, bench builds only.
	"os"
	"runtime"
)

// pprofEnv names the environment variable that, in binaries built with
// -tags benchpprof only (the benchmark's profiling runs), serves
// net/http/pprof on the address it holds. Production builds have no such
// listener.
const pprofEnv = "SATSTREAM_PPROF_ADDR"

func init() {
	addr := os.Getenv(pprofEnv)
	if addr == "" {
		return
	}
	runtime.SetMutexProfileFraction(10)
	runtime.SetBlockProfileRate(int(100_000)) // one sample per 100us blocked
	go func() { _ = http.ListenAndServe(addr, nil) }()
}
