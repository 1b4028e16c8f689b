package store

import (
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/lightningnetwork/lnd/tlv"
	"github.com/stretchr/testify/require"
)

// schemaLayout is what one schema version stores: the tables (key prefix
// constants), the meta keys (second byte under pMeta) and, per stored
// record type, the TLV types it encodes.
type schemaLayout struct {
	tables  map[string]byte
	meta    map[string]byte
	records map[string][]uint64
}

// schemaHistory pins the layout of every schema version. Never edit a
// released entry: to change the layout, copy the last entry to
// SchemaVersion+1, change the copy, bump SchemaVersion and add the matching
// step to migrations (see the package comment).
var schemaHistory = map[uint32]schemaLayout{
	1: {
		tables: map[string]byte{
			"pMeta": 0x01,
			"pPlan": 0x10, "pRSub": 0x11, "pRSubByState": 0x12,
			"pRSubByPaid": 0x13, "pPayment": 0x14, "pPaymentBySq": 0x15,
			"pEvent": 0x16, "pEventQueue": 0x17,
			"pSSub": 0x20, "pSSubByState": 0x21, "pAttempt": 0x22,
			"pAttemptHash": 0x23, "pAttemptOpen": 0x24, "pSpend": 0x25,
		},
		meta: map[string]byte{
			"keySchemaVersion": 0x01, "keySettleIndex": 0x10,
			"keyAddIndex": 0x11, "keyLastEventID": 0x12,
		},
		records: map[string][]uint64{
			"Plan":                 {1, 2, 3, 4, 5, 10, 11, 12, 13, 14},
			"ReceiverSubscription": {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
			"Payment":              {1, 2, 3, 4, 5, 6, 7, 8, 9},
			"Event":                {1, 2, 3, 4, 5, 6, 7, 8, 9, 10},
			"SenderSubscription": {1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12,
				20, 21, 22, 23, 24, 30, 31, 32, 33},
			"Attempt": {1, 2, 3, 4, 5, 6, 7, 8, 9, 10},
		},
	},
	2: {
		tables: map[string]byte{
			"pMeta": 0x01,
			"pPlan": 0x10, "pRSub": 0x11, "pRSubByState": 0x12,
			"pRSubByPaid": 0x13, "pPayment": 0x14, "pPaymentBySq": 0x15,
			"pEvent": 0x16, "pEventQueue": 0x17, "pRHeld": 0x18,
			"pSSub": 0x20, "pSSubByState": 0x21, "pAttempt": 0x22,
			"pAttemptHash": 0x23, "pAttemptOpen": 0x24, "pSpend": 0x25,
		},
		meta: map[string]byte{
			"keySchemaVersion": 0x01, "keySettleIndex": 0x10,
			"keyAddIndex": 0x11, "keyLastEventID": 0x12,
		},
		records: map[string][]uint64{
			"Plan":                 {1, 2, 3, 4, 5, 6, 10, 11, 12, 13, 14},
			"ReceiverSubscription": {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
			"Payment":              {1, 2, 3, 4, 5, 6, 7, 8, 9, 10},
			"Event":                {1, 2, 3, 4, 5, 6, 7, 8, 9, 10},
			"SenderSubscription": {1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12,
				20, 21, 22, 23, 24, 30, 31, 32, 33,
				40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52},
			"Attempt": {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14},
		},
	},
	3: {
		tables: map[string]byte{
			"pMeta": 0x01,
			"pPlan": 0x10, "pRSub": 0x11, "pRSubByState": 0x12,
			"pRSubByPaid": 0x13, "pPayment": 0x14, "pPaymentBySq": 0x15,
			"pEvent": 0x16, "pEventQueue": 0x17, "pRHeld": 0x18,
			"pRefusedBySub": 0x19, "pRefusalEvent": 0x1a,
			"pSSub": 0x20, "pSSubByState": 0x21, "pAttempt": 0x22,
			"pAttemptHash": 0x23, "pAttemptOpen": 0x24, "pSpend": 0x25,
		},
		meta: map[string]byte{
			"keySchemaVersion": 0x01, "keySettleIndex": 0x10,
			"keyAddIndex": 0x11, "keyLastEventID": 0x12,
			"keyRefusalCountPrefix": 0x20,
		},
		records: map[string][]uint64{
			"Plan":                 {1, 2, 3, 4, 5, 6, 10, 11, 12, 13, 14},
			"ReceiverSubscription": {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17},
			"Payment":              {1, 2, 3, 4, 5, 6, 7, 8, 9, 10},
			"Event":                {1, 2, 3, 4, 5, 6, 7, 8, 9, 10},
			"SenderSubscription": {1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12,
				20, 21, 22, 23, 24, 30, 31, 32, 33,
				40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52},
			"Attempt": {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14},
		},
	},
	4: {
		tables: map[string]byte{
			"pMeta": 0x01,
			"pPlan": 0x10, "pRSub": 0x11, "pRSubByState": 0x12,
			"pRSubByPaid": 0x13, "pPayment": 0x14, "pPaymentBySq": 0x15,
			"pEvent": 0x16, "pEventQueue": 0x17, "pRHeld": 0x18,
			"pRefusedBySub": 0x19, "pRefusalEvent": 0x1a,
			"pSSub": 0x20, "pSSubByState": 0x21, "pAttempt": 0x22,
			"pAttemptHash": 0x23, "pAttemptOpen": 0x24, "pSpend": 0x25,
		},
		meta: map[string]byte{
			"keySchemaVersion": 0x01, "keySettleIndex": 0x10,
			"keyAddIndex": 0x11, "keyLastEventID": 0x12,
			"keyRefusalCountPrefix": 0x20,
		},
		records: map[string][]uint64{
			"Plan":                 {1, 2, 3, 4, 5, 6, 10, 11, 12, 13, 14},
			"ReceiverSubscription": {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18},
			"Payment":              {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14},
			"Event":                {1, 2, 3, 4, 5, 6, 7, 8, 9, 10},
			"SenderSubscription": {1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12,
				20, 21, 22, 23, 24, 30, 31, 32, 33,
				40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53},
			"Attempt": {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14},
		},
	},
	5: {
		tables: map[string]byte{
			"pMeta": 0x01,
			"pPlan": 0x10, "pRSub": 0x11, "pRSubByState": 0x12,
			"pRSubByPaid": 0x13, "pPayment": 0x14, "pPaymentBySq": 0x15,
			"pEvent": 0x16, "pEventQueue": 0x17, "pRHeld": 0x18,
			"pRefusedBySub": 0x19, "pRefusalEvent": 0x1a, "pRSubByPublic": 0x1b,
			"pSSub": 0x20, "pSSubByState": 0x21, "pAttempt": 0x22,
			"pAttemptHash": 0x23, "pAttemptOpen": 0x24, "pSpend": 0x25,
			"pIdem": 0x30, "pIdemByTime": 0x31, "pDelivery": 0x32,
		},
		meta: map[string]byte{
			"keySchemaVersion": 0x01, "keySettleIndex": 0x10,
			"keyAddIndex": 0x11, "keyLastEventID": 0x12, "keyIdemCount": 0x40,
			"keyRefusalCountPrefix": 0x20,
			// Optional (absent means unbound): a ledger without it
			// binds at its next start, so it needs no rewrite.
			"keyNodeBinding": 0x30,
		},
		records: map[string][]uint64{
			"Plan":                 {1, 2, 3, 4, 5, 6, 10, 11, 12, 13, 14},
			"ReceiverSubscription": {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18},
			"Payment":              {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14},
			"Event":                {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11},
			// Idempotency keys and per-endpoint webhook deliveries:
			// new tables, empty in older ledgers, so no rewrite.
			"IdemRecord": {1, 2, 3, 4, 5, 6, 7, 8},
			"Delivery":   {1, 2, 3, 4, 5, 6},
			"SenderSubscription": {1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12,
				20, 21, 22, 23, 24, 30, 31, 32, 33,
				40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53},
			"Attempt": {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14},
		},
	},
	6: {
		tables: map[string]byte{
			"pMeta": 0x01,
			"pPlan": 0x10, "pRSub": 0x11, "pRSubByState": 0x12,
			"pRSubByPaid": 0x13, "pPayment": 0x14, "pPaymentBySq": 0x15,
			"pEvent": 0x16, "pEventQueue": 0x17, "pRHeld": 0x18,
			"pRefusedBySub": 0x19, "pRefusalEvent": 0x1a, "pRSubByPublic": 0x1b,
			"pSSub": 0x20, "pSSubByState": 0x21, "pAttempt": 0x22,
			"pAttemptHash": 0x23, "pAttemptOpen": 0x24, "pSpend": 0x25,
			"pIdem": 0x30, "pIdemByTime": 0x31, "pDelivery": 0x32,
		},
		meta: map[string]byte{
			"keySchemaVersion": 0x01, "keySettleIndex": 0x10,
			"keyAddIndex": 0x11, "keyLastEventID": 0x12, "keyIdemCount": 0x40,
			"keyRefusalCountPrefix": 0x20,
			// Optional (absent means unbound): a ledger without it
			// binds at its next start, so it needs no rewrite.
			"keyNodeBinding": 0x30,
		},
		records: map[string][]uint64{
			"Plan":                 {1, 2, 3, 4, 5, 6, 10, 11, 12, 13, 14},
			"ReceiverSubscription": {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18},
			"Payment":              {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14},
			"Event":                {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11},
			// IdemRecord.Applied (9): false in older records.
			"IdemRecord": {1, 2, 3, 4, 5, 6, 7, 8, 9},
			"Delivery":   {1, 2, 3, 4, 5, 6},
			"SenderSubscription": {1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12,
				20, 21, 22, 23, 24, 30, 31, 32, 33,
				40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53},
			"Attempt": {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14},
		},
	},
	7: {
		tables: map[string]byte{
			"pMeta": 0x01,
			"pPlan": 0x10, "pRSub": 0x11, "pRSubByState": 0x12,
			"pRSubByPaid": 0x13, "pPayment": 0x14, "pPaymentBySq": 0x15,
			"pEvent": 0x16, "pEventQueue": 0x17, "pRHeld": 0x18,
			"pRefusedBySub": 0x19, "pRefusalEvent": 0x1a, "pRSubByPublic": 0x1b,
			"pSSub": 0x20, "pSSubByState": 0x21, "pAttempt": 0x22,
			"pAttemptHash": 0x23, "pAttemptOpen": 0x24, "pSpend": 0x25,
			"pIdem": 0x30, "pIdemByTime": 0x31, "pDelivery": 0x32,
		},
		meta: map[string]byte{
			"keySchemaVersion": 0x01, "keySettleIndex": 0x10,
			"keyAddIndex": 0x11, "keyLastEventID": 0x12, "keyIdemCount": 0x40,
			"keyRefusalCountPrefix": 0x20,
			// Optional (absent means unbound): a ledger without it
			// binds at its next start, so it needs no rewrite.
			"keyNodeBinding": 0x30,
		},
		records: map[string][]uint64{
			"Plan":                 {1, 2, 3, 4, 5, 6, 10, 11, 12, 13, 14},
			"ReceiverSubscription": {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18},
			"Payment":              {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14},
			"Event":                {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11},
			// IdemRecord.Applied (9): false in older records.
			"IdemRecord": {1, 2, 3, 4, 5, 6, 7, 8, 9},
			"Delivery":   {1, 2, 3, 4, 5, 6},
			"SenderSubscription": {1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12,
				20, 21, 22, 23, 24, 30, 31, 32, 33,
				40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53},
			// Attempt.Destination (15): zero (the primary) in older records.
			"Attempt": {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
		},
	},
	8: {
		tables: map[string]byte{
			"pMeta": 0x01,
			"pPlan": 0x10, "pRSub": 0x11, "pRSubByState": 0x12,
			"pRSubByPaid": 0x13, "pPayment": 0x14, "pPaymentBySq": 0x15,
			"pEvent": 0x16, "pEventQueue": 0x17, "pRHeld": 0x18,
			"pRefusedBySub": 0x19, "pRefusalEvent": 0x1a, "pRSubByPublic": 0x1b,
			"pSSub": 0x20, "pSSubByState": 0x21, "pAttempt": 0x22,
			"pAttemptHash": 0x23, "pAttemptOpen": 0x24, "pSpend": 0x25,
			"pIdem": 0x30, "pIdemByTime": 0x31, "pDelivery": 0x32,
		},
		meta: map[string]byte{
			"keySchemaVersion": 0x01, "keySettleIndex": 0x10,
			"keyAddIndex": 0x11, "keyLastEventID": 0x12, "keyIdemCount": 0x40,
			"keyRefusalCountPrefix": 0x20,
			// Optional (absent means unbound): a ledger without it
			// binds at its next start, so it needs no rewrite.
			"keyNodeBinding": 0x30,
		},
		records: map[string][]uint64{
			"Plan":                 {1, 2, 3, 4, 5, 6, 10, 11, 12, 13, 14},
			"ReceiverSubscription": {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18},
			"Payment":              {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14},
			// Event.FinishedAt (12): absent (nil, "not kept") in
			// older records.
			"Event": {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12},
			// IdemRecord.Applied (9): false in older records.
			"IdemRecord": {1, 2, 3, 4, 5, 6, 7, 8, 9},
			// Delivery.Manual (7): false in older records.
			"Delivery": {1, 2, 3, 4, 5, 6, 7},
			"SenderSubscription": {1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12,
				20, 21, 22, 23, 24, 30, 31, 32, 33,
				40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53},
			"Attempt": {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
		},
	},
	// The same tables and records as 8; pRSubByPaid keys a past-due
	// subscription by the end of its grace (migrateDueIndex).
	9: {
		tables: map[string]byte{
			"pMeta": 0x01,
			"pPlan": 0x10, "pRSub": 0x11, "pRSubByState": 0x12,
			"pRSubByPaid": 0x13, "pPayment": 0x14, "pPaymentBySq": 0x15,
			"pEvent": 0x16, "pEventQueue": 0x17, "pRHeld": 0x18,
			"pRefusedBySub": 0x19, "pRefusalEvent": 0x1a, "pRSubByPublic": 0x1b,
			"pSSub": 0x20, "pSSubByState": 0x21, "pAttempt": 0x22,
			"pAttemptHash": 0x23, "pAttemptOpen": 0x24, "pSpend": 0x25,
			"pIdem": 0x30, "pIdemByTime": 0x31, "pDelivery": 0x32,
		},
		meta: map[string]byte{
			"keySchemaVersion": 0x01, "keySettleIndex": 0x10,
			"keyAddIndex": 0x11, "keyLastEventID": 0x12, "keyIdemCount": 0x40,
			"keyRefusalCountPrefix": 0x20,
			// Optional (absent means unbound): a ledger without it
			// binds at its next start, so it needs no rewrite.
			"keyNodeBinding": 0x30,
		},
		records: map[string][]uint64{
			"Plan":                 {1, 2, 3, 4, 5, 6, 10, 11, 12, 13, 14},
			"ReceiverSubscription": {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18},
			"Payment":              {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14},
			// Event.FinishedAt (12): absent (nil, "not kept") in
			// older records.
			"Event": {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12},
			// IdemRecord.Applied (9): false in older records.
			"IdemRecord": {1, 2, 3, 4, 5, 6, 7, 8, 9},
			// Delivery.Manual (7): false in older records.
			"Delivery": {1, 2, 3, 4, 5, 6, 7},
			"SenderSubscription": {1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12,
				20, 21, 22, 23, 24, 30, 31, 32, 33,
				40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53},
			"Attempt": {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
		},
	},
}

// storedRecords makes an empty value of every stored record type, by the
// name of its type. A new record type goes here (the test finds it in the
// source and asks for it).
var storedRecords = map[string]func() recorder{
	"Plan":                 func() recorder { return &Plan{} },
	"ReceiverSubscription": func() recorder { return &ReceiverSubscription{} },
	"Payment":              func() recorder { return &Payment{} },
	"Event":                func() recorder { return &Event{} },
	"SenderSubscription":   func() recorder { return &SenderSubscription{} },
	"Attempt":              func() recorder { return &Attempt{} },
	"IdemRecord":           func() recorder { return &IdemRecord{} },
	"Delivery":             func() recorder { return &Delivery{} },
}

var (
	tableConst = regexp.MustCompile(`^p[A-Z]`)
	metaVar    = regexp.MustCompile(`^key[A-Z]`)
)

// currentLayout reads the layout this code writes: table constants and
// meta keys from the package source, record types from the source (every
// type with a records method) and their TLV types from records().
func currentLayout(t *testing.T) schemaLayout {
	t.Helper()
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, ".", func(fi os.FileInfo) bool {
		return !strings.HasSuffix(fi.Name(), "_test.go")
	}, 0)
	require.NoError(t, err)
	pkg, ok := pkgs["store"]
	require.True(t, ok)

	lit := func(e ast.Expr) (byte, bool) {
		bl, ok := e.(*ast.BasicLit)
		if !ok || bl.Kind != token.INT {
			return 0, false
		}
		v, err := strconv.ParseUint(bl.Value, 0, 8)
		return byte(v), err == nil
	}
	l := schemaLayout{tables: map[string]byte{}, meta: map[string]byte{},
		records: map[string][]uint64{}}
	for _, f := range pkg.Files {
		for _, decl := range f.Decls {
			switch d := decl.(type) {
			case *ast.GenDecl:
				for _, spec := range d.Specs {
					vs, ok := spec.(*ast.ValueSpec)
					if !ok || len(vs.Values) != len(vs.Names) {
						continue
					}
					for i, name := range vs.Names {
						switch {
						case d.Tok == token.CONST && tableConst.MatchString(name.Name):
							if v, ok := lit(vs.Values[i]); ok {
								l.tables[name.Name] = v
							}
						case d.Tok == token.VAR && metaVar.MatchString(name.Name):
							cl, ok := vs.Values[i].(*ast.CompositeLit)
							if !ok || len(cl.Elts) != 2 {
								continue
							}
							if id, ok := cl.Elts[0].(*ast.Ident); !ok || id.Name != "pMeta" {
								continue
							}
							if v, ok := lit(cl.Elts[1]); ok {
								l.meta[name.Name] = v
							}
						}
					}
				}
			case *ast.FuncDecl:
				if d.Name.Name != "records" || d.Recv == nil || len(d.Recv.List) != 1 {
					continue
				}
				star, ok := d.Recv.List[0].Type.(*ast.StarExpr)
				if !ok {
					continue
				}
				id, ok := star.X.(*ast.Ident)
				if !ok {
					continue
				}
				mk, ok := storedRecords[id.Name]
				require.True(t, ok, "%s is a new stored record type: add it to "+
					"storedRecords in schema_test.go", id.Name)
				var types []uint64
				for _, r := range mk().records() {
					types = append(types, uint64(r.Type()))
				}
				l.records[id.Name] = types
			}
		}
	}
	require.NotEmpty(t, l.tables)
	require.Contains(t, l.meta, "keySchemaVersion")
	require.Len(t, l.records, len(storedRecords))
	return l
}

// layoutDiff lists what differs between the pinned and the current layout.
func layoutDiff(pinned, cur schemaLayout) []string {
	var out []string
	bytesDiff := func(what string, a, b map[string]byte) {
		for _, k := range slices.Sorted(maps.Keys(b)) {
			if v, ok := a[k]; !ok {
				out = append(out, fmt.Sprintf("new %s %s = %#02x", what, k, b[k]))
			} else if v != b[k] {
				out = append(out, fmt.Sprintf("%s %s changed from %#02x to %#02x",
					what, k, v, b[k]))
			}
		}
		for _, k := range slices.Sorted(maps.Keys(a)) {
			if _, ok := b[k]; !ok {
				out = append(out, fmt.Sprintf("%s %s removed", what, k))
			}
		}
	}
	bytesDiff("table", pinned.tables, cur.tables)
	bytesDiff("meta key", pinned.meta, cur.meta)
	for _, name := range slices.Sorted(maps.Keys(cur.records)) {
		if p, ok := pinned.records[name]; !ok {
			out = append(out, fmt.Sprintf("new record %s with TLV types %v",
				name, cur.records[name]))
		} else if !slices.Equal(p, cur.records[name]) {
			out = append(out, fmt.Sprintf("record %s encodes TLV types %v, "+
				"pinned %v", name, cur.records[name], p))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(pinned.records)) {
		if _, ok := cur.records[name]; !ok {
			out = append(out, fmt.Sprintf("record %s removed", name))
		}
	}
	return out
}

// TestStoredFieldAddedWithoutSchemaBump reproduces fields added to stored
// records (and a table added) under an unchanged SchemaVersion: an older
// binary opened such a store, decoded the records without the new TLV types
// and dropped them when it rewrote a record. The layout of every version is
// pinned; a change without a bump fails here, saying what to do.
func TestStoredFieldAddedWithoutSchemaBump(t *testing.T) {
	t.Parallel()
	cur := currentLayout(t)
	pinned, ok := schemaHistory[SchemaVersion]
	require.True(t, ok, "schemaHistory has no entry for SchemaVersion %d: "+
		"add one with the layout it writes", SchemaVersion)
	if diff := layoutDiff(pinned, cur); len(diff) > 0 {
		t.Fatalf("the stored layout differs from the one pinned for schema "+
			"version %d:\n  %s\n\nTo change what the store writes: bump "+
			"SchemaVersion (schema.go) to %d, add the migration step "+
			"{from: %d, ...} to migrations (an apply that does nothing if "+
			"old records read the new fields as zero), and add "+
			"schemaHistory[%d] (schema_test.go) with the new layout, "+
			"leaving the older entries as they are. Older binaries then "+
			"refuse the store instead of dropping the new fields.",
			SchemaVersion, strings.Join(diff, "\n  "), SchemaVersion+1,
			SchemaVersion, SchemaVersion+1)
	}
}

// TestMigrationStepMissing checks that there is exactly one migration step
// per version and one pinned layout per version.
func TestMigrationStepMissing(t *testing.T) {
	t.Parallel()
	require.Len(t, migrations, int(SchemaVersion)-1,
		"one migration step per version after the first")
	for i, m := range migrations {
		require.EqualValues(t, i+1, m.from, "migrations[%d]", i)
		require.NotEmpty(t, m.what, "migrations[%d] says what changed", i)
		require.True(t, (m.apply == nil) != (m.batch == nil),
			"migrations[%d] has either apply or batch", i)
	}
	for v := uint32(1); v <= SchemaVersion; v++ {
		require.Contains(t, schemaHistory, v, "layout of schema version %d", v)
	}
	require.Len(t, schemaHistory, int(SchemaVersion))
}

// storedVersion reads the schema version of the store in dir.
func storedVersion(t *testing.T, dir string) uint32 {
	t.Helper()
	bdb, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
	require.NoError(t, err)
	defer bdb.Close()
	var v uint32
	require.NoError(t, bdb.View(func(txn *badger.Txn) error {
		item, err := txn.Get(keySchemaVersion)
		if err != nil {
			return err
		}
		return item.Value(func(b []byte) error {
			v = beU32(b)
			return nil
		})
	}))
	return v
}

func beU32(b []byte) uint32 { return uint32(beU64(append(make([]byte, 4), b...))) }

// encodeAsVersion encodes r with only the TLV types schema version v knew,
// as a binary of that version wrote it.
func encodeAsVersion(t *testing.T, v uint32, name string, r recorder) []byte {
	t.Helper()
	known := schemaHistory[v].records[name]
	var recs []tlv.Record
	for _, rec := range r.records() {
		if slices.Contains(known, uint64(rec.Type())) {
			recs = append(recs, rec)
		}
	}
	b, err := encodeValue(recs)
	require.NoError(t, err)
	return b
}

// TestOlderStoreIsMigrated opens a store written by every older schema
// version: Open migrates it to SchemaVersion, stamps it, and its records
// read back with the fields that version did not know as zero.
func TestOlderStoreIsMigrated(t *testing.T) {
	t.Parallel()
	for v := uint32(1); v < SchemaVersion; v++ {
		t.Run(fmt.Sprintf("from %d", v), func(t *testing.T) {
			t.Parallel()
			dir := closedStore(t)
			pay := &Payment{Hash: hashOf(7), SubID: subID(1), Seq: 7,
				Amount: 1500, State: PaymentCredited, ReceivedAt: at(7),
				Rate: 1000}
			att := &Attempt{SubID: subID(2), Seq: 3, Hash: hashOf(3),
				Amount: 1000, State: AttemptInFlight, Tries: 2}
			rawBadger(t, dir, map[string][]byte{
				string(keySchemaVersion):     be32(v),
				string(paymentKey(pay.Hash)): encodeAsVersion(t, v, "Payment", pay),
				string(attemptKey(att.SubID, att.Seq)): encodeAsVersion(t, v,
					"Attempt", att),
			})

			db, err := Open(testCtx(t), dir, DefaultOptions())
			require.NoError(t, err)
			ctx := testCtx(t)
			// Fields the old version did not know read as zero.
			var wantPay Payment
			require.NoError(t, decodeRecord(
				encodeAsVersion(t, v, "Payment", pay), &wantPay))
			var wantAtt Attempt
			require.NoError(t, decodeRecord(
				encodeAsVersion(t, v, "Attempt", att), &wantAtt))
			require.Equal(t, pay.Amount, wantPay.Amount)
			require.NoError(t, db.Receiver().View(ctx, func(tx ReceiverTx) error {
				p, err := tx.Payment(pay.Hash)
				require.NoError(t, err)
				require.Equal(t, pay.Amount, p.Amount)
				require.Equal(t, wantPay, *p)
				return nil
			}))
			require.NoError(t, db.Sender().View(ctx, func(tx SenderTx) error {
				a, err := tx.Attempt(att.SubID, att.Seq)
				require.NoError(t, err)
				require.Equal(t, wantAtt, *a)
				return nil
			}))
			if v == 1 {
				require.Zero(t, wantPay.Rate, "v1 had no Payment.Rate")
				require.Zero(t, wantAtt.Tries, "v1 had no Attempt.Tries")
			}
			require.NoError(t, db.Close())
			require.Equal(t, SchemaVersion, storedVersion(t, dir))
		})
	}
}

// TestNewerStoreRefused checks that a store stamped by a newer satstream
// is refused with ErrSchemaTooNew, a message naming both versions, and left
// as it was.
func TestNewerStoreRefused(t *testing.T) {
	t.Parallel()
	dir := closedStore(t)
	rawBadger(t, dir, map[string][]byte{
		string(keySchemaVersion): be32(SchemaVersion + 1)})
	db, err := Open(context.Background(), dir, DefaultOptions())
	require.ErrorIs(t, err, ErrSchemaTooNew)
	require.Nil(t, db)
	require.ErrorContains(t, err, fmt.Sprintf("schema version %d", SchemaVersion+1))
	require.ErrorContains(t, err, fmt.Sprintf("up to %d; upgrade satstream",
		SchemaVersion))
	require.Equal(t, SchemaVersion+1, storedVersion(t, dir))
}

// TestMigrationStepFailsHalfway checks that steps run one transaction each:
// a failing step leaves none of its writes and the previous stamp, so the
// next Open runs it again.
func TestMigrationStepFailsHalfway(t *testing.T) {
	t.Parallel()
	db, _ := openTestDB(t)
	boom := errors.New("boom")
	steps := []migration{
		{from: 1, what: "one", apply: func(t *txn) error {
			return t.set([]byte{pMeta, 0xf1}, []byte("one"))
		}},
		{from: 2, what: "two", apply: func(t *txn) error {
			if err := t.set([]byte{pMeta, 0xf2}, []byte("two")); err != nil {
				return err
			}
			return boom
		}},
	}
	err := db.migrate(testCtx(t), 1, 3, steps)
	require.ErrorIs(t, err, boom)
	require.ErrorContains(t, err, "from schema version 2 to 3 (two)")

	v, found, err := db.readSchema()
	require.NoError(t, err)
	require.True(t, found)
	require.EqualValues(t, 2, v)
	require.NoError(t, db.bdb.View(func(txn *badger.Txn) error {
		_, err := txn.Get([]byte{pMeta, 0xf1})
		require.NoError(t, err, "step one committed")
		_, err = txn.Get([]byte{pMeta, 0xf2})
		require.ErrorIs(t, err, badger.ErrKeyNotFound, "step two left nothing")
		return nil
	}))

	require.ErrorContains(t, db.migrate(testCtx(t), 3, 4, steps), "no migration from schema version 3")
}

// TestSchema4EventsKeptTheSecret reproduces a schema 4 ledger whose event
// payloads (webhook bodies, the API's event list) carried the payer's
// secret subscription id, whose events had no id but the counter a restored
// ledger counts again, and which had no public id index. Opening it
// migrates in batches (more events than one batch holds): every
// subscription is found by its public id, every event has a distinct
// UID derived from it, and no payload holds the secret any more.
func TestSchema4EventsKeptTheSecret(t *testing.T) {
	t.Parallel()
	dir := closedStore(t)
	raw := map[string][]byte{string(keySchemaVersion): be32(4)}
	subs := []SubID{subID(1), subID(2), subID(3)}
	for _, id := range subs {
		s := &ReceiverSubscription{ID: id, PlanID: "p", State: SubActive,
			CreatedAt: at(1), UpdatedAt: at(1)}
		raw[string(rsubKey(id))] = encodeAsVersion(t, 4,
			"ReceiverSubscription", s)
	}
	const events = 2*migrateBatch + 7
	for i := 1; i <= events; i++ {
		id := subs[i%len(subs)]
		ev := &Event{ID: EventID(i), SubID: id, Type: EventPaymentReceived,
			Payload: []byte(`{"subscription":{"id":"` + id.Hex() +
				`"},"payment":{"subscription_id":"` + id.Hex() + `"}}`),
			CreatedAt: at(int64(i))}
		raw[string(eventKey(ev.ID))] = encodeAsVersion(t, 4, "Event", ev)
	}
	raw[string(keyLastEventID)] = be64(events)
	rawBadger(t, dir, raw)

	db, err := Open(testCtx(t), dir, DefaultOptions())
	require.NoError(t, err)
	defer func() { require.NoError(t, db.Close()) }()

	uids := map[EventUID]bool{}
	require.NoError(t, db.Receiver().View(testCtx(t), func(tx ReceiverTx) error {
		for _, id := range subs {
			s, err := tx.SubscriptionByPublicID(id.PublicID())
			require.NoError(t, err)
			require.Equal(t, id, s.ID)
		}
		for i := 1; i <= events; i++ {
			ev, err := tx.Event(EventID(i))
			require.NoError(t, err)
			require.False(t, ev.UID.IsZero(), "event %d has a UID", i)
			require.False(t, uids[ev.UID], "event %d's UID is new", i)
			uids[ev.UID] = true
			require.NotContains(t, string(ev.Payload), ev.SubID.Hex())
			require.Contains(t, string(ev.Payload),
				`"id":"`+ev.SubID.PublicID().String()+`"`)
			require.Contains(t, string(ev.Payload),
				`"subscription_id":"`+ev.SubID.PublicID().String()+`"`)
		}
		return nil
	}))
	// The counter still orders new events after the old ones.
	require.NoError(t, db.Receiver().Update(testCtx(t), func(tx ReceiverTx) error {
		ev := &Event{SubID: subs[0], Type: EventSubscriptionUpdated,
			CreatedAt: at(1)}
		require.NoError(t, tx.AppendEvent(ev))
		require.EqualValues(t, events+1, ev.ID)
		require.False(t, uids[ev.UID])
		return nil
	}))
}

// TestBatchedMigrationCrashResumes: a batched step that fails after some
// batches committed leaves the old version stamped, and the next run
// finishes it (each batch's rewrite is idempotent).
func TestBatchedMigrationCrashResumes(t *testing.T) {
	t.Parallel()
	db, _ := openTestDB(t)
	require.NoError(t, db.Receiver().Update(testCtx(t), func(tx ReceiverTx) error {
		for i := 1; i <= migrateBatch+3; i++ {
			if err := tx.AppendEvent(&Event{Type: EventPaymentReceived,
				CreatedAt: at(int64(i))}); err != nil {
				return err
			}
		}
		return nil
	}))
	boom := errors.New("boom")
	calls := 0
	steps := []migration{{from: 1, what: "batched", batch: func(t *txn,
		after []byte, lim batchLimit) ([]byte, error) {

		calls++
		if calls == 2 {
			return nil, boom
		}
		return migratePublicIDs(t, after, lim)
	}}}
	require.NoError(t, db.bdb.Update(func(txn *badger.Txn) error {
		return txn.Set(keySchemaVersion, be32(1))
	}))
	require.ErrorIs(t, db.migrate(testCtx(t), 1, 2, steps), boom)
	v, _, err := db.readSchema()
	require.NoError(t, err)
	require.EqualValues(t, 1, v, "not stamped before the last batch")
	require.NoError(t, db.migrate(testCtx(t), 1, 2, steps))
	v, _, err = db.readSchema()
	require.NoError(t, err)
	require.EqualValues(t, 2, v)
}

// schema4Events returns, keyed for rawBadger, a schema 4 store of n
// payment events of sub, each with pad in its payload.
func schema4Events(t *testing.T, sub SubID, n int, pad string) map[string][]byte {
	t.Helper()
	raw := map[string][]byte{string(keySchemaVersion): be32(4)}
	for i := 1; i <= n; i++ {
		ev := &Event{ID: EventID(i), SubID: sub, Type: EventPaymentReceived,
			Payload: []byte(`{"subscription":{"id":"` + sub.Hex() +
				`","pad":"` + pad + `"},"payment":{"subscription_id":"` +
				sub.Hex() + `"}}`),
			CreatedAt: at(int64(i))}
		raw[string(eventKey(ev.ID))] = encodeAsVersion(t, 4, "Event", ev)
	}
	raw[string(keyLastEventID)] = be64(uint64(n))
	return raw
}

// TestMigrationBatchTooBigForSmallMemtable reproduces a schema 4 -> 5
// migration whose batches of 500 events (~800 bytes each) exceeded what
// badger lets one transaction hold on the smallest memtable allowed
// (ErrTxnTooBig), so Open failed, and failed again at every retry.
func TestMigrationBatchTooBigForSmallMemtable(t *testing.T) {
	t.Parallel()
	dir := closedStore(t)
	id := subID(1)
	const events = migrateBatch + 7
	rawBadger(t, dir, schema4Events(t, id, events, strings.Repeat("x", 700)))
	opts := DefaultOptions()
	opts.MemTableSize = 1 << 20
	db, err := Open(testCtx(t), dir, opts)
	require.NoError(t, err)
	defer func() { require.NoError(t, db.Close()) }()
	require.NoError(t, db.Receiver().View(testCtx(t), func(tx ReceiverTx) error {
		for i := 1; i <= events; i++ {
			ev, err := tx.Event(EventID(i))
			require.NoError(t, err)
			require.False(t, ev.UID.IsZero())
			require.NotContains(t, string(ev.Payload), id.Hex())
		}
		return nil
	}))
}

// TestRestoredBackupMigratesToNewEventIDs reproduces migrating the same
// pre-upgrade store twice (a backup restored after the upgrade): random
// UIDs re-issued every old event under a new id, so a consumer that
// deduplicates by id processed it twice. The same events must get the
// same ids.
func TestRestoredBackupMigratesToNewEventIDs(t *testing.T) {
	t.Parallel()
	id := subID(1)
	raw := schema4Events(t, id, 5, "")
	uids := func() map[EventID]EventUID {
		dir := closedStore(t)
		rawBadger(t, dir, raw)
		db, err := Open(testCtx(t), dir, DefaultOptions())
		require.NoError(t, err)
		defer func() { require.NoError(t, db.Close()) }()
		got := map[EventID]EventUID{}
		require.NoError(t, db.Receiver().View(testCtx(t),
			func(tx ReceiverTx) error {
				for i := EventID(1); i <= 5; i++ {
					ev, err := tx.Event(i)
					require.NoError(t, err)
					got[i] = ev.UID
				}
				return nil
			}))
		return got
	}
	first := uids()
	require.Equal(t, first, uids())
	seen := map[EventUID]bool{}
	for _, u := range first {
		require.False(t, u.IsZero())
		require.False(t, seen[u], "UIDs differ between events")
		seen[u] = true
	}
}

// TestMigrationLeavesSecretInLegacyReasons reproduces the rows older
// versions kept for payments to unknown subscriptions: no subscription
// id, the secret in the refusal reason (and in the payment.refused
// event's payload), which the schema 5 migration left as they were.
func TestMigrationLeavesSecretInLegacyReasons(t *testing.T) {
	t.Parallel()
	secret := SubID{0xee, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}
	pub := secret.PublicID().String()
	plan := strings.Repeat("09", 16)
	reasons := map[Hash][2]string{
		{1}: {"unknown_subscription: subscription " + secret.Hex() +
			" is not known", "unknown_subscription: subscription " +
			pub + " is not known"},
		{2}: {"unknown_subscription: cancel for unknown subscription " +
			secret.Hex(), "unknown_subscription: cancel for " +
			"unknown subscription " + pub},
		{3}: {"unknown_plan: plan " + plan + " is not known",
			"unknown_plan: plan " + plan + " is not known"},
	}
	dir := closedStore(t)
	raw := map[string][]byte{string(keySchemaVersion): be32(4)}
	for h, r := range reasons {
		p := &Payment{Hash: h, Seq: 1, State: PaymentRefused,
			ReceivedAt: at(1), Reason: r[0]}
		raw[string(paymentKey(h))] = encodeAsVersion(t, 4, "Payment", p)
	}
	ev := &Event{ID: 1, Type: EventPaymentRefused, CreatedAt: at(1),
		Payload: []byte(`{"payment":{"plan_id":"` + plan + `","reason":` +
			`"unknown_subscription: subscription ` + secret.Hex() +
			` is not known"}}`)}
	raw[string(eventKey(1))] = encodeAsVersion(t, 4, "Event", ev)
	raw[string(keyLastEventID)] = be64(1)
	rawBadger(t, dir, raw)

	db, err := Open(testCtx(t), dir, DefaultOptions())
	require.NoError(t, err)
	defer func() { require.NoError(t, db.Close()) }()
	require.NoError(t, db.Receiver().View(testCtx(t), func(tx ReceiverTx) error {
		for h, r := range reasons {
			p, err := tx.Payment(h)
			require.NoError(t, err)
			require.Equal(t, r[1], p.Reason)
		}
		ev, err := tx.Event(1)
		require.NoError(t, err)
		require.Equal(t, `{"payment":{"plan_id":"`+plan+`","reason":`+
			`"unknown_subscription: subscription `+pub+
			` is not known"}}`, string(ev.Payload))
		return nil
	}))
}

// TestSchema8PastDueInGraceReadEverySweep opens a schema 8 store, whose
// index keyed past-due subscriptions by their paid time, so the expiry
// scan read each one in grace at every sweep. The step to 9 must key them
// by the end of grace, across more than one batch, and leave the others.
func TestSchema8PastDueInGraceReadEverySweep(t *testing.T) {
	t.Parallel()
	// closedStore holds subscription 1, active and paid far ahead:
	// base keeps these apart from it.
	dir := closedStore(t)
	const base = 1000
	const grace = 100 * time.Second
	kv := map[string][]byte{string(keySchemaVersion): be32(8)}
	add := func(s *ReceiverSubscription) {
		kv[string(rsubKey(s.ID))] = encodeAsVersion(t, 8,
			"ReceiverSubscription", s)
		kv[string(rsubStateKey(s.State, s.ID))] = nil
		kv[string(rsubPublicKey(s.ID.PublicID()))] = s.ID[:]
		// Schema 8 indexed every watched state by paid time.
		kv[string(rsubPaidKey(s.PaidUntil, s.ID))] = nil
	}
	const n = migrateBatch + 3
	for i := 1; i <= n; i++ {
		add(&ReceiverSubscription{ID: subID(base + uint64(i)), PlanID: "p",
			State: SubPastDue, PaidUntil: at(int64(i)),
			Terms: Terms{Grace: grace}})
	}
	active := &ReceiverSubscription{ID: subID(base + n + 1), PlanID: "p",
		State: SubActive, PaidUntil: at(50), Terms: Terms{Grace: grace}}
	noGrace := &ReceiverSubscription{ID: subID(base + n + 2), PlanID: "p",
		State: SubPastDue, PaidUntil: at(60)}
	add(active)
	add(noGrace)
	rawBadger(t, dir, kv)

	db, err := Open(testCtx(t), dir, DefaultOptions())
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	rs := db.Receiver()
	require.NotContains(t, dueBefore(t, rs, at(100)), subID(base+1),
		"in grace until 101")
	require.Subset(t, dueBefore(t, rs, at(100)),
		[]SubID{active.ID, noGrace.ID})
	due := dueBefore(t, rs, at(1000))
	require.Len(t, due, n+2)
	require.Equal(t, []SubID{active.ID, noGrace.ID, subID(base + 1)},
		due[:3])
	require.Equal(t, subID(base+n), due[len(due)-1])
	keys, err := db.KeyCount([]byte{pRSubByPaid})
	require.NoError(t, err)
	require.Equal(t, n+3, keys, "one index entry each (and 1's)")
}
