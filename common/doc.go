// Package common holds the little that satstream-sender and
// satstream-receiver truly share: connecting to lnd with backoff and a
// version check, the REST API's TLS certificate and bearer tokens, JSON
// responses and errors, config-file loading, and subsystem loggers. Domain
// logic never lives here.
package common
