//! From the panel's POST to Discord: every real payload arrives as a valid embed, retried and
//! paced as Discord asks, in order, across restarts.

use std::time::Duration;

use serde_json::Value;

use crate::fake_discord::{FakeDiscord, Reply};
use crate::helpers::{fixture, marzban_fixtures, spawn_app, spawn_app_in, Options};

const WAIT: Duration = Duration::from_secs(30);

fn title(embed: &Value) -> &str {
    embed["title"].as_str().unwrap_or_default()
}

fn field<'a>(embed: &'a Value, name: &str) -> Option<&'a str> {
    embed["fields"].as_array()?.iter().find(|f| f["name"] == name)?["value"].as_str()
}

#[tokio::test]
async fn delivers_every_marzban_action_as_a_valid_embed() {
    let discord = FakeDiscord::start().await;
    // Folding off: every action of every capture is delivered, user_updated included.
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(dir.path(), Options::delivering_to(&discord).var("FOLD_UPDATES", "false")).await;
    let fixtures = marzban_fixtures();
    let mut expected_events = 0;
    for (name, body) in &fixtures {
        let events: Vec<Value> = serde_json::from_str(body).unwrap();
        expected_events += events.len();
        let response = app.post(body.clone()).await;
        assert_eq!(response.status(), 200, "{name}");
    }

    let embeds = discord.wait_for_embeds(expected_events, WAIT).await;
    // The fake refuses anything over Discord's limits with a 400; none happened.
    assert_eq!(discord.count_status(400), 0);
    assert_eq!(embeds.len(), expected_events);
    let expect = [
        ("🆕 User created: h5b5cf44\\_main", "#2ECC71"),
        ("⏭️ Next plan applied: h5b5cf44\\_nextauto", "#5865F2"),
        ("🔄 Data usage reset: h5b5cf44\\_main", "#9B59B6"),
        ("⏳ Expiring soon: h5b5cf44\\_days", "#F39C12"),
        ("📈 Usage warning: h5b5cf44\\_traffic", "#F1C40F"),
        ("🔑 Subscription revoked: h5b5cf44\\_main", "#D35400"),
        ("🗑️ User deleted: h5b5cf44\\_main", "#992D22"),
        ("🚫 User disabled: h5b5cf44\\_main", "#607D8B"),
        ("✅ User enabled: h5b5cf44\\_main", "#1ABC9C"),
        ("⌛ User expired: h5b5cf44\\_expired", "#E74C3C"),
        ("⛔ Data limit reached: h5b5cf44\\_traffic", "#E67E22"),
    ];
    for (wanted, color) in expect {
        let embed = embeds.iter().find(|e| title(e) == wanted).unwrap_or_else(|| panic!("no embed titled {wanted}"));
        let color = u64::from_str_radix(&color[1..], 16).unwrap();
        assert_eq!(embed["color"], color, "{wanted}");
        assert!(embed["timestamp"].is_string(), "{wanted}: the embed carries the receive time");
    }
    // Each message carries an explicit, empty allowed_mentions.
    for message in discord.messages() {
        assert_eq!(message["allowed_mentions"]["parse"], serde_json::json!([]));
    }
    // Every request asked for the created message back.
    assert!(discord.requests().iter().all(|r| r.query.contains("wait=true")));
    app.stop().await;
}

#[tokio::test]
async fn shows_what_an_admin_wants_at_a_glance() {
    let discord = FakeDiscord::start().await;
    let (app, _dir) = spawn_app(&discord).await;
    for name in ["user_created", "reached_usage_percent", "reached_days_left", "user_deleted"] {
        assert_eq!(app.post(fixture(&format!("marzban-0.8.4/{name}.json"))).await.status(), 200);
    }
    let embeds = discord.wait_for_embeds(4, WAIT).await;

    let created = &embeds[0];
    assert_eq!(field(created, "Status"), Some("🟢 Active"));
    assert_eq!(field(created, "Data limit"), Some("10 GiB"));
    // The date, then the days left (or the relative time once less than a day is left).
    assert!(field(created, "Expires").unwrap().starts_with("<t:1798393156:d> ("));
    assert_eq!(field(created, "Created by"), Some("harness"));
    assert_eq!(field(created, "Owner"), None, "the creator owns the user: shown once");
    assert_eq!(created["description"], "📝 harness main user");

    let usage = &embeds[1];
    assert_eq!(usage["description"], "Used **87.9%** of the data limit.");
    assert_eq!(field(usage, "Used"), Some("900 KiB / 1 MiB"));
    assert_eq!(field(usage, "Expires"), Some("Never"));

    let days = &embeds[2];
    assert_eq!(days["description"], "**2** days left.");
    assert_eq!(field(days, "Traffic"), Some("0 B / Unlimited"));

    let deleted = &embeds[3];
    assert_eq!(field(deleted, "Deleted by"), Some("harness"));
    app.stop().await;
}

#[tokio::test]
async fn renders_unknown_actions_with_the_default_template() {
    let discord = FakeDiscord::start().await;
    let (app, _dir) = spawn_app(&discord).await;
    let body = r#"{"action": "user_hwid_added", "username": "zed", "user": {"status": "active"}}"#;
    assert_eq!(app.post(body).await.status(), 200);
    let embeds = discord.wait_for_embeds(1, WAIT).await;
    assert_eq!(title(&embeds[0]), "ℹ️ user\\_hwid\\_added: zed");
    assert_eq!(field(&embeds[0], "Status"), Some("🟢 Active"));
    app.stop().await;
}

#[tokio::test]
async fn retries_after_server_errors_until_delivered() {
    let discord = FakeDiscord::start().await;
    discord.script([Reply::server_error(), Reply::bad_gateway()]);
    let (app, _dir) = spawn_app(&discord).await;

    assert_eq!(app.post(fixture("marzban-0.8.4/user_created.json")).await.status(), 200);
    let embeds = discord.wait_for_embeds(1, WAIT).await;
    assert_eq!(embeds.len(), 1);
    let statuses: Vec<u16> = discord.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [500, 502, 200]);
    app.stop().await;
}

#[tokio::test]
async fn keeps_the_order_received_across_retries() {
    let discord = FakeDiscord::start().await;
    discord.script([Reply::server_error(), Reply::server_error()]);
    let (app, _dir) = spawn_app(&discord).await;
    for name in ["user_created", "user_updated", "user_limited", "user_expired", "user_deleted"] {
        assert_eq!(app.post(fixture(&format!("marzban-0.8.4/{name}.json"))).await.status(), 200);
    }
    let embeds = discord.wait_for_embeds(5, WAIT).await;
    let titles: Vec<&str> = embeds.iter().map(|e| title(e).split(':').next().unwrap()).collect();
    assert_eq!(
        titles,
        ["🆕 User created", "✏️ User updated", "⛔ Data limit reached", "⌛ User expired", "🗑️ User deleted"]
    );
    app.stop().await;
}

#[tokio::test]
async fn delivers_rows_left_pending_after_a_restart() {
    let discord = FakeDiscord::start().await;
    discord.set_down(true);
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(dir.path(), Options::delivering_to(&discord)).await;
    for name in ["user_created", "user_limited"] {
        assert_eq!(app.post(fixture(&format!("marzban-0.8.4/{name}.json"))).await.status(), 200);
    }
    discord.wait_for_requests(2, WAIT).await;
    app.stop().await;
    assert!(discord.embeds().is_empty());

    discord.set_down(false);
    let app = spawn_app_in(dir.path(), Options::delivering_to(&discord)).await;
    let embeds = discord.wait_for_embeds(2, WAIT).await;
    assert!(title(&embeds[0]).contains("created"));
    assert!(title(&embeds[1]).contains("limit"));
    app.stop().await;
}
