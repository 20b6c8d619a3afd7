//! The binary's commands, run as a user would run them.

use std::process::{Command, Output};

use crate::fake_discord::FakeDiscord;
use crate::helpers::{refusing_port, spawn_app};

/// Runs the relay's binary in an empty folder (so no `.env` is read) with only `vars` set.
pub fn relay(args: &[&str], vars: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_marzban-discord-relay"))
        .args(args)
        .current_dir(dir.path())
        .env_clear()
        .envs(vars.iter().copied())
        .output()
        .expect("the binary runs")
}

/// What `render` printed: each request body with the destination named on the line before it
/// (`# to destination NAME`), split as docs/TEMPLATES.md says to.
pub fn rendered(stdout: &[u8]) -> Vec<(String, serde_json::Value)> {
    let text = std::str::from_utf8(stdout).expect("render prints UTF-8");
    let mut messages: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        match line.strip_prefix("# to destination ") {
            Some(name) => messages.push((name.to_owned(), String::new())),
            None => {
                let (_, body) = messages.last_mut().unwrap_or_else(|| panic!("a body before its destination: {text}"));
                body.push_str(line);
                body.push('\n');
            }
        }
    }
    messages
        .into_iter()
        .map(|(name, body)| {
            let body = serde_json::from_str(&body).unwrap_or_else(|err| panic!("{err}: {body}"));
            (name, body)
        })
        .collect()
}

/// The one message `render` printed, to the default destination.
pub fn rendered_one(stdout: &[u8]) -> serde_json::Value {
    let mut messages = rendered(stdout);
    assert_eq!(messages.len(), 1, "{messages:?}");
    let (destination, body) = messages.remove(0);
    assert_eq!(destination, "default");
    body
}

#[tokio::test]
async fn healthcheck_succeeds_against_a_running_relay_and_fails_without_one() {
    let discord = FakeDiscord::start().await;
    let (app, _dir) = spawn_app(&discord).await;
    let port = app.address.rsplit(':').next().unwrap().to_owned();

    let listen = format!("127.0.0.1:{port}");
    let output =
        tokio::task::spawn_blocking(move || relay(&["healthcheck"], &[("LISTEN_ADDR", &listen)])).await.unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    app.stop().await;

    // Not the stopped relay's port: another test's relay could be listening there by now.
    let nothing = refusing_port().await;
    let listen = format!("0.0.0.0:{nothing}");
    let output =
        tokio::task::spawn_blocking(move || relay(&["healthcheck"], &[("LISTEN_ADDR", &listen)])).await.unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains(&format!("http://127.0.0.1:{nothing}/healthz")));
}

#[test]
fn refuses_to_start_with_a_webhook_but_no_secret() {
    let output = relay(&["serve"], &[("DISCORD_WEBHOOK_URL", "https://discord.com/api/webhooks/1/abc")]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("DISCORD_WEBHOOK_URL is set but WEBHOOK_SECRET is not"), "{stderr}");
}

#[test]
fn names_a_malformed_webhook_url_without_its_token() {
    let output = relay(
        &["serve"],
        &[("DISCORD_WEBHOOK_URL", "https://discord.com/webhooks/1/TOKEN123"), ("WEBHOOK_SECRET", "s")],
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("DISCORD_WEBHOOK_URL is not a usable webhook URL"), "{stderr}");
    assert!(!stderr.contains("TOKEN123"), "{stderr}");
}

#[tokio::test]
async fn send_test_posts_a_sample_to_each_destination_and_reports() {
    let discord = crate::fake_discord::FakeDiscord::start().await;
    let url = discord.webhook_url();
    let vars = [("DISCORD_WEBHOOK_URL", url.clone()), ("WEBHOOK_SECRET", "s".to_owned())];
    let run = move |args: &'static [&'static str]| {
        let vars = vars.clone();
        tokio::task::spawn_blocking(move || {
            let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
            relay(args, &vars)
        })
    };

    let output = run(&["send-test"]).await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(stdout.starts_with("default: delivered to http://127.0.0.1:"), "{stdout}");
    assert!(!stdout.contains(crate::fake_discord::WEBHOOK_TOKEN), "{stdout}");
    assert_eq!(discord.embeds()[0]["title"], "🆕 User created: alice");

    discord.script([crate::fake_discord::Reply::not_found()]);
    let output = run(&["send-test", "--action", "user_expired"]).await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("not delivered") && stdout.contains("Gone { status: 404"), "{stdout}");
}

/// `check` and `render` only preview: a routes file with destinations and no `WEBHOOK_SECRET` is
/// no reason to refuse them, while `serve` still refuses and names the routes file as the cause.
#[test]
fn check_and_render_preview_without_a_secret_but_serve_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let routes = dir.path().join("routes.toml");
    std::fs::write(
        &routes,
        "[destinations.audit]\nurl = \"https://discord.com/api/webhooks/1/abc\"\n[[rules]]\nto = [\"audit\"]\n",
    )
    .unwrap();
    let vars = [("ROUTES_FILE", routes.to_str().unwrap())];

    let check = relay(&["check"], &vars);
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&check.stderr));
    assert!(stdout.contains("warning: serve would refuse to start: ROUTES_FILE has destinations"), "{stdout}");

    let render = relay(&["render", "--action", "user_created"], &vars);
    let stdout = String::from_utf8_lossy(&render.stdout);
    assert_eq!(render.status.code(), Some(0), "{}", String::from_utf8_lossy(&render.stderr));
    assert!(stdout.contains("User created"), "{stdout}");

    let serve = relay(&["serve"], &vars);
    assert_eq!(serve.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&serve.stderr);
    assert!(stderr.contains("ROUTES_FILE has destinations but WEBHOOK_SECRET is not"), "{stderr}");
    assert!(!stderr.contains("DISCORD_WEBHOOK_URL is set"), "{stderr}");
}
