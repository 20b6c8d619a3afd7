//! Scheduled reports end to end: the relay with `REPORTS` and a clock the test sets (the parsed
//! configuration's `reports.clock`, set through `Options::tweak`; the relay has no environment
//! knob for it), real Marzban bodies in, and the report out through the fake Discord: once per
//! period across a restart, the latest missed period once after downtime. And a period of 10,000
//! events, rendered in every language, still within Discord's limits and schema.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use marzban_discord_relay::deliver::{build_message, next_message};
use marzban_discord_relay::destination::{Destination, Mentions, Target};
use marzban_discord_relay::outbox::{Outbox, Tallied};
use marzban_discord_relay::render::{limits, Lang, Part, Renderer};
use marzban_discord_relay::reports::{Clock, Period, Report, NAMES_SHOWN};
use serde_json::Value;

use crate::cli::relay;
use crate::conformance::{discord_schema, violations};
use crate::fake_discord::{validate, FakeDiscord};
use crate::helpers::{fixture, logs, poll_until, spawn_app_in, Options, SECRET};

/// The fake clock's time, unix seconds.
pub type FakeTime = Arc<AtomicI64>;

pub fn options(discord: &FakeDiscord, schedule: &str, time: &FakeTime) -> Options {
    let time = time.clone();
    Options::delivering_to(discord).var("REPORTS", schedule).tweak(move |config| {
        config.reports.clock = Clock::from_fn(move || Timestamp::from_second(time.load(Ordering::SeqCst)).unwrap());
        config.reports.recheck = Duration::from_millis(20);
        // The test stores its events before it moves the clock past a period's end.
        config.reports.settle = Duration::ZERO;
    })
}

/// The messages Discord accepted that are daily reports, in order (a request answered 429, which
/// a restarted relay can meet before it knows the bucket, is sent again and counts once).
fn reports(discord: &FakeDiscord) -> Vec<Value> {
    let messages = discord.messages().into_iter();
    messages.filter(|body| body["embeds"][0]["title"].as_str().is_some_and(|t| t.contains("Daily report"))).collect()
}

/// Where a report's period ends: the second time in its description, unix seconds.
pub fn period_end(report: &Value) -> i64 {
    let description = report["embeds"][0]["description"].as_str().unwrap();
    let end = description.split("→ <t:").nth(1).and_then(|rest| rest.split(':').next()).unwrap();
    end.parse().unwrap()
}

async fn wait_for_reports(discord: &FakeDiscord, count: usize) -> Vec<Value> {
    poll_until(&format!("{count} reports"), || async {
        let got = reports(discord);
        (got.len() >= count).then_some(got)
    })
    .await
}

pub fn field<'a>(report: &'a Value, name: &str) -> &'a str {
    let fields = report["embeds"][0]["fields"].as_array().unwrap();
    let found = fields.iter().find(|f| f["name"] == name);
    found.and_then(|f| f["value"].as_str()).unwrap_or_else(|| panic!("no field {name:?} in {report:#}"))
}

#[tokio::test]
async fn a_daily_report_arrives_once_per_period_across_a_restart_and_once_after_downtime() {
    let discord = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    // The report time: the quarter-hour after next, so events received now fall in its period.
    let now = Timestamp::now().as_second();
    let due = (now + 60).div_euclid(900) * 900 + 900;
    let at = Timestamp::from_second(due).unwrap().to_string();
    let schedule = format!("daily@{}", &at[11..16]);
    let time: FakeTime = Arc::new(AtomicI64::new(now));
    let app = spawn_app_in(dir.path(), options(&discord, &schedule, &time)).await;
    poll_until("the producer's first look", || async {
        logs().iter().any(|line| line.contains("daily reports start with the period after")).then_some(())
    })
    .await;
    for name in ["user_created", "user_expired", "user_limited", "user_deleted"] {
        let answer = app.post(fixture(&format!("marzban-0.8.4/{name}.json"))).await;
        assert_eq!(answer.status(), 200);
    }
    app.wait_until_settled().await;
    assert!(reports(&discord).is_empty(), "nothing is due before {at}");

    time.store(due + 1, Ordering::SeqCst);
    let first = wait_for_reports(&discord, 1).await.remove(0);
    assert_eq!(period_end(&first), due);
    assert!(field(&first, "Users").contains("Created: 1\n🗑️ Deleted: 1\n🧮 Net change: 0"), "{first:#}");
    assert!(field(&first, "⌛ Expired").contains(r"h5b5cf44\_expired"), "{first:#}");
    assert!(field(&first, "⛔ Reached their limit").contains(r"h5b5cf44\_traffic"), "{first:#}");
    assert!(!field(&first, "Relay").contains("Messages delivered: 0\n"), "the events' messages count: {first:#}");
    app.stop().await;

    // Down for two days: the periods ending a day and two days later were missed.
    time.store(due + 2 * 86_400 + 3600, Ordering::SeqCst);
    let app = spawn_app_in(dir.path(), options(&discord, &schedule, &time)).await;
    let caught_up = wait_for_reports(&discord, 2).await;
    assert_eq!(period_end(&caught_up[1]), due + 2 * 86_400, "only the latest missed period");
    time.store(due + 3 * 86_400, Ordering::SeqCst);
    let all = wait_for_reports(&discord, 3).await;
    let ends: Vec<i64> = all.iter().map(period_end).collect();
    assert_eq!(ends, [due, due + 2 * 86_400, due + 3 * 86_400], "each period once");
    assert!(field(&all[2], "Users").contains("Created: 0"), "{:#}", all[2]);
    let schema = discord_schema();
    for report in &all {
        assert_eq!(violations(&schema, report), Vec::<String>::new(), "{report:#}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_period_of_10000_events_fits_discords_limits_in_every_language() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(dir.path()).unwrap();
    let start = Timestamp::from_second(1_800_000_000).unwrap();
    let actions = ["user_created", "user_expired", "user_limited", "user_deleted", "reached_usage_percent"];
    let panels = [Some("eu-1"), Some("us-2"), None];
    let events: Vec<Tallied> = (0..10_000_i64)
        .map(|i| Tallied {
            action: actions[i as usize % actions.len()].into(),
            panel: panels[i as usize % panels.len()].map(String::from),
            username: format!("{}_{i}*_@everyone", "کاربر_ü汉字".repeat(3)),
            received_at_ms: (start.as_second() + i * 8) * 1000,
            fingerprint: None,
            may_be_resend: false,
        })
        .collect();
    outbox.enqueue_counted(Vec::new(), Vec::new(), events, None).await.unwrap();
    let period = Period { start, end: Timestamp::from_second(start.as_second() + 86_400).unwrap() };
    let report = Report::read(&outbox, "daily", period).await.unwrap();
    assert_eq!(report.parts.iter().map(|part| part.total).sum::<i64>(), 10_000);
    for part in &report.parts {
        assert!((1..=NAMES_SHOWN).contains(&part.expired.names.len()), "{:?}", part.expired.names);
        assert_eq!(part.expired.names.len() as i64 + part.expired.more, part.expired.total);
    }

    let schema = discord_schema();
    let destination = Destination::new("default", Target::DryRun);
    for &lang in Lang::ALL {
        let renderer = Renderer::builtin(lang);
        let parts: Vec<Part> = report.parts.iter().map(|context| renderer.render_report(context)).collect();
        if lang == Lang::En {
            for part in &parts {
                let expired = part.embed.fields.iter().find(|f| f.name == "⌛ Expired").unwrap();
                assert!(expired.value.ends_with(" more"), "the count of the rest survives: {}", expired.value);
            }
        }
        let none = Mentions::default();
        let queue: Vec<(&Part, &Mentions)> = parts.iter().map(|part| (part, &none)).collect();
        let mut rest = queue.as_slice();
        while !rest.is_empty() {
            let (count, mentions) = next_message(rest, limits::EMBEDS_PER_MESSAGE);
            let body =
                serde_json::to_value(build_message(rest[..count].iter().map(|(p, _)| *p), &mentions, &destination))
                    .unwrap();
            assert_eq!(validate(&body), Vec::<String>::new(), "{lang}: {body:#}");
            assert_eq!(violations(&schema, &body), Vec::<String>::new(), "{lang}: {body:#}");
            rest = &rest[count..];
        }
    }
}

#[tokio::test]
async fn the_report_command_prints_any_period_and_sends_it_through_the_outbox() {
    let discord = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(dir.path(), Options::delivering_to(&discord)).await;
    assert_eq!(app.post(fixture("marzban-0.8.4/user_expired.json")).await.status(), 200);
    app.wait_until_settled().await;
    app.stop().await;

    let now = Timestamp::now().as_second();
    let (from, to) = ((now - 3600).to_string(), (now + 3600).to_string());
    let data_dir = dir.path().display().to_string();
    let no_templates = dir.path().join("none").display().to_string();
    let base = [("DATA_DIR", data_dir.as_str()), ("TEMPLATES_DIR", no_templates.as_str())];
    let args = ["report", "--from", from.as_str(), "--to", to.as_str()];
    // Blocking is fine here: no relay of this test is running.
    let output = relay(&args, &base);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let body = crate::cli::rendered_one(&output.stdout);
    assert!(body["embeds"][0]["title"].as_str().unwrap().starts_with("📊 Report"), "{body:#}");
    assert!(field(&body, "⌛ Expired").contains(r"h5b5cf44\_expired"), "{body:#}");
    assert_eq!(violations(&discord_schema(), &body), Vec::<String>::new());

    let url = discord.webhook_url();
    let vars = [base[0], base[1], ("DISCORD_WEBHOOK_URL", url.as_str()), ("WEBHOOK_SECRET", SECRET)];
    let output = relay(&["report", "--period", "weekly", "--send"], &vars);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("stored 1 report embed(s) for destination default"));
    let app = spawn_app_in(dir.path(), Options::delivering_to(&discord)).await;
    let weekly = poll_until("the weekly report", || async {
        discord.messages().into_iter().find(|m| m["embeds"][0]["title"].as_str().is_some_and(|t| t.contains("Weekly")))
    })
    .await;
    assert!(field(&weekly, "Status").contains("Expired: 1"), "{weekly:#}");
    app.stop().await;
}

#[test]
fn a_schedule_that_cannot_be_read_is_refused_naming_the_setting() {
    for (var, value, says) in [
        ("REPORTS", "daily@9:00", "REPORTS \"daily@9:00\" is not daily@HH:MM"),
        ("REPORTS", "daily@09:00,daily@21:00", "REPORTS names daily twice"),
        ("REPORTS_TZ", "Europe/Atlantis", "REPORTS_TZ \"Europe/Atlantis\" is not an IANA time zone name"),
    ] {
        let output = relay(&["check"], &[(var, value)]);
        assert_eq!(output.status.code(), Some(1), "{var}={value}");
        let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        assert!(said.contains(says), "{var}={value}: {said}");
    }
    let output = relay(&["render", "--report", "weekly"], &[]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let body = crate::cli::rendered_one(&output.stdout);
    assert_eq!(body["embeds"].as_array().unwrap().len(), 2, "two sample panels");
    assert!(body["embeds"][0]["title"].as_str().unwrap().contains("Weekly report · eu-1"));
}
