//! What scheduled reports need, kept apart from the message rows: a tally of received events per
//! quarter-hour slot, panel and action (written at ingest in the same transaction as the events'
//! rows); up to [`NAMES_PER_SLOT`] usernames per slot, panel and action for the actions a report
//! lists; the relay's own health per slot (written with the delivery outcome it counts); and the
//! last period each destination was sent each report for (written in the same transaction as the
//! report's rows, so a report is stored exactly once per period and destination).
//!
//! Kept for [`TALLY_KEEP_DAYS`] (delivery prunes it hourly), whatever `DELIVERED_RETENTION` does
//! to the message rows.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};
use sha2::Digest;

use super::{queries, NewRow, Outbox, OutboxError};
use crate::event::KNOWN_ACTIONS;

/// How long the tally of received events and the relay's health counters are kept: the longest
/// report (a week) plus room for `report --from … --to …` over the last month.
pub const TALLY_KEEP_DAYS: i64 = 35;

/// The tally's slot: a quarter of an hour, in seconds.
pub const SLOT_SECONDS: i64 = 900;

/// How many usernames are kept per slot, panel and listed action; the rest are only counted. Per
/// slot, because a report's period is whole slots in any time zone: whatever it covers, its first
/// slot with expired (or limited) users has their first names, as many as a report shows.
pub const NAMES_PER_SLOT: i64 = 20;

/// How many characters of a username are kept for a report's list: Marzban allows 32, and a longer
/// one is cut (ending in `…`), so a list always has room for its first name and the outbox holds
/// little per name.
pub const NAME_KEPT_CHARS: usize = 64;

/// The actions whose usernames a report lists.
pub const LISTED_ACTIONS: [&str; 2] = ["user_expired", "user_limited"];

/// Actions not sent by any known panel are tallied under this name, so a sender cannot make the
/// tally grow with made-up action names.
pub const OTHER_ACTION: &str = "other";

/// One received event, as the tally sees it.
#[derive(Debug, Clone)]
pub struct Tallied {
    pub action: String,
    pub panel: Option<String>,
    pub username: String,
    pub received_at_ms: i64,
    /// As in [`NewRow`]: an event the panel may be sending again is not counted twice when a row
    /// with its fingerprint was stored within the de-duplication window.
    pub fingerprint: Option<String>,
    pub may_be_resend: bool,
}

/// What the relay's health counts, per slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthKind {
    /// A message Discord accepted.
    Delivered,
    /// A failed attempt that will be retried (5xx, timeout, connection error).
    Retried,
    /// A 429 (or a ban).
    RateLimited,
    /// A row that became a dead letter.
    Dead,
    /// A destination paused because its webhook is gone.
    Paused,
}

impl HealthKind {
    pub const ALL: [HealthKind; 5] =
        [HealthKind::Delivered, HealthKind::Retried, HealthKind::RateLimited, HealthKind::Dead, HealthKind::Paused];

    pub fn name(self) -> &'static str {
        match self {
            HealthKind::Delivered => "delivered",
            HealthKind::Retried => "retried",
            HealthKind::RateLimited => "rate_limited",
            HealthKind::Dead => "dead",
            HealthKind::Paused => "paused",
        }
    }
}

/// What the outbox records of a report sent to a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportRecord {
    /// The end (unix seconds) of the last period recorded: the next report starts here. Set back
    /// when it came from a clock that was ahead ([`Outbox::reset_report_sent`]).
    pub end: i64,
    /// The highest end ever recorded, never set back: a record set back while the clock was
    /// behind must not make the next report count again what was reported already.
    pub highest: i64,
}

/// The tally of a period.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeriodTally {
    /// (panel, action) → events received; panel `""` is events without a panel label.
    pub events: BTreeMap<(String, String), i64>,
    /// (panel, listed action) → the usernames kept, in the order received, each once.
    pub names: BTreeMap<(String, String), Vec<String>>,
    /// (panel, listed action) → how many users the events were about: a user counted once however
    /// often, except past [`USERS_HASHED_PER_SLOT`] in a slot, where each event counts.
    pub users: BTreeMap<(String, String), i64>,
    /// Health kind name → count.
    pub health: BTreeMap<String, i64>,
}

impl Outbox {
    /// [`Outbox::enqueue_with`], also tallying `tally` (in the same transaction).
    pub async fn enqueue_counted(
        &self,
        rows: Vec<NewRow>,
        destinations: Vec<super::StoredDestination>,
        tally: Vec<Tallied>,
        dedup_window: Option<Duration>,
    ) -> Result<super::Enqueued, OutboxError> {
        self.enqueue_batch(super::Batch { rows, destinations, tally, ..super::Batch::default() }, dedup_window).await
    }

    /// Counts `count` of `kind` in the relay's health now.
    pub async fn note_health(&self, kind: HealthKind, count: i64) -> Result<(), OutboxError> {
        let now = super::now_ms();
        self.writer.call(move |conn| add_health(conn, kind, count, now)).await
    }

    /// The tally of `[start, end)` (unix seconds, rounded down to slots).
    pub async fn period_tally(&self, start: i64, end: i64) -> Result<PeriodTally, OutboxError> {
        self.reader
            .read(move |conn| period_tally(conn, start.div_euclid(SLOT_SECONDS), end.div_euclid(SLOT_SECONDS)))
            .await
    }

    /// The record of the periods `destination` was sent `report` for, if any.
    pub async fn report_sent(&self, destination: &str, report: &str) -> Result<Option<ReportRecord>, OutboxError> {
        let (destination, report) = (destination.to_owned(), report.to_owned());
        self.reader.read(move |conn| sent(conn, &destination, &report)).await
    }

    /// Stores `rows` (a report for the period ending `period_end`, unix seconds) and records that
    /// period as sent to `destination`, all in one transaction; unless a period ending at or after
    /// it was already recorded, in which case nothing is stored and the answer is `false`. When
    /// the outbox is full, makes room as ingest does (see [`super::room`]) and tries once more.
    pub async fn store_report(
        &self,
        destination: String,
        report: String,
        period_end: i64,
        rows: Vec<NewRow>,
    ) -> Result<bool, OutboxError> {
        let max_bytes = self.max_bytes;
        let rows = Arc::new(rows);
        let attempt = || {
            let (destination, report, rows) = (destination.clone(), report.clone(), rows.clone());
            self.writer.call(move |conn| {
                if sent(conn, &destination, &report)?.is_some_and(|record| record.end >= period_end) {
                    return Ok(false);
                }
                if !queries::room_for(conn, &rows, max_bytes)? {
                    return Err(OutboxError::Full);
                }
                queries::store(conn, &rows, &[], None)?;
                conn.execute(
                    "INSERT INTO reports_sent (destination, report, period_end, highest_end) VALUES (?1, ?2, ?3, ?3)
                     ON CONFLICT (destination, report) DO UPDATE SET period_end = excluded.period_end,
                         highest_end = MAX(highest_end, excluded.period_end)",
                    params![destination, report, period_end],
                )?;
                Ok(true)
            })
        };
        match attempt().await {
            Err(OutboxError::Full) => {
                if self.make_room(rows.clone(), " for a report").await? == super::room::Freed::default() {
                    return Err(OutboxError::Full);
                }
                attempt().await
            }
            stored => stored,
        }
    }

    /// Records `period_end` as the end of the last period `destination` was sent `report` for,
    /// even when a later one was recorded: for a record made while the clock was wrong. The
    /// highest end recorded ([`ReportRecord::highest`]) stays.
    pub async fn reset_report_sent(
        &self,
        destination: String,
        report: String,
        period_end: i64,
    ) -> Result<(), OutboxError> {
        self.writer
            .call(move |conn| {
                conn.execute(
                    "UPDATE reports_sent SET period_end = ?3 WHERE destination = ?1 AND report = ?2",
                    params![destination, report, period_end],
                )
                .map(drop)
            })
            .await
    }

    /// Deletes the tally, names and health counted before `before_ms`. Returns how many rows.
    pub async fn prune_tally(&self, before_ms: i64) -> Result<usize, OutboxError> {
        let slot = before_ms.div_euclid(1000).div_euclid(SLOT_SECONDS);
        self.writer
            .call(move |conn| {
                Ok::<_, rusqlite::Error>(
                    conn.execute("DELETE FROM tally WHERE slot < ?1", params![slot])?
                        + conn.execute("DELETE FROM tally_names WHERE slot < ?1", params![slot])?
                        + conn.execute("DELETE FROM tally_users WHERE slot < ?1", params![slot])?
                        + conn.execute("DELETE FROM health_tally WHERE slot < ?1", params![slot])?,
                )
            })
            .await
    }
}

/// Tallies `events`, skipping those whose fingerprint was stored within `dedup_window` (the panel
/// sending them again). Runs before the batch's own rows are stored.
pub(super) fn record(conn: &Connection, events: &[Tallied], dedup_window: Option<Duration>) -> rusqlite::Result<()> {
    let mut seen =
        conn.prepare_cached("SELECT 1 FROM messages WHERE fingerprint = ?1 AND received_at >= ?2 LIMIT 1")?;
    let mut count = conn.prepare_cached(
        "INSERT INTO tally (slot, panel, action, events, unhashed) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (slot, panel, action) DO UPDATE
         SET events = events + excluded.events, unhashed = unhashed + excluded.unhashed",
    )?;
    // Counted here first: a batch of 50 events is one statement per action, not 50.
    // Each key's events, then those of its users counted past the hashes kept.
    let mut counts: BTreeMap<(i64, &str, &str), (i64, i64)> = BTreeMap::new();
    let mut kept =
        conn.prepare_cached("SELECT COUNT(*) FROM tally_names WHERE slot = ?1 AND panel = ?2 AND action = ?3")?;
    let mut users = UserCounter::default();
    // Names held per (slot, panel, action): counted once per batch, then kept up to date here.
    let mut held: HashMap<(i64, String, &str), i64> = HashMap::new();
    let mut name = conn
        .prepare_cached("INSERT OR IGNORE INTO tally_names (slot, panel, action, username) VALUES (?1, ?2, ?3, ?4)")?;
    for event in events {
        if let (Some(window), Some(fingerprint), true) = (dedup_window, &event.fingerprint, event.may_be_resend) {
            let since = event.received_at_ms.saturating_sub(i64::try_from(window.as_millis()).unwrap_or(i64::MAX));
            if seen.query_row(params![fingerprint, since], |_| Ok(())).optional()?.is_some() {
                continue;
            }
        }
        let action = if KNOWN_ACTIONS.contains(&event.action.as_str()) { event.action.as_str() } else { OTHER_ACTION };
        let panel = event.panel.as_deref().unwrap_or("");
        let seconds = event.received_at_ms.div_euclid(1000);
        let slot = seconds.div_euclid(SLOT_SECONDS);
        let counted = counts.entry((slot, panel, action)).or_default();
        counted.0 += 1;
        if LISTED_ACTIONS.contains(&action) {
            counted.1 += users.count(conn, (slot, panel, action), &event.username)?;
            let key = (slot, panel.to_owned(), action);
            let held = match held.get_mut(&key) {
                Some(count) => count,
                None => {
                    let count: i64 = kept.query_row(params![slot, panel, action], |r| r.get(0))?;
                    held.entry(key).or_insert(count)
                }
            };
            if *held < NAMES_PER_SLOT {
                *held += name.execute(params![slot, panel, action, kept_name(&event.username)])? as i64;
            }
        }
    }
    for ((slot, panel, action), (events, unhashed)) in counts {
        count.execute(params![slot, panel, action, events, unhashed])?;
    }
    Ok(())
}

/// How many users' hashes a slot keeps per panel and listed action: a report counts the users of
/// a mass expiry of up to this many per quarter-hour exactly, and each event past it as a user.
/// About 40 bytes each: 400 KiB a slot at most.
pub const USERS_HASHED_PER_SLOT: i64 = 10_000;

/// Counts the users of listed actions per slot, by a hash of their names, within one batch.
#[derive(Default)]
struct UserCounter {
    /// Hashes held per (slot, panel, action): counted once per batch, then kept up to date here.
    held: HashMap<(i64, String, String), i64>,
}

impl UserCounter {
    /// Notes `username` in `(slot, panel, action)`; returns 1 when it could not be hashed (the
    /// slot is at its cap) and so counts as an unhashed event, else 0.
    fn count(
        &mut self,
        conn: &Connection,
        (slot, panel, action): (i64, &str, &str),
        username: &str,
    ) -> rusqlite::Result<i64> {
        let key = (slot, panel.to_owned(), action.to_owned());
        let held = match self.held.get_mut(&key) {
            Some(held) => held,
            None => {
                let held: i64 = conn
                    .prepare_cached("SELECT COUNT(*) FROM tally_users WHERE slot = ?1 AND panel = ?2 AND action = ?3")?
                    .query_row(params![slot, panel, action], |r| r.get(0))?;
                self.held.entry(key).or_insert(held)
            }
        };
        if *held >= USERS_HASHED_PER_SLOT {
            return Ok(1);
        }
        let digest = sha2::Sha256::digest(username.as_bytes());
        let user = i64::from_le_bytes(digest[..8].try_into().expect("a SHA-256 digest has 8 bytes"));
        *held += conn
            .prepare_cached("INSERT OR IGNORE INTO tally_users (slot, panel, action, user) VALUES (?1, ?2, ?3, ?4)")?
            .execute(params![slot, panel, action, user])? as i64;
        Ok(0)
    }
}

/// `username`, cut to [`NAME_KEPT_CHARS`] characters (the last one `…`) when longer.
fn kept_name(username: &str) -> std::borrow::Cow<'_, str> {
    if username.chars().count() <= NAME_KEPT_CHARS {
        return username.into();
    }
    let mut cut: String = username.chars().take(NAME_KEPT_CHARS - 1).collect();
    cut.push('…');
    cut.into()
}

/// Counts `count` of `kind` in the slot of `now_ms`.
pub(super) fn add_health(conn: &Connection, kind: HealthKind, count: i64, now_ms: i64) -> rusqlite::Result<()> {
    if count <= 0 {
        return Ok(());
    }
    conn.prepare_cached(
        "INSERT INTO health_tally (slot, kind, count) VALUES (?1, ?2, ?3)
         ON CONFLICT (slot, kind) DO UPDATE SET count = count + excluded.count",
    )?
    .execute(params![now_ms.div_euclid(1000).div_euclid(SLOT_SECONDS), kind.name(), count])?;
    Ok(())
}

fn period_tally(conn: &Connection, from_slot: i64, to_slot: i64) -> rusqlite::Result<PeriodTally> {
    let mut tally = PeriodTally::default();
    // Events past a slot's cap of hashed users, and in slots counted before users were (`unhashed`
    // null), count as a user each.
    let mut events = conn.prepare_cached(
        "SELECT panel, action, SUM(events), SUM(COALESCE(unhashed, events)) FROM tally
         WHERE slot >= ?1 AND slot < ?2 GROUP BY panel, action",
    )?;
    let rows = events.query_map(params![from_slot, to_slot], |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?, r.get(3)?)))?;
    for row in rows {
        let (key, count, users): (_, i64, i64) = row?;
        tally.events.insert(key.clone(), count);
        tally.users.insert(key, users);
    }
    let mut names = conn.prepare_cached(
        "SELECT panel, action, username FROM tally_names
         WHERE slot >= ?1 AND slot < ?2 ORDER BY slot, username",
    )?;
    let rows = names.query_map(params![from_slot, to_slot], |r| {
        Ok(((r.get::<_, String>(0)?, r.get::<_, String>(1)?), r.get::<_, String>(2)?))
    })?;
    let mut seen: HashSet<((String, String), String)> = HashSet::new();
    for row in rows {
        let (key, username) = row?;
        if seen.insert((key.clone(), username.clone())) {
            tally.names.entry(key).or_default().push(username);
        }
    }
    let mut hashed = conn.prepare_cached(
        "SELECT panel, action, COUNT(DISTINCT user) FROM tally_users WHERE slot >= ?1 AND slot < ?2
         GROUP BY panel, action",
    )?;
    for row in hashed.query_map(params![from_slot, to_slot], |r| Ok(((r.get(0)?, r.get(1)?), r.get::<_, i64>(2)?)))? {
        let (key, distinct) = row?;
        let users = tally.users.entry(key).or_default();
        *users = users.saturating_add(distinct);
    }
    let mut health =
        conn.prepare_cached("SELECT kind, SUM(count) FROM health_tally WHERE slot >= ?1 AND slot < ?2 GROUP BY kind")?;
    for row in health.query_map(params![from_slot, to_slot], |r| Ok((r.get(0)?, r.get(1)?)))? {
        let (kind, count) = row?;
        tally.health.insert(kind, count);
    }
    Ok(tally)
}

fn sent(conn: &Connection, destination: &str, report: &str) -> rusqlite::Result<Option<ReportRecord>> {
    conn.prepare_cached("SELECT period_end, highest_end FROM reports_sent WHERE destination = ?1 AND report = ?2")?
        .query_row(params![destination, report], |r| Ok(ReportRecord { end: r.get(0)?, highest: r.get(1)? }))
        .optional()
}
