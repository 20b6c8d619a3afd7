//! Node watch's durable state: per panel, what the watcher knows of its nodes and their open
//! outages (as the watcher's JSON, opaque here), and a history of outages for reports. The state
//! is written in the same transaction as the rows of the events it caused, so after a crash either
//! both are there or neither: a `node_down` is never sent twice nor lost.

use rusqlite::{params, Connection, OptionalExtension};

use super::{now_ms, queries, NewRow, Outbox, OutboxError, PostKey};

/// Ended outages are kept this long for reports (as the reports' tally: `reports::KEEP_DAYS`).
const OUTAGES_KEEP_MS: i64 = 35 * 86_400_000;

/// The most outages kept per node: a node that goes down every few minutes for a month must not
/// grow the file without bound. The oldest ended ones go first.
const OUTAGES_PER_NODE: i64 = 500;

/// The most outages kept in all: a panel that gives its nodes new ids round after round would
/// otherwise grow the history (and what a report reads into memory) by 500 per id. The oldest
/// ended ones go first. (Tests fill a smaller one.)
const OUTAGES_MAX: i64 = if cfg!(test) { 1_000 } else { 100_000 };

/// A node outage to record: opened when its `node_down` is stored, closed when it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutageRecord {
    pub node_id: i64,
    pub name: String,
    pub started_ms: i64,
    pub ended_ms: Option<i64>,
}

/// A recorded outage, for a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PastOutage {
    pub panel: Option<String>,
    pub node_id: i64,
    pub name: String,
    pub started_ms: i64,
    pub ended_ms: Option<i64>,
}

impl Outbox {
    /// The watcher's stored state of `panel` (`None`: the panel without a label), if any.
    pub async fn watch_state(&self, panel: Option<String>) -> Result<Option<String>, OutboxError> {
        self.reader
            .read(move |conn| {
                conn.query_row("SELECT state FROM node_watch WHERE panel = ?1", [panel.unwrap_or_default()], |r| {
                    r.get(0)
                })
                .optional()
            })
            .await
    }

    /// Moves the watch state stored for the panel at `url` under another label (`PANEL_NAME`, or
    /// the panel's label in the routes file, was changed) to `panel`, with its outages, when
    /// `panel` has none: the renamed panel's open outages go on instead of staying open forever
    /// under a label nothing watches. Its nodes' forum posts (kept where `node_posts` of a label
    /// says) go with them, so a recovery goes into its down's post. Returns the label it was
    /// stored under.
    pub async fn adopt_watch(
        &self,
        panel: Option<String>,
        url: String,
        node_posts: fn(&str) -> String,
    ) -> Result<Option<String>, OutboxError> {
        self.writer
            .call(move |conn| -> Result<Option<String>, OutboxError> {
                let panel = panel.unwrap_or_default();
                let own =
                    conn.query_row("SELECT 1 FROM node_watch WHERE panel = ?1", [&panel], |_| Ok(())).optional()?;
                if own.is_some() {
                    return Ok(None);
                }
                let old: Option<String> = conn
                    .query_row(
                        "SELECT panel FROM node_watch WHERE panel != ?1 AND json_valid(state)
                             AND json_extract(state, '$.url') = ?2 ORDER BY updated_at DESC LIMIT 1",
                        params![panel, url],
                        |r| r.get(0),
                    )
                    .optional()?;
                let Some(old) = old else { return Ok(None) };
                conn.execute("UPDATE node_watch SET panel = ?1 WHERE panel = ?2", params![panel, old])?;
                conn.execute("UPDATE OR REPLACE node_outages SET panel = ?1 WHERE panel = ?2", params![panel, old])?;
                conn.execute(
                    "UPDATE OR IGNORE forum_posts SET panel = ?1 WHERE kind = 'user' AND panel = ?2",
                    params![node_posts(&panel), node_posts(&old)],
                )?;
                Ok(Some(old))
            })
            .await
    }

    /// Stores `state` as `panel`'s, with `rows` (the events it caused) and `outages`, in one
    /// transaction, moving the forum posts of renamed nodes (`renamed`: from, to) first, so the
    /// rows go into the post the node had. Refused as a whole when the outbox has no room for the
    /// rows.
    pub async fn store_watch(
        &self,
        panel: Option<String>,
        state: String,
        rows: Vec<NewRow>,
        outages: Vec<OutageRecord>,
        renamed: Vec<(PostKey, PostKey)>,
    ) -> Result<(), OutboxError> {
        let max_bytes = self.max_bytes;
        let now = now_ms();
        self.writer
            .call(move |conn| {
                if !rows.is_empty() && !queries::room_for(conn, &rows, max_bytes)? {
                    return Err(OutboxError::Full);
                }
                let panel = panel.unwrap_or_default();
                conn.execute(
                    "INSERT INTO node_watch (panel, state, updated_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (panel) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
                    params![panel, state, now],
                )?;
                record_outages(conn, &panel, &outages, now)?;
                super::forum::rename_posts(conn, &renamed)?;
                queries::store(conn, &rows, &[], None)?;
                Ok(())
            })
            .await
    }

    /// Node outages that overlap `from_ms..to_ms`, oldest first.
    pub async fn outages(&self, from_ms: i64, to_ms: i64) -> Result<Vec<PastOutage>, OutboxError> {
        self.reader
            .read(move |conn| {
                let mut statement = conn.prepare(
                    "SELECT panel, node_id, name, started_at, ended_at FROM node_outages
                     WHERE started_at < ?2 AND (ended_at IS NULL OR ended_at > ?1) ORDER BY started_at",
                )?;
                let rows = statement.query_map(params![from_ms, to_ms], |r| {
                    Ok(PastOutage {
                        panel: Some(r.get::<_, String>(0)?).filter(|p| !p.is_empty()),
                        node_id: r.get(1)?,
                        name: r.get(2)?,
                        started_ms: r.get(3)?,
                        ended_ms: r.get(4)?,
                    })
                })?;
                rows.collect()
            })
            .await
    }
}

fn record_outages(conn: &Connection, panel: &str, outages: &[OutageRecord], now: i64) -> rusqlite::Result<()> {
    for outage in outages {
        conn.execute(
            "INSERT INTO node_outages (panel, node_id, name, started_at, ended_at) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (panel, node_id, started_at) DO UPDATE SET name = excluded.name, ended_at = excluded.ended_at",
            params![panel, outage.node_id, outage.name, outage.started_ms, outage.ended_ms],
        )?;
        conn.execute(
            "DELETE FROM node_outages WHERE panel = ?1 AND node_id = ?2 AND ended_at IS NOT NULL AND started_at <=
                 (SELECT started_at FROM node_outages WHERE panel = ?1 AND node_id = ?2
                  ORDER BY started_at DESC LIMIT 1 OFFSET ?3)",
            params![panel, outage.node_id, OUTAGES_PER_NODE],
        )?;
    }
    if !outages.is_empty() {
        conn.execute(
            "DELETE FROM node_outages WHERE ended_at IS NOT NULL AND ended_at < ?1",
            [now.saturating_sub(OUTAGES_KEEP_MS)],
        )?;
        conn.execute(
            "DELETE FROM node_outages WHERE ended_at IS NOT NULL AND (panel, node_id, started_at) IN
                 (SELECT panel, node_id, started_at FROM node_outages WHERE ended_at IS NOT NULL
                  ORDER BY ended_at, started_at LIMIT max(0, (SELECT COUNT(*) FROM node_outages) - ?1))",
            [OUTAGES_MAX],
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn outages_are_bounded_in_all_however_many_node_ids_a_panel_goes_through() {
        // A panel that gives its nodes new ids all the time (500 outages each at most) must not
        // grow the history, nor what a report reads, without bound.
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path()).unwrap();
        let now = now_ms();
        let outage = |i: i64| OutageRecord {
            node_id: i,
            name: format!("n{i}"),
            started_ms: now - 1000 + i,
            ended_ms: Some(now),
        };
        let many: Vec<OutageRecord> = (0..OUTAGES_MAX + 10).map(outage).collect();
        outbox.store_watch(Some("eu".into()), "{}".into(), Vec::new(), many, Vec::new()).await.unwrap();
        let open = OutageRecord { ended_ms: None, ..outage(-1) };
        outbox.store_watch(Some("eu".into()), "{}".into(), Vec::new(), vec![open], Vec::new()).await.unwrap();
        let kept = outbox.outages(0, i64::MAX).await.unwrap();
        assert!(kept.len() as i64 <= OUTAGES_MAX, "{} kept", kept.len());
        assert!(kept.iter().any(|o| o.node_id == -1 && o.ended_ms.is_none()), "an open outage is kept");
        assert!(kept.iter().any(|o| o.node_id == OUTAGES_MAX + 9), "the newest ended ones are kept");
    }
}
