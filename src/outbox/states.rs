//! The last state the relay saw of each user, per panel, so an edit can show what it changed
//! (see `event::UserState`). Written with the rows of the request that showed it, forgotten on
//! `user_deleted`, after `USER_STATE_RETENTION` without an event, and beyond [`STATES_MAX`] users (the
//! least recently seen first).

use std::collections::HashMap;
use std::sync::Arc;

use rusqlite::{params, Connection, OptionalExtension};

pub use super::state_cache::{SeenState, UserKey};
use super::state_cache::{StateCache, StatesHeld};
use super::{Outbox, OutboxError};
use crate::event::UserState;

/// The most users whose state is kept. With states of at most `event::STATE_MAX_BYTES` (1.5 KiB)
/// that bounds them to about 300 MiB; a typical state is under 250 bytes (about 35 MiB in all
/// with its keys and index).
pub const STATES_MAX: u64 = 200_000;

/// Users' states as kept, each with when it was written (unix ms).
pub type KeptStates = HashMap<UserKey, (Arc<UserState>, i64)>;

impl Outbox {
    /// The states last seen of `users`, each with when it was written (unix ms), from the read
    /// connection, blocking: for ingest's CPU work, which runs off the async workers already.
    /// Users never seen (or whose state is unreadable) are absent.
    pub fn user_states_blocking(&self, users: &[UserKey]) -> Result<KeptStates, OutboxError> {
        self.states_reader.read_blocking(|conn| read(conn, users))
    }

    /// The states last seen of `users`, like [`Outbox::user_states_blocking`], for a request that
    /// will store their new states: it waits for any other request about one of them to be stored
    /// first, and holds them until the returned [`StatesHeld`] is dropped, which the caller does
    /// once its [`Outbox::enqueue_batch`] answered. Blocking: for ingest's CPU work.
    pub fn user_states_for_update(&self, users: &[UserKey]) -> Result<(KeptStates, StatesHeld), OutboxError> {
        let (held, cached, missing) = self
            .states
            .take_turn(users)
            .ok_or_else(|| OutboxError::Storage("a request about the same users was not stored within 5 s".into()))?;
        let mut found = if missing.is_empty() {
            KeptStates::new()
        } else {
            // Not cached: the request's end caches what it leaves them in, not what was read.
            self.states_reader.read_blocking(|conn| read(conn, &missing))?
        };
        found.extend(cached.into_iter().filter_map(|(user, (text, seen_at))| Some((user, (parse(&text)?, seen_at)))));
        Ok((found, held))
    }

    /// Forgets the states of users not seen since `before_ms`, then the least recently seen beyond
    /// `STATES_MAX`. Returns how many.
    pub async fn prune_user_states(&self, before_ms: i64) -> Result<usize, OutboxError> {
        let forgotten = self.writer.call(move |conn| prune(conn, before_ms, STATES_MAX)).await?;
        if forgotten > 0 {
            self.states.clear();
        }
        Ok(forgotten)
    }

    /// How many users' states are kept.
    pub async fn user_states_kept(&self) -> Result<u64, OutboxError> {
        let count = |conn: &Connection| conn.query_row("SELECT COUNT(*) FROM user_states", [], |r| r.get::<_, i64>(0));
        Ok(u64::try_from(self.reader.read(count).await?).unwrap_or(0))
    }
}

fn read(conn: &Connection, users: &[UserKey]) -> rusqlite::Result<KeptStates> {
    // One read transaction for all: each query on its own would be a transaction of its own, and
    // SQLite drops its cache of pages at each one that begins after a write committed (there is
    // one every few milliseconds under load), reading the same pages again.
    if users.len() < 2 {
        return read_each(conn, users);
    }
    let snapshot = conn.unchecked_transaction()?;
    let found = read_each(&snapshot, users)?;
    snapshot.finish()?;
    Ok(found)
}

fn read_each(conn: &Connection, users: &[UserKey]) -> rusqlite::Result<KeptStates> {
    let mut stmt = conn.prepare_cached("SELECT state, seen_at FROM user_states WHERE panel = ?1 AND username = ?2")?;
    let mut found = HashMap::new();
    for (panel, username) in users {
        let row = stmt.query_row(params![panel, username], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)));
        let Some((text, seen_at)) = row.optional()? else {
            continue;
        };
        if let Some(state) = parse(&text) {
            found.insert((panel.clone(), username.clone()), (state, seen_at));
        }
    }
    Ok(found)
}

/// A state as stored. One this version cannot read is as good as none: the next event replaces it.
fn parse(text: &str) -> Option<Arc<UserState>> {
    serde_json::from_str::<UserState>(text).ok().map(Arc::new)
}

/// Writes what `seen` tells, in order (the last word on a user wins), then forgets the least
/// recently seen users beyond `max` (see [`forget_beyond`]); the cache forgets everything if any
/// was.
pub(super) fn record(conn: &Connection, seen: &[SeenState], max: u64, cache: &StateCache) -> rusqlite::Result<()> {
    if seen.is_empty() {
        return Ok(());
    }
    let mut put = conn.prepare_cached(
        "INSERT INTO user_states (panel, username, state, seen_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (panel, username) DO UPDATE SET state = excluded.state, seen_at = excluded.seen_at",
    )?;
    let mut forget = conn.prepare_cached("DELETE FROM user_states WHERE panel = ?1 AND username = ?2")?;
    for seen in seen {
        match &seen.state {
            Some(text) => {
                put.execute(params![seen.panel, seen.username, &**text, seen.seen_at_ms])?;
            }
            None => {
                forget.execute(params![seen.panel, seen.username])?;
            }
        }
    }
    if forget_beyond(conn, max)? > 0 {
        cache.clear();
    }
    Ok(())
}

/// How many states are kept, as the outbox counts them (triggers keep the count with every
/// insertion and deletion, so reading it costs one row).
fn kept(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT n FROM user_states_count")?.query_row([], |r| r.get(0))
}

/// Forgets the least recently seen users while more than `max` are kept, so the bound holds after
/// every write. Finding them reads every state (there is no index on `seen_at`, which would cost
/// every write), so each time it forgets a hundredth of `max` more than needed: a run of new users
/// at the bound pays that read once per so many users. Returns how many.
fn forget_beyond(conn: &Connection, max: u64) -> rusqlite::Result<usize> {
    let max = i64::try_from(max).unwrap_or(i64::MAX);
    let over = kept(conn)?.saturating_sub(max);
    if over <= 0 {
        return Ok(0);
    }
    let forgotten = conn.execute(
        "DELETE FROM user_states WHERE (panel, username) IN
             (SELECT panel, username FROM user_states ORDER BY seen_at LIMIT ?1)",
        params![over.saturating_add(max / 100)],
    )?;
    log::info!("forgot the last state of the {forgotten} users least recently seen, to keep at most {max}");
    Ok(forgotten)
}

/// How many states one step of making room forgets: deleting rows frees whole pages only.
const FORGET_STEP: i64 = 256;

/// Forgets users' states, least recently seen first, while `rows` do not fit under `max_bytes`
/// with room to spare (see `room`). Returns how many.
pub(super) fn forget_for(conn: &Connection, rows: &[super::NewRow], max_bytes: u64) -> rusqlite::Result<usize> {
    let needed = super::queries::incoming_bytes(rows).saturating_add(super::full_margin(max_bytes));
    let mut forgotten = 0;
    while super::queries::used_bytes(conn)?.saturating_add(needed) > max_bytes {
        let step = conn.execute(
            "DELETE FROM user_states WHERE (panel, username) IN
                 (SELECT panel, username FROM user_states ORDER BY seen_at LIMIT ?1)",
            params![FORGET_STEP],
        )?;
        if step == 0 {
            break;
        }
        forgotten += step;
    }
    Ok(forgotten)
}

fn prune(conn: &Connection, before_ms: i64, max: u64) -> rusqlite::Result<usize> {
    let old = conn.execute("DELETE FROM user_states WHERE seen_at < ?1", params![before_ms])?;
    let kept: i64 = conn.query_row("SELECT COUNT(*) FROM user_states", [], |r| r.get(0))?;
    let over = kept.saturating_sub(i64::try_from(max).unwrap_or(i64::MAX));
    if over <= 0 {
        return Ok(old);
    }
    let least_recent = conn.execute(
        "DELETE FROM user_states WHERE (panel, username) IN
             (SELECT panel, username FROM user_states ORDER BY seen_at LIMIT ?1)",
        params![over],
    )?;
    Ok(old + least_recent)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(username: &str, limit: Option<i64>, at: i64) -> SeenState {
        let state = limit.map(|limit| UserState { data_limit: Some(limit), ..UserState::default() }.to_json().into());
        SeenState { panel: String::new(), username: username.into(), state, seen_at_ms: at }
    }

    fn open() -> (tempfile::TempDir, Outbox) {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path()).unwrap();
        (dir, outbox)
    }

    #[tokio::test]
    async fn keeps_the_last_state_across_a_restart_and_forgets_a_deleted_user() {
        let (dir, outbox) = open();
        let states = vec![seen("a", Some(1), 10), seen("a", Some(2), 11), seen("b", Some(3), 12), seen("b", None, 13)];
        outbox.writer.call(move |conn| record(conn, &states, STATES_MAX, &StateCache::default())).await.unwrap();
        drop(outbox);
        let outbox = Outbox::open(dir.path()).unwrap();
        let keys = vec![(String::new(), "a".to_owned()), (String::new(), "b".to_owned())];
        let found = outbox.user_states_blocking(&keys).unwrap();
        assert_eq!(found.len(), 1, "b was deleted");
        assert_eq!((found[&keys[0]].0.data_limit, found[&keys[0]].1), (Some(2), 11), "the later state of a");
    }

    #[tokio::test]
    async fn never_keeps_more_states_than_the_bound_after_a_write() {
        let (_dir, outbox) = open();
        let max = 300;
        for round in 0..4_i64 {
            // 100 users new to the outbox, and 20 already kept whose state changes.
            let states: Vec<SeenState> = (round * 100..round * 100 + 100)
                .chain(round * 100 - 20..round * 100)
                .filter(|&i| i >= 0)
                .map(|i| seen(&format!("u{i}"), Some(round), round * 1_000 + i))
                .collect();
            outbox.writer.call(move |conn| record(conn, &states, max, &StateCache::default())).await.unwrap();
            let rows = outbox.user_states_kept().await.unwrap();
            let counted = outbox.writer.call(kept).await.unwrap();
            assert_eq!(counted, rows as i64, "the count the triggers keep is the rows'");
            let expected = if round < 3 { (round as u64 + 1) * 100 } else { 300 - 3 };
            assert_eq!(rows, expected, "round {round}: at most {max}, a hundredth of it more forgotten at once");
        }
        let keys: Vec<UserKey> = (0..400).map(|i| (String::new(), format!("u{i}"))).collect();
        let kept = outbox.user_states_blocking(&keys).unwrap();
        assert!(kept.contains_key(&keys[399]) && kept.contains_key(&keys[280]), "the most recently seen stay");
        assert!(!kept.contains_key(&keys[0]) && !kept.contains_key(&keys[102]), "the least recently seen go first");
    }

    #[tokio::test]
    async fn forgets_states_after_the_retention_and_beyond_the_most_kept() {
        let (_dir, outbox) = open();
        let states: Vec<SeenState> = (0..10).map(|i| seen(&format!("u{i}"), Some(i), i)).collect();
        outbox.writer.call(move |conn| record(conn, &states, STATES_MAX, &StateCache::default())).await.unwrap();
        assert_eq!(outbox.prune_user_states(2).await.unwrap(), 2, "u0 and u1 are older than 2");
        assert_eq!(outbox.writer.call(|conn| prune(conn, 0, 5)).await.unwrap(), 3, "u2 to u4 are the least recent");
        let keys: Vec<UserKey> = (0..10).map(|i| (String::new(), format!("u{i}"))).collect();
        let mut kept: Vec<String> = outbox.user_states_blocking(&keys).unwrap().into_keys().map(|k| k.1).collect();
        kept.sort();
        assert_eq!(kept, ["u5", "u6", "u7", "u8", "u9"]);
        assert_eq!(outbox.user_states_kept().await.unwrap(), 5);
    }
}
