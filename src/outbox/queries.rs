//! The outbox's queries: every SQL statement the relay runs on its data, each a function of a
//! connection (the writer's inside its group transaction, or the reader's).

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Params};

use super::{DeadRow, DestinationStats, Enqueued, NewRow, Retry, Row, RowMeta, StoredDestination, ROW_OVERHEAD_BYTES};
use crate::destination::Mentions;

/// The columns [`meta`] reads, first in every query of pending rows. The username is read as ingest
/// cuts it (`event::cut_name`: 63 characters and `…` when longer than 64): rows stored before names
/// were cut can hold a megabyte, and delivery planning reads thousands of rows at a time.
const META_COLUMNS: &str = "id, action, CASE WHEN length(username) > 64 THEN substr(username, 1, 63) || '…' \
     ELSE username END, panel, received_at, mentions";

/// Runs the cached statement `sql` with `params` and collects its rows, each read by `row`.
fn select<T, P: Params>(
    conn: &Connection,
    sql: &str,
    params: P,
    row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(params, row)?;
    rows.collect()
}

/// A pending row's metadata from the [`META_COLUMNS`] at the start of a result row.
fn meta(r: &rusqlite::Row<'_>) -> rusqlite::Result<RowMeta> {
    Ok(RowMeta {
        id: r.get(0)?,
        action: r.get(1)?,
        username: r.get(2)?,
        panel: r.get(3)?,
        received_at_ms: r.get(4)?,
        mentions: mentions(r.get(5)?),
    })
}

/// Mentions stored as JSON; an unreadable value pings nobody.
fn mentions(stored: Option<String>) -> Mentions {
    stored.and_then(|json| serde_json::from_str(&json).ok()).unwrap_or_default()
}

/// The oldest pending rows of `destination`, at most `limit`, in the order they were received.
pub fn due(conn: &Connection, destination: &str, limit: usize) -> rusqlite::Result<Vec<Row>> {
    let sql = format!(
        "SELECT {META_COLUMNS}, destination, part, attempts
         FROM messages WHERE destination = ?1 AND state = 'pending' ORDER BY id LIMIT ?2"
    );
    select(conn, &sql, params![destination, limit as i64], |r| {
        Ok(Row { meta: meta(r)?, destination: r.get(6)?, part: r.get(7)?, attempts: r.get(8)? })
    })
}

/// The oldest pending rows of `destination` without their parts, at most `limit`.
pub fn pending_meta(conn: &Connection, destination: &str, limit: usize) -> rusqlite::Result<Vec<RowMeta>> {
    let sql = format!(
        "SELECT {META_COLUMNS} FROM messages
         WHERE destination = ?1 AND state = 'pending' ORDER BY id LIMIT ?2"
    );
    select(conn, &sql, params![destination, limit as i64], meta)
}

/// Destinations that have pending rows.
pub fn pending_destinations(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    select(conn, "SELECT DISTINCT destination FROM messages WHERE state = 'pending'", [], |r| r.get(0))
}

/// Remembered destinations that still have pending rows.
pub fn stored_destinations(conn: &Connection) -> rusqlite::Result<Vec<StoredDestination>> {
    let sql = "SELECT name, url, thread_id FROM destinations
               WHERE name IN (SELECT destination FROM messages WHERE state = 'pending') ORDER BY name";
    select(conn, sql, [], |r| {
        Ok(StoredDestination {
            name: r.get(0)?,
            url: r.get(1)?,
            thread_id: r.get::<_, Option<i64>>(2)?.map(|t| t as u64),
        })
    })
}

/// Pending, delivered and dead counts per destination, and the oldest pending row's age.
pub fn stats(conn: &Connection) -> rusqlite::Result<Vec<DestinationStats>> {
    let sql = "SELECT destination,
                      SUM(state = 'pending'), SUM(state = 'delivered'), SUM(state = 'dead'),
                      MIN(CASE WHEN state = 'pending' THEN received_at END)
               FROM messages GROUP BY destination ORDER BY destination";
    select(conn, sql, [], |r| {
        Ok(DestinationStats {
            destination: r.get(0)?,
            pending: r.get(1)?,
            delivered: r.get(2)?,
            dead: r.get(3)?,
            oldest_pending_ms: r.get(4)?,
        })
    })
}

/// Dead letters, oldest first, at most `limit`.
pub fn dead(conn: &Connection, limit: usize) -> rusqlite::Result<Vec<DeadRow>> {
    let sql = "SELECT id, destination, action,
                      CASE WHEN length(username) > 64 THEN substr(username, 1, 63) || '…' ELSE username END,
                      received_at, attempts, last_error
               FROM messages WHERE state = 'dead' ORDER BY id LIMIT ?1";
    select(conn, sql, params![limit as i64], |r| {
        Ok(DeadRow {
            id: r.get(0)?,
            destination: r.get(1)?,
            action: r.get(2)?,
            username: r.get(3)?,
            received_at_ms: r.get(4)?,
            attempts: r.get(5)?,
            reason: r.get(6)?,
        })
    })
}

/// Moves pending rows to `state` at `now` (unix ms), keeping `reason` as their last error.
pub fn finish(conn: &Connection, ids: &[i64], state: &str, now: i64, reason: Option<&str>) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(
        "UPDATE messages SET state = ?2, finished_at = ?3, last_error = COALESCE(?4, last_error)
         WHERE id = ?1 AND state = 'pending'",
    )?;
    for id in ids {
        stmt.execute(params![id, state, now, reason])?;
    }
    Ok(())
}

/// Counts a failed attempt on rows that stay pending.
pub fn record_attempt(conn: &Connection, ids: &[i64], error: &str) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(
        "UPDATE messages SET attempts = attempts + 1, last_error = ?2 WHERE id = ?1 AND state = 'pending'",
    )?;
    for id in ids {
        stmt.execute(params![id, error])?;
    }
    Ok(())
}

/// Makes dead letters pending again (with their attempts reset). Returns how many.
pub fn retry(conn: &Connection, which: Retry) -> rusqlite::Result<usize> {
    let reset = "UPDATE messages SET state = 'pending', attempts = 0, finished_at = NULL WHERE state = 'dead'";
    match which {
        Retry::All => conn.execute(reset, []),
        Retry::One(id) => conn.execute(&format!("{reset} AND id = ?1"), params![id]),
    }
}

/// Deletes delivered rows that were delivered before `before_ms`, or all of them. Returns how many.
pub fn purge_delivered(conn: &Connection, before_ms: Option<i64>) -> rusqlite::Result<usize> {
    match before_ms {
        Some(before_ms) => {
            conn.execute("DELETE FROM messages WHERE state = 'delivered' AND finished_at < ?1", params![before_ms])
        }
        None => conn.execute("DELETE FROM messages WHERE state = 'delivered'", []),
    }
}

/// Deletes every dead letter. Returns how many.
pub fn purge_dead(conn: &Connection) -> rusqlite::Result<usize> {
    conn.execute("DELETE FROM messages WHERE state = 'dead'", [])
}

/// Forgets remembered destinations, and the `candidates`, that have no rows at all; returns their
/// names.
pub fn forget_unused_destinations(conn: &Connection, candidates: Vec<String>) -> rusqlite::Result<Vec<String>> {
    let mut names: BTreeSet<String> = candidates.into_iter().collect();
    names.extend(select(conn, "SELECT name FROM destinations", [], |r| r.get::<_, String>(0))?);
    let mut used = conn.prepare_cached("SELECT 1 FROM messages WHERE destination = ?1 LIMIT 1")?;
    let mut delete = conn.prepare_cached("DELETE FROM destinations WHERE name = ?1")?;
    let mut unused = Vec::new();
    for name in names {
        if used.query_row(params![name], |_| Ok(())).optional()?.is_none() {
            delete.execute(params![name])?;
            unused.push(name);
        }
    }
    Ok(unused)
}

/// Whether a write can be committed: touches a temporary table.
pub fn probe(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch("CREATE TEMP TABLE IF NOT EXISTS probe (x); DELETE FROM probe;")
}

/// Stores `rows` and remembers `destinations`, all or nothing (inside a savepoint).
pub fn store(
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

/// Whether `rows` fit under `max_bytes` of data (pages in use, not counting free ones). Only new
/// rows are refused: updates and deletes must always go through, so a full outbox can drain.
pub fn room_for(conn: &Connection, rows: &[NewRow], max_bytes: Option<u64>) -> rusqlite::Result<bool> {
    let Some(max_bytes) = max_bytes else {
        return Ok(true);
    };
    Ok(used_bytes(conn)?.saturating_add(incoming_bytes(rows)) <= max_bytes)
}

/// What storing `rows` takes, roughly: every column of each row, and the index entries that
/// repeat its destination (pending, by destination) and its fingerprint.
pub fn incoming_bytes(rows: &[NewRow]) -> u64 {
    rows.iter().map(row_bytes).fold(0, u64::saturating_add)
}

fn row_bytes(row: &NewRow) -> u64 {
    let mentions =
        if row.mentions.is_empty() { 0 } else { serde_json::to_string(&row.mentions).map_or(0, |m| m.len()) };
    let text = row.part.len()
        + row.action.len()
        + row.username.len()
        + row.panel.as_ref().map_or(0, String::len)
        + 3 * row.destination.len()
        + 2 * row.fingerprint.as_ref().map_or(0, String::len)
        + mentions;
    (text as u64).saturating_add(ROW_OVERHEAD_BYTES)
}

/// What deleting delivered rows would free, roughly and on the low side (their parts' bytes), but
/// counted only up to `enough`: a full outbox's next batch makes its room from them. Reads the
/// rows through the index of finished rows, oldest first, and stops once `enough` is reached.
pub fn delivered_bytes_up_to(conn: &Connection, enough: u64) -> rusqlite::Result<u64> {
    let mut lengths = conn.prepare_cached(
        "SELECT octet_length(part) FROM messages WHERE state <> 'pending' AND state = 'delivered' ORDER BY finished_at",
    )?;
    let mut rows = lengths.query([])?;
    let mut total: u64 = 0;
    while total < enough {
        let Some(row) = rows.next()? else { break };
        total = total.saturating_add(u64::try_from(row.get::<_, i64>(0)?).unwrap_or(0));
    }
    Ok(total)
}

/// Bytes of data in the database file (pages in use, not counting free ones).
pub fn used_bytes(conn: &Connection) -> rusqlite::Result<u64> {
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
        if let (Some(window), Some(fingerprint), true) = (dedup_window, &row.fingerprint, row.may_be_resend) {
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
