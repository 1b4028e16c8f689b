package dashboard

import (
	"encoding/base64"
	"fmt"
	"html/template"
	"strconv"
	"strings"
	"time"

	qrcode "github.com/skip2/go-qrcode"
)

// Sats renders an amount in msat as sat with thousands separators, with
// the msat part only when there is one ("1,234 sat", "0.5 sat").
func Sats(msat uint64) string {
	whole := groupThousands(msat / 1000)
	if frac := msat % 1000; frac != 0 {
		return whole + "." + strings.TrimRight(fmt.Sprintf("%03d",
			frac), "0") + " sat"
	}
	return whole + " sat"
}

// SatPerHour renders a price in msat per second as sat per hour.
func SatPerHour(msatPerSec uint64) string {
	s := Sats(msatPerSec * 3600)
	return strings.TrimSuffix(s, " sat") + " sat/hour"
}

func groupThousands(v uint64) string {
	s := strconv.FormatUint(v, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// Duration renders a duration the way people say it ("1 day 2 h",
// "15 min", "90 s").
func Duration(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	d = d.Round(time.Second)
	days := d / (24 * time.Hour)
	d -= days * 24 * time.Hour
	h := d / time.Hour
	d -= h * time.Hour
	m := d / time.Minute
	d -= m * time.Minute
	s := d / time.Second
	var parts []string
	add := func(v time.Duration, unit string) {
		if v != 0 {
			parts = append(parts, fmt.Sprintf("%d %s", v, unit))
		}
	}
	if days == 1 {
		parts = append(parts, "1 day")
	} else {
		add(days, "days")
	}
	add(h, "h")
	add(m, "min")
	add(s, "s")
	if len(parts) == 0 {
		return "0 s"
	}
	if len(parts) > 2 {
		parts = parts[:2]
	}
	return strings.Join(parts, " ")
}

// When renders a time as UTC date and time, "" for the zero time.
func When(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// Percent is 100*part/whole, within 0..100 (0 if whole is 0).
func Percent(part, whole uint64) int {
	if whole == 0 {
		return 0
	}
	if part >= whole {
		return 100
	}
	return int(part * 100 / whole)
}

// QRDataURI renders text as a QR code PNG in a data: URI, for an <img>
// (the page's CSP allows data: images and nothing from elsewhere).
func QRDataURI(text string) template.URL {
	png, err := qrcode.Encode(text, qrcode.Medium, 256)
	if err != nil {
		return ""
	}
	return template.URL("data:image/png;base64," +
		base64.StdEncoding.EncodeToString(png))
}
