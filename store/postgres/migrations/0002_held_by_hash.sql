-- satstream ledger, PostgreSQL schema version 2: held HTLCs by hash.
--
-- A held-HTLC decision asks whether any node holds a hash (HeldAt). The
-- primary key starts with the node, so that lookup read the whole table or
-- the whole key index, and under SERIALIZABLE every concurrent decision's
-- insert into held then conflicted with it. This index makes the lookup
-- one probe; its predicate lock covers the index page of that hash only.
CREATE INDEX held_by_hash ON held (hash, node);
