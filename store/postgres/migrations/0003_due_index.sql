-- The expiry scan reads only subscriptions with a state change due: an
-- active (2) one at the end of its paid time, a past-due (3) one at the end
-- of its grace period. Keyed by paid-until alone, every subscription in
-- grace was read again at each sweep until its grace ended. The expression
-- is the one the due query in tx.go orders by; it saturates instead of
-- overflowing, so no grace, however long, makes a write fail.
DROP INDEX IF EXISTS subscriptions_due;
CREATE INDEX subscriptions_due ON subscriptions ((
	CASE WHEN state = 3 AND grace_ns > 0
		THEN LEAST(paid_until_ns, 9223372036854775807 - grace_ns) + grace_ns
		ELSE paid_until_ns END), id)
	WHERE state IN (2, 3);
