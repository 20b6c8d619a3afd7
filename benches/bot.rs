//! The bot over the gateway: what it costs an idle relay, and how fast an interaction is
//! acknowledged when the panel is slow.
//!
//! The release binary runs as its own process twice, delivering to a fake Discord webhook: once
//! without the bot, once with `DISCORD_BOT_TOKEN` connected to a fake gateway (the fakes of
//! `tests/api/fake_bot_peers.rs`, in this process) and a panel API that takes 10 s for every user
//! call. Prints the idle RSS of both (2 s after ready, or after the gateway session is live), then
//! sends `/user alice` five times over the gateway and prints, for each, the time from the
//! INTERACTION_CREATE leaving the fake gateway to the callback arriving (the acknowledgement:
//! Discord wants it within 3 s) and to the deferred response's edit (the card).
//!
//! Run: `cargo bench --bench bot`.

#[path = "../tests/api/fake_bot_more.rs"]
mod fake_bot_more;
#[path = "../tests/api/fake_bot_peers.rs"]
mod fake_bot_peers;
#[path = "../tests/api/fake_discord.rs"]
mod fake_discord;
#[path = "../tests/api/fake_panel.rs"]
mod fake_panel;
#[path = "common/relay.rs"]
mod relay;

use std::time::{Duration, Instant};

use fake_bot_peers::{FakeGateway, FakePanel, FakeRest, GatewayCommand, GATEWAY_TOKEN, PANEL_PASSWORD, PANEL_USER};
use fake_discord::FakeDiscord;
use relay::Relay;
use serde_json::{json, Value};

const BINARY: &str = env!("CARGO_BIN_EXE_marzban-discord-relay");
const PANEL_DELAY: Duration = Duration::from_secs(10);
const INTERACTIONS: usize = 5;

fn memory_mib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<f64>().unwrap() / 1024.0
}

fn command(id: usize) -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/discord-interactions/command_user.json");
    let mut command: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    command["id"] = json!((1_300_000_000_000_100_000u64 + id as u64).to_string());
    command
}

async fn poll<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

async fn connected(relay: &Relay, client: &reqwest::Client) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = client.get(relay.url("/metrics")).send().await.unwrap().text().await.unwrap();
        if text.lines().any(|line| line == "relay_discord_gateway_connected 1") {
            return;
        }
        assert!(Instant::now() < deadline, "the gateway session never became live");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let client = reqwest::Client::new();
    let discord = FakeDiscord::start().await;
    let webhook = discord.webhook_url();

    let plain = Relay::start(BINARY, &[("DISCORD_WEBHOOK_URL", &webhook), ("RUST_LOG", "warn")]);
    plain.ready(&client).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let without = memory_mib(plain.pid(), "VmRSS:");
    drop(plain);

    let (panel, rest, gateway) = (FakePanel::start().await, FakeRest::start().await, FakeGateway::start().await);
    panel.state.lock().unwrap().delay = PANEL_DELAY;
    rest.use_gateway(&gateway);
    let env = [
        ("DISCORD_WEBHOOK_URL", webhook.as_str()),
        ("RUST_LOG", "warn"),
        ("DISCORD_BOT_TOKEN", GATEWAY_TOKEN),
        ("DISCORD_APPLICATION_ID", "1234567890123456789"),
        ("DISCORD_API_BASE", &rest.base()),
        ("DISCORD_ACTORS", "role:1400000000000000001"),
        ("PANEL_API_URL", &panel.url()),
        ("PANEL_API_USERNAME", PANEL_USER),
        ("PANEL_API_PASSWORD", PANEL_PASSWORD),
        ("PANEL_API_FAMILY", "marzban"),
    ];
    let bot = Relay::start(BINARY, &env);
    bot.ready(&client).await;
    connected(&bot, &client).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let with = memory_mib(bot.pid(), "VmRSS:");

    println!("binary: {BINARY}");
    println!("idle RSS without the bot:              {without:.1} MiB (target 15)");
    println!("idle RSS with the bot on the gateway:  {with:.1} MiB (target 25)");

    let sent: Vec<(String, Instant)> = (0..INTERACTIONS)
        .map(|n| {
            let interaction = command(n);
            let id = interaction["id"].as_str().unwrap().to_owned();
            assert!(gateway.send(GatewayCommand::Dispatch("INTERACTION_CREATE", interaction)));
            (id, Instant::now())
        })
        .collect();
    let mut acks = Vec::new();
    for (id, at) in &sent {
        let (_, body) = poll("the callback", || rest.callbacks().into_iter().find(|(called, _)| called == id)).await;
        acks.push((at.elapsed(), body["type"].as_u64()));
    }
    let edits = poll("every card edited in", || {
        let calls = rest.calls();
        let edits = calls.iter().filter(|call| call.method == "PATCH").count();
        (edits == INTERACTIONS).then(|| sent[0].1.elapsed())
    })
    .await;
    for (n, (ack, kind)) in acks.iter().enumerate() {
        println!(
            "interaction {n}: acknowledged (type {}) after {:.0} ms",
            kind.unwrap_or_default(),
            ack.as_secs_f64() * 1e3
        );
    }
    let slowest = acks.iter().map(|(ack, _)| *ack).max().unwrap();
    println!(
        "slowest acknowledgement: {:.0} ms (target under 3000; panel takes {PANEL_DELAY:?})",
        slowest.as_secs_f64() * 1e3
    );
    println!("all {INTERACTIONS} cards edited in after {:.1} s", edits.as_secs_f64());
    println!("RSS after the interactions: {:.1} MiB", memory_mib(bot.pid(), "VmRSS:"));
}
