//! Real Marzneshin 0.7.4 bodies (`tests/fixtures/marzneshin-0.7.4/`): one object per request, no
//! top-level `username`, flags instead of a status, and nothing ever re-sent.

use std::time::Duration;

use serde_json::Value;

use crate::fake_discord::FakeDiscord;
use crate::helpers::{
    capture, deliver_every_capture, embed_titled, eventually, field, spawn_app, spawn_app_in, Options, MARZNESHIN,
    SECRET,
};

const WAIT: Duration = Duration::from_secs(30);

/// Every capture, by number, and the titles of the embeds its events become, in order.
const EVERY_CAPTURE: &[(&str, &[&str])] = &[
    ("001", &["🆕 User created: u\\_full"]),
    ("002", &["🆕 User created: u\\_note"]),
    ("003", &["🆕 User created: u\\_hold"]),
    ("004", &["✏️ User updated: u\\_full"]),
    ("005", &["⌛ User expired: u\\_full"]),
    ("006", &["✏️ User updated: u\\_full"]),
    ("007", &["▶️ User activated: u\\_full"]),
    ("008", &["🚫 User disabled: u\\_note"]),
    ("009", &["✅ User enabled: u\\_note"]),
    ("010", &["🔄 Data usage reset: u\\_full"]),
    ("011", &["🔑 Subscription revoked: u\\_full"]),
    ("012", &["🆕 User created: u\\_days"]),
    ("013", &["🆕 User created: u\\_exp"]),
    ("014", &["⛔ Data limit reached: u\\_full"]),
    ("015", &["⌛ User expired: u\\_exp"]),
    ("016", &["⏳ Expiring soon: u\\_days"]),
];

#[tokio::test]
async fn every_capture_is_accepted_and_rendered_as_what_happened() {
    // Arrange + Act: every request the panel made, in the order it made them.
    let embeds = deliver_every_capture(MARZNESHIN, EVERY_CAPTURE).await;

    // Assert: the values an admin reads, beyond the titles checked on the way.
    // The owner, in its own field or as the acting admin marked "(owner)" when that is the same.
    for embed in &embeds {
        let fields = embed["fields"].as_array().unwrap();
        assert!(fields.iter().any(|f| f["value"] == "boss"), "{}", embed["title"]);
    }
    let full = embed_titled(&embeds, "🆕 User created: u\\_full");
    assert_eq!(field(full, "Status"), Some("🟢 Active"));
    assert_eq!(field(full, "Data limit"), Some("10 GiB"));
    assert!(field(full, "Expires").unwrap().starts_with("<t:1798419660:d> ("), "expire_date, naive ISO meaning UTC");
    assert_eq!(field(full, "Reset"), Some("Monthly"));
    assert_eq!(field(full, "Created by"), Some("boss"));
    assert_eq!(full["description"], "📝 plain note");
    let note = embed_titled(&embeds, "🆕 User created: u\\_note");
    assert_eq!(note["description"], r"📝 \@everyone \*\*x\*\*");
    assert_eq!(field(note, "Expires"), Some("Never"));
    let disabled = embed_titled(&embeds, "🚫 User disabled: u\\_note");
    assert_eq!(field(disabled, "Disabled by (owner)"), Some("boss"));
    let enabled = embed_titled(&embeds, "✅ User enabled: u\\_note");
    assert_eq!(field(enabled, "Status"), Some("🟢 Active"), "not on hold after being off the nodes");
    let expired_update = embeds.iter().find(|e| e["title"] == "✏️ User updated: u\\_full").unwrap();
    assert_eq!(field(expired_update, "Status"), Some("🔴 Expired"));
}

#[tokio::test]
async fn a_start_on_first_use_user_is_on_hold_until_its_activation_deadline() {
    // Arrange
    let discord = FakeDiscord::start().await;
    let (app, _dir) = spawn_app(&discord).await;

    // Act: u_hold, created with a 7-day usage duration and an activation deadline.
    assert_eq!(app.post(capture(MARZNESHIN, "003")).await.status(), 200);
    let embeds = discord.wait_for_embeds(1, WAIT).await;

    // Assert
    let created = embed_titled(&embeds, "🆕 User created: u\\_hold");
    assert_eq!(field(created, "Status"), Some("🟡 On hold"));
    assert_eq!(field(created, "Expires"), Some("7d after first connection"));
    assert_eq!(field(created, "Hold ends"), Some("<t:1796691660:d> (<t:1796691660:R>)"), "activation_deadline, UTC");
    app.stop().await;
}

#[tokio::test]
async fn a_cut_off_by_the_panel_is_limited_or_expired_and_an_admins_deactivation_is_not() {
    // Arrange
    let discord = FakeDiscord::start().await;
    let (app, _dir) = spawn_app(&discord).await;

    // Act: the review job cut u_full off at its data limit (014) and u_exp at its expiry (015);
    // earlier boss had deactivated u_full by moving its expiry into the past (005).
    for number in ["014", "015", "005"] {
        assert_eq!(app.post(capture(MARZNESHIN, number)).await.status(), 200, "{number}");
    }
    let embeds = discord.wait_for_embeds(3, WAIT).await;

    // Assert
    let limited = embed_titled(&embeds, "⛔ Data limit reached: u\\_full");
    assert_eq!(field(limited, "Used"), Some("10 GiB / 10 GiB"));
    assert_eq!(field(limited, "Reset"), Some("Monthly"));
    assert_eq!(field(limited, "Owner"), Some("boss"));
    let expired = embed_titled(&embeds, "⌛ User expired: u\\_exp");
    assert_eq!(field(expired, "Expired"), Some("<t:1795824072:d> (<t:1795824072:R>)"));
    let by_admin = embed_titled(&embeds, "⌛ User expired: u\\_full");
    assert_eq!(field(by_admin, "Status"), Some("🔴 Expired"));
    assert_eq!(field(by_admin, "By (owner)"), Some("boss"));
    app.stop().await;
}

const ALERTS: u64 = 100000000000000002;
const AUDIT: u64 = 100000000000000001;
const ROLE: u64 = 400000000000000004;

#[tokio::test]
async fn the_readme_alerts_rule_catches_cut_offs_and_templates_see_the_panels_own_action() {
    // Arrange: docs/ROUTING.md's alerts rule, an audit rule on Marzneshin's own action name, and an
    // admin's template that shows it.
    let discord = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let routes = format!(
        "[destinations.alerts]\nurl = \"{alerts}\"\n[destinations.audit]\nurl = \"{audit}\"\n\
         [[rules]]\nactions = [\"user_limited\", \"user_expired\"]\nto = [\"alerts\"]\nmention_roles = [\"{ROLE}\"]\n\
         [[rules]]\nactions = [\"user_deactivated\"]\nto = [\"audit\"]\n",
        alerts = discord.webhook_url_for(ALERTS),
        audit = discord.webhook_url_for(AUDIT),
    );
    std::fs::write(dir.path().join("routes.toml"), routes).unwrap();
    let templates = dir.path().join("templates");
    std::fs::create_dir(&templates).unwrap();
    std::fs::write(
        templates.join("user_limited.toml"),
        "title = \"{{ username }}: {{ action }} ({{ original_action }})\"\n",
    )
    .unwrap();
    let options = Options::new()
        .var("WEBHOOK_SECRET", SECRET)
        .var("ROUTES_FILE", dir.path().join("routes.toml").to_str().unwrap())
        .var("TEMPLATES_DIR", templates.to_str().unwrap());
    let app = spawn_app_in(dir.path(), options).await;

    // Act
    for number in ["014", "015", "005"] {
        assert_eq!(app.post(capture(MARZNESHIN, number)).await.status(), 200, "{number}");
    }
    eventually(WAIT, "two alerts and three audit embeds", || {
        embeds_to(&discord, ALERTS).len() == 2 && embeds_to(&discord, AUDIT).len() == 3
    })
    .await;

    // Assert
    let alerts = embeds_to(&discord, ALERTS);
    assert_eq!(alerts[0]["title"], "u\\_full: user\\_limited (user\\_deactivated)");
    assert_eq!(alerts[1]["title"], "⌛ User expired: u\\_exp");
    for message in discord.messages_to(ALERTS) {
        let titles: Vec<&str> =
            message["embeds"].as_array().unwrap().iter().map(|e| e["title"].as_str().unwrap()).collect();
        assert_eq!(message["content"], format!("<@&{ROLE}> — {}", titles.join(" · ")), "the ping says why");
    }
    app.stop().await;
}

fn embeds_to(discord: &FakeDiscord, id: u64) -> Vec<Value> {
    discord.messages_to(id).iter().flat_map(|m| m["embeds"].as_array().cloned().unwrap_or_default()).collect()
}

/// A Marzneshin usage warning for u_full (10 GiB limit) at `used` bytes: the envelope of the real
/// `reached_days_left` (016: no `by`, no count) around the real user of 001. Marzneshin sends no
/// percentage in either.
fn usage_warning(used: u64) -> String {
    let mut warning: Value = serde_json::from_str(&capture(MARZNESHIN, "016")).unwrap();
    let created: Value = serde_json::from_str(&capture(MARZNESHIN, "001")).unwrap();
    warning["action"] = "reached_usage_percent".into();
    warning["user"] = created["user"].clone();
    warning["user"]["used_traffic"] = used.into();
    serde_json::to_string(&warning).unwrap()
}

#[tokio::test]
async fn a_usage_warning_gets_its_percentage_computed_so_min_used_percent_rules_match() {
    // Arrange: docs/ROUTING.md's "heavy users only" rule.
    let discord = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let routes = format!(
        "[destinations.alerts]\nurl = \"{alerts}\"\n[destinations.audit]\nurl = \"{audit}\"\n\
         [[rules]]\nto = [\"audit\"]\n\
         [[rules]]\nactions = [\"reached_usage_percent\"]\nmin_used_percent = 90\nto = [\"alerts\"]\n",
        alerts = discord.webhook_url_for(ALERTS),
        audit = discord.webhook_url_for(AUDIT),
    );
    std::fs::write(dir.path().join("routes.toml"), routes).unwrap();
    let options = Options::new()
        .var("WEBHOOK_SECRET", SECRET)
        .var("ROUTES_FILE", dir.path().join("routes.toml").to_str().unwrap());
    let app = spawn_app_in(dir.path(), options).await;
    const GIB: u64 = 1 << 30;

    // Act: 80 % then 95 % of 10 GiB (one destination keeps the order received, so a wrongly routed
    // 80 % would reach the alerts first).
    assert_eq!(app.post(usage_warning(8 * GIB)).await.status(), 200);
    assert_eq!(app.post(usage_warning(95 * GIB / 10)).await.status(), 200);
    eventually(WAIT, "both warnings in the audit channel and one alert", || {
        embeds_to(&discord, AUDIT).len() == 2 && !embeds_to(&discord, ALERTS).is_empty()
    })
    .await;

    // Assert
    let audit = embeds_to(&discord, AUDIT);
    assert_eq!(audit[0]["description"], "Used **80%** of the data limit.");
    assert_eq!(audit[1]["description"], "Used **95%** of the data limit.");
    let alerts = embeds_to(&discord, ALERTS);
    assert_eq!(alerts[0]["description"], "Used **95%** of the data limit.", "only the heavy user");
    app.stop().await;
}

#[tokio::test]
async fn days_left_are_counted_at_receipt_and_a_retry_sends_the_same_message() {
    // Arrange: the real days-left warning (no count in it), its expiry moved to 3 days and 20 s from
    // now as Marzneshin's task would see it; Discord fails the first attempt.
    let discord = FakeDiscord::start().await;
    discord.script([crate::fake_discord::Reply::server_error()]);
    let (app, _dir) = spawn_app(&discord).await;
    let mut warning: Value = serde_json::from_str(&capture(MARZNESHIN, "016")).unwrap();
    let expire = time::OffsetDateTime::now_utc() + time::Duration::days(3) + time::Duration::seconds(20);
    warning["user"]["expire_date"] = expire.format(&time::format_description::well_known::Rfc3339).unwrap().into();

    // Act
    assert_eq!(app.post(serde_json::to_string(&warning).unwrap()).await.status(), 200);
    let embeds = discord.wait_for_embeds(1, WAIT).await;

    // Assert
    let days = embed_titled(&embeds, "⏳ Expiring soon: u\\_days");
    assert_eq!(days["description"], "**3** days left.");
    let attempts: Vec<String> = discord.requests().into_iter().map(|r| r.body).collect();
    assert_eq!(attempts.len(), 2, "one failure, one success");
    assert_eq!(attempts[0], attempts[1], "the retry sends the message made at receipt");
    app.stop().await;
}

#[test]
fn render_counts_the_days_left_of_a_saved_body_as_of_when_it_was_received() {
    // Arrange: the real warning, saved; Marzneshin sent it just after creating u_days at 01:01:10.
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("016.json");
    std::fs::write(&body, capture(MARZNESHIN, "016")).unwrap();
    let render = |received_at: &str| {
        let output = crate::cli::relay(&["render", "--received-at", received_at, body.to_str().unwrap()], &[]);
        assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
        let message: Value = crate::cli::rendered_one(&output.stdout);
        message["embeds"][0]["description"].as_str().unwrap_or_default().to_owned()
    };

    // Act + Assert
    assert_eq!(render("2026-11-28T01:01:12Z"), "**3** days left.");
    assert_eq!(render("1796000400"), "**1** day left.", "2026-11-30T01:00:00Z");
    assert_eq!(render("2026-11-29T13:00:00Z"), "**2** days left.", "a day and a half: the nearest day");
    let refused = crate::cli::relay(&["render", "--received-at", "yesterday", body.to_str().unwrap()], &[]);
    assert_eq!(refused.status.code(), Some(2), "clap refuses a bad value");
}

#[tokio::test]
async fn a_deleted_user_shows_its_owner() {
    // Arrange: Marzneshin's user_deleted carries the user as it was; here u_note of the real
    // capture 009, taken off the nodes (activated: false) as a deletion does.
    let discord = FakeDiscord::start().await;
    let (app, _dir) = spawn_app(&discord).await;
    let mut deleted: Value = serde_json::from_str(&capture(MARZNESHIN, "009")).unwrap();
    deleted["action"] = "user_deleted".into();
    deleted["user"]["activated"] = false.into();
    deleted["user"]["is_active"] = false.into();

    // Act
    assert_eq!(app.post(serde_json::to_string(&deleted).unwrap()).await.status(), 200);
    let embeds = discord.wait_for_embeds(1, WAIT).await;

    // Assert
    let card = embed_titled(&embeds, "🗑️ User deleted: u\\_note");
    assert_eq!(field(card, "Deleted by (owner)"), Some("boss"));
    assert_eq!(field(card, "Owner"), None);
    app.stop().await;
}

#[test]
fn a_days_left_warning_received_a_second_after_marzneshin_fired_it_still_says_three_days() {
    // Arrange (review, fails today): Marzneshin's task fires when `expire_date` is between 3 days
    // and 3 days + 30 s away (by the panel's clock) and sends no count. 016's expiry is
    // 2026-12-01T01:01:24; say the task ran at 01:01:23.5 three days before (3 d + 0.5 s away) and
    // the relay got it a second later, or its clock is a second ahead.
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("016.json");
    std::fs::write(&body, capture(MARZNESHIN, "016")).unwrap();

    // Act
    let output = crate::cli::relay(&["render", "--received-at", "1795827685", body.to_str().unwrap()], &[]);

    // Assert: Marzneshin meant 3 days (NOTIFY_DAYS_LEFT); flooring at receipt says 2.
    assert_eq!(output.status.code(), Some(0));
    let message: Value = crate::cli::rendered_one(&output.stdout);
    assert_eq!(message["embeds"][0]["description"], "**3** days left.");
}
