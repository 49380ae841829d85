-- duro's tables in PostgreSQL (cluster mode). Created if missing at every start.

-- Every stored entry: t 0 = objects' data, 1 = classes, 2 = components, 3 = meta. Keys are the
-- bytes storage::schema lays out; bytea compares as redb compares keys (bytewise).
CREATE TABLE IF NOT EXISTS duro_entries (
    t smallint NOT NULL,
    k bytea NOT NULL,
    v bytea NOT NULL,
    PRIMARY KEY (t, k)
);

-- Each object's alarm (object = [class incarnation][object id]), with a failed alarm's pending
-- retry; the (at_ms, object) index is the schedule.
CREATE TABLE IF NOT EXISTS duro_alarms (
    object bytea PRIMARY KEY,
    at_ms bigint NOT NULL,
    retry bytea
);
CREATE INDEX IF NOT EXISTS duro_alarms_schedule ON duro_alarms (at_ms, object);

-- The node processes of the cluster, one row per incarnation (a restarted node is a new one; its
-- old lease stays until it expires): the row is its lease, valid until `expires` (PostgreSQL's
-- clock).
CREATE TABLE IF NOT EXISTS duro_nodes (
    incarnation text PRIMARY KEY,
    node text NOT NULL,
    address text NOT NULL,
    expires timestamptz NOT NULL
);

-- Objects map to shards; a node runs an object only while its incarnation owns the shard.
CREATE TABLE IF NOT EXISTS duro_shards (
    shard integer PRIMARY KEY,
    owner text,
    epoch bigint NOT NULL DEFAULT 0
);

-- The fence every commit starts with: fails the transaction unless the caller's incarnation owns
-- every shard it writes. FOR SHARE makes a takeover wait for a commit in flight, and a commit
-- that waited re-reads the owner.
CREATE OR REPLACE FUNCTION duro_fence(wanted integer[], me text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    held integer;
BEGIN
    SELECT count(*) INTO held FROM (
        SELECT 1 FROM duro_shards WHERE shard = ANY(wanted) AND owner = me FOR SHARE
    ) AS owned;
    IF held <> cardinality(wanted) THEN
        RAISE EXCEPTION 'this node no longer holds the lease of a shard it writes'
            USING ERRCODE = 'DU001';
    END IF;
END
$$;
