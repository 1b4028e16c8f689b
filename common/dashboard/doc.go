// Package dashboard is the kit both satstream daemons build their web
// dashboards from: login (by pasting the admin or read-only token, or by a
// one-time link), sessions in an HttpOnly, Secure, SameSite=Strict cookie,
// CSRF tokens on every form that changes something, read-only sessions
// refused any change, server-sent events from the daemon's own state
// changes, the shared page layout, stylesheet and script (embedded: nothing
// is fetched from elsewhere at run time), and small helpers to render
// amounts, countdowns, bar charts and QR codes on the server.
//
// The provider's dashboard lives in receiver/dashboard, the payer's in
// sender/dashboard; both are mounted at / on their daemon's API listener,
// beside the REST API under /v1.
package dashboard
