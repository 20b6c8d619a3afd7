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

    /// Users' forum posts forgotten to make room since the outbox was opened.
    pub fn forum_posts_forgotten(&self) -> u64 {
        self.forgotten_posts.load(Ordering::Relaxed)
    }
}

/// Whether `rows` could fit under `max_bytes` once every user's state and post is forgotten, after
/// the delivered rows are gone. When not (the outbox is full of pending rows), forgetting them
/// would cost change lists and new posts and still refuse the events. Deleting rows frees whole
/// pages only: states and posts that fill less than a page free nothing (a table keeps its first
/// page), so what they take is counted in whole pages, rounded down.
fn forgetting_makes_room(conn: &Connection, rows: &[NewRow], max_bytes: u64) -> rusqlite::Result<bool> {
    if queries::room_for(conn, rows, Some(max_bytes))? {
        return Ok(true);
    }
    let count = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0)).map(|n| u64::try_from(n).unwrap_or(0));
    let states = count("SELECT COUNT(*) FROM user_states")?;
    let posts = count("SELECT COUNT(*) FROM forum_posts WHERE kind = 'user'")?;
    let page_size = count("PRAGMA page_size")?.max(1);
    let taken = states.saturating_mul(STATE_BYTES).saturating_add(posts.saturating_mul(POST_BYTES));
    let could_free = taken / page_size * page_size;
    queries::room_for(conn, rows, Some(max_bytes.saturating_add(could_free)))
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

#[cfg(test)]
mod tests {
    use rusqlite::params;

    use super::*;
    use crate::outbox::schema::{MIGRATIONS, SCHEMA_FORUM_POSTS_USED};
    use crate::outbox::{PostKey, FILE_NAME};

    // An empty outbox takes 80 KiB (its tables and indexes); the rest holds the posts.
    const MAX_BYTES: u64 = 192 * 1024;

    fn user(i: usize) -> PostKey {
        PostKey::User { panel: Some("eu1".into()), username: format!("user{i:05}") }
    }

    /// Remembers the posts of users `0..count` (user `i`'s post is `1000 + i`), each written to
    /// last at `i` ms: user 0's is the least recently used.
    async fn remember_posts(outbox: &Outbox, count: usize) {
        outbox
            .writer
            .call(move |conn| {
                (0..count).try_for_each(|i| forum::remember(conn, "forum", &user(i), 1000 + i as u64, i as i64))
            })
            .await
            .unwrap();
    }

    fn event(username: &str, bytes: usize) -> NewRow {
        NewRow {
            destination: "forum".into(),
            received_at_ms: crate::outbox::now_ms(),
            action: "user_limited".into(),
            username: username.into(),
            panel: None,
            part: "x".repeat(bytes),
            fingerprint: None,
            may_be_resend: false,
            mentions: Default::default(),
        }
    }

    async fn used_bytes(outbox: &Outbox) -> u64 {
        outbox.reader.read(queries::used_bytes).await.unwrap()
    }

    #[tokio::test]
    async fn a_full_outbox_forgets_the_posts_least_recently_written_to_and_takes_the_event() {
        // Arrange: more posts than OUTBOX_MAX_BYTES holds; user 0's post, the oldest, was just
        // written to again.
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open_capped(dir.path(), Some(MAX_BYTES)).unwrap();
        outbox.enqueue(vec![event("early", 100)], None).await.unwrap();
        assert_eq!(outbox.forum_posts_forgotten(), 0, "nothing is forgotten while there is room");
        remember_posts(&outbox, 2000).await;
        assert!(used_bytes(&outbox).await > MAX_BYTES, "the posts alone fill the outbox");
        outbox.delivered_in_post(Vec::new(), "forum", &user(0), None, Vec::new()).await.unwrap();

        // Act
        let stored = outbox.enqueue(vec![event("late", 2000)], None).await;

        // Assert
        assert_eq!(stored.unwrap().stored, 1, "the event is taken, not refused");
        let forgotten = outbox.forum_posts_forgotten();
        let kept = outbox.forum_post_count().await.unwrap();
        assert_eq!(kept + forgotten as i64, 2000);
        assert!(forgotten > 0 && kept > 800, "only as many as needed: {forgotten} forgotten, {kept} kept");
        assert_eq!(outbox.forum_post("forum", &user(0)).await.unwrap(), Some(1000), "just used: kept");
        assert_eq!(outbox.forum_post("forum", &user(1)).await.unwrap(), None, "the least recently used goes");
        assert_eq!(outbox.forum_post("forum", &user(1999)).await.unwrap(), Some(2999));
        assert!(used_bytes(&outbox).await + full_margin(MAX_BYTES) <= MAX_BYTES, "with room to spare");
        assert_eq!(outbox.due("forum", 10).await.unwrap().len(), 2, "both events are kept");
    }

    #[tokio::test]
    async fn posts_are_not_forgotten_when_that_would_not_make_room() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open_capped(dir.path(), Some(MAX_BYTES)).unwrap();
        remember_posts(&outbox, 10).await;
        let mut refused = false;
        for i in 0..100 {
            if let Err(OutboxError::Full) = outbox.enqueue(vec![event(&format!("u{i}"), 8000)], None).await {
                refused = true;
                break;
            }
        }
        assert!(refused, "pending rows filled the outbox");
        assert_eq!(outbox.forum_post_count().await.unwrap(), 10, "forgetting 10 posts would not fit an event");
        assert_eq!(outbox.forum_posts_forgotten(), 0);
    }

    #[tokio::test]
    async fn states_are_not_forgotten_when_that_would_not_make_room() {
        // Arrange: ten users' states (less than a page), then pending rows until one is refused.
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open_capped(dir.path(), Some(MAX_BYTES)).unwrap();
        let seen: Vec<states::SeenState> = (0..10)
            .map(|i| states::SeenState {
                panel: String::new(),
                username: format!("user{i}"),
                state: Some(crate::event::UserState { data_limit: Some(i), ..Default::default() }),
                seen_at_ms: i,
            })
            .collect();
        outbox.writer.call(move |conn| states::record(conn, &seen)).await.unwrap();

        // Act
        let mut refused = false;
        for i in 0..100 {
            if let Err(OutboxError::Full) = outbox.enqueue(vec![event(&format!("u{i}"), 8000)], None).await {
                refused = true;
                break;
            }
        }

        // Assert
        assert!(refused, "pending rows filled the outbox");
        assert_eq!(outbox.user_states_kept().await.unwrap(), 10, "forgetting 10 states would not fit an event");
    }

    #[tokio::test]
    async fn upgrades_an_outbox_of_the_previous_schema_keeping_its_posts_as_used_when_made() {
        let dir = tempfile::tempdir().unwrap();
        {
            let conn = Connection::open(dir.path().join(FILE_NAME)).unwrap();
            let previous = MIGRATIONS.iter().position(|step| *step == SCHEMA_FORUM_POSTS_USED).unwrap();
            conn.execute_batch(&format!("{} PRAGMA user_version = {previous};", MIGRATIONS[..previous].join(" ")))
                .unwrap();
            for (name, thread_id, created_at) in [("old", 11, 5), ("new", 22, 9)] {
                conn.execute(
                    "INSERT INTO forum_posts (destination, kind, panel, name, thread_id, created_at)
                     VALUES ('forum', 'user', '', ?1, ?2, ?3)",
                    params![name, thread_id, created_at],
                )
                .unwrap();
            }
        }
        let outbox = Outbox::open(dir.path()).unwrap();
        let key = |name: &str| PostKey::User { panel: None, username: name.into() };
        assert_eq!(outbox.forum_post("forum", &key("old")).await.unwrap(), Some(11));
        assert_eq!(outbox.forum_post("forum", &key("new")).await.unwrap(), Some(22));
        assert_eq!(outbox.writer.call(|conn| forum::forget_least_used(conn, 1)).await.unwrap(), 1);
        assert_eq!(outbox.forum_post("forum", &key("old")).await.unwrap(), None, "made first, used least recently");
        assert_eq!(outbox.forum_post("forum", &key("new")).await.unwrap(), Some(22));
    }
}
