//! Reports under unlucky conditions, with real panel payloads (tests/fixtures): lists across the
//! UTC day, usernames longer than any panel allows, a schedule moved between runs, and more.

use std::sync::Arc;

use jiff::Timestamp;

use super::tests::{at, producer, stored};
use super::*;
use crate::event::parse_batch;
use crate::outbox::{Outbox, Tallied};
use crate::render::{Lang, Part, Templates};

const EXPIRED: &str = include_str!("../../tests/fixtures/marzban-0.8.4/user_expired.json");

/// The captured Marzban `user_expired` event for `username`, tallied as received at `when`.
fn expired(username: &str, when: Timestamp, panel: Option<&str>) -> Tallied {
    let mut body: serde_json::Value = serde_json::from_str(EXPIRED).unwrap();
    body[0]["username"] = username.into();
    body[0]["user"]["username"] = username.into();
    let received = time::OffsetDateTime::from_unix_timestamp(when.as_second()).unwrap();
    let batch = parse_batch(body.to_string().as_bytes(), received, panel).unwrap();
    let event = &batch.events[0];
    Tallied {
        action: event.action.to_string(),
        panel: event.panel.clone(),
        username: event.username.clone(),
        received_at_ms: when.as_millisecond(),
        fingerprint: event.fingerprint.clone(),
        may_be_resend: event.may_be_resend,
    }
}

async fn tally(outbox: &Outbox, events: Vec<Tallied>) {
    outbox.enqueue_counted(Vec::new(), Vec::new(), events, None).await.unwrap();
}

/// The period (from, to) a stored report part says it covers.
fn covered(part: &Part) -> (i64, i64) {
    let description = part.embed.description.clone().unwrap_or_default();
    let numbers: Vec<i64> =
        description.split("<t:").skip(1).filter_map(|rest| rest.split(':').next()?.parse().ok()).collect();
    (numbers[0], numbers[1])
}

#[tokio::test]
async fn a_report_names_expired_users_when_the_utc_day_filled_its_names_before_the_period() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(dir.path()).unwrap();
    // 60 users expire at 08:00 UTC (before a 09:00 report's period), 30 more at noon (in it).
    let morning: Vec<Tallied> =
        (0..60).map(|i| expired(&format!("early_{i:02}"), at("2026-03-09T08:00:00Z"), None)).collect();
    let noon: Vec<Tallied> =
        (0..30).map(|i| expired(&format!("noon_{i:02}"), at("2026-03-09T12:00:00Z"), None)).collect();
    tally(&outbox, morning).await;
    tally(&outbox, noon).await;
    let period = Period { start: at("2026-03-09T09:00:00Z"), end: at("2026-03-10T09:00:00Z") };
    let report = Report::read(&outbox, "daily", period).await.unwrap();
    let list = &report.parts[0].expired;
    assert_eq!(list.total, 30);
    assert_eq!(list.names.len(), NAMES_SHOWN, "{list:?}");
    assert!(list.names.iter().all(|name| name.starts_with("noon_")), "{list:?}");
    assert_eq!(list.more, 30 - NAMES_SHOWN as i64);
}

#[tokio::test]
async fn a_username_longer_than_any_panel_allows_is_shortened_not_the_reason_the_list_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(dir.path()).unwrap();
    let when = at("2026-03-09T12:00:00Z");
    tally(&outbox, vec![expired(&"ü".repeat(5000), when, None), expired("bob", when, None)]).await;
    let period = Period { start: at("2026-03-09T09:00:00Z"), end: at("2026-03-10T09:00:00Z") };
    let report = Report::read(&outbox, "daily", period).await.unwrap();
    let list = &report.parts[0].expired;
    assert_eq!(list.names.len(), 2, "{list:?}");
    assert!(list.names.contains(&"bob".to_owned()));
    assert!(list.names.iter().all(|name| name.chars().count() <= crate::outbox::NAME_KEPT_CHARS), "{list:?}");
    let renderer = Templates::load(dir.path().join("none"), Lang::En).0.current();
    let part = renderer.render_report(&report.parts[0]);
    let field = part.embed.fields.iter().find(|f| f.name.contains("Expired")).expect("the list is shown");
    assert!(field.value.contains("bob") && field.value.contains("üü…"), "{}", field.value);
}

#[tokio::test]
async fn moving_the_daily_time_later_does_not_report_the_same_hours_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (reports, outbox) = producer(dir.path(), "daily@08:00", "UTC");
    reports.run_due(at("2026-03-09T07:00:00Z")).await.unwrap();
    tally(&outbox, vec![expired("before_eight", at("2026-03-10T07:00:00Z"), None)]).await;
    assert_eq!(reports.run_due(at("2026-03-10T08:00:00Z")).await.unwrap(), 1);
    drop(reports);
    // The operator moves the report to 09:00 (or changes REPORTS_TZ) and restarts.
    let (reports, outbox) = producer(dir.path(), "daily@09:00", "UTC");
    tally(&outbox, vec![expired("after_eight", at("2026-03-10T08:30:00Z"), None)]).await;
    reports.run_due(at("2026-03-10T09:00:00Z")).await.unwrap();
    reports.run_due(at("2026-03-11T09:00:00Z")).await.unwrap();
    let periods: Vec<(i64, i64)> = stored(&outbox).await.iter().map(covered).collect();
    for pair in periods.windows(2) {
        assert!(pair[1].0 >= pair[0].1, "hours reported twice: {periods:?}");
    }
    assert_eq!(periods.last().unwrap().1, at("2026-03-11T09:00:00Z").as_second());
    assert_eq!(periods.first().unwrap().1, at("2026-03-10T08:00:00Z").as_second());
}

#[tokio::test]
async fn moving_the_daily_time_earlier_reports_each_hour_once() {
    let dir = tempfile::tempdir().unwrap();
    let (reports, _) = producer(dir.path(), "daily@09:00", "UTC");
    reports.run_due(at("2026-03-09T10:00:00Z")).await.unwrap();
    assert_eq!(reports.run_due(at("2026-03-10T09:00:00Z")).await.unwrap(), 1);
    drop(reports);
    let (reports, outbox) = producer(dir.path(), "daily@08:00", "UTC");
    assert_eq!(reports.run_due(at("2026-03-11T08:00:00Z")).await.unwrap(), 1);
    let periods: Vec<(i64, i64)> = stored(&outbox).await.iter().map(covered).collect();
    assert_eq!(periods[1].0, periods[0].1, "the next report starts where the last ended: {periods:?}");
}

#[tokio::test]
async fn a_report_due_when_the_outbox_is_full_of_delivered_rows_makes_room_like_an_event_does() {
    let dir = tempfile::tempdir().unwrap();
    let max_bytes = 256 * 1024;
    let outbox = Outbox::open_capped(dir.path(), Some(max_bytes)).unwrap();
    let row = |i: usize, size: usize| crate::outbox::NewRow {
        destination: crate::destination::DEFAULT_DESTINATION.into(),
        received_at_ms: at("2026-03-10T07:00:00Z").as_millisecond(),
        action: "user_created".into(),
        username: format!("user_{i}"),
        panel: None,
        part: format!("{{\"filler\":\"{}\"}}", "x".repeat(size)),
        fingerprint: None,
        may_be_resend: false,
        mentions: crate::destination::Mentions::default(),
    };
    // Fill the outbox with rows Discord already has, as a quiet week of retention does.
    for size in [4000, 100] {
        for i in 0.. {
            if outbox.enqueue(vec![row(i, size)], None).await.is_err() {
                break;
            }
        }
    }
    let delivered: Vec<i64> = outbox.due("default", 1000).await.unwrap().iter().map(|r| r.meta.id).collect();
    outbox.mark_delivered(delivered).await.unwrap();

    let templates = Arc::new(Templates::load(dir.path().join("none"), Lang::En).0);
    let settings = ReportSettings { schedules: parse_reports("daily@09:00").unwrap(), ..ReportSettings::default() };
    let recipient = Recipient {
        destination: Arc::new(crate::destination::Destination::new("default", crate::destination::Target::DryRun)),
        reports: vec![ReportKind::Daily],
    };
    let reports = Producer::new(outbox.clone(), templates, settings, vec![recipient], None);
    reports.run_due(at("2026-03-10T08:00:00Z")).await.unwrap();
    assert_eq!(reports.run_due(at("2026-03-10T09:05:00Z")).await.unwrap(), 1, "the report is stored");
    assert_eq!(stored(&outbox).await.len(), 1);
}

#[tokio::test]
async fn events_received_just_before_the_end_but_stored_after_it_are_in_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(dir.path()).unwrap();
    let templates = Arc::new(Templates::load(dir.path().join("none"), Lang::En).0);
    let settings = ReportSettings { schedules: parse_reports("daily@09:00").unwrap(), ..ReportSettings::default() };
    let recipient = Recipient {
        destination: Arc::new(crate::destination::Destination::new("default", crate::destination::Target::DryRun)),
        reports: vec![ReportKind::Daily],
    };
    let reports = Producer::new(outbox.clone(), templates, settings, vec![recipient], None);
    reports.run_due(at("2026-03-10T08:00:00Z")).await.unwrap();
    // A batch whose request began at 08:59:59 is still being read when the clock passes 09:00.
    let end = at("2026-03-10T09:00:00Z");
    assert_eq!(reports.run_due(at("2026-03-10T09:00:01Z")).await.unwrap(), 0, "a batch may still be in flight");
    tally(&outbox, vec![expired("late_batch", at("2026-03-10T08:59:59Z"), None)]).await;
    let due = reports.next_due(at("2026-03-10T09:00:01Z")).unwrap();
    assert!(due > end && due <= at("2026-03-10T09:05:00Z"), "{due}");
    assert_eq!(reports.run_due(due).await.unwrap(), 1);
    let parts = stored(&outbox).await;
    assert_eq!(covered(&parts[0]).1, end.as_second(), "the period still ends at 09:00");
    let status = parts[0].embed.fields.iter().find(|f| f.name == "Status").unwrap();
    assert!(status.value.contains("Expired: 1"), "{}", status.value);
}

#[tokio::test]
async fn a_clock_that_ran_a_year_ahead_does_not_silence_reports_until_that_year() {
    let dir = tempfile::tempdir().unwrap();
    let (reports, outbox) = producer(dir.path(), "daily@09:00", "UTC");
    // The host booted with its clock a year ahead, long enough for a report to be made...
    reports.run_due(at("2027-03-10T08:00:00Z")).await.unwrap();
    assert_eq!(reports.run_due(at("2027-03-10T09:00:00Z")).await.unwrap(), 1);
    // ...then NTP set it right. A clock that is behind for a moment (and is set right again soon)
    // makes no report: the record stands.
    assert_eq!(reports.run_due(at("2026-03-10T08:00:00Z")).await.unwrap(), 0);
    assert_eq!(reports.run_due(at("2026-03-10T08:30:00Z")).await.unwrap(), 0);
    // Still a year behind the record an hour later: the record came from the wrong clock.
    assert_eq!(reports.run_due(at("2026-03-10T09:30:00Z")).await.unwrap(), 0, "the period before is not reported");
    assert_eq!(reports.run_due(at("2026-03-11T09:00:00Z")).await.unwrap(), 1, "reports go on");
    let parts = stored(&outbox).await;
    let covers = covered(&parts[1]);
    assert_eq!(covers, (at("2026-03-10T09:00:00Z").as_second(), at("2026-03-11T09:00:00Z").as_second()));
}

#[tokio::test]
async fn a_clock_behind_for_a_moment_does_not_repeat_a_report() {
    let dir = tempfile::tempdir().unwrap();
    let (reports, outbox) = producer(dir.path(), "daily@09:00", "UTC");
    reports.run_due(at("2026-03-10T08:00:00Z")).await.unwrap();
    assert_eq!(reports.run_due(at("2026-03-11T09:00:00Z")).await.unwrap(), 1);
    // A restart on a host whose clock reads 1970 until NTP answers a few minutes later.
    assert_eq!(reports.run_due(at("1970-01-01T00:00:10Z")).await.unwrap(), 0);
    assert_eq!(reports.run_due(at("1970-01-01T00:05:00Z")).await.unwrap(), 0);
    assert_eq!(reports.run_due(at("2026-03-11T10:00:00Z")).await.unwrap(), 0, "reported already");
    assert_eq!(stored(&outbox).await.len(), 1);
}

#[tokio::test]
async fn a_clock_behind_for_hours_then_set_right_does_not_count_a_reported_day_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (reports, outbox) = producer(dir.path(), "daily@09:00", "UTC");
    reports.run_due(at("2026-03-10T08:00:00Z")).await.unwrap();
    tally(&outbox, vec![expired("once", at("2026-03-10T12:00:00Z"), None)]).await;
    assert_eq!(reports.run_due(at("2026-03-11T09:00:00Z")).await.unwrap(), 1, "the day with `once`");
    // A restart on a host whose clock reads a week behind for over an hour (NTP blocked): the
    // record looks like a clock that was ahead, and is set back to that week.
    assert_eq!(reports.run_due(at("2026-03-04T10:00:00Z")).await.unwrap(), 0);
    assert_eq!(reports.run_due(at("2026-03-04T11:30:00Z")).await.unwrap(), 0);
    // NTP answers: the next report is the day after the one reported.
    assert_eq!(reports.run_due(at("2026-03-12T09:00:00Z")).await.unwrap(), 1);
    let parts = stored(&outbox).await;
    let status = &parts[1].embed.fields.iter().find(|f| f.name == "Status").unwrap().value;
    assert!(!status.contains("Expired: 1"), "`once` was in the report before: {status} {:?}", covered(&parts[1]));
}

#[tokio::test]
async fn names_in_a_report_are_shown_as_typed_never_as_markdown_mentions_or_reordered_text() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(dir.path()).unwrap();
    let when = at("2026-03-09T12:00:00Z");
    let names =
        ["@everyone", "<@&123456789012345678>", "**bold**", "||spoiler||", "abc\u{202e}fed", "[x](https://e.x)"];
    tally(&outbox, names.iter().map(|name| expired(name, when, None)).collect()).await;
    let period = Period { start: at("2026-03-09T09:00:00Z"), end: at("2026-03-10T09:00:00Z") };
    let report = Report::read(&outbox, "daily", period).await.unwrap();
    for lang in [Lang::En, Lang::Ru, Lang::Fa, Lang::Zh] {
        let renderer = Templates::load(dir.path().join("none"), lang).0.current();
        let part = renderer.render_report(&report.parts[0]);
        let list = &part.embed.fields.iter().find(|f| f.name.contains('⌛') && !f.inline).unwrap().value;
        for escaped in [r"\@everyone", r"\<\@&", r"\*\*bold\*\*", r"\|\|spoiler\|\|", r"\[x\](", "abcfed"] {
            assert!(list.contains(escaped), "{lang:?}: no {escaped:?} in {list:?}");
        }
    }
}

#[test]
fn lord_howes_half_hour_dst_and_a_weekly_time_the_clocks_skip() {
    let lord_howe = parse_time_zone("Australia/Lord_Howe").unwrap();
    let daily = |time: &str| parse_reports(&format!("daily@{time}")).unwrap()[0];
    // 2026-10-04: 02:00 (+10:30) becomes 02:30 (+11:00); 02:15 does not exist, runs at 02:45.
    let skipped = daily("02:15").last_period(at("2026-10-04T00:00:00Z"), &lord_howe).unwrap();
    assert_eq!(skipped, Period { start: at("2026-10-02T15:45:00Z"), end: at("2026-10-03T15:45:00Z") });
    // 2027-04-04: 02:00 (+11:00) becomes 01:30 (+10:30); 01:45 happens twice, runs at the first.
    let repeated = daily("01:45").last_period(at("2027-04-04T00:00:00Z"), &lord_howe).unwrap();
    assert_eq!(repeated.end, at("2027-04-03T14:45:00Z"));
    let after = daily("01:45").next_end(repeated.end, &lord_howe).unwrap();
    assert_eq!(after, at("2027-04-04T15:15:00Z"), "once that day, then the next day's");
    for period in [skipped, repeated] {
        assert_eq!(period.start.as_second() % crate::outbox::SLOT_SECONDS, 0, "whole slots");
        assert_eq!(period.end.as_second() % crate::outbox::SLOT_SECONDS, 0, "whole slots");
    }
    // Berlin, Sunday 2026-03-29: weekly@sun 02:30 does not exist; runs at 03:30 CEST.
    let weekly = parse_reports("weekly@sun 02:30").unwrap()[0];
    let berlin = parse_time_zone("Europe/Berlin").unwrap();
    let period = weekly.last_period(at("2026-03-29T12:00:00Z"), &berlin).unwrap();
    assert_eq!(period, Period { start: at("2026-03-22T01:30:00Z"), end: at("2026-03-29T01:30:00Z") });
    assert_eq!(weekly.next_end(period.end, &berlin), Some(at("2026-04-05T00:30:00Z")));
}

#[tokio::test]
async fn a_first_start_just_after_a_scheduled_time_makes_no_report_of_that_day() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(dir.path()).unwrap();
    let templates = Arc::new(Templates::load(dir.path().join("none"), Lang::En).0);
    let settings = ReportSettings { schedules: parse_reports("daily@09:00").unwrap(), ..ReportSettings::default() };
    let recipient = Recipient {
        destination: Arc::new(crate::destination::Destination::new("default", crate::destination::Target::DryRun)),
        reports: vec![ReportKind::Daily],
    };
    let reports = Producer::new(outbox.clone(), templates, settings, vec![recipient], None);
    // First start ever at 09:00:30: the day up to 09:00 went unseen; the first report is tomorrow's.
    assert_eq!(reports.run_due(at("2026-03-10T09:00:30Z")).await.unwrap(), 0);
    assert_eq!(reports.run_due(at("2026-03-10T09:05:00Z")).await.unwrap(), 0);
    assert_eq!(reports.run_due(at("2026-03-11T09:05:00Z")).await.unwrap(), 1);
}

#[tokio::test]
async fn a_user_who_hits_the_limit_twice_a_day_is_named_in_the_report_of_the_second_time() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(dir.path()).unwrap();
    // bob's usage is reset after his first expiry at 08:00 UTC; he expires again at noon.
    tally(&outbox, vec![expired("bob", at("2026-03-09T08:00:00Z"), None)]).await;
    tally(&outbox, vec![expired("bob", at("2026-03-09T12:00:00Z"), None)]).await;
    let period = Period { start: at("2026-03-09T09:00:00Z"), end: at("2026-03-10T09:00:00Z") };
    let list = Report::read(&outbox, "daily", period).await.unwrap().parts[0].expired.clone();
    assert_eq!((list.total, list.names.as_slice(), list.more), (1, ["bob".to_owned()].as_slice(), 0));
    // A report over both names him once, and counts no one more: one user, twice.
    let day = Period { start: at("2026-03-09T00:00:00Z"), end: at("2026-03-10T00:00:00Z") };
    let list = Report::read(&outbox, "daily", day).await.unwrap().parts[0].expired.clone();
    assert_eq!((list.total, list.names.as_slice(), list.more), (2, ["bob".to_owned()].as_slice(), 0));
}

#[test]
fn a_report_longer_than_its_schedule_says_so_in_its_language() {
    let dir = tempfile::tempdir().unwrap();
    let since = at("2026-03-01T09:00:00Z");
    let period = Period { start: since, end: at("2026-03-13T09:00:00Z") };
    let long = build_report("daily", period, &Default::default()).since(Some(since.as_second()));
    let day = Period { start: at("2026-03-12T09:00:00Z"), end: period.end };
    let usual = build_report("daily", day, &Default::default()).since(None);
    let date = format!("<t:{}:D>", since.as_second());
    for (lang, says) in [
        (Lang::En, "Covers 12 days: no report since"),
        (Lang::Ru, "За 12 дней: отчётов не было с"),
        (Lang::Fa, "12 روز"),
        (Lang::Zh, "本报告涵盖 12天：自"),
    ] {
        let renderer = Templates::load(dir.path().join("none"), lang).0.current();
        let text = renderer.render_report(&long.parts[0]).embed.description.unwrap_or_default();
        assert!(text.contains(says) && text.contains(&date), "{lang:?}: {text}");
        let text = renderer.render_report(&usual.parts[0]).embed.description.unwrap_or_default();
        assert!(!text.contains('⏳') && !text.contains(":D>"), "{lang:?}: a usual day says nothing: {text}");
    }
    // A period a few hours longer than a day is counted in hours.
    let hours = Period { start: at("2026-03-12T06:00:00Z"), end: period.end };
    let renderer = Templates::load(dir.path().join("none"), Lang::En).0.current();
    let part = build_report("daily", hours, &Default::default()).since(Some(hours.start.as_second()));
    let text = renderer.render_report(&part.parts[0]).embed.description.unwrap_or_default();
    assert!(text.contains("Covers 1d 3h: no report since"), "{text}");
}
