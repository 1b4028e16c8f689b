package tlv

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/lightningnetwork/lnd/routing/route"
	"github.com/stretchr/testify/require"
)

// update regenerates the generated section of docs/protocol.md and the fuzz
// seed corpus from testdata/vectors.json.
var update = flag.Bool("update", false, "rewrite docs/protocol.md vectors "+
	"section and fuzz seeds from testdata/vectors.json")

const (
	vectorsPath = "testdata/vectors.json"
	docPath     = "../docs/protocol.md"
	docBegin    = "<!-- BEGIN GENERATED VECTORS: edit tlv/testdata/" +
		"vectors.json, then go test ./tlv -run TestDocVectors -update -->"
	docEnd = "<!-- END GENERATED VECTORS -->"
)

// vectorFields is the decoded form of a records vector.
type vectorFields struct {
	Version        uint8   `json:"version"`
	SubscriptionID string  `json:"subscription_id"`
	Sequence       uint64  `json:"sequence"`
	PlanID         *string `json:"plan_id"`
	Cancel         bool    `json:"cancel"`
}

// recordsVector is one entry of records_valid or records_invalid.
type recordsVector struct {
	Name          string            `json:"name"`
	Description   string            `json:"description"`
	Fields        *vectorFields     `json:"fields"`
	CustomRecords map[string]string `json:"custom_records"`
	OtherRecords  map[string]string `json:"other_records"`
	StreamHex     string            `json:"stream_hex"`
	WireBytes     int               `json:"wire_bytes"`
	LncliData     string            `json:"lncli_data"`
	Error         string            `json:"error"`
}

// offerFieldsJSON is the decoded form of an offer vector.
type offerFieldsJSON struct {
	Node             string   `json:"node"`
	ExtraNodes       []string `json:"extra_node_ids"`
	SubscriptionID   *string  `json:"subscription_id"`
	PlanID           *string  `json:"plan_id"`
	PriceMsatPerSec  uint64   `json:"price_msat_per_sec"`
	MinPaymentMsat   uint64   `json:"min_payment_msat"`
	DefaultIncrement uint64   `json:"default_increment_sec"`
	GracePeriod      uint64   `json:"grace_period_sec"`
	MaxPrepay        uint64   `json:"max_prepay_sec"`
	Label            string   `json:"label"`
}

// offerVector is one entry of offers_valid or offers_invalid.
type offerVector struct {
	Name        string           `json:"name"`
	Description string           `json:"description"`
	Offer       string           `json:"offer"`
	Canonical   string           `json:"canonical"`
	Decoded     *offerFieldsJSON `json:"decoded"`
	Error       string           `json:"error"`
}

// vectorFile is testdata/vectors.json.
type vectorFile struct {
	Comment        string          `json:"comment"`
	RecordsValid   []recordsVector `json:"records_valid"`
	RecordsInvalid []recordsVector `json:"records_invalid"`
	OffersValid    []offerVector   `json:"offers_valid"`
	OffersInvalid  []offerVector   `json:"offers_invalid"`
}

// sentinels maps the error names used in vectors.json to the package's
// errors.
var sentinels = map[string]error{
	"ErrNotSatstream":    ErrNotSatstream,
	"ErrMissingRecord":   ErrMissingRecord,
	"ErrBadLength":       ErrBadLength,
	"ErrUnknownVersion":  ErrUnknownVersion,
	"ErrDuplicateRecord": ErrDuplicateRecord,
	"ErrUnsorted":        ErrUnsorted,
	"ErrMalformed":       ErrMalformed,
	"ErrOversized":       ErrOversized,
	"ErrZeroSequence":    ErrZeroSequence,
	"ErrZeroID":          ErrZeroID,
	"ErrBadValue":        ErrBadValue,
	"ErrBadOffer":        ErrBadOffer,
	"ErrOfferChecksum":   ErrOfferChecksum,
}

// loadVectors reads testdata/vectors.json.
func loadVectors(t testing.TB) *vectorFile {
	t.Helper()

	raw, err := os.ReadFile(vectorsPath)
	require.NoError(t, err)

	var v vectorFile
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&v))
	require.NotEmpty(t, v.RecordsValid)
	require.NotEmpty(t, v.OffersValid)

	return &v
}

// hexMap turns a vector's {"type": "hex"} map into a custom-records map.
func hexMap(t testing.TB, m map[string]string) map[uint64][]byte {
	t.Helper()

	out := make(map[uint64][]byte, len(m))
	for k, v := range m {
		typ, err := strconv.ParseUint(k, 10, 64)
		require.NoError(t, err)
		b, err := hex.DecodeString(v)
		require.NoError(t, err)
		out[typ] = b
	}

	return out
}

// canonicalStream encodes a custom-records map as a sorted TLV stream.
func canonicalStream(m map[uint64][]byte) []byte {
	types := make([]uint64, 0, len(m))
	for typ := range m {
		types = append(types, typ)
	}
	sort.Slice(types, func(i, j int) bool { return types[i] < types[j] })

	var (
		b   bytes.Buffer
		buf [8]byte
	)
	for _, typ := range types {
		writeVarInt(&b, typ, &buf)
		writeVarInt(&b, uint64(len(m[typ])), &buf)
		b.Write(m[typ])
	}

	return b.Bytes()
}

// requireOnlySentinel checks that err is the named sentinel and no other
// record sentinel, so each fault has one distinct error.
func requireOnlySentinel(t *testing.T, err error, name string) {
	t.Helper()

	want, ok := sentinels[name]
	require.True(t, ok, "unknown error name %q in vectors", name)
	require.ErrorIs(t, err, want)
	for other, s := range sentinels {
		if other == name {
			continue
		}
		require.NotErrorIs(t, err, s, "error %v also matches %s",
			err, other)
	}
}

// recordsFromFields builds the expected Records of a vector.
func recordsFromFields(t *testing.T, f *vectorFields) *Records {
	t.Helper()

	sub, err := ParseSubscriptionID(f.SubscriptionID)
	require.NoError(t, err)
	r := &Records{
		Version:        f.Version,
		SubscriptionID: sub,
		Sequence:       f.Sequence,
		Cancel:         f.Cancel,
	}
	if f.PlanID != nil {
		plan, err := ParsePlanID(*f.PlanID)
		require.NoError(t, err)
		r.PlanID = &plan
	}

	return r
}

// TestRecordVectors checks Encode, EncodeStream, Decode and DecodeStream
// against every records vector of the spec.
func TestRecordVectors(t *testing.T) {
	t.Parallel()
	v := loadVectors(t)

	for _, vec := range v.RecordsValid {
		t.Run(vec.Name, func(t *testing.T) {
			t.Parallel()
			want := recordsFromFields(t, vec.Fields)

			enc, err := want.Encode()
			require.NoError(t, err)
			require.Equal(t, hexMap(t, vec.CustomRecords), enc)

			var b bytes.Buffer
			require.NoError(t, want.EncodeStream(&b))
			require.Equal(t, vec.StreamHex, hex.EncodeToString(b.Bytes()))
			require.Equal(t, vec.WireBytes, b.Len())
			require.Less(t, b.Len(), 80)
			require.Equal(t, vec.StreamHex,
				hex.EncodeToString(canonicalStream(enc)))
			require.Equal(t, lncliData(enc), vec.LncliData)

			// Decoding sees our records plus other apps'.
			in := hexMap(t, vec.CustomRecords)
			for k, val := range hexMap(t, vec.OtherRecords) {
				in[k] = val
			}
			require.True(t, IsSatstream(in))
			got, err := Decode(in)
			require.NoError(t, err)
			require.Equal(t, want, got)

			got, err = DecodeStream(bytes.NewReader(canonicalStream(in)))
			require.NoError(t, err)
			require.Equal(t, want, got)
		})
	}

	for _, vec := range v.RecordsInvalid {
		t.Run(vec.Name, func(t *testing.T) {
			t.Parallel()

			if vec.CustomRecords != nil {
				in := hexMap(t, vec.CustomRecords)
				_, err := Decode(in)
				requireOnlySentinel(t, err, vec.Error)
				require.Equal(t, vec.Error != "ErrNotSatstream",
					IsSatstream(in))

				// The same records as a stream fail the same way.
				_, err = DecodeStream(bytes.NewReader(
					canonicalStream(in)))
				requireOnlySentinel(t, err, vec.Error)

				return
			}

			raw, err := hex.DecodeString(vec.StreamHex)
			require.NoError(t, err)
			_, err = DecodeStream(bytes.NewReader(raw))
			requireOnlySentinel(t, err, vec.Error)
		})
	}
}

// lncliData renders a custom-records map as lncli's --data argument.
func lncliData(m map[uint64][]byte) string {
	types := make([]uint64, 0, len(m))
	for typ := range m {
		types = append(types, typ)
	}
	sort.Slice(types, func(i, j int) bool { return types[i] < types[j] })

	parts := make([]string, len(types))
	for i, typ := range types {
		parts[i] = fmt.Sprintf("%d=%x", typ, m[typ])
	}

	return strings.Join(parts, ",")
}

// offerFromJSON builds the expected Offer of a vector.
func offerFromJSON(t *testing.T, d *offerFieldsJSON) *Offer {
	t.Helper()

	node, err := hex.DecodeString(d.Node)
	require.NoError(t, err)
	v, err := route.NewVertexFromBytes(node)
	require.NoError(t, err)

	o := &Offer{
		Node:             v,
		PriceMsatPerSec:  lnwire.MilliSatoshi(d.PriceMsatPerSec),
		MinPayment:       lnwire.MilliSatoshi(d.MinPaymentMsat),
		DefaultIncrement: time.Duration(d.DefaultIncrement) * time.Second,
		GracePeriod:      time.Duration(d.GracePeriod) * time.Second,
		MaxPrepay:        time.Duration(d.MaxPrepay) * time.Second,
		Label:            d.Label,
	}
	for _, n := range d.ExtraNodes {
		b, err := hex.DecodeString(n)
		require.NoError(t, err)
		v, err := route.NewVertexFromBytes(b)
		require.NoError(t, err)
		o.ExtraNodes = append(o.ExtraNodes, v)
	}
	if d.SubscriptionID != nil {
		id, err := ParseSubscriptionID(*d.SubscriptionID)
		require.NoError(t, err)
		o.SubscriptionID = &id
	}
	if d.PlanID != nil {
		id, err := ParsePlanID(*d.PlanID)
		require.NoError(t, err)
		o.PlanID = &id
	}

	return o
}

// TestOfferVectors checks ParseOffer and String against every offer vector.
func TestOfferVectors(t *testing.T) {
	t.Parallel()
	v := loadVectors(t)

	for _, vec := range v.OffersValid {
		t.Run(vec.Name, func(t *testing.T) {
			t.Parallel()
			want := offerFromJSON(t, vec.Decoded)
			require.NoError(t, want.Validate())

			got, err := ParseOffer(vec.Offer)
			require.NoError(t, err)
			require.Equal(t, want, got)

			canonical := vec.Offer
			if vec.Canonical != "" {
				canonical = vec.Canonical
			}
			require.Equal(t, canonical, got.String())
			require.Equal(t, canonical, want.String())
		})
	}

	for _, vec := range v.OffersInvalid {
		t.Run(vec.Name, func(t *testing.T) {
			t.Parallel()

			_, err := ParseOffer(vec.Offer)
			require.ErrorIs(t, err, ErrBadOffer)
			if vec.Error == "ErrBadOffer" {
				// No more specific sentinel is expected.
				for name, s := range sentinels {
					if name != "ErrBadOffer" {
						require.NotErrorIs(t, err, s,
							"also %s: %v", name, err)
					}
				}

				return
			}
			require.ErrorIs(t, err, sentinels[vec.Error], "%v", err)
		})
	}
}
