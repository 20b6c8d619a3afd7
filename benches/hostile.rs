//! Hostile load against the release binary as its own process, on loopback: what a stranger
//! without the secret can make it hold, and what a batch of millions of nothings costs.
//!
//! Run: `cargo bench --bench hostile` (about a minute). Reports, for 40 uploads whose
//! `x-webhook-secret` is shaped like an HMAC and that never finish (as Content-Length uploads of
//! 60 MiB − 1 byte and as chunked uploads streaming up to 60 MiB), how they were answered, whether
//! a panel posting every 100 ms with the raw secret was served every time, and the relay's peak
//! memory; then, for one request of 20 million `{}` with the secret, the time to answer, the size
//! of the answer, the lines logged and the peak memory.

#[path = "../tests/api/fake_discord.rs"]
mod fake_discord;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fake_discord::FakeDiscord;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SECRET: &str = "bench-secret";
const BINARY: &str = env!("CARGO_BIN_EXE_marzban-discord-relay");
const HMAC_SHAPED: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const UPLOAD: usize = 60 << 20;

struct Relay {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
    _data: tempfile::TempDir,
}

impl Relay {
    fn start(webhook_url: &str) -> Self {
        let data = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = data.path().join("relay.log");
        let child = Command::new(BINARY)
            .current_dir(data.path())
            .env_clear()
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("WEBHOOK_SECRET", SECRET)
            .env("DISCORD_WEBHOOK_URL", webhook_url)
            .env("RUST_LOG", "info")
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            .spawn()
            .unwrap();
        Self { child, port, log, _data: data }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn peak_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse::<f64>().unwrap() / 1024.0
    }

    fn log_lines(&self) -> usize {
        std::fs::read_to_string(&self.log).unwrap_or_default().lines().count()
    }

    async fn wait_ready(&self, client: &reqwest::Client) {
        while !client.get(self.url("/readyz")).send().await.is_ok_and(|r| r.status() == 200) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An upload that sends as much of its body as the relay takes, up to `UPLOAD` − 1 bytes, then
/// holds the connection open. Returns the status line the relay answered with, if any.
async fn never_finishing_upload(port: u16, chunked: bool) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let framing = if chunked { "Transfer-Encoding: chunked".to_owned() } else { format!("Content-Length: {UPLOAD}") };
    let head = format!("POST / HTTP/1.1\r\nHost: relay\r\nx-webhook-secret: {HMAC_SHAPED}\r\n{framing}\r\n\r\n");
    stream.write_all(head.as_bytes()).await.ok()?;
    let (mut reader, mut writer) = stream.into_split();
    let sender = tokio::spawn(async move {
        let chunk = vec![b'['; 64 << 10];
        let mut sent = 0;
        while sent + chunk.len() < UPLOAD {
            let wrote = if chunked {
                let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
                writer.write_all(&framed).await
            } else {
                writer.write_all(&chunk).await
            };
            if wrote.is_err() {
                return;
            }
            sent += chunk.len();
        }
        std::future::pending::<()>().await;
    });
    let mut answer = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(30), reader.read(&mut answer)).await;
    sender.abort();
    match read {
        Ok(Ok(n)) if n > 0 => String::from_utf8_lossy(&answer[..n]).lines().next().map(str::to_owned),
        _ => None,
    }
}

async fn strangers(discord: &FakeDiscord, client: &reqwest::Client, chunked: bool) {
    let relay = Relay::start(&discord.webhook_url());
    relay.wait_ready(client).await;
    let event =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/marzban-0.8.4/user_created.json"))
            .unwrap();

    let uploads: Vec<_> = (0..40).map(|_| tokio::spawn(never_finishing_upload(relay.port, chunked))).collect();
    let started = Instant::now();
    let (mut served, mut slowest) = (0, Duration::ZERO);
    for _ in 0..100 {
        let sent = Instant::now();
        let response = client.post(relay.url("/")).header("x-webhook-secret", SECRET).body(event.clone()).send().await;
        if response.is_ok_and(|r| r.status() == 200) {
            served += 1;
        }
        slowest = slowest.max(sent.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut answers = std::collections::BTreeMap::<String, usize>::new();
    for upload in uploads {
        let answer = upload.await.unwrap().unwrap_or_else(|| "no answer (held open, or timed out)".into());
        *answers.entry(answer).or_default() += 1;
    }
    let kind = if chunked { "chunked, streaming up to 60 MiB" } else { "Content-Length 60 MiB" };
    println!("40 unverified uploads ({kind}), over {:.1} s:", started.elapsed().as_secs_f64());
    for (answer, count) in answers {
        println!("  {count:>2} × {answer}");
    }
    println!("  panel with the raw secret: {served}/100 served, slowest {:.1} ms", slowest.as_secs_f64() * 1000.0);
    println!("  relay peak RSS: {:.1} MiB", relay.peak_mib());
}

async fn nothings(discord: &FakeDiscord, client: &reqwest::Client) {
    let relay = Relay::start(&discord.webhook_url());
    relay.wait_ready(client).await;
    let before = relay.log_lines();
    let count = 20_000_000;
    let mut body = Vec::with_capacity(count * 3 + 2);
    body.push(b'[');
    for i in 0..count {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(b"{}");
    }
    body.push(b']');
    let size = body.len();
    let started = Instant::now();
    let response = client
        .post(relay.url("/"))
        .header("x-webhook-secret", SECRET)
        .timeout(Duration::from_secs(300))
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let answer = response.bytes().await.unwrap();
    println!("20,000,000 × {{}} ({:.1} MB) with the secret:", size as f64 / 1e6);
    println!("  answered {status} in {:.2} s, answer {} bytes", started.elapsed().as_secs_f64(), answer.len());
    println!("  log lines written: {}", relay.log_lines() - before);
    println!("  relay peak RSS: {:.1} MiB", relay.peak_mib());
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let discord = FakeDiscord::start().await;
        let client = reqwest::Client::new();
        strangers(&discord, &client, false).await;
        strangers(&discord, &client, true).await;
        nothings(&discord, &client).await;
    });
}
