//go:build itest

package itest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/satstream/satstream/itest/regtest"
	"github.com/satstream/satstream/receiver/webhook"
	"github.com/satstream/satstream/store/postgres/pgtest"
	"github.com/stretchr/testify/require"
)

// clusterNetwork starts payer alice -> router bob -> two provider nodes,
// carol and dave, both holding keysends for faultHold so their receivers
// settle or refuse each one, with routes from alice to both.
func clusterNetwork(t *testing.T, ctx context.Context) (*regtest.Network,
	[]*regtest.Node) {

	t.Helper()
	hold := []string{"--keysend-hold-time=" + faultHold.String()}
	net, nodes := newNetwork(t, ctx,
		regtest.NodeConfig{Name: "alice"},
		regtest.NodeConfig{Name: "bob"},
		regtest.NodeConfig{Name: "carol", ExtraArgs: hold},
		regtest.NodeConfig{Name: "dave", ExtraArgs: hold},
	)
	alice, bob, carol, dave := nodes[0], nodes[1], nodes[2], nodes[3]
	require.NoError(t, net.Fund(ctx, walletFunds, alice, bob))
	spec := func(from, to *regtest.Node) regtest.ChannelSpec {
		return regtest.ChannelSpec{From: from, To: to,
			Capacity: chanCapacity, Push: chanCapacity / 2}
	}
	_, err := net.OpenChannels(ctx, spec(alice, bob), spec(bob, carol),
		spec(bob, dave))
	require.NoError(t, err)
	for _, to := range []*regtest.Node{carol, dave} {
		require.NoError(t, net.WaitForRoute(ctx, alice, to, 1000))
	}
	return net, nodes
}

// clusterRcv is a receiver beside node on the PostgreSQL ledger dsn.
func clusterRcv(t *testing.T, node *regtest.Node, hookURL, dsn string) *rcv {
	r := newRcv(t, node, hookURL)
	r.args = append(r.args, "--db.backend=postgres",
		"--db.postgres.dsn="+dsn)
	return r
}

// withoutOffer drops the offer from a subscription's view: each receiver
// writes its own node into the offers it shows.
func withoutOffer(v subView) subView {
	v.Offer = ""
	return v
}

// leaders returns the receivers whose /v1/health says they lead (a
// receiver that does not answer counts as not leading).
func leaders(rs ...*rcv) []*rcv {
	var out []*rcv
	for _, r := range rs {
		if r.proc == nil {
			continue
		}
		var h map[string]any
		if r.do("GET", "/v1/health", nil, &h) == 200 && h["leader"] == true {
			out = append(out, r)
		}
	}
	return out
}

// waitOneLeader waits until exactly one of rs leads and returns it.
func waitOneLeader(t *testing.T, ctx context.Context, rs ...*rcv) *rcv {
	t.Helper()
	var leader *rcv
	require.NoError(t, regtest.Poll(ctx, time.Minute, func() error {
		l := leaders(rs...)
		if len(l) != 1 {
			return fmt.Errorf("%d leaders", len(l))
		}
		leader = l[0]
		return nil
	}), "no single leader")
	return leader
}

// clusterRig is the fault suite's rig over two provider nodes, carol and
// dave, each with its own receiver (rc, rd) on one PostgreSQL ledger,
// and a sender beside alice. Both cluster itests run on it.
type clusterRig struct {
	*faultRig
	dave   *regtest.Node
	rc, rd *rcv
	dsn    string
	planID string
	// hooks logs every POST the receivers make to the webhook
	// endpoint, repeats included, and the leader kills between them.
	hooks *hookLog
	began time.Time
}

// newClusterRig starts the cluster: the network, a PostgreSQL server
// with one database, the two receivers (with offers naming both nodes
// when extraNodes is set, carol's first in the offers carol's receiver
// makes), a plan made at carol's receiver and a running sender. It
// waits for one leader.
func newClusterRig(t *testing.T, ctx context.Context, extraNodes bool) *clusterRig {
	c := &clusterRig{began: time.Now()}
	pg := pgtest.Start(t)
	c.dsn = pg.NewDatabase(t)
	net, nodes := clusterNetwork(t, ctx)
	alice, bob, carol, dave := nodes[0], nodes[1], nodes[2], nodes[3]
	c.dave = dave

	hook := newHookServer(t)
	c.hooks = newHookLog(t, hook)
	c.rc = clusterRcv(t, carol, c.hooks.srv.URL, c.dsn)
	c.rd = clusterRcv(t, dave, c.hooks.srv.URL, c.dsn)
	if extraNodes {
		c.rc.args = append(c.rc.args,
			"--offer.extranode="+dave.PubKeyHex())
		c.rd.args = append(c.rd.args,
			"--offer.extranode="+carol.PubKeyHex())
	}
	c.rc.start(ctx)
	c.rd.start(ctx)
	waitOneLeader(t, ctx, c.rc, c.rd)

	c.faultRig = &faultRig{t: t, ctx: ctx, net: net, alice: alice,
		bob: bob, carol: carol, rcv: c.rc, hook: hook,
		providers: []*regtest.Node{carol, dave},
		rng:       rand.New(rand.NewSource(faultSeed(t)))}
	var plan struct {
		ID string `json:"id"`
	}
	require.Equal(t, 201, c.rc.do("POST", "/v1/plans", map[string]any{
		"label": "cluster", "price_msat_per_sec": 1000,
		"min_payment_msat": 1000, "max_prepay_sec": 600,
		"default_increment_sec": 2, "grace_period_sec": 20,
	}, &plan), "create plan")
	c.planID = plan.ID

	c.snd = newSnd(t, alice)
	c.snd.start(ctx)
	return c
}

// subscribe makes a subscription to the plan at receiver at and has the
// sender stream it (2 s increments, 6 s ahead). It returns its id.
func (c *clusterRig) subscribe(at *rcv) string {
	t := c.t
	t.Helper()
	var sub struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
		Offer  string `json:"offer"`
	}
	require.Equal(t, 201, at.do("POST", "/v1/subscriptions",
		map[string]any{"plan_id": c.planID}, &sub))
	code := c.snd.do("POST", "/v1/subscriptions", map[string]any{
		"offer": sub.Offer, "increment_sec": 2, "buffer_sec": 6,
		"fee_limit_ppm": 1_000_000, "fee_limit_msat": 1_100,
	}, nil)
	require.Equal(t, 201, code, "subscribe %s", sub.ID)
	c.subs = append(c.subs, sub.ID)
	c.secrets = append(c.secrets, sub.Secret)
	return sub.ID
}

// kill SIGKILLs receiver r. When r leads, the kill is logged as a leader
// change (the only thing that allows a webhook event to be POSTed
// twice) and the other receiver must take over while r is down.
func (c *clusterRig) kill(r *rcv) {
	t := c.t
	t.Helper()
	other := c.rc
	if r == c.rc {
		other = c.rd
	}
	wasLeader := len(leaders(r)) == 1
	if wasLeader {
		c.hooks.leaderChange()
	}
	r.kill()
	c.faults++
	if wasLeader {
		c.hooks.leaderChange()
		require.Equal(t, other, waitOneLeader(t, c.ctx, c.rc, c.rd),
			"the other receiver did not take over from the "+
				"killed leader")
	}
	t.Logf("SIGKILLed %s's receiver (leader: %v)", c.nodeOf(r), wasLeader)
}

// nodeOf names the node receiver r runs beside.
func (c *clusterRig) nodeOf(r *rcv) string {
	if r == c.rc {
		return "carol"
	}
	return "dave"
}

// checkPhase is what holds after each phase of a cluster itest: the
// fault suite's money invariant over both nodes (settled at carol + dave
// == credited == paid by the sender, hash by hash; no sequence credited
// twice), no hash settled at both nodes, every subscription's
// paid_until equal to what its credits buy, and every event of the
// ledger delivered, a repeat only across a leader change.
func (c *clusterRig) checkPhase(what string) {
	c.t.Helper()
	c.checkInvariant(what)
	c.checkNoHashAtBoth(what)
	conn, err := pgx.Connect(c.ctx, c.dsn)
	require.NoError(c.t, err)
	defer conn.Close(context.Background())
	for _, id := range c.subs {
		c.checkPaidUntil(what, id, conn)
	}
	c.checkLedgerWebhooks(c.dsn)
	c.hooks.checkRepeats(what)
}

// checkNoHashAtBoth checks that no payment hash settled at both carol
// and dave.
func (c *clusterRig) checkNoHashAtBoth(what string) {
	atCarol, atDave := c.settledAt(c.carol), c.settledAt(c.dave)
	for id, hashes := range atCarol {
		for h := range hashes {
			_, twice := atDave[id][h]
			require.False(c.t, twice, "%s: %s: %s settled at carol "+
				"and at dave", what, id, h)
		}
	}
}

// checkPaidUntil checks that subscription id's paid_until is what its
// credited payments buy, replayed in the order they were credited with
// the documented rule (docs/protocol.md): a payment's whole seconds
// (rate 1000 msat/s, remainder carried) start at the paid_until before it
// while it was within grace (20 s), else at the moment of the credit.
// The order of the credits is the ledger's credit number (read from the
// payments table over conn): a payment received first may be credited
// second when its transaction is retried after a conflict with the
// other's.
func (c *clusterRig) checkPaidUntil(what, id string, conn *pgx.Conn) {
	t := c.t
	t.Helper()
	type pay struct {
		Hash   string    `json:"payment_hash"`
		Seq    uint64    `json:"sequence"`
		Amount uint64    `json:"amount_msat"`
		State  string    `json:"state"`
		At     time.Time `json:"received_at"`
	}
	type view struct {
		PaidUntil time.Time `json:"paid_until"`
		Payments  uint64    `json:"payments"`
		Remainder uint64    `json:"remainder_msat"`
	}
	const rate, grace = 1000, 20 * time.Second
	// The streams run on: read the payments between two equal views of
	// the subscription, so the two belong together.
	var (
		v    view
		pays []pay
	)
	require.NoError(t, regtest.Poll(c.ctx, time.Minute, func() error {
		var v2 view
		pays = pays[:0]
		if c.rcv.do("GET", "/v1/subscriptions/"+id, nil, &v) != 200 {
			return fmt.Errorf("receiver API down")
		}
		for after := uint64(0); ; {
			var page struct {
				Payments []pay `json:"payments"`
			}
			if c.rcv.do("GET", fmt.Sprintf("/v1/subscriptions/%s/"+
				"payments?limit=1000&after_sequence=%d", id,
				after), nil, &page) != 200 {

				return fmt.Errorf("receiver API down")
			}
			for _, p := range page.Payments {
				if p.State == "credited" {
					pays = append(pays, p)
				}
			}
			if len(page.Payments) < 1000 {
				break
			}
			after = page.Payments[len(page.Payments)-1].Seq
		}
		if c.rcv.do("GET", "/v1/subscriptions/"+id, nil, &v2) != 200 {
			return fmt.Errorf("receiver API down")
		}
		if v != v2 || uint64(len(pays)) != v.Payments {
			return fmt.Errorf("%s credited a payment while read", id)
		}
		return nil
	}), "%s: %s: no steady view", what, id)

	rows, err := conn.Query(c.ctx, "SELECT encode(hash, 'hex'), "+
		"credit_no FROM payments WHERE state = 1")
	require.NoError(t, err)
	creditNo := map[string]int64{}
	for rows.Next() {
		var (
			h  string
			no int64
		)
		require.NoError(t, rows.Scan(&h, &no))
		creditNo[h] = no
	}
	require.NoError(t, rows.Err())
	for _, p := range pays {
		require.Contains(t, creditNo, p.Hash, "%s: %s: credit "+
			"number of %s", what, id, p.Hash)
	}
	sort.Slice(pays, func(i, j int) bool {
		return creditNo[pays[i].Hash] < creditNo[pays[j].Hash]
	})
	var (
		until time.Time
		rem   uint64
	)
	for _, p := range pays {
		secs := (p.Amount + rem) / rate
		rem = (p.Amount + rem) % rate
		if secs == 0 {
			continue
		}
		start := until
		if until.IsZero() || !p.At.Before(until.Add(grace)) {
			start = p.At
		}
		until = start.Add(time.Duration(secs) * time.Second)
	}
	require.True(t, until.Equal(v.PaidUntil), "%s: %s: paid_until %v, "+
		"its %d credits buy until %v", what, id, v.PaidUntil, len(pays),
		until)
	require.Equal(t, rem, v.Remainder, "%s: %s: remainder", what, id)
}

// checkLedgerWebhooks waits until the cluster has delivered every event of
// the PostgreSQL ledger dsn and checks that the endpoint got each one (by
// event id) and nothing else. It returns the POSTs the endpoint accepted,
// repeats included, and the number of events.
func (f *faultRig) checkLedgerWebhooks(dsn string) (posts, events int) {
	t, ctx, hook := f.t, f.ctx, f.hook
	t.Helper()
	f.checkWebhooks()
	// The API's event list walks ids one by one and ends at the first
	// gap, which PostgreSQL's id sequence leaves for every retried
	// transaction: read the outbox itself.
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	// The subscriptions may still stream: check the events up to the
	// newest one now, which must all be delivered in time.
	var last uint64
	require.NoError(t, conn.QueryRow(ctx, "SELECT max(id) FROM events").
		Scan(&last))
	var ids []uint64
	require.NoError(t, regtest.Poll(ctx, 2*time.Minute, func() error {
		var pending int
		err := conn.QueryRow(ctx, "SELECT count(*) FROM events "+
			"WHERE NOT delivered AND id <= $1", last).Scan(&pending)
		if err != nil {
			return err
		}
		if pending > 0 {
			return fmt.Errorf("%d events not delivered", pending)
		}
		rows, err := conn.Query(ctx, "SELECT id FROM events "+
			"WHERE id <= $1 ORDER BY id", last)
		if err != nil {
			return err
		}
		ids, err = pgx.CollectRows(rows, pgx.RowTo[uint64])
		return err
	}))
	require.NotEmpty(t, ids)
	gaps := 0
	hook.mu.Lock()
	defer hook.mu.Unlock()
	for i, id := range ids {
		_, ok := hook.got[id]
		require.True(t, ok, "event %d never delivered", id)
		if i > 0 && id != ids[i-1]+1 {
			gaps++
		}
	}
	upTo := 0
	for id := range hook.got {
		if id <= last {
			upTo++
		}
	}
	require.Equal(t, len(ids), upTo, "deliveries of events the ledger "+
		"does not hold")
	t.Logf("webhooks: all %d events of the ledger delivered (%d gaps in "+
		"their ids)", len(ids), gaps)
	return hook.posts, len(ids)
}

// hookPost is one POST the webhook endpoint accepted.
type hookPost struct {
	env webhook.Envelope
	// at is when it arrived; epoch counts the leader changes logged
	// before it.
	at    time.Time
	epoch int
}

// hookLog sits in front of a hookServer and logs every POST it accepts,
// repeats included, with the leader changes the test causes, so that a
// repeated event can be told apart by its id and allowed only across a
// leader change.
type hookLog struct {
	t     *testing.T
	srv   *httptest.Server
	mu    sync.Mutex
	posts []hookPost
	// changes are the moments a leader was killed (logged just before
	// and just after each kill).
	changes []time.Time
}

// newHookLog serves the endpoint of hook behind a log of its POSTs.
func newHookLog(t *testing.T, hook *hookServer) *hookLog {
	l := &hookLog{t: t}
	l.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter,
		r *http.Request) {

		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := httptest.NewRecorder()
		hook.srv.Config.Handler.ServeHTTP(rec, r)
		if rec.Code/100 == 2 {
			var env webhook.Envelope
			if json.Unmarshal(body, &env) == nil {
				l.mu.Lock()
				l.posts = append(l.posts, hookPost{env: env,
					at: time.Now(), epoch: len(l.changes)})
				l.mu.Unlock()
			}
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}))
	t.Cleanup(l.srv.Close)
	return l
}

// leaderChange logs that the test is killing (or has killed) the leader.
func (l *hookLog) leaderChange() {
	l.mu.Lock()
	l.changes = append(l.changes, time.Now())
	l.mu.Unlock()
}

// checkRepeats checks the documented dedupe rule (docs/api-receiver.md,
// docs/architecture.md: delivery is at least once across a leader
// change, endpoints deduplicate by the event's id): every POST of one
// event (one sequence) carries the same id and the same event, no two
// events share an id, and an event is POSTed again only after a leader
// was killed since its first POST. It logs the repeats.
func (l *hookLog) checkRepeats(what string) {
	t := l.t
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	first := map[uint64]hookPost{}
	seqOf := map[string]uint64{}
	repeats := 0
	for _, p := range l.posts {
		if prev, ok := seqOf[p.env.ID]; ok {
			require.Equal(t, prev, p.env.Sequence, "%s: event id %s "+
				"on events %d and %d", what, p.env.ID, prev,
				p.env.Sequence)
		}
		seqOf[p.env.ID] = p.env.Sequence
		f, ok := first[p.env.Sequence]
		if !ok {
			first[p.env.Sequence] = p
			continue
		}
		repeats++
		require.Equal(t, f.env.ID, p.env.ID, "%s: event %d POSTed "+
			"again under another id", what, p.env.Sequence)
		require.JSONEq(t, mustJSON(t, f.env), mustJSON(t, p.env),
			"%s: event %d POSTed again with another body", what,
			p.env.Sequence)
		require.Greater(t, p.epoch, f.epoch, "%s: event %d (%s) "+
			"POSTed again at %v, first at %v, with no leader "+
			"change between (leader changes: %v)", what,
			p.env.Sequence, p.env.ID, p.at, f.at, l.changes)
	}
	t.Logf("%s: %d webhook POSTs of %d events, %d repeats, all across "+
		"one of %d leader changes and deduplicable by id", what,
		len(l.posts), len(first), repeats, len(l.changes)/2)
}

// mustJSON renders v as JSON.
func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}
