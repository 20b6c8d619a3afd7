//! The outbox's tests: storage, order, upgrades, and what a full or failing store does.

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

use super::schema::{SCHEMA_V1, SCHEMA_V2};
use super::*;
use crate::destination::Mentions;

fn row(destination: &str, username: &str, fingerprint: Option<&str>) -> NewRow {
    NewRow {
        destination: destination.into(),
        received_at_ms: now_ms(),
        action: "user_created".into(),
        username: username.into(),
        panel: None,
        part: "{}".into(),
        may_be_resend: fingerprint.is_some(),
        fingerprint: fingerprint.map(str::to_owned),
        mentions: Mentions::default(),
    }
}

#[test]
fn a_folder_it_may_not_write_to_says_which_owner_it_needs() {
    let cannot_open = |code| {
        let err = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None);
        super::schema::cannot_open(Path::new("/data/outbox.sqlite3"), &err).to_string()
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
    assert_eq!(due.iter().map(|r| r.meta.username.as_str()).collect::<Vec<_>>(), ["1", "2", "3"]);
    outbox.mark_delivered(vec![due[0].meta.id]).await.unwrap();
    outbox.record_attempt(vec![due[1].meta.id], "HTTP 502".into()).await.unwrap();
    outbox.mark_dead(vec![due[2].meta.id], "HTTP 400".into()).await.unwrap();
    let due = outbox.due("a", 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!((due[0].meta.username.as_str(), due[0].attempts), ("2", 1));
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
    outbox.mark_delivered(vec![due[0].meta.id, due[1].meta.id]).await.unwrap();
    outbox.mark_dead(vec![due[2].meta.id], "HTTP 400: bad".into()).await.unwrap();

    let stats = outbox.stats().await.unwrap();
    assert_eq!(stats.len(), 2);
    assert_eq!((stats[0].pending, stats[0].delivered, stats[0].dead), (1, 2, 1));
    assert_eq!(stats[0].oldest_pending_ms, Some(due[3].meta.received_at_ms));
    assert_eq!((stats[1].destination.as_str(), stats[1].pending), ("b", 1));

    let dead = outbox.dead(10).await.unwrap();
    assert_eq!((dead[0].id, dead[0].reason.as_deref()), (due[2].meta.id, Some("HTTP 400: bad")));
    assert_eq!(outbox.retry(Retry::One(due[2].meta.id)).await.unwrap(), 1);
    assert_eq!(outbox.retry(Retry::All).await.unwrap(), 0);
    assert_eq!(outbox.due("a", 10).await.unwrap().len(), 2);

    assert_eq!(outbox.purge_delivered(now_ms() + 1).await.unwrap(), 2);
    outbox.mark_dead(vec![due[2].meta.id], "again".into()).await.unwrap();
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
    assert_eq!(due[0].meta.mentions.roles.iter().copied().collect::<Vec<_>>(), [123456789012345678]);
    assert!(outbox.pending_meta("b", 10).await.unwrap()[0].mentions.is_empty());
    assert_eq!(outbox.stored_destinations().await.unwrap(), [destination]);
    outbox.mark_delivered(vec![due[0].meta.id]).await.unwrap();
    assert!(outbox.stored_destinations().await.unwrap().is_empty(), "nothing pending for it any more");
}

fn remembered(dir: &Path) -> Vec<String> {
    let conn = Connection::open(dir.join(FILE_NAME)).unwrap();
    let mut stmt = conn.prepare("SELECT name FROM destinations ORDER BY name").unwrap();
    let names = stmt.query_map([], |r| r.get(0)).unwrap();
    names.collect::<Result<_, _>>().unwrap()
}

fn owner(name: &str) -> StoredDestination {
    StoredDestination { name: name.into(), url: format!("https://discord.com/api/webhooks/1/{name}"), thread_id: None }
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
        async move { outbox.due(&name, 1).await.unwrap()[0].meta.id }
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
    assert_eq!(due.iter().map(|r| r.meta.username.as_str()).collect::<Vec<_>>(), ["u1", "u2"]);
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
    assert_eq!((due[0].meta.username.as_str(), due[0].meta.mentions.is_empty()), ("old", true));
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
    let ids: Vec<i64> = outbox.due("a", 1000).await.unwrap().iter().map(|r| r.meta.id).collect();
    outbox.mark_delivered(ids).await.unwrap();
    outbox.enqueue(vec![big("after")], None).await.expect("delivered rows made room");
    assert_eq!(outbox.stats().await.unwrap()[0].delivered, 0);
}

#[tokio::test]
async fn a_failing_job_does_not_undo_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(dir.path()).unwrap();
    let bad = outbox.writer.call(|conn| conn.execute_batch("INSERT INTO no_such_table VALUES (1)"));
    let good = outbox.enqueue(vec![row("a", "1", None)], None);
    let (bad, good) = tokio::join!(bad, good);
    assert!(bad.is_err());
    assert_eq!(good.unwrap().stored, 1);
    assert_eq!(outbox.due("a", 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn an_outbox_of_schema_5_keeps_the_reports_names_when_they_move_to_slots() {
    use super::schema::{SCHEMA_REPORTS, SCHEMA_V3, SCHEMA_V4};
    let dir = tempfile::tempdir().unwrap();
    let slot = 1_773_057_600 / SLOT_SECONDS; // 2026-03-09T12:00:00Z
    {
        let conn = Connection::open(dir.path().join(FILE_NAME)).unwrap();
        conn.execute_batch(&format!(
            "{SCHEMA_V1} {SCHEMA_V2} {SCHEMA_V3} {SCHEMA_V4} {SCHEMA_REPORTS} PRAGMA user_version = 5;"
        ))
        .unwrap();
        conn.execute(
            "INSERT INTO tally_names (day, panel, action, username, slot) VALUES (?1, '', 'user_expired', 'kept', ?2)",
            rusqlite::params![slot * SLOT_SECONDS / 86_400, slot],
        )
        .unwrap();
        conn.execute("INSERT INTO tally (slot, panel, action, events) VALUES (?1, '', 'user_expired', 1)", [slot])
            .unwrap();
    }
    let outbox = Outbox::open(dir.path()).unwrap();
    let tally = outbox.period_tally(slot * SLOT_SECONDS, (slot + 1) * SLOT_SECONDS).await.unwrap();
    assert_eq!(tally.names[&(String::new(), "user_expired".to_owned())], ["kept"]);
    assert_eq!(outbox.prune_tally((slot + 1) * SLOT_SECONDS * 1000).await.unwrap(), 2, "pruned by slot");
}

#[tokio::test]
async fn an_outbox_at_its_cap_only_because_of_delivered_rows_is_not_full() {
    // Arrange: the cap is reached with rows of 20 KB, and all of them are delivered.
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open_capped(dir.path(), Some(256 * 1024)).unwrap();
    let big = |name: &str| NewRow { part: "x".repeat(20_000), ..row("a", name, None) };
    let mut stored = 0;
    while outbox.enqueue(vec![big(&stored.to_string())], None).await.is_ok() {
        stored += 1;
        assert!(stored < 100, "the cap holds");
    }
    assert!(outbox.is_full().await.unwrap(), "full of pending rows: the next events would be refused");

    // Act: Discord has every row, and nothing new comes in to make room.
    let ids: Vec<i64> = outbox.due("a", 1000).await.unwrap().iter().map(|r| r.meta.id).collect();
    outbox.mark_delivered(ids).await.unwrap();

    // Assert: the next events would be taken (their room is made from delivered rows), so the
    // outbox is not full, though the delivered rows are still there.
    assert!(!outbox.is_full().await.unwrap(), "delivered rows are room the next batch takes");
    assert_eq!(outbox.stats().await.unwrap()[0].delivered, stored);
}

#[tokio::test]
async fn a_row_counts_whole_against_the_cap_and_planning_reads_names_cut() {
    let dir = tempfile::tempdir().unwrap();
    let max_bytes = 1 << 20;
    let outbox = Outbox::open_capped(dir.path(), Some(max_bytes)).unwrap();
    // Rows as an older relay stored them, before ingest cut names: a 200 KB username each.
    let huge = "ж".repeat(100_000);
    let mut stored = 0;
    while stored < 20 {
        match outbox.enqueue(vec![row("a", &huge, None)], None).await {
            Ok(_) => stored += 1,
            Err(OutboxError::Full) => break,
            Err(err) => panic!("{err}"),
        }
    }
    let used = outbox.reader.read(queries::used_bytes).await.unwrap();
    assert!(stored < 5, "{stored} rows of 200 KB fit in 1 MiB");
    // Page rounding of the overflow pages: a few KiB at most, never one more row.
    assert!(used <= max_bytes + (16 << 10), "{used} bytes used of {max_bytes}");

    let cut = crate::event::cut_name(huge.clone());
    let planned = outbox.pending_meta("a", 2000).await.unwrap();
    assert!(planned.iter().all(|meta| meta.username == cut), "read as ingest cuts it");
    let due = outbox.due("a", 10).await.unwrap();
    assert_eq!(due[0].meta.username, cut);
    outbox.mark_dead(vec![due[0].meta.id], "HTTP 400".into()).await.unwrap();
    assert_eq!(outbox.dead(10).await.unwrap()[0].username, cut);
    assert_eq!(crate::event::cut_name("ж".repeat(65)), format!("{}…", "ж".repeat(63)), "the same cut in characters");
}

#[tokio::test]
async fn the_readiness_probe_commits_a_write_to_the_file_and_fails_when_that_fails() {
    // Arrange: another process's connection, and a write-ahead log with nothing in it.
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(dir.path()).unwrap();
    let other = Connection::open(dir.path().join(FILE_NAME)).unwrap();
    other.busy_timeout(Duration::from_secs(30)).unwrap();
    let frames = || other.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(1)).unwrap();
    other.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
    assert_eq!(frames(), 0);

    // Act, Assert: the probe's write went to the file (through its write-ahead log).
    outbox.probe().await.unwrap();
    assert!(frames() > 0, "the probe committed a page of the file");

    // The file cannot be written (another process holds its write lock): the probe fails, saying why.
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let err = outbox.probe().await.unwrap_err();
    assert!(err.to_string().contains("database is locked"), "{err}");
    other.execute_batch("ROLLBACK").unwrap();
    outbox.probe().await.unwrap();
}

#[tokio::test]
async fn a_report_stored_before_reports_had_their_own_action_is_still_a_report() {
    use super::schema::{MIGRATIONS, SCHEMA_REPORT_ACTION};
    let dir = tempfile::tempdir().unwrap();
    {
        let conn = Connection::open(dir.path().join(FILE_NAME)).unwrap();
        // The schema just before that upgrade (later ones follow it).
        let before = MIGRATIONS.iter().position(|sql| *sql == SCHEMA_REPORT_ACTION).unwrap();
        conn.execute_batch(&format!("{} PRAGMA user_version = {before};", MIGRATIONS[..before].join(" "))).unwrap();
        let insert = "INSERT INTO messages (destination, received_at, action, username, panel, part, fingerprint) \
                      VALUES ('default', 1, 'report', ?1, 'eu', '{}', ?2)";
        conn.execute(insert, rusqlite::params!["daily report", None::<String>]).unwrap();
        conn.execute(insert, rusqlite::params!["weekly report", None::<String>]).unwrap();
        // A panel's event named `report` (a fingerprint, or another name) stays the panel's.
        conn.execute(insert, rusqlite::params!["daily report", Some("fp")]).unwrap();
        conn.execute(insert, rusqlite::params!["ali", None::<String>]).unwrap();
    }
    let outbox = Outbox::open(dir.path()).unwrap();
    let due = outbox.due("default", 10).await.unwrap();
    let actions: Vec<&str> = due.iter().map(|row| row.meta.action.as_str()).collect();
    assert_eq!(actions, [":report", ":report", "report", "report"]);
    assert_eq!(crate::render::REPORT_ACTION, ":report", "the upgrade spells the action out");
}

#[tokio::test]
async fn a_report_record_from_before_the_highest_end_was_kept_is_its_own_highest() {
    use super::schema::{MIGRATIONS, SCHEMA_REPORT_HIGHEST_END};
    let dir = tempfile::tempdir().unwrap();
    {
        let conn = Connection::open(dir.path().join(FILE_NAME)).unwrap();
        let before = MIGRATIONS.iter().position(|step| *step == SCHEMA_REPORT_HIGHEST_END).unwrap();
        conn.execute_batch(&format!("{} PRAGMA user_version = {before};", MIGRATIONS[..before].join(" "))).unwrap();
        conn.execute("INSERT INTO reports_sent (destination, report, period_end) VALUES ('default', 'daily', 900)", [])
            .unwrap();
    }
    let outbox = Outbox::open(dir.path()).unwrap();
    let record = outbox.report_sent("default", "daily").await.unwrap().unwrap();
    assert_eq!((record.end, record.highest), (900, 900));
    // Setting the record back leaves the highest end; a later report raises both.
    outbox.reset_report_sent("default".into(), "daily".into(), 0).await.unwrap();
    let record = outbox.report_sent("default", "daily").await.unwrap().unwrap();
    assert_eq!((record.end, record.highest), (0, 900));
    assert!(outbox.store_report("default".into(), "daily".into(), 1800, Vec::new()).await.unwrap());
    let record = outbox.report_sent("default", "daily").await.unwrap().unwrap();
    assert_eq!((record.end, record.highest), (1800, 1800));
}
