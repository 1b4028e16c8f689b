// Package contrib holds the operator files (systemd units, the Grafana
// dashboard, Prometheus alert rules); its test checks them against the
// daemons.
package contrib

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/satstream/satstream/receiver"
	"github.com/satstream/satstream/sender"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// served lists the metric names both daemons' /metrics serve, from their
// collectors' descriptions.
func served(t *testing.T) map[string]bool {
	t.Helper()
	fqName := regexp.MustCompile(`fqName: "([^"]+)"`)
	names := map[string]bool{}
	cs := append(receiver.MetricCollectors(), sender.MetricCollectors()...)
	for _, c := range cs {
		ch := make(chan *prometheus.Desc, 256)
		c.Describe(ch)
		close(ch)
		for d := range ch {
			m := fqName.FindStringSubmatch(d.String())
			require.NotNil(t, m, d.String())
			names[m[1]] = true
		}
	}
	return names
}

// metricRef finds metric names in PromQL: ours, Go's and the process'.
var metricRef = regexp.MustCompile(`\b(satstream_[a-z0-9_]+|go_[a-z0-9_]+|process_[a-z0-9_]+)`)

// checkExprs fails for every metric an expression names that no daemon
// serves. A histogram's _bucket, _sum and _count come from its name.
func checkExprs(t *testing.T, where string, exprs []string,
	names map[string]bool) {

	t.Helper()
	require.NotEmpty(t, exprs, where)
	for _, e := range exprs {
		refs := metricRef.FindAllString(e, -1)
		require.NotEmpty(t, refs, "%s: %q names no metric", where, e)
		for _, r := range refs {
			base := r
			for _, suf := range []string{"_bucket", "_sum", "_count"} {
				if !names[base] {
					base = strings.TrimSuffix(base, suf)
				}
			}
			require.True(t, names[base], "%s: %q queries %s, which "+
				"neither daemon serves", where, e, r)
		}
	}
}

// TestDashboardQueriesMetricsThatExist: a dashboard or alert that names a
// metric the daemons don't serve (renamed, or never there) shows "No data"
// and never fires, silently. Every query in the Grafana dashboard and the
// Prometheus rules must name served metrics.
func TestDashboardQueriesMetricsThatExist(t *testing.T) {
	names := served(t)
	for _, must := range []string{"satstream_build_info",
		"satstream_lnd_connected", "go_goroutines",
		"process_cpu_seconds_total"} {
		require.True(t, names[must], must)
	}

	b, err := os.ReadFile("grafana/satstream.json")
	require.NoError(t, err)
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(b, &dash))
	require.NotEmpty(t, dash.Panels)
	for _, p := range dash.Panels {
		var exprs []string
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
		checkExprs(t, "panel "+p.Title, exprs, names)
	}

	b, err = os.ReadFile("prometheus/satstream-alerts.yml")
	require.NoError(t, err)
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	require.NoError(t, yaml.Unmarshal(b, &rules))
	require.NotEmpty(t, rules.Groups)
	alerts := map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			alerts[r.Alert] = true
			checkExprs(t, "alert "+r.Alert, []string{r.Expr}, names)
		}
	}
	for _, a := range []string{"SatstreamUnclaimedPayment",
		"SatstreamWebhookQueueGrowing", "SatstreamDecisionNearHoldTime"} {
		require.True(t, alerts[a], a)
	}
}
