/** Schema versions, applied in order; `PRAGMA user_version` records how far a database got. */
export const MIGRATIONS: string[] = [
  `
  CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

  -- Where each source has read up to, and how its late-data sweep is doing.
  CREATE TABLE cursors (
    project TEXT NOT NULL,
    source TEXT NOT NULL,
    cursor_ms INTEGER,
    sweep_floor_ms INTEGER,
    sweep_pos_ms INTEGER,
    sweep_started_at INTEGER,
    last_sweep_done_at INTEGER,
    last_poll_at INTEGER,
    last_ok_at INTEGER,
    last_outcome TEXT,
    last_error TEXT,
    PRIMARY KEY (project, source)
  );

  -- What the bridge already knows of each entity: the version it last turned into events.
  CREATE TABLE seen (
    project TEXT NOT NULL,
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    version TEXT,
    level INTEGER NOT NULL DEFAULT 0,
    created INTEGER NOT NULL DEFAULT 0,
    detail TEXT,
    seen_at INTEGER NOT NULL,
    PRIMARY KEY (project, kind, id)
  ) WITHOUT ROWID;
  CREATE INDEX seen_age ON seen (seen_at);

  -- Each event once, its body byte for byte as every attempt sends it.
  CREATE TABLE events (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    ts TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at INTEGER NOT NULL
  );
  CREATE INDEX events_age ON events (created_at);

  -- One row per event and sink: queued, delivering, retrying, delivered or dead. Keyed by write
  -- order, so status changes touch the row and small partial indexes, not random pages.
  CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL,
    sink TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at INTEGER NOT NULL,
    owner TEXT,
    lease_until INTEGER,
    last_error TEXT,
    origin TEXT NOT NULL DEFAULT 'live',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    delivered_at INTEGER,
    dead_at INTEGER,
    UNIQUE (event_id, sink)
  );
  CREATE INDEX outbox_due ON outbox (sink, next_at, seq) WHERE status IN ('queued', 'retrying');
  CREATE INDEX outbox_open ON outbox (origin, created_at) WHERE status IN ('queued', 'retrying', 'delivering');
  CREATE INDEX outbox_delivered ON outbox (delivered_at) WHERE status = 'delivered';
  CREATE INDEX outbox_dead ON outbox (dead_at) WHERE status = 'dead';
  `,
  `
  -- Calls to Langfuse in the last minute, per project, shared by every process on this database.
  CREATE TABLE api_calls (key TEXT NOT NULL, at INTEGER NOT NULL);
  CREATE INDEX api_calls_window ON api_calls (key, at);
  `,
  `
  -- Events get an explicit write-order key, and each outbox row points at it: the outbox's unique key
  -- then grows at its end, as the table does. Keyed by event id (a hash, so random), it had one index
  -- page rewritten per new row once the outbox outgrew a commit.
  CREATE TABLE events_v3 (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    ts TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at INTEGER NOT NULL
  );
  INSERT INTO events_v3 (seq, id, type, ts, body, created_at) SELECT rowid, id, type, ts, body, created_at FROM events ORDER BY rowid;
  DROP TABLE events;
  ALTER TABLE events_v3 RENAME TO events;
  CREATE INDEX events_age ON events (created_at);

  CREATE TABLE outbox_v3 (
    seq INTEGER PRIMARY KEY,
    event_seq INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    sink TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at INTEGER NOT NULL,
    owner TEXT,
    lease_until INTEGER,
    last_error TEXT,
    origin TEXT NOT NULL DEFAULT 'live',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    delivered_at INTEGER,
    dead_at INTEGER,
    UNIQUE (event_seq, sink)
  );
  -- An outbox row whose event is gone could never be sent (no body): it is not carried over.
  INSERT INTO outbox_v3 (seq, event_seq, event_id, sink, status, attempts, next_at, owner, lease_until, last_error, origin, created_at, updated_at, delivered_at, dead_at)
    SELECT o.seq, e.seq, o.event_id, o.sink, o.status, o.attempts, o.next_at, o.owner, o.lease_until, o.last_error, o.origin, o.created_at, o.updated_at, o.delivered_at, o.dead_at
    FROM outbox o JOIN events e ON e.id = o.event_id ORDER BY o.seq;
  DROP TABLE outbox;
  ALTER TABLE outbox_v3 RENAME TO outbox;
  CREATE INDEX outbox_due ON outbox (sink, next_at, seq) WHERE status IN ('queued', 'retrying');
  CREATE INDEX outbox_open ON outbox (origin, created_at) WHERE status IN ('queued', 'retrying', 'delivering');
  CREATE INDEX outbox_delivered ON outbox (delivered_at) WHERE status = 'delivered';
  CREATE INDEX outbox_dead ON outbox (dead_at) WHERE status = 'dead';
  -- A process of an older version still running on this file would write outbox rows without
  -- event_seq, and its INSERT OR IGNORE would drop them without a word: make it fail instead (its
  -- transaction rolls back, cursor included, so nothing is lost until it is restarted).
  CREATE TRIGGER outbox_needs_event_seq BEFORE INSERT ON outbox WHEN NEW.event_seq IS NULL
  BEGIN
    SELECT RAISE(ABORT, 'this database was upgraded by a newer langfuse-bridge: restart this process with the newer version');
  END;
  `,
  `
  -- Every delivery attempt: when, how long, its outcome, the HTTP status or the error, and at most
  -- 256 bytes of the receiver's answer. Keyed by write order; read per outbox row and by time.
  CREATE TABLE attempts (
    id INTEGER PRIMARY KEY,
    outbox_seq INTEGER NOT NULL,
    at INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    status_code INTEGER,
    error TEXT,
    response TEXT
  );
  CREATE INDEX attempts_row ON attempts (outbox_seq, id);
  CREATE INDEX attempts_age ON attempts (at);
  `,
  `
  -- Monitors: compact facts about every item read (no bodies), clustered by time so a window is one
  -- range scan; an item read again replaces its row through the unique key.
  CREATE TABLE monitor_facts (
    project TEXT NOT NULL,
    kind TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    id TEXT NOT NULL,
    end_ms INTEGER,
    type TEXT,
    name TEXT,
    environment TEXT,
    tags TEXT,
    model TEXT,
    data_type TEXT,
    level INTEGER NOT NULL DEFAULT 1,
    latency REAL,
    cost REAL,
    tokens REAL,
    value REAL,
    PRIMARY KEY (project, kind, ts_ms, id)
  ) WITHOUT ROWID;
  CREATE UNIQUE INDEX monitor_facts_item ON monitor_facts (project, kind, id);

  -- Each monitor's severity per project, its last window and the last notification: written in the
  -- transaction that queues the notification, so a restart neither loses nor repeats one.
  CREATE TABLE monitor_state (
    project TEXT NOT NULL,
    monitor TEXT NOT NULL,
    severity TEXT NOT NULL,
    value REAL,
    samples INTEGER NOT NULL DEFAULT 0,
    window_end_ms INTEGER,
    evaluated_at INTEGER,
    notified_at_ms INTEGER,
    recent TEXT NOT NULL DEFAULT '[]',
    spec TEXT NOT NULL,
    PRIMARY KEY (project, monitor)
  ) WITHOUT ROWID;
  `,
  `
  -- What the router decided an alert sink sends for the row's event (compact JSON, src/rules/route.ts),
  -- so that a retry or a replay sends that and not what the rules in force later would say. Rows
  -- written before have none and are decided at delivery, as they were.
  ALTER TABLE outbox ADD COLUMN route TEXT;
  `,
];
