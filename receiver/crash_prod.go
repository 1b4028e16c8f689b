//go:build !itest

package receiver

// crashHook is nil in production builds: the test-only crash points of the
// payment pipeline do nothing.
func crashHook() func(string) { return nil }
