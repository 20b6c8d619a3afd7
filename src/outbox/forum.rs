//! Forum mode's durable map: (destination, panel, user) → the post (thread) holding that user's
//! messages, and (destination, day) → the post of that day's digests. Delivery looks a post up
//! before sending, and records a new one in the same transaction that marks its rows delivered.

use rusqlite::{params, Connection, OptionalExtension};

use super::{now_ms, queries, Outbox, OutboxError};

/// Digest posts older than this are never written to again (a day has its own post); their
/// entries are deleted by the hourly pruning.
const DIGEST_POST_KEEP_MS: i64 = 3 * 86_400_000;

/// Which post of a forum destination.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PostKey {
    /// A user's post: their panel (none when the event had no panel label) and username.
    User { panel: Option<String>, username: String },
    /// The post of one day's digests, by UTC date (`2026-11-28`).
    Digest { date: String },
}

impl PostKey {
    /// The stored columns (kind, panel, name).
    fn columns(&self) -> (&'static str, &str, &str) {
        match self {
            PostKey::User { panel, username } => ("user", panel.as_deref().unwrap_or_default(), username),
            PostKey::Digest { date } => ("digest", "", date),
        }
    }
}

impl Outbox {
    /// The post of `key` at `destination`, if one is known.
    pub async fn forum_post(&self, destination: &str, key: &PostKey) -> Result<Option<u64>, OutboxError> {
        let (destination, key) = (destination.to_owned(), key.clone());
        self.reader.read(move |conn| find(conn, &destination, &key)).await
    }

    /// Marks `ids` delivered into the post of `key`, records that post as `created` (when the
    /// message made it) and forgets the posts of `ended` (users deleted), in one transaction: rows
    /// never count as delivered while the post they made is unrecorded.
    pub async fn delivered_in_post(
        &self,
        ids: Vec<i64>,
        destination: &str,
        key: &PostKey,
        created: Option<u64>,
        ended: Vec<PostKey>,
    ) -> Result<(), OutboxError> {
        let (destination, key, now) = (destination.to_owned(), key.clone(), now_ms());
        self.writer
            .call(move |conn| {
                match created {
                    Some(thread_id) => remember(conn, &destination, &key, thread_id, now)?,
                    None => used(conn, &destination, &key, now)?,
                }
                for ended in &ended {
                    forget(conn, &destination, ended, None)?;
                }
                queries::finish(conn, &ids, "delivered", now, None)
            })
            .await
    }

    /// Forgets the post of `key` if it is still `thread_id` (Discord says it was deleted or is
    /// locked): the next message creates a new one.
    pub async fn forget_forum_post(&self, destination: &str, key: &PostKey, thread_id: u64) -> Result<(), OutboxError> {
        let (destination, key) = (destination.to_owned(), key.clone());
        self.writer.call(move |conn| forget(conn, &destination, &key, Some(thread_id))).await
    }

    /// How many posts are remembered, over all destinations.
    pub async fn forum_post_count(&self) -> Result<i64, OutboxError> {
        self.reader.read(|conn| conn.query_row("SELECT COUNT(*) FROM forum_posts", [], |r| r.get(0))).await
    }

    /// Forgets digest posts of days long past (they are never written to again). Returns how many.
    pub async fn forget_old_digest_posts(&self) -> Result<usize, OutboxError> {
        let before = now_ms().saturating_sub(DIGEST_POST_KEEP_MS);
        self.writer
            .call(move |conn| {
                conn.execute("DELETE FROM forum_posts WHERE kind = 'digest' AND created_at < ?1", params![before])
            })
            .await
    }
}

/// Moves the posts of each `from` (at every destination) to its `to`, unless `to` has one already
/// (a deleted node's): a node renamed keeps its post. All are set aside first, so two nodes that
/// swapped names in one round swap posts instead of each finding the other's in its way.
pub(super) fn rename_posts(conn: &Connection, renamed: &[(PostKey, PostKey)]) -> rusqlite::Result<()> {
    // A panel column no label makes (labels are letters, digits, `_` and `-`).
    let aside = |i: usize| format!("\u{1}moving:{i}");
    for (i, (from, _)) in renamed.iter().enumerate() {
        let (kind, panel, old) = from.columns();
        conn.prepare_cached(
            "UPDATE OR IGNORE forum_posts SET panel = ?4 WHERE kind = ?1 AND panel = ?2 AND name = ?3",
        )?
        .execute(params![kind, panel, old, aside(i)])?;
    }
    for (i, (from, to)) in renamed.iter().enumerate() {
        let ((kind, panel, old), (_, new_panel, new)) = (from.columns(), to.columns());
        let mut put = conn
            .prepare_cached("UPDATE OR IGNORE forum_posts SET panel = ?3, name = ?4 WHERE kind = ?1 AND panel = ?2")?;
        put.execute(params![kind, aside(i), new_panel, new])?;
        // Where `to` had a post already, the old one goes back (or, taken too, is forgotten).
        put.execute(params![kind, aside(i), panel, old])?;
    }
    // One pass for what is left aside (the table has no index by panel alone).
    if !renamed.is_empty() {
        conn.prepare_cached("DELETE FROM forum_posts WHERE substr(panel, 1, 1) = char(1)")?.execute([])?;
    }
    Ok(())
}

fn find(conn: &Connection, destination: &str, key: &PostKey) -> rusqlite::Result<Option<u64>> {
    let (kind, panel, name) = key.columns();
    let mut stmt = conn.prepare_cached(
        "SELECT thread_id FROM forum_posts WHERE destination = ?1 AND kind = ?2 AND panel = ?3 AND name = ?4",
    )?;
    let id: Option<i64> = stmt.query_row(params![destination, kind, panel, name], |r| r.get(0)).optional()?;
    Ok(id.and_then(|id| u64::try_from(id).ok()))
}

pub(super) fn remember(
    conn: &Connection,
    destination: &str,
    key: &PostKey,
    thread_id: u64,
    now: i64,
) -> rusqlite::Result<()> {
    let (kind, panel, name) = key.columns();
    // Thread ids are snowflakes (below 2^63); anything larger cannot be stored and is not kept.
    let Ok(thread_id) = i64::try_from(thread_id) else { return Ok(()) };
    conn.prepare_cached(
        "INSERT INTO forum_posts (destination, kind, panel, name, thread_id, created_at, used_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)
         ON CONFLICT (destination, kind, panel, name) DO UPDATE SET thread_id = excluded.thread_id,
             created_at = excluded.created_at, used_at = excluded.used_at",
    )?
    .execute(params![destination, kind, panel, name, thread_id, now])?;
    Ok(())
}

/// Notes that the post of `key` (if one is remembered) was written to at `now`.
fn used(conn: &Connection, destination: &str, key: &PostKey, now: i64) -> rusqlite::Result<()> {
    let (kind, panel, name) = key.columns();
    conn.prepare_cached(
        "UPDATE forum_posts SET used_at = ?5 WHERE destination = ?1 AND kind = ?2 AND panel = ?3 AND name = ?4",
    )?
    .execute(params![destination, kind, panel, name, now])?;
    Ok(())
}

/// Forgets up to `count` users' posts, the least recently written to first (over all
/// destinations; digest posts are few and pruned by age). Returns how many.
pub(super) fn forget_least_used(conn: &Connection, count: usize) -> rusqlite::Result<usize> {
    conn.prepare_cached(
        "DELETE FROM forum_posts WHERE rowid IN
             (SELECT rowid FROM forum_posts WHERE kind = 'user' ORDER BY used_at, rowid LIMIT ?1)",
    )?
    .execute(params![i64::try_from(count).unwrap_or(i64::MAX)])
}

fn forget(conn: &Connection, destination: &str, key: &PostKey, thread_id: Option<u64>) -> rusqlite::Result<()> {
    let (kind, panel, name) = key.columns();
    let thread_id = thread_id.and_then(|id| i64::try_from(id).ok());
    conn.prepare_cached(
        "DELETE FROM forum_posts WHERE destination = ?1 AND kind = ?2 AND panel = ?3 AND name = ?4
             AND (?5 IS NULL OR thread_id = ?5)",
    )?
    .execute(params![destination, kind, panel, name, thread_id])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::schema::{SCHEMA_V1, SCHEMA_V2, SCHEMA_V3};
    use super::super::FILE_NAME;
    use super::*;

    #[tokio::test]
    async fn upgrades_a_version_3_outbox_keeping_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        {
            let conn = Connection::open(dir.path().join(FILE_NAME)).unwrap();
            conn.execute_batch(&format!("{SCHEMA_V1} {SCHEMA_V2} {SCHEMA_V3} PRAGMA user_version = 3;")).unwrap();
            conn.execute_batch(
                "INSERT INTO messages (destination, received_at, action, username, part) VALUES ('a', 1, 'x', 'u', '{}')",
            )
            .unwrap();
        }
        let outbox = Outbox::open(dir.path()).unwrap();
        assert_eq!(outbox.due("a", 10).await.unwrap().len(), 1);
        let key = PostKey::User { panel: None, username: "u".into() };
        outbox.delivered_in_post(Vec::new(), "a", &key, Some(7), Vec::new()).await.unwrap();
        assert_eq!(outbox.forum_post("a", &key).await.unwrap(), Some(7));
    }

    fn alice(panel: Option<&str>) -> PostKey {
        PostKey::User { panel: panel.map(str::to_owned), username: "alice".into() }
    }

    #[tokio::test]
    async fn remembers_a_post_per_panel_and_user_across_a_reopen_and_forgets_it() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path()).unwrap();
        outbox.delivered_in_post(Vec::new(), "forum", &alice(Some("eu")), Some(111), Vec::new()).await.unwrap();
        outbox.delivered_in_post(Vec::new(), "forum", &alice(None), Some(222), Vec::new()).await.unwrap();
        drop(outbox);

        let outbox = Outbox::open(dir.path()).unwrap();
        assert_eq!(outbox.forum_post("forum", &alice(Some("eu"))).await.unwrap(), Some(111));
        assert_eq!(outbox.forum_post("forum", &alice(None)).await.unwrap(), Some(222));
        assert_eq!(outbox.forum_post("other", &alice(None)).await.unwrap(), None, "per destination");
        let digest = PostKey::Digest { date: "2026-11-28".into() };
        assert_eq!(outbox.forum_post("forum", &digest).await.unwrap(), None, "digests are not users");

        outbox.forget_forum_post("forum", &alice(None), 999).await.unwrap();
        assert_eq!(outbox.forum_post("forum", &alice(None)).await.unwrap(), Some(222), "another post is kept");
        outbox.forget_forum_post("forum", &alice(None), 222).await.unwrap();
        assert_eq!(outbox.forum_post("forum", &alice(None)).await.unwrap(), None);
        let eu = alice(Some("eu"));
        outbox.delivered_in_post(Vec::new(), "forum", &eu, None, vec![eu.clone()]).await.unwrap();
        assert_eq!(outbox.forum_post_count().await.unwrap(), 0);
    }

    fn node(panel: &str, name: &str) -> PostKey {
        PostKey::User { panel: Some(format!(":nodes:{panel}")), username: name.into() }
    }

    #[tokio::test]
    async fn two_nodes_that_swap_names_in_one_round_swap_posts() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path()).unwrap();
        outbox.delivered_in_post(Vec::new(), "forum", &node("eu", "a"), Some(111), Vec::new()).await.unwrap();
        outbox.delivered_in_post(Vec::new(), "forum", &node("eu", "b"), Some(222), Vec::new()).await.unwrap();
        outbox.delivered_in_post(Vec::new(), "forum", &node("eu", "c"), Some(333), Vec::new()).await.unwrap();
        // Node 1 "a" is now "b", node 2 "b" is now "a"; node 3 "d" is renamed to "c", whose post
        // (a deleted node's) stays.
        let renamed = vec![
            (node("eu", "a"), node("eu", "b")),
            (node("eu", "b"), node("eu", "a")),
            (node("eu", "d"), node("eu", "c")),
        ];
        outbox.store_watch(Some("eu".into()), "{}".into(), Vec::new(), Vec::new(), renamed).await.unwrap();
        assert_eq!(outbox.forum_post("forum", &node("eu", "b")).await.unwrap(), Some(111), "node 1 keeps its post");
        assert_eq!(outbox.forum_post("forum", &node("eu", "a")).await.unwrap(), Some(222), "node 2 keeps its post");
        assert_eq!(outbox.forum_post("forum", &node("eu", "c")).await.unwrap(), Some(333));
        assert_eq!(outbox.forum_post_count().await.unwrap(), 3);
    }

    #[tokio::test]
    async fn a_panel_whose_label_changed_takes_its_node_posts_over_with_its_state() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path()).unwrap();
        let state = r#"{"url":"http://127.0.0.1:8000"}"#.to_owned();
        outbox.store_watch(Some("eu".into()), state, Vec::new(), Vec::new(), Vec::new()).await.unwrap();
        outbox.delivered_in_post(Vec::new(), "forum", &node("eu", "fi-4"), Some(444), Vec::new()).await.unwrap();
        let moved = outbox
            .adopt_watch(Some("eu-west".into()), "http://127.0.0.1:8000".into(), |label| format!(":nodes:{label}"));
        assert_eq!(moved.await.unwrap().as_deref(), Some("eu"));
        assert_eq!(outbox.forum_post("forum", &node("eu-west", "fi-4")).await.unwrap(), Some(444), "the down's post");
        assert_eq!(outbox.forum_post("forum", &node("eu", "fi-4")).await.unwrap(), None);
    }
}
