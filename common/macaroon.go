package common

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/lightningnetwork/lnd/lnrpc"
	"google.golang.org/protobuf/proto"
	"gopkg.in/macaroon.v2"
)

// ErrMacaroonPermissions reports a macaroon that lacks a permission the
// daemon needs.
var ErrMacaroonPermissions = errors.New("macaroon lacks permissions")

// Permission is one lnd macaroon permission, written entity:action as
// lncli bakemacaroon takes it.
type Permission struct {
	Entity string
	Action string
}

// String is the lncli form, e.g. "invoices:write".
func (p Permission) String() string { return p.Entity + ":" + p.Action }

// RPCPermission is one lnd RPC a daemon calls and the permissions lnd
// demands for it (lnd's rpcserver.go and sub-server permission maps). A
// macaroon baked with the method's URI permission (uri:<method>) allows it
// too.
type RPCPermission struct {
	Method string
	Perms  []Permission
}

// shortName is the method without its service, for messages.
func (r RPCPermission) shortName() string {
	return r.Method[strings.LastIndex(r.Method, "/")+1:]
}

var (
	infoRead      = Permission{"info", "read"}
	invoicesRead  = Permission{"invoices", "read"}
	invoicesWrite = Permission{"invoices", "write"}
	offchainRead  = Permission{"offchain", "read"}
	offchainWrite = Permission{"offchain", "write"}
	onchainRead   = Permission{"onchain", "read"}
	peersRead     = Permission{"peers", "read"}
)

// ConnectRPCs are what lndclient calls on connecting (GetInfo to wait for
// unlock and learn the network, GetVersion for the version check). Both
// daemons need them.
var ConnectRPCs = []RPCPermission{
	{"/lnrpc.Lightning/GetInfo", []Permission{infoRead}},
	{"/verrpc.Versioner/GetVersion", []Permission{infoRead}},
}

// ReceiverRPCs are the RPCs satstream-receiver calls (receiver/lnd.go):
// it follows invoices, lists the held ones after a restart, and settles or
// cancels each held keysend.
var ReceiverRPCs = []RPCPermission{
	{"/lnrpc.Lightning/SubscribeInvoices", []Permission{invoicesRead}},
	{"/lnrpc.Lightning/LookupInvoice", []Permission{invoicesRead}},
	{"/lnrpc.Lightning/ListInvoices", []Permission{invoicesRead}},
	{"/invoicesrpc.Invoices/SubscribeSingleInvoice", []Permission{invoicesRead}},
	{"/invoicesrpc.Invoices/SettleInvoice", []Permission{invoicesWrite}},
	{"/invoicesrpc.Invoices/CancelInvoice", []Permission{invoicesWrite}},
}

// SenderRPCs are the RPCs satstream-sender calls (sender/lnd.go): it
// sends keysend payments and tracks them after a restart.
var SenderRPCs = []RPCPermission{
	{"/routerrpc.Router/SendPaymentV2", []Permission{offchainWrite}},
	{"/routerrpc.Router/TrackPaymentV2", []Permission{offchainRead}},
}

// SettingsRPCs read lnd's effective configuration, so a daemon can say at
// start-up that accept-keysend or keysend-hold-time is missing. lnd asks
// for four read permissions for it (or uri:/lnrpc.Lightning/GetDebugInfo);
// they are optional: without them the start-up check is skipped with a
// warning, and the receiver still notices lnd settling keysend itself when
// it happens.
var SettingsRPCs = []RPCPermission{
	{"/lnrpc.Lightning/GetDebugInfo", []Permission{infoRead, offchainRead,
		onchainRead, peersRead}},
}

// ReceiverMacaroonRPCs is everything satstream-receiver's macaroon must
// allow: connecting and its own RPCs, which info:read invoices:read
// invoices:write cover. The settings check (SettingsRPCs) is optional.
func ReceiverMacaroonRPCs() []RPCPermission {
	return joinRPCs(ConnectRPCs, ReceiverRPCs)
}

// SenderMacaroonRPCs is everything satstream-sender's macaroon must allow.
func SenderMacaroonRPCs() []RPCPermission {
	return joinRPCs(ConnectRPCs, SenderRPCs)
}

func joinRPCs(lists ...[]RPCPermission) []RPCPermission {
	var out []RPCPermission
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

// PermissionList is the sorted, de-duplicated permissions the RPCs need.
func PermissionList(rpcs []RPCPermission) []Permission {
	seen := map[Permission]bool{}
	var out []Permission
	for _, r := range rpcs {
		for _, p := range r.Perms {
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].String() < out[j].String()
	})
	return out
}

// BakeCommand is the lncli command that bakes a macaroon for the RPCs.
func BakeCommand(file string, rpcs []RPCPermission) string {
	parts := []string{"lncli", "bakemacaroon", "--save_to=" + file}
	for _, p := range PermissionList(rpcs) {
		parts = append(parts, p.String())
	}
	return strings.Join(parts, " ")
}

// BakeURICommand is the lncli command that bakes a macaroon allowing
// exactly the RPCs' methods (uri:<method> permissions), nothing else of
// their entities.
func BakeURICommand(file string, rpcs []RPCPermission) string {
	parts := []string{"lncli", "bakemacaroon", "--save_to=" + file}
	seen := map[string]bool{}
	for _, r := range rpcs {
		if !seen[r.Method] {
			seen[r.Method] = true
			parts = append(parts, "uri:"+r.Method)
		}
	}
	return strings.Join(parts, " ")
}

// MacaroonPermissions decodes the permissions baked into an lnd macaroon,
// offline, the way `lncli printmacaroon` does: lnd keeps them in the
// macaroon's identifier (version byte 3, then an lnrpc.MacaroonId).
// Caveats (timeouts, IP locks) are not evaluated.
func MacaroonPermissions(mac []byte) (map[Permission]bool, error) {
	var m macaroon.Macaroon
	if err := m.UnmarshalBinary(mac); err != nil {
		return nil, fmt.Errorf("not a macaroon: %w", err)
	}
	id := m.Id()
	if len(id) == 0 || id[0] != 3 {
		return nil, errors.New("not an lnd macaroon (unknown " +
			"identifier version)")
	}
	var decoded lnrpc.MacaroonId
	if err := proto.Unmarshal(id[1:], &decoded); err != nil {
		return nil, fmt.Errorf("not an lnd macaroon: %w", err)
	}
	perms := map[Permission]bool{}
	for _, op := range decoded.Ops {
		for _, a := range op.Actions {
			perms[Permission{op.Entity, a}] = true
		}
	}
	return perms, nil
}

// MissingPermissions lists, per missing permission, the RPCs that need it;
// an RPC allowed by its URI permission needs nothing else.
func MissingPermissions(have map[Permission]bool,
	rpcs []RPCPermission) map[Permission][]string {

	missing := map[Permission][]string{}
	for _, r := range rpcs {
		if have[Permission{"uri", r.Method}] {
			continue
		}
		for _, p := range r.Perms {
			if !have[p] {
				missing[p] = append(missing[p], r.shortName())
			}
		}
	}
	return missing
}

// describeMissing renders MissingPermissions as "a:b (for X, Y), c:d (for
// Z)", sorted.
func describeMissing(missing map[Permission][]string) string {
	var perms []Permission
	for p := range missing {
		perms = append(perms, p)
	}
	sort.Slice(perms, func(i, j int) bool {
		return perms[i].String() < perms[j].String()
	})
	var parts []string
	for _, p := range perms {
		parts = append(parts, fmt.Sprintf("%s (for %s)", p,
			strings.Join(missing[p], ", ")))
	}
	return strings.Join(parts, ", ")
}
