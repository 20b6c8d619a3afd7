//! The producer driven step by step with a clock the test sets: exactly once per period and
//! destination (across a restart), catch-up after downtime, a DST change, and an empty period.

use std::sync::Arc;

use jiff::Timestamp;

use super::*;
use crate::destination::{Destination, Target, DEFAULT_DESTINATION};
use crate::outbox::{Outbox, Tallied};
use crate::render::{Lang, Part, Templates};

pub(super) fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

pub(super) fn producer(dir: &std::path::Path, reports: &str, tz: &str) -> (Producer, Outbox) {
    let outbox = Outbox::open(dir).unwrap();
    let templates = Arc::new(Templates::load(dir.join("no-templates"), Lang::En).0);
    let settings = ReportSettings {
        schedules: parse_reports(reports).unwrap(),
        time_zone: parse_time_zone(tz).unwrap(),
        // Stepped to the second: a report is due at its period's end.
        settle: std::time::Duration::ZERO,
        ..ReportSettings::default()
    };
    let recipient = Recipient {
        destination: Arc::new(Destination::new(DEFAULT_DESTINATION, Target::DryRun)),
        reports: settings.schedules.iter().map(|s| s.kind).collect(),
    };
    (Producer::new(outbox.clone(), templates, settings, vec![recipient], None), outbox)
}

/// The report parts stored for `default`, oldest first.
pub(super) async fn stored(outbox: &Outbox) -> Vec<Part> {
    let rows = outbox.due(DEFAULT_DESTINATION, 1000).await.unwrap();
    rows.iter().map(|row| serde_json::from_str(&row.part).unwrap()).collect()
}

fn description(part: &Part) -> String {
    part.embed.description.clone().unwrap_or_default()
}

fn event(action: &str, username: &str, at: Timestamp) -> Tallied {
    Tallied {
        action: action.into(),
        panel: None,
        username: username.into(),
        received_at_ms: at.as_millisecond(),
        fingerprint: None,
        may_be_resend: false,
    }
}

#[tokio::test]
async fn a_period_is_stored_once_even_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (reports, outbox) = producer(dir.path(), "daily@09:00", "UTC");
    // The first look only records where reports start: the relay has no tally of that day.
    assert_eq!(reports.run_due(at("2026-03-10T08:00:00Z")).await.unwrap(), 0);
    outbox
        .enqueue_counted(Vec::new(), Vec::new(), vec![event("user_created", "alice", at("2026-03-10T08:30:00Z"))], None)
        .await
        .unwrap();
    assert_eq!(reports.next_due(at("2026-03-10T08:00:00Z")), Some(at("2026-03-10T09:00:00Z")));
    assert_eq!(reports.run_due(at("2026-03-10T08:59:59Z")).await.unwrap(), 0, "not due yet");
    assert_eq!(reports.run_due(at("2026-03-10T09:00:00Z")).await.unwrap(), 1);
    assert_eq!(reports.run_due(at("2026-03-10T09:00:30Z")).await.unwrap(), 0, "stored already");
    drop((reports, outbox));

    let (reports, outbox) = producer(dir.path(), "daily@09:00", "UTC");
    assert_eq!(reports.run_due(at("2026-03-10T10:00:00Z")).await.unwrap(), 0, "stored before the restart");
    let parts = stored(&outbox).await;
    assert_eq!(parts.len(), 1);
    assert!(description(&parts[0]).contains(&format!("<t:{}:f>", at("2026-03-10T09:00:00Z").as_second())));
    let users = parts[0].embed.fields.iter().find(|f| f.name == "Users").unwrap();
    assert!(users.value.contains("Created: 1"), "{}", users.value);
}

#[tokio::test]
async fn after_downtime_one_report_covers_everything_since_the_last_one() {
    let dir = tempfile::tempdir().unwrap();
    let (reports, outbox) = producer(dir.path(), "daily@09:00,weekly@mon 09:00", "UTC");
    reports.run_due(at("2026-03-02T10:00:00Z")).await.unwrap();
    // Down from the 2nd to Thursday the 12th: nine daily reports and a weekly one were missed.
    assert_eq!(reports.run_due(at("2026-03-12T12:00:00Z")).await.unwrap(), 2, "one daily and one weekly");
    assert_eq!(reports.run_due(at("2026-03-12T12:00:01Z")).await.unwrap(), 0);
    let parts = stored(&outbox).await;
    let periods: Vec<String> = parts.iter().map(description).collect();
    let (from, daily_end) = (at("2026-03-02T09:00:00Z").as_second(), at("2026-03-12T09:00:00Z").as_second());
    assert!(periods[0].starts_with(&format!("<t:{from}:f> → <t:{daily_end}:f>")), "{periods:?}");
    let weekly_end = at("2026-03-09T09:00:00Z").as_second();
    assert!(periods[1].starts_with(&format!("<t:{from}:f> → <t:{weekly_end}:f>")), "{periods:?}");
    assert!(parts[1].embed.title.as_deref().unwrap_or_default().contains("Weekly report"));
    // The daily report covers ten days, and says so; the weekly one is a week, as scheduled.
    assert!(periods[0].contains(&format!("⏳ Covers 10 days: no report since <t:{from}:D>")), "{}", periods[0]);
    assert!(!periods[1].contains('⏳'), "{}", periods[1]);
    assert_eq!(reports.run_due(at("2026-03-13T09:00:00Z")).await.unwrap(), 1);
    assert!(!description(&stored(&outbox).await[2]).contains('⏳'), "the next day's is a day");
}

#[tokio::test]
async fn after_downtime_longer_than_the_tally_is_kept_a_report_starts_where_it_begins() {
    let dir = tempfile::tempdir().unwrap();
    let (reports, outbox) = producer(dir.path(), "daily@09:00", "UTC");
    reports.run_due(at("2026-01-02T10:00:00Z")).await.unwrap();
    assert_eq!(reports.run_due(at("2026-03-12T12:00:00Z")).await.unwrap(), 1);
    let end = at("2026-03-12T09:00:00Z").as_second();
    let from = end - super::KEEP_DAYS * 86_400;
    let period = description(&stored(&outbox).await[0]);
    assert!(period.starts_with(&format!("<t:{from}:f> → <t:{end}:f>")), "{period}");
    // It counts the 35 days kept, and says when the last report was: further back.
    let last = at("2026-01-02T09:00:00Z").as_second();
    assert!(period.contains(&format!("Covers 35 days: no report since <t:{last}:D>")), "{period}");
}

#[tokio::test]
async fn a_report_at_a_time_the_clocks_skip_runs_after_the_jump() {
    let dir = tempfile::tempdir().unwrap();
    let (reports, outbox) = producer(dir.path(), "daily@02:30", "Europe/Berlin");
    reports.run_due(at("2026-03-28T12:00:00Z")).await.unwrap();
    // 02:30 does not exist in Berlin on 2026-03-29: 02:00 CET is 03:00 CEST. It runs at 03:30 CEST.
    assert_eq!(reports.next_due(at("2026-03-28T12:00:00Z")), Some(at("2026-03-29T01:30:00Z")));
    assert_eq!(reports.run_due(at("2026-03-29T01:29:59Z")).await.unwrap(), 0);
    assert_eq!(reports.run_due(at("2026-03-29T01:30:00Z")).await.unwrap(), 1);
    let period = description(&stored(&outbox).await[0]);
    // From 02:30 CET on the 28th (01:30 UTC): 23 hours.
    let (from, to) = (at("2026-03-28T01:30:00Z").as_second(), at("2026-03-29T01:30:00Z").as_second());
    assert!(period.starts_with(&format!("<t:{from}:f> → <t:{to}:f>")), "{period}");
}

#[tokio::test]
async fn an_empty_period_is_one_embed_of_zeros_with_the_relays_health() {
    let dir = tempfile::tempdir().unwrap();
    let (reports, outbox) = producer(dir.path(), "daily@09:00", "UTC");
    reports.run_due(at("2026-03-10T08:00:00Z")).await.unwrap();
    reports.run_due(at("2026-03-11T09:00:00Z")).await.unwrap();
    let parts = stored(&outbox).await;
    assert_eq!(parts.len(), 1);
    let embed = &parts[0].embed;
    assert!(description(&parts[0]).contains("**0** events received: a quiet period"), "{embed:?}");
    let names: Vec<&str> = embed.fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["Users", "Status", "Traffic", "Warnings", "Relay"], "no empty user lists");
}

#[tokio::test]
async fn the_tally_counts_per_panel_lists_names_once_and_skips_resends() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(dir.path()).unwrap();
    let t = at("2026-03-10T08:00:00Z");
    let mut events = vec![
        event("user_created", "a", t),
        event("user_created", "b", t),
        event("user_deleted", "a", t),
        event("user_expired", "b", t),
        event("user_expired", "b", t),
        event("user_hwid_added", "c", t),
    ];
    events[1].panel = Some("eu-1".into());
    outbox.enqueue_counted(Vec::new(), Vec::new(), events, None).await.unwrap();
    let period = Period { start: at("2026-03-10T00:00:00Z"), end: at("2026-03-11T00:00:00Z") };
    let report = Report::read(&outbox, "daily", period).await.unwrap();
    assert_eq!(report.parts.len(), 2, "events without a panel, and eu-1");
    let (none, eu) = (&report.parts[0], &report.parts[1]);
    assert_eq!((none.panel.as_deref(), none.total, none.net), (None, 5, 0));
    assert_eq!((none.counts["other"], none.counts["user_expired"]), (1, 2));
    assert_eq!(none.expired.names, ["b"]);
    assert_eq!(none.expired.more, 0, "two expiries of one user: named, and no one more");
    assert_eq!((eu.panel.as_deref(), eu.total, eu.net), (Some("eu-1"), 1, 1));
    assert!(none.health.is_some() && eu.health.is_none(), "health once, on the first part");

    // The panel sending an event again (same fingerprint, within the window) counts once.
    let window = Some(std::time::Duration::from_secs(900));
    let resent = |first: bool| {
        let row = crate::outbox::NewRow {
            destination: "default".into(),
            received_at_ms: t.as_millisecond(),
            action: "user_created".into(),
            username: "d".into(),
            panel: None,
            part: "{}".into(),
            fingerprint: Some("f".into()),
            may_be_resend: !first,
            mentions: crate::destination::Mentions::default(),
        };
        let tally = Tallied { fingerprint: Some("f".into()), may_be_resend: !first, ..event("user_created", "d", t) };
        (vec![row], vec![tally])
    };
    for first in [true, false] {
        let (rows, tally) = resent(first);
        outbox.enqueue_counted(rows, Vec::new(), tally, window).await.unwrap();
    }
    let report = Report::read(&outbox, "daily", period).await.unwrap();
    assert_eq!(report.parts[0].counts["user_created"], 2, "a, and d once");
}

#[test]
fn the_routes_file_chooses_who_gets_which_report() {
    let dir = tempfile::tempdir().unwrap();
    let routes = dir.path().join("routes.toml");
    let write = |reports: &str| {
        std::fs::write(
            &routes,
            format!(
                "[destinations.audit]\nurl = \"https://discord.com/api/webhooks/1/t\"\n{reports}\n\
                 [destinations.alerts]\nurl = \"https://discord.com/api/webhooks/2/t\"\n\
                 [[rules]]\nto = [\"audit\", \"alerts\"]\n"
            ),
        )
        .unwrap();
    };
    let vars = |reports: &str| -> std::collections::HashMap<String, String> {
        [
            ("WEBHOOK_SECRET", "s"),
            ("DISCORD_WEBHOOK_URL", "https://discord.com/api/webhooks/3/t"),
            ("ROUTES_FILE", routes.to_str().unwrap()),
            ("REPORTS", reports),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    };
    let chosen = |config: &crate::config::Config| -> Vec<(String, Vec<ReportKind>)> {
        recipients(&crate::startup::router(config), config.routes.as_ref(), &config.reports)
            .into_iter()
            .map(|r| (r.destination.name.clone(), r.reports))
            .collect()
    };

    write("");
    let config = crate::config::Config::from_vars(&vars("daily@09:00,weekly@mon 09:00")).unwrap();
    assert_eq!(chosen(&config), [("default".to_owned(), vec![ReportKind::Daily, ReportKind::Weekly])]);

    write("reports = [\"weekly\"]");
    let config = crate::config::Config::from_vars(&vars("daily@09:00,weekly@mon 09:00")).unwrap();
    assert_eq!(chosen(&config), [("audit".to_owned(), vec![ReportKind::Weekly])], "default no longer");

    let refused = crate::config::Config::from_vars(&vars("daily@09:00")).unwrap_err().to_string();
    assert!(refused.starts_with("REPORTS has no weekly report"), "{refused}");

    write("reports = [\"monthly\"]");
    let refused = crate::config::Config::from_vars(&vars("daily@09:00")).unwrap_err().to_string();
    assert!(refused.contains("destinations.audit.reports: \"monthly\" is not a report"), "{refused}");
}
