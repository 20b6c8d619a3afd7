//! What an edit changed: the relay remembers each user's last state in the outbox, so a
//! `user_updated` (and a status event) says what differs from the event before, across restarts.

use std::time::Duration;

use serde_json::Value;

use crate::fake_discord::FakeDiscord;
use crate::helpers::{capture, embed_titled, fixture, spawn_app, spawn_app_in, Options, PASARGUARD};

const WAIT: Duration = Duration::from_secs(30);

fn description(embed: &Value) -> &str {
    embed["description"].as_str().unwrap_or_default()
}

/// Marzban's captured `user_updated` of `h5b5cf44_main`, edited as `edit` says.
fn edited(edit: impl Fn(&mut Value)) -> String {
    let mut body: Value = serde_json::from_str(&fixture("marzban-0.8.4/user_updated.json")).unwrap();
    edit(&mut body[0]["user"]);
    body.to_string()
}

#[tokio::test]
async fn a_user_edited_twice_shows_each_change_across_restarts() {
    let discord = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(dir.path(), Options::delivering_to(&discord)).await;
    assert_eq!(app.post(fixture("marzban-0.8.4/user_created.json")).await.status(), 200);
    discord.wait_for_embeds(1, WAIT).await;
    app.stop().await;

    // 10 GiB → 20 GiB and a new note, as the panel captured it.
    let app = spawn_app_in(dir.path(), Options::delivering_to(&discord)).await;
    assert_eq!(app.post(fixture("marzban-0.8.4/user_updated.json")).await.status(), 200);
    let first = discord.wait_for_embeds(2, WAIT).await[1].clone();
    app.stop().await;
    assert_eq!(
        description(&first),
        "**Data limit** 10 GiB → 20 GiB\n**Note** “harness main user” → “edited by harness — ünïcødé 🚀”",
        "only what changed, no note line besides"
    );
    assert!(first["fields"].to_string().contains("0 B / 20 GiB"), "the current state stays visible");

    // Then 20 GiB → 30 GiB, thirty days more and trojan added; the note stays as it was.
    let app = spawn_app_in(dir.path(), Options::delivering_to(&discord)).await;
    let second = edited(|user| {
        user["data_limit"] = 32_212_254_720_i64.into();
        user["expire"] = (1_798_393_156_i64 + 30 * 86_400).into();
        user["proxies"]["trojan"] = serde_json::json!({"password": "secret"});
    });
    assert_eq!(app.post(second).await.status(), 200);
    let second = discord.wait_for_embeds(3, WAIT).await[2].clone();
    app.stop().await;
    assert_eq!(
        description(&second),
        "**Data limit** 20 GiB → 30 GiB\n**Expires** <t:1798393156:d> → <t:1800985156:d> (+30 days)\n\
         **Protocols** + trojan\n📝 edited by harness — ünïcødé 🚀"
    );
}

#[tokio::test]
async fn a_user_seen_first_in_an_edit_claims_no_change() {
    let discord = FakeDiscord::start().await;
    let (app, _dir) = spawn_app(&discord).await;
    assert_eq!(app.post(fixture("marzban-0.8.4/user_updated.json")).await.status(), 200);
    let embed = discord.wait_for_embeds(1, WAIT).await[0].clone();
    assert_eq!(description(&embed), "📝 edited by harness — ünïcødé 🚀");
    app.stop().await;
}

#[tokio::test]
async fn a_usage_reset_shows_the_usage_it_cleared_and_a_deleted_user_starts_afresh() {
    let discord = FakeDiscord::start().await;
    let (app, _dir) = spawn_app(&discord).await;
    // pg_usage at 1.1 GiB of 1 GiB, then its usage reset (with the next plan) in PasarGuard's capture.
    for number in ["013", "018", "019"] {
        assert_eq!(app.post(capture(PASARGUARD, number)).await.status(), 200);
    }
    let embeds = discord.wait_for_embeds(4, WAIT).await;
    let reset = embed_titled(&embeds, "⏭️ Next plan applied: pg\\_usage");
    assert!(description(reset).contains("**Usage** 1.1 GiB → 0 B"), "{reset:#}");

    // pg_note created, disabled, deleted, then enabled as a new user: no "Disabled → Active".
    for number in ["003", "005", "024", "006"] {
        assert_eq!(app.post(capture(PASARGUARD, number)).await.status(), 200);
    }
    let embeds = discord.wait_for_embeds(8, WAIT).await;
    let enabled = embed_titled(&embeds, "✅ User enabled: pg\\_note");
    assert_eq!(description(enabled), "", "the user was deleted in between: {enabled:#}");
    app.stop().await;
}

/// The captured `user_created` and `user_updated` of Marzban, for user `name`, the update with a
/// data limit of `gib` GiB.
fn created_and_updated(name: &str, gib: i64) -> (String, String) {
    let rename = |file: &str, edit: &dyn Fn(&mut Value)| {
        let mut body: Value = serde_json::from_str(&fixture(file)).unwrap();
        body[0]["username"] = name.into();
        body[0]["user"]["username"] = name.into();
        edit(&mut body[0]["user"]);
        body.to_string()
    };
    let created = rename("marzban-0.8.4/user_created.json", &|_| {});
    let updated = rename("marzban-0.8.4/user_updated.json", &|user| {
        user["data_limit"] = (gib << 30).into();
        user["note"] = "harness main user".into();
    });
    (created, updated)
}

#[tokio::test]
async fn two_simultaneous_edits_of_one_user_each_show_the_change_since_the_other() {
    let discord = FakeDiscord::start().await;
    let (app, _dir) = spawn_app(&discord).await;
    let users: Vec<String> = (0..8).map(|i| format!("both{i}")).collect();
    for user in &users {
        assert_eq!(app.post(created_and_updated(user, 0).0).await.status(), 200);
    }
    discord.wait_for_embeds(users.len(), WAIT).await;
    // Each user's two edits (10 GiB → 20 GiB, and → 30 GiB) at once, all users together.
    let edits = users.iter().flat_map(|user| [created_and_updated(user, 20).1, created_and_updated(user, 30).1]);
    let answers = futures_util::future::join_all(edits.map(|body| app.post(body))).await;
    assert!(answers.iter().all(|answer| answer.status() == 200));
    let embeds = discord.wait_for_embeds(users.len() * 3, WAIT).await;
    for user in &users {
        // The first line of each edit's description: the change (the note, unchanged, follows).
        let mut changes: Vec<&str> = embeds
            .iter()
            .filter(|embed| embed.to_string().contains(user.as_str()))
            .filter_map(|embed| description(embed).lines().next())
            .filter(|change| change.contains("→"))
            .collect();
        changes.sort();
        let one_after_the_other = [
            ["**Data limit** 10 GiB → 20 GiB", "**Data limit** 20 GiB → 30 GiB"],
            ["**Data limit** 10 GiB → 30 GiB", "**Data limit** 30 GiB → 20 GiB"],
        ];
        assert!(one_after_the_other.iter().any(|pair| pair == changes.as_slice()), "{user}: {changes:?}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_state_too_large_to_keep_whole_claims_no_change_at_the_next_edit() {
    // A note of control characters: each takes six bytes once escaped in JSON, so the state as
    // kept (UserState::to_json) drops the protocols, then the note. The next edit, which only
    // adds usage, changed nothing a card shows: it must not claim them added.
    let discord = FakeDiscord::start().await;
    let (app, _dir) = spawn_app(&discord).await;
    let with_usage = |used: i64| {
        edited(|user| {
            user["note"] = "\u{1}".repeat(256).into();
            user["used_traffic"] = used.into();
        })
    };
    assert_eq!(app.post(with_usage(1 << 20)).await.status(), 200);
    discord.wait_for_embeds(1, WAIT).await;
    assert_eq!(app.post(with_usage(2 << 20)).await.status(), 200);
    let second = discord.wait_for_embeds(2, WAIT).await[1].clone();
    assert!(!description(&second).contains("→"), "no change since the edit before: {second:#}");
    app.stop().await;
}
