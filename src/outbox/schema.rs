//! The outbox's schema and how its connections are opened. The schema version is SQLite's
//! `PRAGMA user_version`: the number of [`MIGRATIONS`] applied, each in its own transaction.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::OutboxError;

/// Each step upgrades the schema by one version (`PRAGMA user_version` counts the steps applied).
pub const MIGRATIONS: &[&str] = &[
    SCHEMA_V1,
    SCHEMA_V2,
    SCHEMA_V3,
    SCHEMA_V4,
    SCHEMA_REPORTS,
    SCHEMA_REPORT_NAMES,
    SCHEMA_FORUM_POSTS_USED,
    SCHEMA_REPORT_ACTION,
    SCHEMA_NODE_WATCH,
    SCHEMA_REPORT_HIGHEST_END,
    SCHEMA_USER_STATES,
    SCHEMA_APP_WEBHOOKS,
    SCHEMA_USER_STATES_COUNT,
];

/// The relay's own (application-owned) webhook of each channel it was given as a destination
/// (`DISCORD_CHANNEL_ID`, a routes file's `channel_id`): id and token, reused across restarts.
pub const SCHEMA_APP_WEBHOOKS: &str = "
CREATE TABLE app_webhooks (
    channel_id      INTEGER PRIMARY KEY,
    webhook_id      INTEGER NOT NULL,
    token           TEXT    NOT NULL,
    created_at      INTEGER NOT NULL
) WITHOUT ROWID;
";

/// How many users' states are kept, counted by triggers as states are added and forgotten, so that
/// every write can hold them to `STATES_MAX` without counting 200,000 rows (an upsert that updates
/// a state fires no insert trigger).
pub const SCHEMA_USER_STATES_COUNT: &str = "
CREATE TABLE user_states_count (n INTEGER NOT NULL);
INSERT INTO user_states_count SELECT COUNT(*) FROM user_states;
CREATE TRIGGER user_states_added AFTER INSERT ON user_states
    BEGIN UPDATE user_states_count SET n = n + 1; END;
CREATE TRIGGER user_states_forgotten AFTER DELETE ON user_states
    BEGIN UPDATE user_states_count SET n = n - 1; END;
";

/// Node watch: per panel ('' for none) the watcher's state as JSON (nodes, open outages), and
/// the node outages that were reported, for reports (unix ms; `ended_at` NULL while open).
pub const SCHEMA_NODE_WATCH: &str = "
CREATE TABLE node_watch (
    panel           TEXT    PRIMARY KEY,
    state           TEXT    NOT NULL,
    updated_at      INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE node_outages (
    panel           TEXT    NOT NULL,
    node_id         INTEGER NOT NULL,
    name            TEXT    NOT NULL,
    started_at      INTEGER NOT NULL,
    ended_at        INTEGER,
    PRIMARY KEY (panel, node_id, started_at)
) WITHOUT ROWID;
";

/// The highest period end each report was recorded as sent for, which setting the record back
/// (a clock that seemed to have been ahead) leaves alone: once the clock is right again, no report
/// starts before it. Records so far are their own highest.
pub const SCHEMA_REPORT_HIGHEST_END: &str = "
ALTER TABLE reports_sent ADD COLUMN highest_end INTEGER NOT NULL DEFAULT 0;
UPDATE reports_sent SET highest_end = period_end;
";

/// The relay's own reports are stored with the action `:report`, which no panel can send: a report
/// stored before (action `report`, username `daily report` or `weekly report`, no fingerprint) and
/// not yet delivered would otherwise go out as a panel event, into a post of its own in forum mode.
pub const SCHEMA_REPORT_ACTION: &str = "
UPDATE messages SET action = ':report'
    WHERE action = 'report' AND fingerprint IS NULL AND username IN ('daily report', 'weekly report');
";

/// The last state seen of each user (JSON of `event::UserState`), per panel ('' for none), and
/// when it was seen (unix ms), so an edit can show what it changed: one B-tree, no index on
/// `seen_at` (the hourly pruning scans it), so that keeping it costs ingest one page write per
/// user changed. And the users each slot's
/// events of a listed action were about (a hash of each name, up to a cap per slot; `unhashed`
/// counts the events past it, null for slots counted before), so a report's "and N more" counts
/// users.
pub const SCHEMA_USER_STATES: &str = "
CREATE TABLE user_states (
    panel           TEXT    NOT NULL,
    username        TEXT    NOT NULL,
    state           TEXT    NOT NULL,
    seen_at         INTEGER NOT NULL,
    PRIMARY KEY (panel, username)
) WITHOUT ROWID;
ALTER TABLE tally ADD COLUMN unhashed INTEGER;
CREATE TABLE tally_users (
    slot            INTEGER NOT NULL,
    panel           TEXT    NOT NULL,
    action          TEXT    NOT NULL,
    user            INTEGER NOT NULL,
    PRIMARY KEY (slot, panel, action, user)
) WITHOUT ROWID;
";

/// When each remembered forum post was last written to (unix ms), so a full outbox forgets the
/// least recently used posts first. Posts remembered so far count as used when they were made.
pub const SCHEMA_FORUM_POSTS_USED: &str = "
ALTER TABLE forum_posts ADD COLUMN used_at INTEGER NOT NULL DEFAULT 0;
UPDATE forum_posts SET used_at = created_at;
";

/// The reports' usernames are kept per slot (not per UTC day): a user named in two slots of a day
/// is kept in both, so a report of the later one names them. Names kept so far stay.
pub const SCHEMA_REPORT_NAMES: &str = "
CREATE TABLE tally_names_by_slot (
    slot            INTEGER NOT NULL,
    panel           TEXT    NOT NULL,
    action          TEXT    NOT NULL,
    username        TEXT    NOT NULL,
    PRIMARY KEY (slot, panel, action, username)
) WITHOUT ROWID;
INSERT INTO tally_names_by_slot (slot, panel, action, username) SELECT slot, panel, action, username FROM tally_names;
DROP TABLE tally_names;
ALTER TABLE tally_names_by_slot RENAME TO tally_names;
";

/// Forum mode: which post (thread) of a forum destination holds a user's messages, or a day's
/// digests (`kind` 'digest', `name` the UTC date). `panel` is '' for events without a panel label.
pub const SCHEMA_V4: &str = "
CREATE TABLE forum_posts (
    destination     TEXT    NOT NULL,
    kind            TEXT    NOT NULL CHECK (kind IN ('user', 'digest')),
    panel           TEXT    NOT NULL DEFAULT '',
    name            TEXT    NOT NULL,
    thread_id       INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (destination, kind, panel, name)
);
";

/// Scheduled reports: what was received per quarter-hour slot (unix seconds / 900), panel ('' for
/// none) and action; usernames for the actions reports list (per UTC day, unix seconds / 86400;
/// per slot since [`SCHEMA_REPORT_NAMES`]); the relay's own health per slot; and the end (unix
/// seconds) of the last period each destination was sent each report for.
pub const SCHEMA_REPORTS: &str = "
CREATE TABLE tally (
    slot            INTEGER NOT NULL,
    panel           TEXT    NOT NULL,
    action          TEXT    NOT NULL,
    events          INTEGER NOT NULL,
    PRIMARY KEY (slot, panel, action)
) WITHOUT ROWID;
CREATE TABLE tally_names (
    day             INTEGER NOT NULL,
    panel           TEXT    NOT NULL,
    action          TEXT    NOT NULL,
    username        TEXT    NOT NULL,
    slot            INTEGER NOT NULL,
    PRIMARY KEY (day, panel, action, username)
) WITHOUT ROWID;
CREATE TABLE health_tally (
    slot            INTEGER NOT NULL,
    kind            TEXT    NOT NULL,
    count           INTEGER NOT NULL,
    PRIMARY KEY (slot, kind)
) WITHOUT ROWID;
CREATE TABLE reports_sent (
    destination     TEXT    NOT NULL,
    report          TEXT    NOT NULL,
    period_end      INTEGER NOT NULL,
    PRIMARY KEY (destination, report)
) WITHOUT ROWID;
";

/// Owner destinations were named `owner:<admin>:<url hash>`; they are `owner:<url hash>` now, so
/// admins sharing a webhook share its rows and task. Forgetting destinations without rows needs
/// their rows by destination, in any state.
pub const SCHEMA_V3: &str = "
UPDATE messages SET destination = 'owner:' || substr(destination, -12) WHERE destination LIKE 'owner:%:%';
INSERT OR REPLACE INTO destinations (name, url, thread_id)
    SELECT 'owner:' || substr(name, -12), url, thread_id FROM destinations WHERE name LIKE 'owner:%:%';
DELETE FROM destinations WHERE name LIKE 'owner:%:%';
CREATE INDEX messages_destination ON messages (destination);
";

pub const SCHEMA_V2: &str = "
ALTER TABLE messages ADD COLUMN mentions TEXT;
CREATE TABLE destinations (
    name            TEXT    PRIMARY KEY,
    url             TEXT    NOT NULL,
    thread_id       INTEGER
);
";

pub const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS messages (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    destination     TEXT    NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead')),
    received_at     INTEGER NOT NULL,
    action          TEXT    NOT NULL,
    username        TEXT    NOT NULL,
    panel           TEXT,
    part            TEXT    NOT NULL,
    fingerprint     TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    finished_at     INTEGER
);
CREATE INDEX IF NOT EXISTS messages_pending ON messages (destination, id) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS messages_fingerprint ON messages (fingerprint, received_at) WHERE fingerprint IS NOT NULL;
CREATE INDEX IF NOT EXISTS messages_finished ON messages (state, finished_at) WHERE state <> 'pending';
";

/// Opens the connection that writes, upgrading the schema first.
pub fn open_writer(path: &Path) -> Result<Connection, OutboxError> {
    let conn = Connection::open(path).map_err(|err| cannot_open(path, &err))?;
    // FULL: a commit is on disk before the panel hears 200. Group commit keeps this cheap.
    // secure_delete: a deleted row's bytes (a forgotten webhook's token) are zeroed in the page
    // that is written anyway, not left behind in the file.
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA secure_delete = FAST;
         PRAGMA busy_timeout = 5000;",
    )
    .map_err(|err| cannot_open(path, &err))?;
    migrate(&conn)?;
    Ok(conn)
}

/// What to do when the data folder belongs to someone else: the usual case is a bind mount of a
/// host folder that root (or Docker) created, which the image's user cannot write to.
pub const NOT_WRITABLE_HINT: &str = ". The relay's user may not write to the data folder. In the Docker image that \
     user is uid 65532: for a bind mount such as ./data:/data, run `sudo chown -R 65532:65532 ./data` on the \
     host (a named volume needs nothing)";

pub fn cannot_open(path: &Path, err: &rusqlite::Error) -> OutboxError {
    use rusqlite::ErrorCode::{CannotOpen, PermissionDenied, ReadOnly};
    let hint = match err.sqlite_error_code() {
        Some(CannotOpen | PermissionDenied | ReadOnly) => NOT_WRITABLE_HINT,
        _ => "",
    };
    OutboxError::Storage(format!("cannot open {}: {err}{hint}", path.display()))
}

fn migrate(conn: &Connection) -> Result<(), OutboxError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let version = usize::try_from(version).unwrap_or(usize::MAX);
    if version > MIGRATIONS.len() {
        return Err(OutboxError::Storage(format!(
            "the outbox was written by a newer version of the relay (schema {version}, this one knows {})",
            MIGRATIONS.len()
        )));
    }
    for (step, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        conn.execute_batch(&format!("BEGIN; {sql} PRAGMA user_version = {}; COMMIT;", step + 1))?;
    }
    Ok(())
}

/// Opens a connection that only reads, for queries that must not wait for the writer's group
/// commit. In WAL mode each of its statements reads the database as last committed when the
/// statement began, so it sees every write whose caller has been answered.
pub fn open_reader(path: &Path) -> Result<Connection, OutboxError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags).map_err(|err| cannot_open(path, &err))?;
    conn.execute_batch("PRAGMA busy_timeout = 5000;").map_err(|err| cannot_open(path, &err))?;
    Ok(conn)
}

/// [`open_reader`], for users' states alone: a request reads a few pages of them (the B-tree's
/// top and the leaves of its users), which SQLite drops at the next read after a commit anyway,
/// so a cache of 256 KiB is plenty; SQLite reuses the first pages it allocated for them.
pub fn open_states_reader(path: &Path) -> Result<Connection, OutboxError> {
    let conn = open_reader(path)?;
    conn.execute_batch("PRAGMA cache_size = -256;").map_err(|err| cannot_open(path, &err))?;
    Ok(conn)
}
