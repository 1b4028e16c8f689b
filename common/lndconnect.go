package common

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"gopkg.in/macaroon.v2"
)

// ErrLndConnect reports an lndconnect URI that can't be used. Messages
// never repeat the URI: it carries a macaroon.
var ErrLndConnect = errors.New("invalid lndconnect URI")

// defaultLndPort is lnd's gRPC port, used when a URI names none.
const defaultLndPort = "10009"

// LndConnect is a parsed lndconnect URI, the form Polar, Zeus and node
// packages (Umbrel, Start9, RaspiBlitz) hand out:
// lndconnect://host:port?cert=<base64url DER>&macaroon=<base64url>.
type LndConnect struct {
	// Host is lnd's gRPC host:port.
	Host string

	// CertPEM is lnd's TLS certificate. Empty means the URI carried none
	// because lnd uses a certificate from a public CA; the system's CA
	// pool verifies it then.
	CertPEM string

	// Macaroon is the binary macaroon.
	Macaroon []byte
}

// ParseLndConnect decodes an lndconnect URI. The cert is optional, the
// macaroon is not; both accept base64url with or without padding, and the
// standard alphabet some generators emit.
func ParseLndConnect(uri string) (*LndConnect, error) {
	u, err := url.Parse(strings.TrimSpace(uri))
	if err != nil {
		return nil, fmt.Errorf("%w: not a URI", ErrLndConnect)
	}
	if !strings.EqualFold(u.Scheme, "lndconnect") {
		return nil, fmt.Errorf("%w: scheme is %q, want lndconnect://",
			ErrLndConnect, u.Scheme)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("%w: no host", ErrLndConnect)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), defaultLndPort)
	} else if _, err := ParsePort(u.Port()); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrLndConnect, err)
	}
	// url.Parse keeps a stray bracket as the host name ("lndconnect://]"
	// has host "]"), which no dialer takes.
	if h, _, err := net.SplitHostPort(host); err != nil || h == "" ||
		strings.ContainsAny(h, "[]") {

		return nil, fmt.Errorf("%w: host %q is not host:port",
			ErrLndConnect, u.Host)
	}

	// Parse the query by hand: url.ParseQuery turns '+' (which a
	// standard-alphabet base64 value may hold) into a space.
	params := map[string]string{}
	for _, kv := range strings.Split(u.RawQuery, "&") {
		k, v, _ := strings.Cut(kv, "=")
		if k == "" {
			continue
		}
		val, err := url.PathUnescape(v)
		if err != nil {
			return nil, fmt.Errorf("%w: parameter %q is badly "+
				"escaped", ErrLndConnect, k)
		}
		params[k] = val
	}

	out := &LndConnect{Host: host}
	macB64, ok := params["macaroon"]
	if !ok || macB64 == "" {
		return nil, fmt.Errorf("%w: no macaroon parameter", ErrLndConnect)
	}
	out.Macaroon, err = decodeBase64URL(macB64)
	if err != nil {
		return nil, fmt.Errorf("%w: macaroon is not base64url",
			ErrLndConnect)
	}
	var mac macaroon.Macaroon
	if err := mac.UnmarshalBinary(out.Macaroon); err != nil {
		return nil, fmt.Errorf("%w: macaroon does not decode: %v",
			ErrLndConnect, err)
	}

	if certB64 := params["cert"]; certB64 != "" {
		der, err := decodeBase64URL(certB64)
		if err != nil {
			return nil, fmt.Errorf("%w: cert is not base64url",
				ErrLndConnect)
		}
		if _, err := x509.ParseCertificate(der); err != nil {
			return nil, fmt.Errorf("%w: cert is not a DER "+
				"certificate: %v", ErrLndConnect, err)
		}
		out.CertPEM = string(pem.EncodeToMemory(&pem.Block{
			Type: "CERTIFICATE", Bytes: der,
		}))
	}
	return out, nil
}

// ErrBadPort reports a TCP port outside 1..65535.
var ErrBadPort = errors.New("port out of range")

// ParsePort reads a TCP port, 1..65535, naming the bad value.
func ParsePort(s string) (int, error) {
	p, err := strconv.Atoi(s)
	if err != nil || p < 1 || p > 65535 {
		return 0, fmt.Errorf("%w: port %q is not 1..65535", ErrBadPort,
			s)
	}
	return p, nil
}

// decodeBase64URL accepts base64url with or without padding, and the
// standard alphabet.
func decodeBase64URL(s string) ([]byte, error) {
	s = strings.Map(func(r rune) rune {
		switch r {
		case '+':
			return '-'
		case '/':
			return '_'
		case '=', '\n', '\r', ' ', '\t':
			return -1
		}
		return r
	}, s)
	return base64.RawURLEncoding.DecodeString(s)
}
