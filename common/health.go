package common

import (
	"net/http"
)

// HealthzPath is the open liveness endpoint for load balancers and
// systemd: no token, no details, 200 or 503.
const HealthzPath = "/healthz"

// WithHealthz serves GET and HEAD /healthz from healthy, outside next's
// token check, and everything else from next. healthy returns nil when the
// daemon can do its work (lnd connected, ledger writable); the reason is
// logged by the daemon, never shown here, since anyone may ask.
func WithHealthz(next http.Handler, healthy func() error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != HealthzPath {
			next.ServeHTTP(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if healthy() != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("unavailable\n"))
			return
		}
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("ok\n"))
	})
}
