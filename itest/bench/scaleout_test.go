package bench

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestStoreBenchOutputWithoutFiguresFails: a store benchmark run that
// printed no credits/s (PostgreSQL skipped, a renamed benchmark) must fail
// the section, not leave it empty; a real output is read case by case.
func TestStoreBenchOutputWithoutFiguresFails(t *testing.T) {
	_, err := parseStoreBench("goos: linux\nPASS\nok  \tx\t1.0s\n")
	require.Error(t, err)

	out := "BenchmarkDurableCredits/postgres/two-nodes-concurrent-2 " +
		"\t    2000\t   9317872 ns/op\t       107.3 credits/s\n" +
		"BenchmarkDurableCredits/badger/single-2 \t    2000\t   " +
		"1187607 ns/op\t       842.0 credits/s\n"
	got, err := parseStoreBench(out)
	require.NoError(t, err)
	require.Equal(t, []StoreAlone{
		{Name: "postgres/two-nodes-concurrent", Rate: 107.3},
		{Name: "badger/single", Rate: 842},
	}, got)
}

// TestStoreBenchPostgresRowsLostBehindMoreMetrics: the store benchmarks
// report more metrics than credits/s (retries, lock waits, in name order
// after it); the full run of 05:40 UTC read only badger's lines and
// printed a store table without PostgreSQL. Lines with more metrics are
// read, and a run with one backend missing fails.
func TestStoreBenchPostgresRowsLostBehindMoreMetrics(t *testing.T) {
	out := "BenchmarkDurableCredits/badger/single-2 \t 2000\t 599520 " +
		"ns/op\t 1668 credits/s\n" +
		"BenchmarkDurableCredits/postgres/single-2 \t 2000\t 8000000 " +
		"ns/op\t 0 23505/credit\t 0.10 40001/credit\t 3500 " +
		"commit-us/credit\t 125.5 credits/s\t 40 eventlock-us/credit" +
		"\t 0.10 retries/credit\t 0.01 slowlane/credit\n"
	got, err := parseStoreBench(out)
	require.NoError(t, err)
	require.Equal(t, []StoreAlone{
		{Name: "badger/single", Rate: 1668},
		{Name: "postgres/single", Rate: 125.5},
	}, got)

	_, err = parseStoreBench("BenchmarkDurableCredits/badger/single-2 " +
		"\t 2000\t 599520 ns/op\t 1668 credits/s\n")
	require.ErrorContains(t, err, "no postgres credits/s")
}

// TestPgTBFatalBecomesError: pgtest's Fatalf inside the bench command
// (not a test) must come back as an error, not kill the process or be
// lost, and the cleanups registered so far must still run, newest first.
func TestPgTBFatalBecomesError(t *testing.T) {
	tb := &pgTB{name: "x"}
	var order []int
	err := tb.do(func() {
		tb.Cleanup(func() { order = append(order, 1) })
		tb.Cleanup(func() { order = append(order, 2) })
		tb.Fatalf("no server: %d", 7)
		t.Fatal("Fatalf returned")
	})
	require.EqualError(t, err, "no server: 7")
	require.NoError(t, tb.do(func() {}))
	tb.cleanup()
	require.Equal(t, []int{2, 1}, order)
}

// TestMoneyDiffFindsEveryMismatch: a settled HTLC not credited, a credit
// of another amount and a credit nothing settled must each be reported.
func TestMoneyDiffFindsEveryMismatch(t *testing.T) {
	settled := map[string]uint64{"a": 1000, "b": 2000, "c": 3000}
	credited := map[string]uint64{"a": 1000, "b": 2500, "d": 4000}
	require.Len(t, diffMsat("sub", "settled", settled, "credited",
		credited), 3)
	require.Empty(t, diffMsat("sub", "settled", settled, "credited",
		settled))
}

// TestScaleOutRatiosAreOverOnePostgresNode: the ratios compare n nodes
// on PostgreSQL with one node on PostgreSQL at the same bound, never
// across bounds or with badger.
func TestScaleOutRatiosAreOverOnePostgresNode(t *testing.T) {
	run := func(l, n int, be string, rate float64) ScaleOutRun {
		return ScaleOutRun{Config: ScaleOutConfig{n, be}, InFlight: l,
			Rate: rate, Window: time.Second}
	}
	s := &ScaleOut{Runs: []ScaleOutRun{
		run(16, 1, "badger", 40), run(16, 1, "postgres", 20),
		run(16, 2, "postgres", 30), run(16, 3, "postgres", 35),
		run(32, 1, "postgres", 25), run(32, 2, "postgres", 50),
	}}
	require.Equal(t, []Ratio{
		{16, "2/1", 1.5}, {16, "3/1", 1.75},
		{16, "postgres/badger, 1 node", 0.5},
		{32, "2/1", 2},
	}, s.Ratios())
	require.Contains(t, s.markdown(), "2/1 at 32 in flight **2.00**")
}
