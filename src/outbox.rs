//! The outbox: one SQLite file (WAL) holding one row per (event, destination) until Discord has it.
//! The only module that speaks SQL.
//!
//! One thread owns the connection. Every call is a job sent to it; the thread takes all jobs that
//! are waiting, runs them in one transaction (each inside its own savepoint, so one failing job
//! does not undo the others), commits once, and only then answers each caller. So many concurrent
//! requests share one fsync (group commit), and an answer always means "committed".
//!
//! The file holds webhook URLs with their tokens (owner admins'), so it and its `-wal`/`-shm` files
//! are readable by the relay's user only (0600), and a data folder the relay creates is 0700.

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::{mpsc, oneshot};

use crate::destination::Mentions;

/// What a stored row takes besides its part, roughly (columns, index entries).
const ROW_OVERHEAD_BYTES: u64 = 256;

/// How many queued jobs one transaction takes at most.
const JOBS_PER_TRANSACTION: usize = 512;

/// How many jobs may wait for the writer before callers wait to enqueue.
const QUEUE_DEPTH: usize = 4096;

/// The file name inside `DATA_DIR`.
pub const FILE_NAME: &str = "outbox.sqlite3";

/// Each step upgrades the schema by one version (`PRAGMA user_version` counts the steps applied).
const MIGRATIONS: &[&str] = &[SCHEMA_V1, SCHEMA_V2, SCHEMA_V3];

/// Owner destinations were named `owner:<admin>:<url hash>`; they are `owner:<url hash>` now, so
/// admins sharing a webhook share its rows and task. Forgetting destinations without rows needs
/// their rows by destination, in any state.
const SCHEMA_V3: &str = "
UPDATE messages SET destination = 'owner:' || substr(destination, -12) WHERE destination LIKE 'owner:%:%';
INSERT OR REPLACE INTO destinations (name, url, thread_id)
    SELECT 'owner:' || substr(name, -12), url, thread_id FROM destinations WHERE name LIKE 'owner:%:%';
DELETE FROM destinations WHERE name LIKE 'owner:%:%';
CREATE INDEX messages_destination ON messages (destination);
";

const SCHEMA_V2: &str = "
ALTER TABLE messages ADD COLUMN mentions TEXT;
CREATE TABLE destinations (
    name            TEXT    PRIMARY KEY,
    url             TEXT    NOT NULL,
    thread_id       INTEGER
);
";

const SCHEMA_V1: &str = "
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

/// Why the outbox could not do what was asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OutboxError {
    #[error("outbox storage error: {0}")]
    Storage(String),
    #[error("the outbox is full (OUTBOX_MAX_BYTES, or the disk)")]
    Full,
    #[error("the outbox is closed")]
    Closed,
}

impl From<rusqlite::Error> for OutboxError {
    fn from(err: rusqlite::Error) -> Self {
        if err.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) {
            Self::Full
        } else {
            Self::Storage(err.to_string())
        }
    }
}

/// A message part to store for one destination.
#[derive(Debug, Clone)]
pub struct NewRow {
    pub destination: String,
    pub received_at_ms: i64,
    pub action: String,
    pub username: String,
    pub panel: Option<String>,
    /// The rendered part as JSON (see `render::Part`).
    pub part: String,
    /// Identifies re-sends of the same notification, for de-duplication.
    pub fingerprint: Option<String>,
    /// Whom the message may ping.
    pub mentions: Mentions,
}

/// A destination that is not in the configuration (an owner admin's webhook): remembered so its
/// pending rows can be delivered after a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDestination {
    pub name: String,
    /// The full webhook URL, token included.
    pub url: String,
    pub thread_id: Option<u64>,
}

/// A stored row waiting for delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub id: i64,
    pub destination: String,
    pub received_at_ms: i64,
    pub action: String,
    pub username: String,
    pub panel: Option<String>,
    pub part: String,
    pub attempts: u32,
    pub mentions: Mentions,
}

/// A pending row without its message part: enough to plan digests.
#[derive(Debug, Clone, PartialEq)]
pub struct RowMeta {
    pub id: i64,
    pub action: String,
    pub username: String,
    pub panel: Option<String>,
    pub received_at_ms: i64,
    pub mentions: Mentions,
}

/// Counts of one destination's rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DestinationStats {
    pub destination: String,
    pub pending: i64,
    pub delivered: i64,
    pub dead: i64,
    /// When the oldest pending row was received (unix ms).
    pub oldest_pending_ms: Option<i64>,
}

/// A dead letter, for listing.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadRow {
    pub id: i64,
    pub destination: String,
    pub action: String,
    pub username: String,
    pub received_at_ms: i64,
    pub attempts: u32,
    pub reason: Option<String>,
}

/// Which dead letters to send again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retry {
    One(i64),
    All,
}

/// What `enqueue` stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Enqueued {
    pub stored: usize,
    /// Events whose rows were skipped because the same notification was stored for the same
    /// destination within the de-duplication window.
    pub duplicates: usize,
}

type Completion = Box<dyn FnOnce(Result<(), OutboxError>) + Send>;
/// A unit of work for the writer thread. It gets no connection when the transaction could not be
/// opened; it then must not touch storage and only hands back its completion.
type Job = Box<dyn FnOnce(Option<&Connection>) -> (bool, Completion) + Send>;

/// A handle to the outbox. Cheap to clone; the writer thread stops when the last handle is dropped.
#[derive(Clone)]
pub struct Outbox {
    jobs: mpsc::Sender<Job>,
    path: PathBuf,
    /// New rows are refused beyond this many bytes of data (`OUTBOX_MAX_BYTES`).
    max_bytes: Option<u64>,
}

impl Outbox {
    /// Opens (creating if needed) the outbox in `data_dir` and starts its writer thread.
    pub fn open(data_dir: &Path) -> Result<Self, OutboxError> {
        Self::open_capped(data_dir, None)
    }

    /// Like [`Outbox::open`], holding at most `max_bytes` (see `OUTBOX_MAX_BYTES`).
    pub fn open_capped(data_dir: &Path, max_bytes: Option<u64>) -> Result<Self, OutboxError> {
        let hint = |err: &std::io::Error| {
            if err.kind() == std::io::ErrorKind::PermissionDenied {
                NOT_WRITABLE_HINT
            } else {
                ""
            }
        };
        private::create_dir(data_dir).map_err(|err| {
            OutboxError::Storage(format!("cannot create {}: {err}{}", data_dir.display(), hint(&err)))
        })?;
        let path = data_dir.join(FILE_NAME);
        private::prepare_files(&path)
            .map_err(|err| OutboxError::Storage(format!("cannot create {}: {err}{}", path.display(), hint(&err))))?;
        let conn = open_connection(&path)?;

        let (jobs, queue) = mpsc::channel(QUEUE_DEPTH);
        std::thread::Builder::new()
            .name("outbox-writer".into())
            .spawn(move || writer_loop(conn, queue))
            .map_err(|err| OutboxError::Storage(format!("cannot start the writer thread: {err}")))?;
        Ok(Self { jobs, path, max_bytes })
    }

    /// The SQLite file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on the writer thread inside the next group transaction and returns its result once
    /// that transaction has committed.
    async fn call<R, F>(&self, f: F) -> Result<R, OutboxError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<R> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let result = match conn {
                Some(conn) => f(conn).map_err(OutboxError::from),
                None => Err(OutboxError::Storage("no transaction could be opened".into())),
            };
            let ok = result.is_ok();
            let completion: Completion = Box::new(move |commit| {
                let _ = reply.send(commit.and(result));
            });
            (ok, completion)
        });
        self.jobs.send(job).await.map_err(|_| OutboxError::Closed)?;
        answer.await.map_err(|_| OutboxError::Closed)?
    }

    /// Stores `rows` durably, in order. Rows whose fingerprint was stored for the same destination
    /// within `dedup_window` are skipped.
    pub async fn enqueue(&self, rows: Vec<NewRow>, dedup_window: Option<Duration>) -> Result<Enqueued, OutboxError> {
        self.enqueue_with(rows, Vec::new(), dedup_window).await
    }

    /// Like [`Outbox::enqueue`], also remembering `destinations` (in the same transaction).
    pub async fn enqueue_with(
        &self,
        rows: Vec<NewRow>,
        destinations: Vec<StoredDestination>,
        dedup_window: Option<Duration>,
    ) -> Result<Enqueued, OutboxError> {
        let (rows, destinations) = (Arc::new(rows), Arc::new(destinations));
        let max_bytes = self.max_bytes;
        let attempt = || {
            let (rows, destinations) = (rows.clone(), destinations.clone());
            self.call(move |conn| {
                if !room_for(conn, &rows, max_bytes)? {
                    return Err(rusqlite::Error::SqliteFailure(
                        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
                        Some("OUTBOX_MAX_BYTES reached".into()),
                    ));
                }
                store(conn, &rows, &destinations, dedup_window)
            })
        };
        match attempt().await {
            Err(OutboxError::Full) => {
                // Make room by deleting what Discord already has, and try once more.
                let deleted =
                    self.call(|conn| conn.execute("DELETE FROM messages WHERE state = 'delivered'", [])).await?;
                log::warn!("the outbox is full; deleted {deleted} delivered rows to make room");
                if deleted == 0 {
                    return Err(OutboxError::Full);
                }
                attempt().await
            }
            stored => stored,
        }
    }

    /// Remembered destinations that still have pending rows.
    pub async fn stored_destinations(&self) -> Result<Vec<StoredDestination>, OutboxError> {
        self.call(|conn| {
            let mut stmt = conn.prepare(
                "SELECT name, url, thread_id FROM destinations
                 WHERE name IN (SELECT destination FROM messages WHERE state = 'pending') ORDER BY name",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(StoredDestination {
                    name: r.get(0)?,
                    url: r.get(1)?,
                    thread_id: r.get::<_, Option<i64>>(2)?.map(|t| t as u64),
                })
            })?;
            rows.collect()
        })
        .await
    }

    /// Forgets remembered destinations, and the `candidates`, that have no rows at all any more (so
    /// none pending, none dead, and none delivered within the retention that pruning keeps): their
    /// URLs leave the file. `forget` gets their names on the writer thread, inside the same
    /// transaction, so no write can store rows for one of them between the check and `forget`.
    /// Returns the names forgotten.
    pub async fn forget_unused_destinations<F>(
        &self,
        candidates: Vec<String>,
        forget: F,
    ) -> Result<Vec<String>, OutboxError>
    where
        F: FnOnce(&[String]) + Send + 'static,
    {
        self.call(move |conn| {
            let mut names: BTreeSet<String> = candidates.into_iter().collect();
            let mut remembered = conn.prepare_cached("SELECT name FROM destinations")?;
            for name in remembered.query_map([], |r| r.get::<_, String>(0))? {
                names.insert(name?);
            }
            let mut used = conn.prepare_cached("SELECT 1 FROM messages WHERE destination = ?1 LIMIT 1")?;
            let mut delete = conn.prepare_cached("DELETE FROM destinations WHERE name = ?1")?;
            let mut unused = Vec::new();
            for name in names {
                if used.query_row(params![name], |_| Ok(())).optional()?.is_none() {
                    delete.execute(params![name])?;
                    unused.push(name);
                }
            }
            forget(&unused);
            Ok(unused)
        })
        .await
    }

    /// The oldest pending rows of `destination`, at most `limit`, in the order they were received.
    pub async fn due(&self, destination: &str, limit: usize) -> Result<Vec<Row>, OutboxError> {
        let destination = destination.to_owned();
        self.call(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, destination, received_at, action, username, panel, part, attempts, mentions
                 FROM messages WHERE destination = ?1 AND state = 'pending' ORDER BY id LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![destination, limit as i64], |r| {
                Ok(Row {
                    id: r.get(0)?,
                    destination: r.get(1)?,
                    received_at_ms: r.get(2)?,
                    action: r.get(3)?,
                    username: r.get(4)?,
                    panel: r.get(5)?,
                    part: r.get(6)?,
                    attempts: r.get(7)?,
                    mentions: mentions(r.get(8)?),
                })
            })?;
            rows.collect()
        })
        .await
    }

    /// Marks rows delivered.
    pub async fn mark_delivered(&self, ids: Vec<i64>) -> Result<(), OutboxError> {
        self.finish(ids, "delivered", None).await
    }

    /// Marks rows dead (kept, never sent again unless retried by hand) with the reason.
    pub async fn mark_dead(&self, ids: Vec<i64>, reason: String) -> Result<(), OutboxError> {
        self.finish(ids, "dead", Some(reason)).await
    }

    async fn finish(&self, ids: Vec<i64>, state: &'static str, reason: Option<String>) -> Result<(), OutboxError> {
        let now = now_ms();
        self.call(move |conn| {
            let mut stmt = conn.prepare_cached(
                "UPDATE messages SET state = ?2, finished_at = ?3, last_error = COALESCE(?4, last_error)
                 WHERE id = ?1 AND state = 'pending'",
            )?;
            for id in ids {
                stmt.execute(params![id, state, now, reason])?;
            }
            Ok(())
        })
        .await
    }

    /// Counts a failed attempt on rows that stay pending.
    pub async fn record_attempt(&self, ids: Vec<i64>, error: String) -> Result<(), OutboxError> {
        self.call(move |conn| {
            let mut stmt = conn.prepare_cached(
                "UPDATE messages SET attempts = attempts + 1, last_error = ?2 WHERE id = ?1 AND state = 'pending'",
            )?;
            for id in ids {
                stmt.execute(params![id, error])?;
            }
            Ok(())
        })
        .await
    }

    /// Destinations that have pending rows.
    pub async fn pending_destinations(&self) -> Result<Vec<String>, OutboxError> {
        self.call(|conn| {
            let mut stmt = conn.prepare("SELECT DISTINCT destination FROM messages WHERE state = 'pending'")?;
            let names = stmt.query_map([], |r| r.get(0))?;
            names.collect()
        })
        .await
    }

    /// The oldest pending rows of `destination` without their parts, at most `limit`.
    pub async fn pending_meta(&self, destination: &str, limit: usize) -> Result<Vec<RowMeta>, OutboxError> {
        let destination = destination.to_owned();
        self.call(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, action, username, panel, received_at, mentions FROM messages
                 WHERE destination = ?1 AND state = 'pending' ORDER BY id LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![destination, limit as i64], |r| {
                Ok(RowMeta {
                    id: r.get(0)?,
                    action: r.get(1)?,
                    username: r.get(2)?,
                    panel: r.get(3)?,
                    received_at_ms: r.get(4)?,
                    mentions: mentions(r.get(5)?),
                })
            })?;
            rows.collect()
        })
        .await
    }

    /// Pending, delivered and dead counts per destination, and the oldest pending row's age.
    pub async fn stats(&self) -> Result<Vec<DestinationStats>, OutboxError> {
        self.call(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT destination,
                        SUM(state = 'pending'), SUM(state = 'delivered'), SUM(state = 'dead'),
                        MIN(CASE WHEN state = 'pending' THEN received_at END)
                 FROM messages GROUP BY destination ORDER BY destination",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(DestinationStats {
                    destination: r.get(0)?,
                    pending: r.get(1)?,
                    delivered: r.get(2)?,
                    dead: r.get(3)?,
                    oldest_pending_ms: r.get(4)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    /// Dead letters, oldest first, at most `limit`.
    pub async fn dead(&self, limit: usize) -> Result<Vec<DeadRow>, OutboxError> {
        self.call(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, destination, action, username, received_at, attempts, last_error
                 FROM messages WHERE state = 'dead' ORDER BY id LIMIT ?1",
            )?;
            let rows = stmt.query_map(params![limit as i64], |r| {
                Ok(DeadRow {
                    id: r.get(0)?,
                    destination: r.get(1)?,
                    action: r.get(2)?,
                    username: r.get(3)?,
                    received_at_ms: r.get(4)?,
                    attempts: r.get(5)?,
                    reason: r.get(6)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    /// Makes dead letters pending again (with their attempts reset). Returns how many.
    pub async fn retry(&self, which: Retry) -> Result<usize, OutboxError> {
        self.call(move |conn| {
            let reset = "UPDATE messages SET state = 'pending', attempts = 0, finished_at = NULL WHERE state = 'dead'";
            match which {
                Retry::All => conn.execute(reset, []),
                Retry::One(id) => conn.execute(&format!("{reset} AND id = ?1"), params![id]),
            }
        })
        .await
    }

    /// Deletes delivered rows that were delivered before `before_ms`. Returns how many.
    pub async fn purge_delivered(&self, before_ms: i64) -> Result<usize, OutboxError> {
        self.call(move |conn| {
            conn.execute("DELETE FROM messages WHERE state = 'delivered' AND finished_at < ?1", params![before_ms])
        })
        .await
    }

    /// Deletes every dead letter. Returns how many.
    pub async fn purge_dead(&self) -> Result<usize, OutboxError> {
        self.call(|conn| conn.execute("DELETE FROM messages WHERE state = 'dead'", [])).await
    }

    /// Whether the outbox is at `OUTBOX_MAX_BYTES`: a batch of [`FULL_MARGIN_BYTES`] would no
    /// longer fit, so the panel's next requests are likely to be refused.
    pub async fn is_full(&self) -> Result<bool, OutboxError> {
        let Some(max_bytes) = self.max_bytes else {
            return Ok(false);
        };
        self.call(move |conn| Ok(used_bytes(conn)?.saturating_add(FULL_MARGIN_BYTES) > max_bytes)).await
    }

    /// Checks that the outbox can commit a write right now.
    pub async fn probe(&self) -> Result<(), OutboxError> {
        self.call(|conn| conn.execute_batch("CREATE TEMP TABLE IF NOT EXISTS probe (x); DELETE FROM probe;")).await
    }
}

/// Keeping the outbox's files to the relay's user.
mod private {
    use std::io;
    use std::path::Path;

    /// The files SQLite keeps beside the database in WAL mode.
    const COMPANIONS: [&str; 2] = ["-wal", "-shm"];

    /// Creates `dir` (and missing parents) readable by the relay's user only. A folder that exists
    /// is the admin's choice and is left as it is, with a warning when other users may use it.
    #[cfg(unix)]
    pub fn create_dir(dir: &Path) -> io::Result<()> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        if dir.is_dir() {
            let mode = std::fs::metadata(dir)?.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                log::warn!(
                    "DATA_DIR {} can be used by other users (mode {mode:o}). The outbox files in it are private \
                     (0600) but the folder is not; `chmod 700` it unless others need it",
                    dir.display()
                );
            }
            return Ok(());
        }
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
    }

    #[cfg(not(unix))]
    pub fn create_dir(dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    /// Creates the database file 0600 before SQLite opens it (SQLite would make it 0644, and it
    /// gives `-wal` and `-shm` the database's mode when it creates them), and makes existing files,
    /// from before the relay did this, 0600 too. A file the relay may not change is only warned
    /// about: it still works.
    #[cfg(unix)]
    pub fn prepare_files(database: &Path) -> io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new().append(true).create(true).mode(0o600).open(database)?;
        restrict(database);
        for suffix in COMPANIONS {
            let mut companion = database.as_os_str().to_owned();
            companion.push(suffix);
            restrict(Path::new(&companion));
        }
        Ok(())
    }

    #[cfg(not(unix))]
    pub fn prepare_files(_database: &Path) -> io::Result<()> {
        Ok(())
    }

    /// Makes `path`, if it exists, 0600.
    #[cfg(unix)]
    fn restrict(path: &Path) {
        use std::os::unix::fs::PermissionsExt;
        let Ok(metadata) = std::fs::metadata(path) else { return };
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 == 0 {
            return;
        }
        match std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
            Ok(()) => log::info!("made {} readable by the relay's user only (it was {mode:o})", path.display()),
            Err(err) => log::warn!(
                "{} can be read by other users (mode {mode:o}) and could not be made private: {err}",
                path.display()
            ),
        }
    }
}

fn open_connection(path: &Path) -> Result<Connection, OutboxError> {
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
const NOT_WRITABLE_HINT: &str = ". The relay's user may not write to the data folder. In the Docker image that \
     user is uid 65532: for a bind mount such as ./data:/data, run `sudo chown -R 65532:65532 ./data` on the \
     host (a named volume needs nothing)";

fn cannot_open(path: &Path, err: &rusqlite::Error) -> OutboxError {
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

/// Stores `rows` and remembers `destinations`, all or nothing (inside a savepoint).
fn store(
    conn: &Connection,
    rows: &[NewRow],
    destinations: &[StoredDestination],
    dedup_window: Option<Duration>,
) -> rusqlite::Result<Enqueued> {
    conn.execute_batch("SAVEPOINT store")?;
    let stored = remember(conn, destinations).and_then(|()| insert_rows(conn, rows, dedup_window));
    let end = if stored.is_ok() { "RELEASE store" } else { "ROLLBACK TO store; RELEASE store" };
    conn.execute_batch(end)?;
    stored
}

/// How much room the outbox must have left to count as not full in `/readyz`.
pub const FULL_MARGIN_BYTES: u64 = 64 * 1024;

/// Whether `rows` fit under `max_bytes` of data (pages in use, not counting free ones). Only new
/// rows are refused: updates and deletes must always go through, so a full outbox can drain.
fn room_for(conn: &Connection, rows: &[NewRow], max_bytes: Option<u64>) -> rusqlite::Result<bool> {
    let Some(max_bytes) = max_bytes else {
        return Ok(true);
    };
    let incoming: u64 = rows.iter().map(|row| row.part.len() as u64 + ROW_OVERHEAD_BYTES).sum();
    Ok(used_bytes(conn)?.saturating_add(incoming) <= max_bytes)
}

/// Bytes of data in the database file (pages in use, not counting free ones).
fn used_bytes(conn: &Connection) -> rusqlite::Result<u64> {
    let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    let free: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
    let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    Ok(u64::try_from(pages.saturating_sub(free)).unwrap_or(0).saturating_mul(u64::try_from(page_size).unwrap_or(0)))
}

fn remember(conn: &Connection, destinations: &[StoredDestination]) -> rusqlite::Result<()> {
    let mut upsert = conn.prepare_cached(
        "INSERT INTO destinations (name, url, thread_id) VALUES (?1, ?2, ?3)
         ON CONFLICT (name) DO UPDATE SET url = excluded.url, thread_id = excluded.thread_id",
    )?;
    for destination in destinations {
        upsert.execute(params![destination.name, destination.url, destination.thread_id.map(|t| t as i64)])?;
    }
    Ok(())
}

fn insert_rows(conn: &Connection, rows: &[NewRow], dedup_window: Option<Duration>) -> rusqlite::Result<Enqueued> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO messages (destination, received_at, action, username, panel, part, fingerprint, mentions)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    let mut seen = conn.prepare_cached(
        "SELECT 1 FROM messages WHERE fingerprint = ?1 AND destination = ?2 AND received_at >= ?3 LIMIT 1",
    )?;
    let mut result = Enqueued::default();
    // An event has a row per destination; it counts once as a duplicate.
    let mut duplicated: HashSet<&str> = HashSet::new();
    for row in rows {
        if let (Some(window), Some(fingerprint)) = (dedup_window, &row.fingerprint) {
            let since = row.received_at_ms.saturating_sub(i64::try_from(window.as_millis()).unwrap_or(i64::MAX));
            let duplicate = seen.query_row(params![fingerprint, row.destination, since], |_| Ok(())).optional()?;
            if duplicate.is_some() {
                if duplicated.insert(fingerprint) {
                    result.duplicates += 1;
                }
                continue;
            }
        }
        insert.execute(params![
            row.destination,
            row.received_at_ms,
            row.action,
            row.username,
            row.panel,
            row.part,
            row.fingerprint,
            (!row.mentions.is_empty()).then(|| serde_json::to_string(&row.mentions).unwrap_or_default()),
        ])?;
        result.stored += 1;
    }
    Ok(result)
}

fn writer_loop(conn: Connection, mut queue: mpsc::Receiver<Job>) {
    while let Some(first) = queue.blocking_recv() {
        let mut jobs = vec![first];
        while jobs.len() < JOBS_PER_TRANSACTION {
            match queue.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        run_group(&conn, jobs);
    }
}

/// Runs `jobs` in one transaction, each in a savepoint, then answers them all with the commit's
/// outcome. If SQLite rolls the whole transaction back by itself (it does on a full disk), the jobs
/// run so far are answered with the error and the rest go on in a new transaction.
fn run_group(conn: &Connection, jobs: Vec<Job>) {
    let mut jobs: VecDeque<Job> = jobs.into();
    while !jobs.is_empty() {
        if let Err(err) = conn.execute_batch("BEGIN IMMEDIATE") {
            let err = OutboxError::from(err);
            for job in jobs.drain(..) {
                let (_, complete) = job(None);
                complete(Err(err.clone()));
            }
            return;
        }
        let mut completions = Vec::new();
        let mut rolled_back = false;
        while let Some(job) = jobs.pop_front() {
            let (ok, complete) = match conn.execute_batch("SAVEPOINT job") {
                Ok(()) => job(Some(conn)),
                Err(_) => job(None),
            };
            completions.push(complete);
            if conn.is_autocommit() {
                rolled_back = true;
                break;
            }
            let end = if ok { "RELEASE job" } else { "ROLLBACK TO job; RELEASE job" };
            if let Err(err) = conn.execute_batch(end) {
                log::error!("outbox: could not end a savepoint: {err}");
            }
        }
        let commit =
            if rolled_back { Err(OutboxError::Full) } else { conn.execute_batch("COMMIT").map_err(OutboxError::from) };
        if let Err(err) = &commit {
            log::error!("outbox: nothing of this group of writes was stored: {err}");
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
        }
        for complete in completions {
            complete(commit.clone());
        }
    }
}

/// Mentions stored as JSON; an unreadable value pings nobody.
fn mentions(stored: Option<String>) -> Mentions {
    stored.and_then(|json| serde_json::from_str(&json).ok()).unwrap_or_default()
}

/// Milliseconds since the unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(destination: &str, username: &str, fingerprint: Option<&str>) -> NewRow {
        NewRow {
            destination: destination.into(),
            received_at_ms: now_ms(),
            action: "user_created".into(),
            username: username.into(),
            panel: None,
            part: "{}".into(),
            fingerprint: fingerprint.map(str::to_owned),
            mentions: Mentions::default(),
        }
    }

    #[test]
    fn a_folder_it_may_not_write_to_says_which_owner_it_needs() {
        let cannot_open = |code| {
            let err = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None);
            super::cannot_open(Path::new("/data/outbox.sqlite3"), &err).to_string()
        };
        let message = cannot_open(rusqlite::ffi::SQLITE_CANTOPEN);
        assert!(message.starts_with("outbox storage error: cannot open /data/outbox.sqlite3: "), "{message}");
        assert!(message.contains("sudo chown -R 65532:65532 ./data"), "{message}");
        assert!(!cannot_open(rusqlite::ffi::SQLITE_CORRUPT).contains("chown"));
    }

    #[tokio::test]
    async fn keeps_rows_in_order_per_destination_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path()).unwrap();
        let rows = vec![row("a", "1", None), row("b", "x", None), row("a", "2", None), row("a", "3", None)];
        assert_eq!(outbox.enqueue(rows, None).await.unwrap().stored, 4);
        drop(outbox);

        let outbox = Outbox::open(dir.path()).unwrap();
        let due = outbox.due("a", 10).await.unwrap();
        assert_eq!(due.iter().map(|r| r.username.as_str()).collect::<Vec<_>>(), ["1", "2", "3"]);
        outbox.mark_delivered(vec![due[0].id]).await.unwrap();
        outbox.record_attempt(vec![due[1].id], "HTTP 502".into()).await.unwrap();
        outbox.mark_dead(vec![due[2].id], "HTTP 400".into()).await.unwrap();
        let due = outbox.due("a", 10).await.unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!((due[0].username.as_str(), due[0].attempts), ("2", 1));
        let mut pending = outbox.pending_destinations().await.unwrap();
        pending.sort();
        assert_eq!(pending, ["a", "b"]);
    }

    #[tokio::test]
    async fn concurrent_enqueues_all_commit() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path()).unwrap();
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let outbox = outbox.clone();
                tokio::spawn(async move { outbox.enqueue(vec![row("a", &i.to_string(), None)], None).await })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap().unwrap().stored, 1);
        }
        assert_eq!(outbox.due("a", 1000).await.unwrap().len(), 200);
    }

    #[tokio::test]
    async fn skips_a_resent_notification_within_the_window() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path()).unwrap();
        let window = Some(Duration::from_secs(600));
        let first = outbox.enqueue(vec![row("a", "u", Some("f1")), row("b", "u", Some("f1"))], window).await.unwrap();
        assert_eq!(first, Enqueued { stored: 2, duplicates: 0 });
        let again = outbox.enqueue(vec![row("a", "u", Some("f1")), row("a", "v", Some("f2"))], window).await.unwrap();
        assert_eq!(again, Enqueued { stored: 1, duplicates: 1 });
        let without_window = outbox.enqueue(vec![row("a", "u", Some("f1"))], None).await.unwrap();
        assert_eq!(without_window.stored, 1);
    }

    #[tokio::test]
    async fn counts_lists_retries_and_purges() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path()).unwrap();
        let rows = (0..5).map(|i| row(if i < 4 { "a" } else { "b" }, &i.to_string(), None)).collect();
        outbox.enqueue(rows, None).await.unwrap();
        let due = outbox.due("a", 10).await.unwrap();
        outbox.mark_delivered(vec![due[0].id, due[1].id]).await.unwrap();
        outbox.mark_dead(vec![due[2].id], "HTTP 400: bad".into()).await.unwrap();

        let stats = outbox.stats().await.unwrap();
        assert_eq!(stats.len(), 2);
        assert_eq!((stats[0].pending, stats[0].delivered, stats[0].dead), (1, 2, 1));
        assert_eq!(stats[0].oldest_pending_ms, Some(due[3].received_at_ms));
        assert_eq!((stats[1].destination.as_str(), stats[1].pending), ("b", 1));

        let dead = outbox.dead(10).await.unwrap();
        assert_eq!((dead[0].id, dead[0].reason.as_deref()), (due[2].id, Some("HTTP 400: bad")));
        assert_eq!(outbox.retry(Retry::One(due[2].id)).await.unwrap(), 1);
        assert_eq!(outbox.retry(Retry::All).await.unwrap(), 0);
        assert_eq!(outbox.due("a", 10).await.unwrap().len(), 2);

        assert_eq!(outbox.purge_delivered(now_ms() + 1).await.unwrap(), 2);
        outbox.mark_dead(vec![due[2].id], "again".into()).await.unwrap();
        assert_eq!(outbox.purge_dead().await.unwrap(), 1);
        let meta = outbox.pending_meta("a", 10).await.unwrap();
        assert_eq!(meta.iter().map(|m| m.username.as_str()).collect::<Vec<_>>(), ["3"]);
    }

    #[tokio::test]
    async fn keeps_mentions_and_remembers_destinations_with_pending_rows() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path()).unwrap();
        let mut pinging = row("owner:a:1", "u", None);
        pinging.mentions.roles.insert(123456789012345678);
        let destination = StoredDestination {
            name: "owner:a:1".into(),
            url: "https://discord.com/api/webhooks/1/x".into(),
            thread_id: Some(7),
        };
        outbox.enqueue_with(vec![pinging, row("b", "v", None)], vec![destination.clone()], None).await.unwrap();
        let due = outbox.due("owner:a:1", 10).await.unwrap();
        assert_eq!(due[0].mentions.roles.iter().copied().collect::<Vec<_>>(), [123456789012345678]);
        assert!(outbox.pending_meta("b", 10).await.unwrap()[0].mentions.is_empty());
        assert_eq!(outbox.stored_destinations().await.unwrap(), [destination]);
        outbox.mark_delivered(vec![due[0].id]).await.unwrap();
        assert!(outbox.stored_destinations().await.unwrap().is_empty(), "nothing pending for it any more");
    }

    fn remembered(dir: &Path) -> Vec<String> {
        let conn = Connection::open(dir.join(FILE_NAME)).unwrap();
        let mut stmt = conn.prepare("SELECT name FROM destinations ORDER BY name").unwrap();
        let names = stmt.query_map([], |r| r.get(0)).unwrap();
        names.collect::<Result<_, _>>().unwrap()
    }

    fn owner(name: &str) -> StoredDestination {
        StoredDestination {
            name: name.into(),
            url: format!("https://discord.com/api/webhooks/1/{name}"),
            thread_id: None,
        }
    }

    #[tokio::test]
    async fn forgets_a_destination_once_its_last_delivered_row_is_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path()).unwrap();
        let names = ["owner:delivered", "owner:pending", "owner:dead"];
        let rows = names.iter().map(|name| row(name, "u", None)).collect();
        outbox.enqueue_with(rows, names.iter().map(|name| owner(name)).collect(), None).await.unwrap();
        let id = |name: &str| {
            let outbox = outbox.clone();
            let name = name.to_owned();
            async move { outbox.due(&name, 1).await.unwrap()[0].id }
        };
        outbox.mark_delivered(vec![id("owner:delivered").await]).await.unwrap();
        outbox.mark_dead(vec![id("owner:dead").await], "HTTP 400".into()).await.unwrap();
        let delivered_at = now_ms();
        let forget = |candidates: Vec<&str>| {
            let (tell, told) = std::sync::mpsc::channel();
            let candidates = candidates.into_iter().map(str::to_owned).collect();
            let outbox = outbox.clone();
            async move {
                let forgotten =
                    outbox.forget_unused_destinations(candidates, move |names| tell.send(names.to_vec()).unwrap());
                let forgotten = forgotten.await.unwrap();
                assert_eq!(told.recv().unwrap(), forgotten, "told on the writer thread");
                forgotten
            }
        };

        // Delivered within the retention: every destination keeps its URL.
        outbox.purge_delivered(delivered_at - 3_600_000).await.unwrap();
        assert_eq!(forget(vec!["owner:never-stored"]).await, ["owner:never-stored"]);
        assert_eq!(remembered(dir.path()), ["owner:dead", "owner:delivered", "owner:pending"]);

        // The retention has passed: the delivered row goes, and with it the URL.
        assert_eq!(outbox.purge_delivered(delivered_at + 1).await.unwrap(), 1);
        assert_eq!(forget(vec![]).await, ["owner:delivered"]);
        assert_eq!(remembered(dir.path()), ["owner:dead", "owner:pending"], "pending and dead rows need their URL");
        let conn = Connection::open(dir.path().join(FILE_NAME)).unwrap();
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
        let file = String::from_utf8_lossy(&std::fs::read(dir.path().join(FILE_NAME)).unwrap()).into_owned();
        assert!(file.contains("webhooks/1/owner:pending"), "the check can see a URL");
        assert!(!file.contains("webhooks/1/owner:delivered"), "the forgotten URL's bytes are overwritten");

        outbox.purge_dead().await.unwrap();
        assert_eq!(forget(vec![]).await, ["owner:dead"]);
        assert_eq!(remembered(dir.path()), ["owner:pending"]);
    }

    #[tokio::test]
    async fn upgrades_owner_destinations_to_one_per_webhook() {
        let dir = tempfile::tempdir().unwrap();
        {
            let conn = Connection::open(dir.path().join(FILE_NAME)).unwrap();
            conn.execute_batch(&format!("{SCHEMA_V1} {SCHEMA_V2} PRAGMA user_version = 2;")).unwrap();
            conn.execute_batch(
                "INSERT INTO destinations VALUES ('owner:alice:0123456789ab', 'https://discord.com/api/webhooks/1/t', NULL);
                 INSERT INTO destinations VALUES ('owner:b:o:b:0123456789ab', 'https://discord.com/api/webhooks/1/t', NULL);
                 INSERT INTO messages (destination, received_at, action, username, part)
                     VALUES ('owner:alice:0123456789ab', 1, 'x', 'u1', '{}'), ('owner:b:o:b:0123456789ab', 2, 'x', 'u2', '{}'),
                            ('default', 3, 'x', 'u3', '{}');",
            )
            .unwrap();
        }
        let outbox = Outbox::open(dir.path()).unwrap();
        let due = outbox.due("owner:0123456789ab", 10).await.unwrap();
        assert_eq!(due.iter().map(|r| r.username.as_str()).collect::<Vec<_>>(), ["u1", "u2"]);
        assert_eq!(outbox.due("default", 10).await.unwrap().len(), 1);
        assert_eq!(remembered(dir.path()), ["owner:0123456789ab"]);
    }

    #[tokio::test]
    async fn upgrades_a_version_1_outbox() {
        let dir = tempfile::tempdir().unwrap();
        {
            let conn = Connection::open(dir.path().join(FILE_NAME)).unwrap();
            conn.execute_batch(SCHEMA_V1).unwrap();
            conn.execute_batch("PRAGMA user_version = 1").unwrap();
            conn.execute(
                "INSERT INTO messages (destination, received_at, action, username, part) VALUES ('a', 1, 'x', 'old', '{}')",
                [],
            )
            .unwrap();
        }
        let outbox = Outbox::open(dir.path()).unwrap();
        let due = outbox.due("a", 10).await.unwrap();
        assert_eq!((due[0].username.as_str(), due[0].mentions.is_empty()), ("old", true));
        outbox.enqueue(vec![row("a", "new", None)], None).await.unwrap();
        assert_eq!(outbox.due("a", 10).await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_full_outbox_makes_room_from_delivered_rows_or_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open_capped(dir.path(), Some(256 * 1024)).unwrap();
        let big = |name: &str| NewRow { part: "x".repeat(20_000), ..row("a", name, None) };
        let mut stored = 0;
        let err = loop {
            match outbox.enqueue(vec![big(&stored.to_string())], None).await {
                Ok(_) => stored += 1,
                Err(err) => break err,
            }
            assert!(stored < 100, "the cap holds");
        };
        assert!(err.to_string().contains("full"), "{err}");
        assert_eq!(outbox.due("a", 1000).await.unwrap().len(), stored, "nothing half-stored");
        let ids: Vec<i64> = outbox.due("a", 1000).await.unwrap().iter().map(|r| r.id).collect();
        outbox.mark_delivered(ids).await.unwrap();
        outbox.enqueue(vec![big("after")], None).await.expect("delivered rows made room");
        assert_eq!(outbox.stats().await.unwrap()[0].delivered, 0);
    }

    #[tokio::test]
    async fn a_failing_job_does_not_undo_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path()).unwrap();
        let bad = outbox.call(|conn| conn.execute_batch("INSERT INTO no_such_table VALUES (1)"));
        let good = outbox.enqueue(vec![row("a", "1", None)], None);
        let (bad, good) = tokio::join!(bad, good);
        assert!(bad.is_err());
        assert_eq!(good.unwrap().stored, 1);
        assert_eq!(outbox.due("a", 10).await.unwrap().len(), 1);
    }
}
