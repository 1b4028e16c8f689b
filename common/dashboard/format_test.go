package dashboard

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestAmountsAndDurationsReadLikePeopleSayThem(t *testing.T) {
	t.Parallel()
	require.Equal(t, "0 sat", Sats(0))
	require.Equal(t, "0.5 sat", Sats(500))
	require.Equal(t, "1,234,567.001 sat", Sats(1_234_567_001))
	require.Equal(t, "3,600 sat/hour", SatPerHour(1000))
	require.Equal(t, "3.6 sat/hour", SatPerHour(1))
	require.Equal(t, "1 h 30 min", Duration(90*time.Minute))
	require.Equal(t, "1 day 2 h", Duration(26*time.Hour+5*time.Second))
	require.Equal(t, "0 s", Duration(0))
	require.Equal(t, 50, Percent(5, 10))
	require.Equal(t, 100, Percent(11, 10))
	require.Equal(t, 0, Percent(1, 0))
}

func TestBarChartEscapesItsLabels(t *testing.T) {
	t.Parallel()
	svg := string(BarChart([]Bar{{Label: "<b>", Value: 5, Title: "x&y"},
		{Label: "b", Value: 10}}, "income"))
	require.True(t, strings.HasPrefix(svg, "<svg"))
	require.NotContains(t, svg, "<b>")
	require.Contains(t, svg, "x&amp;y")
	require.Equal(t, 2, strings.Count(svg, "<rect"))
	require.NotEmpty(t, QRDataURI("satstream1..."))
}
