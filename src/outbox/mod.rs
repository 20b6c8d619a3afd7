//! The outbox: one SQLite file (WAL) holding one row per (event, destination) until Discord has it.
//! The only module that speaks SQL.
//!
//! Writes go through one thread that commits many requests per transaction ([`writer`]): an
//! answer always means "committed". Reads have a connection of their own ([`reader`]) so they never
//! wait for a group commit. The SQL itself is in [`queries`], the schema and its upgrades in
//! [`schema`].
//!
//! The file holds webhook URLs with their tokens (owner admins'), so it and its `-wal`/`-shm` files
//! are readable by the relay's user only (0600), and a data folder the relay creates is 0700
//! ([`files`]).

mod app_webhooks;
mod files;
mod forum;
mod nodes;
mod queries;
mod reader;
mod room;
mod rows;
mod schema;
mod state_cache;
mod states;
mod tally;
#[cfg(test)]
mod tests;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use crate::destination::DestinationStats;
pub use app_webhooks::AppWebhook;
pub use forum::PostKey;
pub use nodes::{OutageRecord, PastOutage};
use reader::Reader;
pub use rows::{Batch, DeadRow, Enqueued, NewRow, Retry, Row, RowMeta, StoredDestination};
pub use state_cache::{StatesHeld, CACHED_USERS};
pub use states::{KeptStates, SeenState, UserKey, STATES_MAX};
pub use tally::{
    HealthKind, PeriodTally, ReportRecord, Tallied, LISTED_ACTIONS, NAMES_PER_SLOT, NAME_KEPT_CHARS, OTHER_ACTION,
    SLOT_SECONDS, TALLY_KEEP_DAYS,
};
use writer::Writer;

/// What a stored row takes besides the text of its columns, roughly (its numbers, record and
/// index headers, the index entries of its state).
const ROW_OVERHEAD_BYTES: u64 = 256;

/// How much room the outbox must have left to count as not full in `/readyz` (at most; see
/// [`full_margin`]).
pub const FULL_MARGIN_BYTES: u64 = 64 * 1024;

/// The smallest `OUTBOX_MAX_BYTES`: an empty outbox already takes 88 KiB (22 pages: its tables and
/// indexes, node watch's, users' states' and the relay's own webhooks' among them), and keeps an
/// eighth free ([`full_margin`]), so this leaves about 24 KiB for rows, states and posts.
pub const MIN_MAX_BYTES: u64 = 128 * 1024;

/// The room an outbox of `max_bytes` keeps free: [`FULL_MARGIN_BYTES`], or an eighth of a smaller
/// `OUTBOX_MAX_BYTES`, so a small outbox is not "full" when it is empty.
pub fn full_margin(max_bytes: u64) -> u64 {
    (max_bytes / 8).min(FULL_MARGIN_BYTES)
}

/// The file name inside `DATA_DIR`.
pub const FILE_NAME: &str = "outbox.sqlite3";

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

/// A handle to the outbox. Cheap to clone; the writer thread stops when the last handle is dropped.
#[derive(Clone)]
pub struct Outbox {
    writer: Writer,
    reader: Reader,
    path: PathBuf,
    /// New rows are refused beyond this many bytes of data (`OUTBOX_MAX_BYTES`).
    max_bytes: Option<u64>,
    /// Users' forum posts forgotten to make room, since opened (see [`room`]).
    forgotten_posts: Arc<AtomicU64>,
    /// Users' states being updated, and the most recent ones as committed (see [`state_cache`]).
    states: Arc<state_cache::StateCache>,
    /// A read connection for users' states alone, which ingest reads for every request: on the
    /// shared one a request waited for any delivery query under way, and each of its reads began
    /// after a commit, so SQLite dropped (freed) every page that connection held for deliveries,
    /// to allocate them again for the next delivery query.
    states_reader: Reader,
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
                schema::NOT_WRITABLE_HINT
            } else {
                ""
            }
        };
        files::create_dir(data_dir).map_err(|err| {
            OutboxError::Storage(format!("cannot create {}: {err}{}", data_dir.display(), hint(&err)))
        })?;
        let path = data_dir.join(FILE_NAME);
        files::prepare_files(&path)
            .map_err(|err| OutboxError::Storage(format!("cannot create {}: {err}{}", path.display(), hint(&err))))?;
        // The writer's connection upgrades the schema before the reader's opens.
        let writer = Writer::start(schema::open_writer(&path)?)?;
        let reader = Reader::new(schema::open_reader(&path)?);
        let states_reader = Reader::new(schema::open_states_reader(&path)?);
        let (forgotten_posts, states) = (Arc::default(), Arc::default());
        Ok(Self { writer, reader, states_reader, path, max_bytes, forgotten_posts, states })
    }

    /// The SQLite file.
    pub fn path(&self) -> &Path {
        &self.path
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
        let batch = Batch { rows, destinations, ..Batch::default() };
        self.enqueue_batch(batch, dedup_window).await
    }

    /// Stores a request's rows, with the owner webhooks, tally and user states that go with them,
    /// in one transaction.
    pub async fn enqueue_batch(&self, batch: Batch, dedup_window: Option<Duration>) -> Result<Enqueued, OutboxError> {
        let Batch { rows, destinations, tally, states, held } = batch;
        let (rows, destinations, tally, states) =
            (Arc::new(rows), Arc::new(destinations), Arc::new(tally), Arc::new(states));
        let max_bytes = self.max_bytes;
        let attempt = || {
            let (rows, destinations, tally, states) =
                (rows.clone(), destinations.clone(), tally.clone(), states.clone());
            let cache = self.states.clone();
            self.writer.call(move |conn| {
                if !queries::room_for(conn, &rows, max_bytes)? {
                    return Err(OutboxError::Full);
                }
                // Before the rows: a re-sent event is recognised by the rows stored earlier.
                tally::record(conn, &tally, dedup_window)?;
                states::record(conn, &states, STATES_MAX, &cache)?;
                Ok(queries::store(conn, &rows, &destinations, dedup_window)?)
            })
        };
        let stored = match attempt().await {
            Err(OutboxError::Full) => {
                // Make room (what Discord already has, then forum posts long unused), and try once more.
                if self.make_room(rows.clone(), "").await? == room::Freed::default() {
                    return Err(OutboxError::Full);
                }
                attempt().await
            }
            stored => stored,
        }?;
        if let Some(held) = held {
            held.stored();
        }
        Ok(stored)
    }

    /// Remembered destinations that still have pending rows.
    pub async fn stored_destinations(&self) -> Result<Vec<StoredDestination>, OutboxError> {
        self.reader.read(queries::stored_destinations).await
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
        self.writer
            .call(move |conn| {
                let unused = queries::forget_unused_destinations(conn, candidates)?;
                forget(&unused);
                Ok::<_, rusqlite::Error>(unused)
            })
            .await
    }

    /// The oldest pending rows of `destination`, at most `limit`, in the order they were received.
    pub async fn due(&self, destination: &str, limit: usize) -> Result<Vec<Row>, OutboxError> {
        let destination = destination.to_owned();
        self.reader.read(move |conn| queries::due(conn, &destination, limit)).await
    }

    /// Marks the rows of one message Discord accepted delivered, counting the message in the
    /// relay's health.
    pub async fn mark_delivered(&self, ids: Vec<i64>) -> Result<(), OutboxError> {
        self.finish(ids, "delivered", None, (HealthKind::Delivered, 1)).await
    }

    /// Marks rows dead (kept, never sent again unless retried by hand) with the reason.
    pub async fn mark_dead(&self, ids: Vec<i64>, reason: String) -> Result<(), OutboxError> {
        let count = ids.len() as i64;
        self.finish(ids, "dead", Some(reason), (HealthKind::Dead, count)).await
    }

    async fn finish(
        &self,
        ids: Vec<i64>,
        state: &'static str,
        reason: Option<String>,
        (kind, count): (HealthKind, i64),
    ) -> Result<(), OutboxError> {
        let now = now_ms();
        self.writer
            .call(move |conn| {
                queries::finish(conn, &ids, state, now, reason.as_deref())?;
                tally::add_health(conn, kind, count, now)
            })
            .await
    }

    /// Counts a failed attempt on rows that stay pending (and a retry in the relay's health).
    pub async fn record_attempt(&self, ids: Vec<i64>, error: String) -> Result<(), OutboxError> {
        let now = now_ms();
        self.writer
            .call(move |conn| {
                queries::record_attempt(conn, &ids, &error)?;
                tally::add_health(conn, HealthKind::Retried, 1, now)
            })
            .await
    }

    /// Destinations that have pending rows.
    pub async fn pending_destinations(&self) -> Result<Vec<String>, OutboxError> {
        self.reader.read(queries::pending_destinations).await
    }

    /// The oldest pending rows of `destination` without their parts, at most `limit`.
    pub async fn pending_meta(&self, destination: &str, limit: usize) -> Result<Vec<RowMeta>, OutboxError> {
        let destination = destination.to_owned();
        self.reader.read(move |conn| queries::pending_meta(conn, &destination, limit)).await
    }

    /// Pending, delivered and dead counts per destination, and the oldest pending row's age.
    pub async fn stats(&self) -> Result<Vec<DestinationStats>, OutboxError> {
        self.reader.read(queries::stats).await
    }

    /// Dead letters, oldest first, at most `limit`.
    pub async fn dead(&self, limit: usize) -> Result<Vec<DeadRow>, OutboxError> {
        self.reader.read(move |conn| queries::dead(conn, limit)).await
    }

    /// Makes dead letters pending again (with their attempts reset). Returns how many.
    pub async fn retry(&self, which: Retry) -> Result<usize, OutboxError> {
        self.writer.call(move |conn| queries::retry(conn, which)).await
    }

    /// Deletes delivered rows that were delivered before `before_ms`. Returns how many.
    pub async fn purge_delivered(&self, before_ms: i64) -> Result<usize, OutboxError> {
        self.writer.call(move |conn| queries::purge_delivered(conn, Some(before_ms))).await
    }

    /// Deletes every dead letter. Returns how many.
    pub async fn purge_dead(&self) -> Result<usize, OutboxError> {
        self.writer.call(queries::purge_dead).await
    }

    /// Checks that the outbox can commit a write to its file right now.
    pub async fn probe(&self) -> Result<(), OutboxError> {
        self.writer.call(queries::probe).await
    }
}

/// `at` in milliseconds since the unix epoch (0 for a time too far from it to count in an `i64`).
pub fn unix_ms(at: time::OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

/// Milliseconds since the unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
