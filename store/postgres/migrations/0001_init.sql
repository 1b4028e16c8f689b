-- satstream ledger, PostgreSQL schema version 1.
--
-- Conventions: amounts are msat in bigint with CHECK (>= 0); times are
-- Unix nanoseconds in bigint (*_ns, 0 = unset, the badger store's encoding,
-- so values round-trip exactly); durations are nanoseconds (*_ns); ids and
-- hashes are bytea of fixed length; a payer's sequence number is a uint64 on
-- the wire and is numeric(20,0) here, since bigint cannot hold all of it.
-- Enum values are the store package's on-disk numbers and never change.

CREATE TABLE plans (
	id                   text PRIMARY KEY
	                     CHECK (octet_length(id) BETWEEN 1 AND 64),
	label                text NOT NULL,
	rate_msat            bigint NOT NULL CHECK (rate_msat >= 0),
	min_payment_msat     bigint NOT NULL CHECK (min_payment_msat >= 0),
	increment_msat       bigint NOT NULL CHECK (increment_msat >= 0),
	grace_ns             bigint NOT NULL,
	max_prepay_ns        bigint NOT NULL,
	open_enrolment       boolean NOT NULL,
	created_ns           bigint NOT NULL,
	updated_ns           bigint NOT NULL,
	default_increment_ns bigint NOT NULL
);

-- Subscriptions keep their own copy of the terms; plan_id names the plan
-- they enrolled in but is not a foreign key: a subscription's terms never
-- depend on the plan row, and a payer may enrol before the provider's plan
-- row exists in tests and tools.
CREATE TABLE subscriptions (
	id               bytea PRIMARY KEY CHECK (octet_length(id) = 16),
	public_id        bytea NOT NULL UNIQUE CHECK (octet_length(public_id) = 16),
	plan_id          text NOT NULL,
	rate_msat        bigint NOT NULL CHECK (rate_msat >= 0),
	min_payment_msat bigint NOT NULL CHECK (min_payment_msat >= 0),
	increment_msat   bigint NOT NULL CHECK (increment_msat >= 0),
	grace_ns         bigint NOT NULL,
	max_prepay_ns    bigint NOT NULL,
	state            smallint NOT NULL CHECK (state BETWEEN 1 AND 6),
	paid_until_ns    bigint NOT NULL,
	remainder_msat   bigint NOT NULL CHECK (remainder_msat >= 0),
	last_seq         numeric(20,0) NOT NULL CHECK (last_seq >= 0),
	total_paid_msat  bigint NOT NULL CHECK (total_paid_msat >= 0),
	total_seconds    bigint NOT NULL CHECK (total_seconds >= 0),
	payments         bigint NOT NULL CHECK (payments >= 0),
	created_ns       bigint NOT NULL,
	updated_ns       bigint NOT NULL,
	cancelled_ns     bigint NOT NULL,
	credit_count     bigint NOT NULL CHECK (credit_count >= 0)
);
CREATE INDEX subscriptions_by_state ON subscriptions (state, id);
-- The expiry scan: active (2) and past-due (3) subscriptions by paid-until.
CREATE INDEX subscriptions_due ON subscriptions (paid_until_ns, id)
	WHERE state IN (2, 3);

-- The payment ledger. The hash is the primary key, so one payment is one
-- row however often lnd reports it; a subscription's sequence is credited
-- at most once (payments_credited_seq). Refused payments may repeat a
-- sequence (a payer retrying a duplicate is refused and recorded), so the
-- uniqueness covers credited rows. sub_id is NULL for a payment that named
-- no subscription; it is not a foreign key because refused payments name
-- subscriptions that do not exist.
CREATE TABLE payments (
	hash                bytea PRIMARY KEY CHECK (octet_length(hash) = 32),
	sub_id              bytea CHECK (octet_length(sub_id) = 16),
	seq                 numeric(20,0) NOT NULL CHECK (seq >= 0),
	amount_msat         bigint NOT NULL CHECK (amount_msat >= 0),
	seconds             bigint NOT NULL CHECK (seconds >= 0),
	settle_index        bigint NOT NULL CHECK (settle_index >= 0),
	state               smallint NOT NULL CHECK (state BETWEEN 1 AND 3),
	reason              text NOT NULL,
	received_ns         bigint NOT NULL,
	rate_msat           bigint NOT NULL CHECK (rate_msat >= 0),
	before_paid_until_ns bigint NOT NULL,
	before_remainder_msat bigint NOT NULL CHECK (before_remainder_msat >= 0),
	before_state        smallint NOT NULL CHECK (before_state BETWEEN 0 AND 6),
	credit_no           bigint NOT NULL CHECK (credit_no >= 0),
	CHECK (state <> 1 OR sub_id IS NOT NULL)
);
CREATE INDEX payments_by_seq ON payments (sub_id, seq, hash)
	WHERE sub_id IS NOT NULL;
CREATE UNIQUE INDEX payments_credited_seq ON payments (sub_id, seq)
	WHERE state = 1;
CREATE INDEX payments_refused ON payments (sub_id, received_ns, hash)
	WHERE state = 2 AND sub_id IS NOT NULL;

CREATE TABLE refusal_counts (
	reason text PRIMARY KEY CHECK (octet_length(reason) BETWEEN 1 AND 64),
	n      bigint NOT NULL CHECK (n >= 0)
);

CREATE TABLE refusal_events (
	sub_id bytea NOT NULL CHECK (octet_length(sub_id) = 16),
	reason text NOT NULL CHECK (octet_length(reason) BETWEEN 1 AND 64),
	at_ns  bigint NOT NULL,
	PRIMARY KEY (sub_id, reason)
);

-- Per provider node (lnd identity key): where to resume lnd's invoice
-- subscription. Each receiver reads and moves only its own node's row.
CREATE TABLE node_state (
	node         bytea PRIMARY KEY CHECK (octet_length(node) = 33),
	settle_index bigint NOT NULL DEFAULT 0 CHECK (settle_index >= 0),
	add_index    bigint NOT NULL DEFAULT 0 CHECK (add_index >= 0)
);

-- Per node: which lnd node and network the ledger serves. Every node of
-- one ledger is on the same network.
CREATE TABLE node_bindings (
	node    bytea PRIMARY KEY CHECK (octet_length(node) = 33),
	network text NOT NULL CHECK (octet_length(network) BETWEEN 1 AND 64)
);

-- Per node: payments credited while their HTLC is still held by that
-- node's lnd. The payment row may be written later in the same
-- transaction, hence the deferred check.
CREATE TABLE held (
	node bytea NOT NULL CHECK (octet_length(node) = 33),
	hash bytea NOT NULL REFERENCES payments (hash)
	     DEFERRABLE INITIALLY DEFERRED,
	PRIMARY KEY (node, hash)
);

-- The event outbox. Ids come from the identity sequence: increasing, but
-- a rolled-back or retried transaction leaves a gap, and concurrent
-- transactions may commit out of id order.
CREATE TABLE events (
	id             bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
	uid            bytea NOT NULL UNIQUE CHECK (octet_length(uid) = 16),
	sub_id         bytea NOT NULL CHECK (octet_length(sub_id) = 16),
	type           integer NOT NULL CHECK (type BETWEEN 0 AND 65535),
	payload        bytea NOT NULL,
	created_ns     bigint NOT NULL,
	attempts       bigint NOT NULL CHECK (attempts BETWEEN 0 AND 4294967295),
	next_attempt_ns bigint NOT NULL,
	last_error     text NOT NULL,
	delivered      boolean NOT NULL,
	delivered_ns   bigint NOT NULL,
	-- The webhook endpoints (8-byte ids, concatenated) the event was
	-- delivered or given up at when it finished; NULL: not kept.
	finished_at    bytea CHECK (octet_length(finished_at) % 8 = 0)
);
CREATE INDEX events_pending ON events (id) WHERE NOT delivered;

CREATE TABLE deliveries (
	endpoint       bytea NOT NULL CHECK (octet_length(endpoint) = 8),
	event_id       bigint NOT NULL REFERENCES events (id),
	state          smallint NOT NULL CHECK (state BETWEEN 0 AND 2),
	attempts       bigint NOT NULL CHECK (attempts BETWEEN 0 AND 4294967295),
	next_attempt_ns bigint NOT NULL,
	last_error     text NOT NULL,
	finished_ns    bigint NOT NULL,
	retry_since_ns bigint NOT NULL,
	manual         boolean NOT NULL DEFAULT false,
	PRIMARY KEY (endpoint, event_id)
);

-- Idempotency keys of the APIs' POSTs (common/idem), shared by all nodes.
CREATE TABLE idempotency (
	scope        bytea PRIMARY KEY CHECK (octet_length(scope) = 32),
	body_hash    bytea NOT NULL CHECK (octet_length(body_hash) = 32),
	seed         bytea NOT NULL CHECK (octet_length(seed) = 16),
	created_ns   bigint NOT NULL,
	done         boolean NOT NULL,
	-- applied: the request's effect committed (in the same transaction);
	-- such a record is never pruned before its answer is recorded.
	applied      boolean NOT NULL DEFAULT false,
	status       bigint NOT NULL CHECK (status BETWEEN 0 AND 4294967295),
	content_type text NOT NULL,
	body         bytea NOT NULL
);
CREATE INDEX idempotency_by_time ON idempotency (created_ns, scope);
