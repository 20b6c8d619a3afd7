//! The visual review's findings, each on a real capture: what an admin reads on the cards,
//! reports and forum titles, and what `render` previews.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use crate::cli::{relay, rendered, rendered_one};
use crate::fake_discord::FakeDiscord;
use jiff::Timestamp;
use marzban_discord_relay::outbox::Outbox;
use marzban_discord_relay::render::{Lang, Renderer};
use marzban_discord_relay::reports::{Period, Report};

use crate::helpers::{
    batch_of, capture, embed_titled, field, fixture, spawn_app, spawn_app_in, Options, MARZBAN, MARZNESHIN, PASARGUARD,
};

const WAIT: Duration = Duration::from_secs(30);

/// The capture `name` of `panel` as a file path, for `render`.
fn capture_path(panel: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(panel).join(name)
}

/// `render`'s messages for the files `paths` (the last rendered after the others) with `vars`.
fn render(paths: &[&Path], extra: &[&str], vars: &[(&str, &str)]) -> (Vec<Value>, String) {
    let mut args = vec!["render"];
    args.extend(paths.iter().map(|p| p.to_str().unwrap()));
    args.extend(extra);
    let output = relay(&args, vars);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    (rendered(&output.stdout).into_iter().map(|(_, body)| body).collect(), stderr)
}

#[tokio::test]
async fn an_edit_that_expires_a_user_is_one_embed_naming_who_made_it() {
    // Marzban's edit that moves the expiry into the past: its user_updated (by the admin) and
    // its user_expired (by nobody) in one request, as the panel sends them.
    let mut updated: Vec<Value> = serde_json::from_str(&fixture("marzban-0.8.4/user_updated.json")).unwrap();
    let mut expired: Vec<Value> = serde_json::from_str(&fixture("marzban-0.8.4/user_expired.json")).unwrap();
    updated[0]["user"]["status"] = json!("expired");
    updated[0]["user"]["expire"] = json!(1_795_797_567);
    let mut expired = expired.remove(0);
    assert!(expired["by"].is_null(), "Marzban names no admin on an expiry");
    expired["username"] = updated[0]["username"].clone();
    expired["user"] = updated[0]["user"].clone();
    let body = json!([updated[0], expired]).to_string();

    let discord = FakeDiscord::start().await;
    let (app, _dir) = spawn_app(&discord).await;
    assert_eq!(app.post(body).await.status(), 200);
    discord.wait_for_embeds(1, WAIT).await;
    app.wait_until_settled().await;
    let embeds = discord.embeds();
    app.stop().await;

    assert_eq!(embeds.len(), 1, "{embeds:#?}");
    let embed = embed_titled(&embeds, "⌛ User expired: h5b5cf44\\_main");
    assert_eq!(field(embed, "Edited by (owner)"), Some("harness"));
}

#[test]
fn marzneshins_deactivation_of_an_expired_user_says_it_expired() {
    let path = capture_path(MARZNESHIN, "005_user_deactivated.json");
    let (bodies, _) = render(&[&path], &[], &[]);
    let embed = &bodies[0]["embeds"][0];
    assert_eq!(embed["title"], "⌛ User expired: u\\_full", "{embed:#}");
    assert_eq!(field(embed, "By (owner)"), Some("boss"));
}

#[test]
fn persian_cards_give_dates_and_days_left_in_persian_not_discords_relative_times() {
    let mut days_left_shown = false;
    for panel in [MARZBAN, PASARGUARD, MARZNESHIN] {
        for entry in
            std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(panel)).unwrap()
        {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|ext| ext != "json") {
                continue;
            }
            let (bodies, _) = render(&[&path], &["--received-at", "1795801155"], &[("TEMPLATE_LANG", "fa")]);
            let text = serde_json::to_string(&bodies).unwrap();
            assert!(!text.contains(":R>"), "{}: {text}", path.display());
            days_left_shown |= text.contains("روز مانده");
        }
    }
    assert!(days_left_shown, "some card says the days left in Persian");
}

#[test]
fn sizes_of_a_thousand_or_more_of_a_unit_go_up_a_unit() {
    // PasarGuard's usage warning of a 1 GiB user, with 7 MiB used: 1017 MiB remain.
    let dir = tempfile::tempdir().unwrap();
    let mut warning: Vec<Value> = serde_json::from_str(&capture(PASARGUARD, "015")).unwrap();
    warning[0]["user"]["used_traffic"] = json!(7 * 1024 * 1024);
    let path = dir.path().join("warning.json");
    std::fs::write(&path, serde_json::to_string(&warning).unwrap()).unwrap();

    let (bodies, _) = render(&[&path], &[], &[]);

    let text = serde_json::to_string(&bodies).unwrap();
    assert!(text.contains("0.99 GiB") && !text.contains("1017 MiB"), "{text}");
}

#[test]
fn render_shows_what_an_edit_changed_since_an_earlier_body() {
    let before = capture_path(MARZBAN, "user_created.json");
    let after = capture_path(MARZBAN, "user_updated.json");

    let (bodies, _) = render(&[&before, &after], &["--received-at", "1795801155.5"], &[]);

    assert_eq!(bodies.len(), 1, "only the last body is rendered");
    let embed = &bodies[0]["embeds"][0];
    assert!(embed["description"].as_str().unwrap().starts_with("**Data limit** 10 GiB → 20 GiB\n"), "{embed:#}");
    assert_eq!(embed["timestamp"], "2026-11-27T17:39:15.5Z", "fractional unix seconds are taken");
}

#[test]
fn render_of_a_sample_or_a_burst_shows_panel_name_in_the_footer() {
    let vars = [("PANEL_NAME", "eu-1")];
    let action = relay(&["render", "--action", "user_expired"], &vars);
    assert_eq!(rendered_one(&action.stdout)["embeds"][0]["footer"]["text"], "eu-1");
    let burst = relay(&["render", "--action", "user_expired", "--burst", "30"], &vars);
    let messages = rendered(&burst.stdout);
    let embeds: Vec<&Value> = messages.iter().flat_map(|(_, body)| body["embeds"].as_array().unwrap()).collect();
    assert_eq!(embeds.len(), 30);
    assert!(embeds.iter().all(|embed| embed["footer"]["text"] == "eu-1"), "{embeds:#?}");
}

#[test]
fn persian_forum_titles_isolate_only_what_needs_it() {
    let path = capture_path(MARZBAN, "user_created.json");
    let vars = [
        ("TEMPLATE_LANG", "fa"),
        ("DISCORD_WEBHOOK_URL", "https://discord.com/api/webhooks/1/abc"),
        ("DISCORD_FORUM", "true"),
        ("WEBHOOK_SECRET", "s"),
    ];
    let (bodies, _) = render(&[&path], &[], &vars);
    assert_eq!(bodies[0]["thread_name"], "h5b5cf44_main", "a Latin name alone carries no isolate");
}

/// The emoji a line of the report starts with, for each action it counts.
fn report_emoji(lang: &str) -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates").join(lang);
    let report: toml::Table = toml::from_str(&std::fs::read_to_string(root.join("report.toml")).unwrap()).unwrap();
    let values = report["fields"].as_array().unwrap().iter().map(|f| f["value"].as_str().unwrap().to_owned());
    let mut found = Vec::new();
    for line in values.flat_map(|v| v.split('\n').map(str::to_owned).collect::<Vec<_>>()) {
        let Some((_, after)) = line.split_once("{{ counts.") else { continue };
        let action = after.split(' ').next().unwrap().to_owned();
        let mut start = line.trim_start();
        while let Some(rest) = start.strip_prefix("{%") {
            start = rest.split_once("%}").map_or("", |(_, rest)| rest).trim_start();
        }
        found.push((action, start.split(' ').next().unwrap().to_owned()));
    }
    found
}

/// The emoji a card's title starts with (a deactivation's own, after its expiry and limit).
fn card_emoji(lang: &str, action: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates").join(lang);
    let card: toml::Table =
        toml::from_str(&std::fs::read_to_string(root.join(format!("{action}.toml"))).unwrap()).unwrap();
    let title = card["title"].as_str().unwrap();
    let title = title.rsplit("{% else %}").next().unwrap();
    title.split(' ').next().unwrap().to_owned()
}

#[test]
fn the_report_and_the_cards_use_one_emoji_per_meaning() {
    for lang in ["en", "ru", "fa", "zh"] {
        let lines = report_emoji(lang);
        assert!(lines.len() >= 12, "{lang}: {lines:?}");
        for (action, emoji) in lines {
            if action == "other" {
                continue;
            }
            assert_eq!(emoji, card_emoji(lang, &action), "{lang}: the report's {action}");
        }
    }
}

#[tokio::test]
async fn a_reports_and_n_more_counts_users_not_events() {
    // 25 users expire, and Marzban reports each of them twice (it re-checks before it records).
    let discord = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(dir.path(), Options::delivering_to(&discord)).await;
    let body = batch_of("user_expired", 25, "expired_", |_, _| {});
    for _ in 0..2 {
        assert_eq!(app.post(body.clone()).await.status(), 200);
    }
    app.stop().await;

    let outbox = Outbox::open(dir.path()).unwrap();
    let now = Timestamp::now().as_second();
    let (start, end) = (Timestamp::from_second(now - 3600).unwrap(), Timestamp::from_second(now + 3600).unwrap());
    let report = Report::read(&outbox, "daily", Period { start, end }).await.unwrap();

    let expired = &report.parts[0].expired;
    assert_eq!(expired.total, 50, "the events");
    assert_eq!(expired.names.len() + expired.more as usize, 25, "named and more: the users, {expired:?}");
    let text = Renderer::builtin(Lang::En)
        .render_report(&report.parts[0])
        .embed
        .fields
        .iter()
        .map(|f| f.value.clone())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(text.contains(" and 5 more"), "{text}");
}
