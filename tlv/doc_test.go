package tlv

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	lndtlv "github.com/lightningnetwork/lnd/tlv"
	"github.com/stretchr/testify/require"
)

// writeVarInt writes a BigSize with lnd's encoder; bytes.Buffer never fails.
func writeVarInt(w io.Writer, v uint64, buf *[8]byte) {
	_ = lndtlv.WriteVarInt(w, v, buf)
}

// renderVectors renders the vectors as the markdown section that
// docs/protocol.md shows, so the document is generated from the same file the
// tests read and cannot drift from it.
func renderVectors(t *testing.T, v *vectorFile) string {
	t.Helper()

	var b strings.Builder
	p := func(format string, args ...any) {
		fmt.Fprintf(&b, format, args...)
	}

	p("%s\n\n", docBegin)
	p("### Valid records\n\n")
	p("Each vector lists the records a sender puts in the payment, the " +
		"canonical TLV stream they form in the onion, and lncli's " +
		"`--data` form.\n\n")
	for _, vec := range v.RecordsValid {
		f := vec.Fields
		plan := "absent"
		if f.PlanID != nil {
			plan = "`" + *f.PlanID + "`"
		}
		p("#### `%s`\n\n%s\n\n", vec.Name, vec.Description)
		p("- version `%d`, subscription_id `%s`, sequence `%d`, "+
			"plan_id %s, cancel `%t`\n", f.Version, f.SubscriptionID,
			f.Sequence, plan, f.Cancel)
		for _, typ := range sortedKeys(t, vec.OtherRecords) {
			p("- other application's record `%s` = `%s` "+
				"(ignored)\n", typ, vec.OtherRecords[typ])
		}
		p("- stream (%d bytes): `%s`\n", vec.WireBytes, vec.StreamHex)
		p("- lncli: `--data %s`\n\n", vec.LncliData)
	}

	p("### Invalid records\n\n")
	p("Custom-records maps (type = hex value) or raw streams that a " +
		"receiver MUST refuse, with the error the Go package returns.\n\n")
	p("| name | input | error | note |\n|---|---|---|---|\n")
	for _, vec := range v.RecordsInvalid {
		input := "stream `" + shorten(vec.StreamHex) + "`"
		if vec.CustomRecords != nil {
			var parts []string
			for _, typ := range sortedKeys(t, vec.CustomRecords) {
				parts = append(parts, typ+"="+
					shorten(vec.CustomRecords[typ]))
			}
			input = "`" + strings.Join(parts, ",") + "`"
		}
		p("| `%s` | %s | `%s` | %s |\n", vec.Name, input, vec.Error,
			vec.Description)
	}

	p("\n### Valid offers\n\n")
	for _, vec := range v.OffersValid {
		d := vec.Decoded
		p("#### `%s`\n\n%s\n\n```\n%s\n```\n\n", vec.Name,
			vec.Description, vec.Offer)
		if vec.Canonical != "" {
			p("String() gives:\n\n```\n%s\n```\n\n", vec.Canonical)
		}
		id := "subscription_id"
		idVal := d.SubscriptionID
		if d.PlanID != nil {
			id, idVal = "plan_id", d.PlanID
		}
		p("| field | value |\n|---|---|\n")
		p("| node_id | `%s` |\n", d.Node)
		if len(d.ExtraNodes) > 0 {
			p("| extra_node_ids | `%s` |\n",
				strings.Join(d.ExtraNodes, "`, `"))
		}
		p("| %s | `%s` |\n", id, *idVal)
		p("| price_msat_per_sec | %d |\n| min_payment_msat | %d |\n",
			d.PriceMsatPerSec, d.MinPaymentMsat)
		p("| default_increment_sec | %d |\n| grace_period_sec | %d |\n",
			d.DefaultIncrement, d.GracePeriod)
		p("| max_prepay_sec | %d |\n| label | %s |\n\n", d.MaxPrepay,
			strconv.Quote(d.Label))
	}

	p("### Invalid offers\n\n")
	p("Every one fails with `ErrBadOffer`; the name in parentheses is the " +
		"sentinel it wraps (ErrBadOffer when there is no more specific " +
		"one).\n\n")
	for _, vec := range v.OffersInvalid {
		desc := ""
		if vec.Description != "" {
			desc = " " + vec.Description
		}
		p("- `%s` (`%s`):%s\n\n  ```\n  %s\n  ```\n\n", vec.Name,
			vec.Error, desc, displayOffer(vec.Offer))
	}
	p("%s\n", docEnd)

	return b.String()
}

// displayOffer makes an offer printable on one line: invisible characters
// are escaped and very long strings are cut.
func displayOffer(s string) string {
	q := strconv.Quote(s)
	q = q[1 : len(q)-1]
	if len(q) > 200 {
		q = q[:60] + "...(" + strconv.Itoa(len(s)) + " characters)"
	}

	return q
}

// shorten cuts long hex values for the tables.
func shorten(h string) string {
	if len(h) <= 240 {
		return h
	}

	return fmt.Sprintf("%s...(%d bytes)", h[:40], len(h)/2)
}

// sortedKeys returns a vector map's keys in numeric order.
func sortedKeys(t *testing.T, m map[string]string) []string {
	t.Helper()

	keys := make([]uint64, 0, len(m))
	for k := range m {
		n, err := strconv.ParseUint(k, 10, 64)
		require.NoError(t, err)
		keys = append(keys, n)
	}
	sortUint64(keys)

	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = strconv.FormatUint(k, 10)
	}

	return out
}

// sortUint64 sorts in place (insertion sort; the slices are tiny).
func sortUint64(s []uint64) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// TestDocVectors fails when the vectors section of docs/protocol.md differs
// from what testdata/vectors.json renders to. With -update it rewrites that
// section and the fuzz seed corpus instead.
func TestDocVectors(t *testing.T) {
	v := loadVectors(t)
	want := renderVectors(t, v)

	doc, err := os.ReadFile(docPath)
	require.NoError(t, err)
	text := string(doc)

	begin := strings.Index(text, docBegin)
	end := strings.Index(text, docEnd)
	require.True(t, begin >= 0 && end > begin,
		"docs/protocol.md lacks the generated vectors markers")
	got := text[begin : end+len(docEnd)+1]

	if *update {
		text = text[:begin] + want + text[end+len(docEnd)+1:]
		require.NoError(t, os.WriteFile(docPath, []byte(text), 0o644))
		writeFuzzSeeds(t, v)

		return
	}

	require.Equal(t, want, got, "docs/protocol.md vectors drifted from "+
		"tlv/testdata/vectors.json; run go test ./tlv -run "+
		"TestDocVectors -update")

	// Belt and braces: every hex stream and offer string appears verbatim.
	for _, vec := range v.RecordsValid {
		require.Contains(t, text, vec.StreamHex)
		require.Contains(t, text, vec.LncliData)
	}
	for _, vec := range v.OffersValid {
		require.Contains(t, text, vec.Offer)
	}
}

// writeFuzzSeeds writes every vector as a seed of the fuzz targets, in
// go test's corpus file format.
func writeFuzzSeeds(t *testing.T, v *vectorFile) {
	t.Helper()

	write := func(target, name, value string) {
		dir := filepath.Join("testdata", "fuzz", target)
		require.NoError(t, os.MkdirAll(dir, 0o755))
		body := "go test fuzz v1\n" + value + "\n"
		require.NoError(t, os.WriteFile(filepath.Join(dir, name),
			[]byte(body), 0o644))
	}

	for _, vec := range v.RecordsValid {
		in := hexMap(t, vec.CustomRecords)
		for k, val := range hexMap(t, vec.OtherRecords) {
			in[k] = val
		}
		write("FuzzDecodeRecords", "valid_"+vec.Name,
			fmt.Sprintf("[]byte(%q)", canonicalStream(in)))
	}
	for _, vec := range v.RecordsInvalid {
		raw, err := hex.DecodeString(vec.StreamHex)
		require.NoError(t, err)
		if vec.CustomRecords != nil {
			raw = canonicalStream(hexMap(t, vec.CustomRecords))
		}
		write("FuzzDecodeRecords", "invalid_"+vec.Name,
			fmt.Sprintf("[]byte(%q)", raw))
	}
	for _, vec := range v.OffersValid {
		write("FuzzParseOffer", "valid_"+vec.Name,
			fmt.Sprintf("string(%q)", vec.Offer))
	}
	for _, vec := range v.OffersInvalid {
		write("FuzzParseOffer", "invalid_"+vec.Name,
			fmt.Sprintf("string(%q)", vec.Offer))
	}
}

// TestRenderIsStable guards against map-order randomness in the renderer,
// which would make TestDocVectors flaky.
func TestRenderIsStable(t *testing.T) {
	t.Parallel()
	v := loadVectors(t)
	require.Equal(t, renderVectors(t, v), renderVectors(t, v))
	require.True(t, bytes.HasPrefix([]byte(renderVectors(t, v)),
		[]byte(docBegin)))
}
