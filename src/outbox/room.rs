//! Making room in a full outbox (`OUTBOX_MAX_BYTES`) for new rows: first delete what Discord
//! already has (delivered rows); if that is not enough, forget the users' last states least
//! recently seen (an edit then shows no change list), then the forum posts least recently
//! written to. A forgotten post costs that user a new post on their next event, never an event:
//! remembered posts must not grow until the panel's events are refused.

use std::sync::atomic::Ordering;

use rusqlite::Connection;

use super::{forum, full_margin, queries, states, NewRow, Outbox, OutboxError};

/// The fewest posts one step forgets: deleting rows frees whole pages only, so a step must be
/// able to empty one (a page holds about 40 posts).
const FORGET_STEP_MIN: u64 = 64;

/// What a remembered user's post takes in the file, counted generously (about 90 bytes with
/// short names, its row and its key's index entry): how much forgetting every post could free.
const POST_BYTES: u64 = 128;

/// What a user's kept state takes in the file, counted generously (about 230 bytes measured with
/// 100,000 users, docs/BENCHMARKS.md): how much forgetting every state could free.
const STATE_BYTES: u64 = 256;

/// What making room freed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Freed {
    /// Delivered rows deleted.
    pub delivered: usize,
    /// Users' last states forgotten (their next edit shows no change list).
    pub states: usize,
    /// Users' forum posts forgotten.
    pub posts: usize,
}

impl Outbox {
    /// Makes room for `rows` in a full outbox, in one transaction: deletes every delivered row and,
    /// if `rows` still do not fit, forgets users' forum posts, the least recently written to first,
    /// until `rows` fit with [`full_margin`] to spare (the room that keeps the outbox from counting
    /// as full), so that the next requests do not each have to forget a few more. `what` names
    /// what needs the room, for the log.
    pub(super) async fn make_room(&self, rows: std::sync::Arc<Vec<NewRow>>, what: &str) -> Result<Freed, OutboxError> {
        let max_bytes = self.max_bytes;
        let freed = self
            .writer
            .call(move |conn| {
                let delivered = queries::purge_delivered(conn, None)?;
                let (states, posts) = match max_bytes {
                    Some(max_bytes) if forgetting_makes_room(conn, &rows, max_bytes)? => {
                        (states::forget_for(conn, &rows, max_bytes)?, forget_posts_for(conn, &rows, max_bytes)?)
                    }
                    _ => (0, 0),
                };
                Ok::<_, rusqlite::Error>(Freed { delivered, states, posts })
            })
            .await?;
        self.forgotten_posts.fetch_add(freed.posts as u64, Ordering::Relaxed);
        if freed.states > 0 {
            self.states.clear();
            log::warn!(
                "the outbox is full (OUTBOX_MAX_BYTES); forgot the last state of the {} users least recently seen, \
                 to make room{what}: their next edits show no change list",
                freed.states
            );
        }
        if freed.posts == 0 {
            log::warn!("the outbox is full; deleted {} delivered rows to make room{what}", freed.delivered);
        } else {
            log::warn!(
                "the outbox is full (OUTBOX_MAX_BYTES); deleted {} delivered rows and forgot the {} forum posts \
                 least recently written to, to make room{what}: those users' next events start new posts",
                freed.delivered,
                freed.posts
            );
        }
        Ok(freed)
    }

    /// Whether the outbox is at `OUTBOX_MAX_BYTES`: a batch of [`full_margin`] would not fit even
    /// after [`Outbox::make_room`], so the panel's next requests are likely to be refused. What
    /// making room takes counts as room, estimated as making room estimates it: delivered rows
    /// (Discord has them), users' last states and their forum posts. Nothing deletes either until a batch needs the
    /// room, so an outbox at its cap only because of them is not full.
    pub async fn is_full(&self) -> Result<bool, OutboxError> {
        let Some(max_bytes) = self.max_bytes else {
            return Ok(false);
        };
        self.reader
            .read(move |conn| {
                let missing =
                    queries::used_bytes(conn)?.saturating_add(full_margin(max_bytes)).saturating_sub(max_bytes);
                if missing == 0 {
                    return Ok(false);
                }
                let forgettable = forgettable_bytes(conn)?;
                let delivered = queries::delivered_bytes_up_to(conn, missing.saturating_sub(forgettable))?;
                Ok(forgettable.saturating_add(delivered) < missing)
            })
            .await
    }

    /// Users' forum posts forgotten to make room since the outbox was opened.
    pub fn forum_posts_forgotten(&self) -> u64 {
        self.forgotten_posts.load(Ordering::Relaxed)
    }
}

/// Whether `rows` could fit under `max_bytes` once every user's state and post is forgotten, after
/// the delivered rows are gone. When not (the outbox is full of pending rows), forgetting them
/// would cost change lists and new posts and still refuse the events.
fn forgetting_makes_room(conn: &Connection, rows: &[NewRow], max_bytes: u64) -> rusqlite::Result<bool> {
    if queries::room_for(conn, rows, Some(max_bytes))? {
        return Ok(true);
    }
    queries::room_for(conn, rows, Some(max_bytes.saturating_add(forgettable_bytes(conn)?)))
}

/// Forgets users' posts, least recently written to first, while `rows` do not fit under
/// `max_bytes` with [`full_margin`] to spare; nothing when they fit already. Returns how many.
fn forget_posts_for(conn: &Connection, rows: &[NewRow], max_bytes: u64) -> rusqlite::Result<usize> {
    if queries::room_for(conn, rows, Some(max_bytes))? {
        return Ok(0);
    }
    let needed = queries::incoming_bytes(rows).saturating_add(full_margin(max_bytes));
    let mut forgotten = 0;
    loop {
        let missing = queries::used_bytes(conn)?.saturating_add(needed).saturating_sub(max_bytes);
        if missing == 0 {
            return Ok(forgotten);
        }
        // Each post frees at most POST_BYTES, so this many do not free (much) more than is missing.
        let step = (missing / POST_BYTES).max(FORGET_STEP_MIN);
        match forum::forget_least_used(conn, usize::try_from(step).unwrap_or(usize::MAX))? {
            0 => return Ok(forgotten),
            count => forgotten += count,
        }
    }
}

/// What forgetting every user's state and forum post could free, at most. Deleting rows frees
/// whole pages only: states and posts that fill less than a page free nothing (a table keeps its
/// first page), so what they take is counted in whole pages, rounded down.
fn forgettable_bytes(conn: &Connection) -> rusqlite::Result<u64> {
    let count = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0)).map(|n| u64::try_from(n).unwrap_or(0));
    let states = count("SELECT COUNT(*) FROM user_states")?;
    let posts = count("SELECT COUNT(*) FROM forum_posts WHERE kind = 'user'")?;
    let page_size = count("PRAGMA page_size")?.max(1);
    let taken = states.saturating_mul(STATE_BYTES).saturating_add(posts.saturating_mul(POST_BYTES));
    Ok(taken / page_size * page_size)
}
