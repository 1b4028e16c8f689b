package dashboard

import (
	"fmt"
	"html/template"
	"strings"
)

// Bar is one column of a bar chart.
type Bar struct {
	// Label is shown under the bar (only every few bars when many).
	Label string
	// Value is the bar's height in the chart's unit.
	Value uint64
	// Title is the tooltip.
	Title string
}

// BarChart renders bars as an inline SVG that scales to its container,
// so the dashboards need no charting library. Colours come from the page's
// stylesheet (class "bar"), which follows light and dark mode.
func BarChart(bars []Bar, caption string) template.HTML {
	const (
		w, h   = 360.0, 130.0
		bottom = 16.0
		top    = 14.0
	)
	var max uint64
	for _, b := range bars {
		if b.Value > max {
			max = b.Value
		}
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg class="chart" viewBox="0 0 %.0f %.0f" `+
		`role="img" aria-label="%s">`,
		w, h, template.HTMLEscapeString(caption))
	if len(bars) == 0 {
		sb.WriteString(`</svg>`)
		return template.HTML(sb.String())
	}
	slot := w / float64(len(bars))
	every := (len(bars) + 5) / 6
	for i, b := range bars {
		bh := 0.0
		if max > 0 {
			bh = float64(b.Value) / float64(max) * (h - bottom - top)
		}
		x := float64(i) * slot
		fmt.Fprintf(&sb, `<rect class="bar" x="%.1f" y="%.1f" `+
			`width="%.1f" height="%.1f"><title>%s</title></rect>`,
			x+slot*0.1, h-bottom-bh, slot*0.8, bh,
			template.HTMLEscapeString(b.Title))
		if i%every == 0 {
			fmt.Fprintf(&sb, `<text class="axis" x="%.1f" y="%.1f">`+
				`%s</text>`, x+slot/2, h-3,
				template.HTMLEscapeString(b.Label))
		}
	}
	fmt.Fprintf(&sb, `<text class="axis max" x="2" y="11">max %s</text>`,
		template.HTMLEscapeString(Sats(max)))
	sb.WriteString(`</svg>`)
	return template.HTML(sb.String())
}
