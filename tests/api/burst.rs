//! One change reads as one message: a burst the panel sends over several requests is gathered
//! into one digest run whose every part gives the burst's total and its place among all parts, and
//! an edit that changes a user's status is one embed, not `user_updated` plus the status event.

use std::time::Duration;

use crate::fake_discord::FakeDiscord;
use crate::helpers::{batch_of, eventually, fixture, spawn_app_in, title, Options};

const WAIT: Duration = Duration::from_secs(30);

/// The names listed in every digest embed Discord got.
fn listed(discord: &FakeDiscord) -> Vec<String> {
    let embeds = discord.embeds();
    let descriptions = embeds.iter().map(|e| e["description"].as_str().unwrap_or_default().to_owned());
    descriptions.flat_map(|d| d.split(", ").map(str::to_owned).collect::<Vec<_>>()).collect()
}

#[tokio::test]
async fn a_burst_sent_fifty_per_request_reads_as_one_burst() {
    // Arrange
    let discord = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    // A window the ten requests arrive well within, even on a loaded machine.
    let app = spawn_app_in(dir.path(), Options::delivering_to(&discord).var("DIGEST_WINDOW", "6s")).await;

    // Act: 500 expiries as PasarGuard sends them, 50 per request.
    for request in 0..10 {
        let body = batch_of("user_expired", 50, &format!("expired_{request}_"), |_, _| {});
        assert_eq!(app.post(body).await.status(), 200);
    }

    // Assert
    eventually(WAIT, "all 500 users listed", || listed(&discord).len() >= 500).await;
    let titles: Vec<String> = discord.embeds().iter().map(|e| title(e).to_owned()).collect();
    let parts = titles.len();
    assert!(parts > 1, "{titles:?}");
    let expected: Vec<String> = (1..=parts).map(|part| format!("📋 500 users expired ({part}/{parts})")).collect();
    assert_eq!(titles, expected, "one burst: its total in every part, parts numbered across it");
    let mut names = listed(&discord);
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 500, "every user listed once");
    app.stop().await;
}

#[tokio::test]
async fn a_burst_is_not_held_once_its_window_is_off() {
    let discord = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(dir.path(), Options::delivering_to(&discord).var("DIGEST_WINDOW", "0")).await;

    assert_eq!(app.post(batch_of("user_expired", 40, "expired_", |_, _| {})).await.status(), 200);

    eventually(WAIT, "the 40 users listed", || listed(&discord).len() >= 40).await;
    assert_eq!(discord.embeds().iter().map(|e| title(e).to_owned()).collect::<Vec<_>>(), ["📋 40 users expired"]);
    app.stop().await;
}

/// The titles Discord got for Marzban's `user_disabled` capture (`user_updated` + `user_disabled`
/// of one edit), then for a `user_created`, with `FOLD_UPDATES` set to `fold`.
async fn titles_of_an_edit_that_disables(fold: &str) -> Vec<String> {
    let discord = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(dir.path(), Options::delivering_to(&discord).var("FOLD_UPDATES", fold)).await;
    assert_eq!(app.post(fixture("marzban-0.8.4/user_disabled.json")).await.status(), 200);
    // A later event: once it is delivered, everything before it is.
    assert_eq!(app.post(fixture("marzban-0.8.4/user_created.json")).await.status(), 200);
    eventually(WAIT, "the user_created embed", || {
        discord.embeds().iter().any(|e| title(e).contains("created") || title(e).contains("Created"))
    })
    .await;
    let titles = discord.embeds().iter().map(|e| title(e).to_owned()).collect();
    app.stop().await;
    titles
}

#[tokio::test]
async fn an_edit_that_disables_a_user_is_one_embed_unless_folding_is_off() {
    let unfolded = titles_of_an_edit_that_disables("false").await;
    assert_eq!(unfolded.len(), 3, "{unfolded:?}");
    let folded = titles_of_an_edit_that_disables("true").await;
    assert_eq!(folded, unfolded[1..], "only the status event's embed");
    assert!(folded[0].contains("disabled") || folded[0].contains("Disabled"), "{folded:?}");
}

#[tokio::test]
async fn a_ping_says_why_and_rides_only_on_the_embeds_that_asked_for_it() {
    // Arrange: data-limit events ping Support; new users go to the same channel plainly.
    let discord = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let routes = dir.path().join("routes.toml");
    let file = format!(
        r#"
[destinations.main]
url = "{url}"

[[rules]]
actions = ["user_limited"]
to = ["main"]
mention_roles = ["777777777777777777"]

[[rules]]
actions = ["user_created"]
to = ["main"]
"#,
        url = discord.webhook_url()
    );
    std::fs::write(&routes, file).unwrap();
    let options =
        Options::new().var("WEBHOOK_SECRET", crate::helpers::SECRET).var("ROUTES_FILE", routes.to_str().unwrap());
    let app = spawn_app_in(dir.path(), options).await;
    let one = |name: &str, user: &str| -> serde_json::Value {
        serde_json::from_str::<Vec<serde_json::Value>>(&batch_of(name, 1, user, |_, _| {})).unwrap().remove(0)
    };
    let body = vec![
        one("user_created", "new_a"),
        one("user_limited", "full_b"),
        one("user_limited", "full_c"),
        one("user_created", "new_d"),
    ];

    // Act
    assert_eq!(app.post(serde_json::to_string(&body).unwrap()).await.status(), 200);

    // Assert
    eventually(WAIT, "four embeds", || discord.embeds().len() >= 4).await;
    let messages = discord.messages();
    assert_eq!(messages.len(), 3, "plain, pinging, plain: {messages:#?}");
    let pinging = &messages[1];
    let titles: Vec<&str> = pinging["embeds"].as_array().unwrap().iter().map(title).collect();
    assert_eq!(titles.len(), 2);
    assert!(titles.iter().all(|t| t.contains("full")), "{titles:?}");
    assert_eq!(pinging["content"], format!("<@&777777777777777777> — {}", titles.join(" · ")));
    assert_eq!(pinging["allowed_mentions"]["roles"], serde_json::json!(["777777777777777777"]));
    for plain in [&messages[0], &messages[2]] {
        assert!(plain["content"].is_null(), "no ping on new users: {plain}");
        assert_eq!(plain["allowed_mentions"]["roles"], serde_json::json!([]));
    }
    app.stop().await;
}
