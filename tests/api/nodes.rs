//! Node watch against a fake panel API of each family: one message per outage, recovery, digests,
//! the panel unreachable, restarts, a hanging API, hostile names and an expired login.

use std::path::Path;
use std::time::Duration;

use crate::fake_discord::FakeDiscord;
use crate::fake_panel::{FakePanel, Shape, API_KEY};
use crate::helpers::{spawn_app_in, title, Options, TestApp, SETTLE};

const REFUSED: &str = "[Errno 111] Connection refused";

/// A relay delivering to `discord` and watching `panel` fast: a poll every 50 ms, down after 300 ms.
async fn watching(dir: &Path, discord: &FakeDiscord, panel: &FakePanel, shape: Shape) -> TestApp {
    watching_as(dir, discord, panel, shape, "eu").await
}

/// [`watching`], the panel labelled `label` (`PANEL_NAME`).
async fn watching_as(dir: &Path, discord: &FakeDiscord, panel: &FakePanel, shape: Shape, label: &str) -> TestApp {
    let options = Options::delivering_to(discord).var("PANEL_API_URL", &panel.url()).var("PANEL_NAME", label);
    let options = match shape {
        Shape::PasarGuard => options.var("PANEL_API_KEY", API_KEY),
        _ => options.var("PANEL_API_USERNAME", "admin").var("PANEL_API_PASSWORD", "s3cret-pw"),
    };
    let options = options.tweak(|config| {
        config.node_watch.poll_interval = Duration::from_millis(50);
        config.node_watch.down_after = Duration::from_millis(300);
        config.panel_api.as_mut().unwrap().timeout = Duration::from_millis(300);
        config.delivery.digest_window = Duration::from_millis(100);
    });
    spawn_app_in(dir, options).await
}

fn titles(discord: &FakeDiscord) -> Vec<String> {
    discord.embeds().iter().map(|embed| title(embed).to_owned()).collect()
}

async fn quiet_for(duration: Duration) {
    tokio::time::sleep(duration).await;
}

#[tokio::test]
async fn a_marzban_node_down_is_one_message_with_the_reason_then_its_recovery() {
    let (discord, panel) = (FakeDiscord::start().await, FakePanel::start(Shape::Marzban).await);
    panel.set_node(1, "de-fra-1", "connected", None);
    let dir = tempfile::tempdir().unwrap();
    let app = watching(dir.path(), &discord, &panel, Shape::Marzban).await;
    quiet_for(Duration::from_millis(300)).await;

    panel.set_node(1, "de-fra-1", "error", Some(REFUSED));
    let embeds = discord.wait_for_embeds(1, SETTLE).await;
    assert_eq!(title(&embeds[0]), "🔴 Node down: de-fra-1");
    assert!(embeds[0]["description"].as_str().unwrap().contains("Errno 111"), "{:?}", embeds[0]);
    quiet_for(Duration::from_secs(1)).await;
    assert_eq!(discord.embeds().len(), 1, "not repeated while it stays down: {:?}", titles(&discord));

    // The JWT is refused once: the relay logs in again and carries on.
    panel.revoke_token();
    panel.set_node(1, "de-fra-1", "connected", None);
    let embeds = discord.wait_for_embeds(2, SETTLE).await;
    assert_eq!(title(&embeds[1]), "🟢 Node back up: de-fra-1");
    assert_eq!(panel.logins(), 2, "one login at start, one after the 401");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("relay_node_up{panel=\"eu\",node=\"1\"} 1"), "{metrics}");
    assert!(metrics.contains("relay_node_outages_total{panel=\"eu\"} 1"), "{metrics}");
    assert!(!metrics.contains("s3cret-pw") && !metrics.contains("token-"), "nothing secret in the metrics");

    panel.remove_node(1);
    let embeds = discord.wait_for_embeds(3, SETTLE).await;
    assert_eq!(title(&embeds[2]), "➖ Node removed: de-fra-1");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(!metrics.contains("relay_node_up{"), "a removed node's series goes: {metrics}");
    app.stop().await;
}

#[tokio::test]
async fn twenty_pasarguard_nodes_down_together_are_one_digest() {
    let (discord, panel) = (FakeDiscord::start().await, FakePanel::start(Shape::PasarGuard).await);
    for id in 1..=20 {
        panel.set_node(id, &format!("node-{id:02}"), "connected", None);
    }
    let dir = tempfile::tempdir().unwrap();
    let app = watching(dir.path(), &discord, &panel, Shape::PasarGuard).await;
    quiet_for(Duration::from_millis(300)).await;
    for id in 1..=20 {
        panel.set_node(id, &format!("node-{id:02}"), "error", Some(REFUSED));
    }
    let embeds = discord.wait_for_embeds(1, SETTLE).await;
    quiet_for(Duration::from_millis(500)).await;
    assert_eq!(discord.messages().len(), 1, "one message: {:?}", titles(&discord));
    assert_eq!(title(&embeds[0]), "📋 20 nodes down");
    assert!(embeds[0]["description"].as_str().unwrap().contains("node-20"));
    assert!(!serde_json::to_string(&discord.messages()).unwrap().contains("node-secret-key"), "no node api_key");
    app.stop().await;
}

#[tokio::test]
async fn an_unreachable_marzneshin_panel_is_one_event_and_its_recovery_not_every_node_down() {
    let (discord, panel) = (FakeDiscord::start().await, FakePanel::start(Shape::Marzneshin).await);
    panel.set_node(1, "fi-1", "healthy", None);
    panel.set_node(2, "fi-2", "healthy", None);
    let dir = tempfile::tempdir().unwrap();
    let app = watching(dir.path(), &discord, &panel, Shape::Marzneshin).await;
    quiet_for(Duration::from_millis(300)).await;
    panel.set_down(true);
    let embeds = discord.wait_for_embeds(1, SETTLE).await;
    assert_eq!(title(&embeds[0]), "📡 Panel unreachable: eu");
    quiet_for(Duration::from_millis(800)).await;
    panel.set_down(false);
    let embeds = discord.wait_for_embeds(2, SETTLE).await;
    assert_eq!(title(&embeds[1]), "📶 Panel reachable again: eu");
    quiet_for(Duration::from_millis(300)).await;
    assert_eq!(titles(&discord).len(), 2, "no node was reported down: {:?}", titles(&discord));
    app.stop().await;
}

#[tokio::test]
async fn a_node_that_recovered_while_the_relay_was_stopped_gets_its_recovery_and_no_second_down() {
    let (discord, panel) = (FakeDiscord::start().await, FakePanel::start(Shape::Marzban).await);
    panel.set_node(7, "nl-7", "connected", None);
    let dir = tempfile::tempdir().unwrap();
    let app = watching(dir.path(), &discord, &panel, Shape::Marzban).await;
    quiet_for(Duration::from_millis(300)).await;
    panel.set_node(7, "nl-7", "connecting", Some("timed out"));
    discord.wait_for_embeds(1, SETTLE).await;
    app.stop().await;

    let app = watching(dir.path(), &discord, &panel, Shape::Marzban).await;
    quiet_for(Duration::from_millis(600)).await;
    assert_eq!(titles(&discord), ["🔴 Node down: nl-7"], "the outage is remembered, not sent again");
    panel.set_node(7, "nl-7", "connected", None);
    discord.wait_for_embeds(2, SETTLE).await;
    app.stop().await;
    let app = watching(dir.path(), &discord, &panel, Shape::Marzban).await;
    quiet_for(Duration::from_millis(400)).await;
    assert_eq!(titles(&discord), ["🔴 Node down: nl-7", "🟢 Node back up: nl-7"]);
    app.stop().await;
}

#[tokio::test]
async fn a_hanging_panel_api_never_holds_up_ingest_or_delivery() {
    let (discord, panel) = (FakeDiscord::start().await, FakePanel::start(Shape::Marzban).await);
    panel.set_node(1, "a", "connected", None);
    panel.set_delay(Duration::from_secs(3600));
    let dir = tempfile::tempdir().unwrap();
    let app = watching(dir.path(), &discord, &panel, Shape::Marzban).await;
    let answer = app.post(crate::helpers::fixture("marzban-0.8.4/user_created.json")).await;
    assert_eq!(answer.status(), 200);
    let embeds = discord.wait_for_embeds(1, SETTLE).await;
    assert!(title(&embeds[0]).starts_with("🆕 User created"), "the user event went out first: {:?}", title(&embeds[0]));
    let unreachable = discord.wait_for_embeds(2, SETTLE).await;
    assert_eq!(title(&unreachable[1]), "📡 Panel unreachable: eu", "the timeouts cut every call");
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200, "a slow panel is the panel's problem, not the relay's");
    app.stop().await;
}

#[tokio::test]
async fn hostile_node_names_are_escaped_like_usernames() {
    let (discord, panel) = (FakeDiscord::start().await, FakePanel::start(Shape::Marzban).await);
    let dir = tempfile::tempdir().unwrap();
    let app = watching(dir.path(), &discord, &panel, Shape::Marzban).await;
    quiet_for(Duration::from_millis(300)).await;
    panel.set_node(9, "@everyone **boss** <@&1> \u{202e}evil", "connected", None);
    let embeds = discord.wait_for_embeds(1, SETTLE).await;
    let shown = title(&embeds[0]);
    assert!(shown.starts_with("➕ Node added: "), "{shown}");
    assert!(!shown.contains("**boss**") && !shown.contains('\u{202e}'), "{shown}");
    assert!(discord.messages().iter().all(|m| m["allowed_mentions"]["parse"].as_array().is_none_or(|p| p.is_empty())));
    app.stop().await;
}

#[tokio::test]
async fn each_panel_with_an_api_has_its_own_watcher_and_its_events_carry_its_label() {
    let discord = FakeDiscord::start().await;
    let (eu, us) = (FakePanel::start(Shape::Marzban).await, FakePanel::start(Shape::PasarGuard).await);
    eu.set_node(1, "de-1", "connected", None);
    us.set_node(1, "ny-1", "connected", None);
    let dir = tempfile::tempdir().unwrap();
    let routes = dir.path().join("routes.toml");
    // `us` is watched through its API only (no secret: its webhooks go elsewhere); its downs also
    // go to an ops channel.
    let file = format!(
        "[panels.us]\napi_url = \"{}\"\napi_key = \"{API_KEY}\"\napi_family = \"pasarguard\"\napi_timeout = \"1s\"\n\n\
         [destinations.ops]\nurl = \"{}\"\n\n[[rules]]\nto = [\"default\"]\n\n\
         [[rules]]\npanels = [\"us\"]\nactions = [\"node_down\"]\nto = [\"ops\"]\n",
        us.url(),
        discord.webhook_url_for(4242),
    );
    std::fs::write(&routes, file).unwrap();
    let options = Options::delivering_to(&discord)
        .var("PANEL_API_URL", &eu.url())
        .var("PANEL_NAME", "eu")
        .var("PANEL_API_USERNAME", "admin")
        .var("PANEL_API_PASSWORD", "s3cret-pw")
        .var("ROUTES_FILE", routes.to_str().unwrap())
        .tweak(|config| {
            config.node_watch.poll_interval = Duration::from_millis(50);
            config.node_watch.down_after = Duration::from_millis(300);
        });
    let app = spawn_app_in(dir.path(), options).await;
    quiet_for(Duration::from_millis(300)).await;

    us.set_node(1, "ny-1", "error", Some(REFUSED));
    let ops = crate::helpers::poll_until("the us node_down in ops", || async {
        Some(discord.messages_to(4242)).filter(|messages| !messages.is_empty())
    })
    .await;
    let down = &ops[0]["embeds"][0];
    assert_eq!((title(down), down["footer"]["text"].as_str()), ("🔴 Node down: ny-1", Some("us")));
    eu.set_node(1, "de-1", "error", Some(REFUSED));
    crate::helpers::eventually(SETTLE, "both downs in the default channel", || {
        discord.embeds().iter().filter(|embed| title(embed).starts_with("🔴 Node down")).count() == 3
    })
    .await;
    let footers: Vec<(String, String)> = discord
        .embeds()
        .iter()
        .map(|embed| (title(embed).to_owned(), embed["footer"]["text"].as_str().unwrap_or_default().to_owned()))
        .collect();
    assert!(footers.contains(&("🔴 Node down: de-1".into(), "eu".into())), "{footers:?}");
    assert!(footers.contains(&("🔴 Node down: ny-1".into(), "us".into())), "{footers:?}");
    assert_eq!(discord.messages_to(4242).len(), 1, "only us goes to ops");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    for label in ["eu", "us"] {
        assert!(metrics.contains(&format!("relay_panel_api_up{{panel=\"{label}\"}} 1")), "{metrics}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_non_sudo_admin_reads_as_forbidden_not_as_a_refused_login() {
    let (discord, panel) = (FakeDiscord::start().await, FakePanel::start(Shape::Marzban).await);
    panel.set_node(1, "de-1", "connected", None);
    panel.set_not_sudo(true);
    let dir = tempfile::tempdir().unwrap();
    let app = watching(dir.path(), &discord, &panel, Shape::Marzban).await;
    let embeds = discord.wait_for_embeds(1, SETTLE).await;
    assert_eq!(title(&embeds[0]), "📡 Panel unreachable: eu");
    let shown = embeds[0].to_string();
    assert!(shown.contains("forbidden: the admin lacks rights"), "{shown}");
    assert!(!shown.contains("refused the login"), "{shown}");
    assert_eq!(panel.logins(), 1, "a 403 is not a stale token: no login again at each poll");
    app.stop().await;
}

/// The relay's outbox file in `dir`.
fn outbox_file(dir: &Path) -> std::path::PathBuf {
    dir.join("outbox.sqlite3")
}

const NODE_OUTAGES_TABLE: &str = "CREATE TABLE node_outages (panel TEXT NOT NULL, node_id INTEGER NOT NULL,
    name TEXT NOT NULL, started_at INTEGER NOT NULL, ended_at INTEGER, PRIMARY KEY (panel, node_id, started_at))
    WITHOUT ROWID";

#[tokio::test]
async fn a_watcher_that_cannot_read_its_stored_state_shows_in_readyz_as_stuck() {
    let (discord, panel) = (FakeDiscord::start().await, FakePanel::start(Shape::Marzban).await);
    panel.set_node(1, "de-1", "connected", None);
    let dir = tempfile::tempdir().unwrap();
    watching(dir.path(), &discord, &panel, Shape::Marzban).await.stop().await;
    // The state cannot be read: the watcher keeps trying to load it and never gets to a round.
    let conn = rusqlite::Connection::open(outbox_file(dir.path())).unwrap();
    conn.execute_batch("DROP TABLE node_watch").unwrap();
    let app = watching(dir.path(), &discord, &panel, Shape::Marzban).await;
    crate::helpers::poll_until("/readyz to name the stuck watcher", || async {
        let answer = app.get("/readyz").await;
        let status = answer.status();
        let text = answer.text().await.unwrap();
        (status == 503 && text.contains("task:nodes:eu is stuck")).then_some(())
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn events_are_counted_once_stored_not_at_each_round_that_failed_to_store_them() {
    let (discord, panel) = (FakeDiscord::start().await, FakePanel::start(Shape::Marzban).await);
    panel.set_node(1, "de-1", "connected", None);
    let dir = tempfile::tempdir().unwrap();
    let app = watching(dir.path(), &discord, &panel, Shape::Marzban).await;
    quiet_for(Duration::from_millis(300)).await;
    // Outages cannot be recorded: every round that finds the node down fails to store.
    let conn = rusqlite::Connection::open(outbox_file(dir.path())).unwrap();
    conn.execute_batch("DROP TABLE node_outages").unwrap();
    panel.set_node(1, "de-1", "error", Some(REFUSED));
    let metrics = || async { app.get("/metrics").await.text().await.unwrap() };
    crate::helpers::poll_until("rounds that find the node down", || async {
        metrics().await.contains("relay_nodes_down{panel=\"eu\"} 1").then_some(())
    })
    .await;
    quiet_for(Duration::from_millis(300)).await;
    let failing = metrics().await;
    assert!(!failing.contains("action=\"node_down\""), "not stored, not counted: {failing}");
    assert!(!failing.contains("relay_node_outages_total{panel=\"eu\"}"), "{failing}");
    assert!(discord.embeds().is_empty());

    conn.execute_batch(NODE_OUTAGES_TABLE).unwrap();
    discord.wait_for_embeds(1, SETTLE).await;
    quiet_for(Duration::from_millis(300)).await;
    let stored = metrics().await;
    assert!(stored.contains("relay_node_events_total{panel=\"eu\",action=\"node_down\"} 1"), "{stored}");
    assert!(stored.contains("relay_node_outages_total{panel=\"eu\"} 1"), "{stored}");
    app.stop().await;
}

#[tokio::test]
async fn a_panel_whose_label_changed_keeps_its_open_outages() {
    let (discord, panel) = (FakeDiscord::start().await, FakePanel::start(Shape::Marzban).await);
    panel.set_node(4, "fi-4", "connected", None);
    let dir = tempfile::tempdir().unwrap();
    let app = watching(dir.path(), &discord, &panel, Shape::Marzban).await;
    quiet_for(Duration::from_millis(300)).await;
    panel.set_node(4, "fi-4", "error", Some(REFUSED));
    discord.wait_for_embeds(1, SETTLE).await;
    app.stop().await;

    // PANEL_NAME changed while the node is down; it comes back under the new label.
    let app = watching_as(dir.path(), &discord, &panel, Shape::Marzban, "eu-west").await;
    quiet_for(Duration::from_millis(400)).await;
    panel.set_node(4, "fi-4", "connected", None);
    let embeds = discord.wait_for_embeds(2, SETTLE).await;
    assert_eq!(titles(&discord), ["🔴 Node down: fi-4", "🟢 Node back up: fi-4"], "no second down, one recovery");
    assert_eq!(embeds[1]["footer"]["text"], "eu-west");
    app.stop().await;
    let outbox = marzban_discord_relay::outbox::Outbox::open(dir.path()).unwrap();
    let outages = outbox.outages(0, i64::MAX).await.unwrap();
    assert_eq!(outages.len(), 1, "{outages:?}");
    assert_eq!(outages[0].panel.as_deref(), Some("eu-west"));
    assert!(outages[0].ended_ms.is_some(), "closed, not open forever under the old label");
}

#[tokio::test]
async fn a_renamed_node_keeps_its_forum_post() {
    let (discord, panel) = (FakeDiscord::start().await, FakePanel::start(Shape::Marzban).await);
    discord.forum_webhook_url(crate::fake_discord::WEBHOOK_ID);
    panel.set_node(2, "de-2", "connected", None);
    let dir = tempfile::tempdir().unwrap();
    let options = Options::delivering_to(&discord)
        .var("DISCORD_FORUM", "true")
        .var("PANEL_API_URL", &panel.url())
        .var("PANEL_NAME", "eu")
        .var("PANEL_API_USERNAME", "admin")
        .var("PANEL_API_PASSWORD", "s3cret-pw")
        .tweak(|config| {
            config.node_watch.poll_interval = Duration::from_millis(50);
            config.node_watch.down_after = Duration::from_millis(300);
        });
    let app = spawn_app_in(dir.path(), options).await;
    quiet_for(Duration::from_millis(300)).await;
    panel.set_node(2, "de-2", "error", Some(REFUSED));
    discord.wait_for_embeds(1, SETTLE).await;
    // Renamed on the panel while down (same id), then back up.
    panel.set_node(2, "de-frankfurt-2", "error", Some(REFUSED));
    quiet_for(Duration::from_millis(300)).await;
    panel.set_node(2, "de-frankfurt-2", "connected", None);
    let embeds = discord.wait_for_embeds(2, SETTLE).await;
    assert_eq!(title(&embeds[1]), "🟢 Node back up: de-frankfurt-2");
    let threads = discord.threads();
    assert_eq!(threads.len(), 1, "one post for the node: {:?}", threads.iter().map(|t| &t.name).collect::<Vec<_>>());
    assert_eq!(threads[0].messages.len(), 2);
    app.stop().await;
}

#[tokio::test]
async fn a_panel_whose_label_changed_posts_the_recovery_into_the_downs_forum_post() {
    let (discord, panel) = (FakeDiscord::start().await, FakePanel::start(Shape::Marzban).await);
    discord.forum_webhook_url(crate::fake_discord::WEBHOOK_ID);
    panel.set_node(4, "fi-4", "connected", None);
    let dir = tempfile::tempdir().unwrap();
    let start = |label: &str| {
        let options = Options::delivering_to(&discord)
            .var("DISCORD_FORUM", "true")
            .var("PANEL_API_URL", &panel.url())
            .var("PANEL_NAME", label)
            .var("PANEL_API_USERNAME", "admin")
            .var("PANEL_API_PASSWORD", "s3cret-pw")
            .tweak(|config| {
                config.node_watch.poll_interval = Duration::from_millis(50);
                config.node_watch.down_after = Duration::from_millis(300);
            });
        spawn_app_in(dir.path(), options)
    };
    let app = start("eu").await;
    quiet_for(Duration::from_millis(300)).await;
    panel.set_node(4, "fi-4", "error", Some(REFUSED));
    discord.wait_for_embeds(1, SETTLE).await;
    app.stop().await;

    // PANEL_NAME changed while the node is down; it comes back under the new label.
    let app = start("eu-west").await;
    quiet_for(Duration::from_millis(400)).await;
    panel.set_node(4, "fi-4", "connected", None);
    let embeds = discord.wait_for_embeds(2, SETTLE).await;
    assert_eq!(title(&embeds[1]), "🟢 Node back up: fi-4");
    let threads = discord.threads();
    assert_eq!(threads.len(), 1, "one post for the node: {:?}", threads.iter().map(|t| &t.name).collect::<Vec<_>>());
    assert_eq!(threads[0].messages.len(), 2);
    app.stop().await;
}
