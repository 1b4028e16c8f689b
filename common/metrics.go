package common

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// NewRegistry returns a daemon's Prometheus registry holding what every
// daemon exports: the Go runtime and process collectors and
// satstream_build_info (1, labelled with the daemon, version and commit,
// as Prometheus' own *_build_info gauges are), so dashboards can tell
// which build is running. It is a registry of its own, not the global
// one, so several daemons can live in one process (tests).
func NewRegistry(daemon string) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(RuntimeCollectors(daemon)...)
	return reg
}

// RuntimeCollectors are the collectors NewRegistry registers.
func RuntimeCollectors(daemon string) []prometheus.Collector {
	bi := ReadBuildInfo()
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "satstream_build_info",
		Help: "Always 1; the labels say which satstream build runs.",
	}, []string{"daemon", "version", "revision", "goversion"})
	info.WithLabelValues(daemon, bi.Version, bi.Revision,
		bi.GoVersion).Set(1)
	return []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		info,
	}
}

// NewLndConnectedGauge is satstream_lnd_connected: 1 while the daemon has
// a working connection to lnd, 0 otherwise.
func NewLndConnectedGauge(daemon string) prometheus.Gauge {
	return prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "satstream_lnd_connected",
		Help:        "1 while the daemon is connected to lnd, else 0.",
		ConstLabels: prometheus.Labels{"daemon": daemon},
	})
}
