//! Spawning the relay for a test: port 0, its own data folder, a fake Discord, shrunk delays, and
//! the test's own log lines captured so it can check what was logged.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use marzban_discord_relay::config::Config;
use marzban_discord_relay::startup::Application;
use tempfile::TempDir;
use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::fake_discord::FakeDiscord;

pub const SECRET: &str = "test-secret-7f3a9c";

/// How long a test waits for the relay to settle what it was given before it fails: generous, so
/// only a relay that never gets there fails.
pub const SETTLE: Duration = Duration::from_secs(30);

/// A relay running for one test.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

/// How to start a relay: environment variables plus direct tweaks of the parsed config.
pub struct Options {
    pub vars: HashMap<String, String>,
    pub tweak: Box<dyn FnOnce(&mut Config)>,
}

impl Options {
    /// Secret set, delivering to `discord`, delays shrunk to milliseconds.
    pub fn delivering_to(discord: &FakeDiscord) -> Self {
        Self::new().var("WEBHOOK_SECRET", SECRET).var("DISCORD_WEBHOOK_URL", &discord.webhook_url())
    }

    /// No variables at all (a dry run), delays shrunk.
    pub fn new() -> Self {
        Self { vars: HashMap::new(), tweak: Box::new(|_| {}) }
    }

    pub fn var(mut self, name: &str, value: &str) -> Self {
        self.vars.insert(name.to_owned(), value.to_owned());
        self
    }

    /// Changes the parsed configuration after the test delays are applied.
    pub fn tweak(mut self, tweak: impl FnOnce(&mut Config) + 'static) -> Self {
        let before = self.tweak;
        self.tweak = Box::new(move |config| {
            before(config);
            tweak(config);
        });
        self
    }
}

/// Starts a relay delivering to `discord`, in a new data folder.
pub async fn spawn_app(discord: &FakeDiscord) -> (TestApp, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(dir.path(), Options::delivering_to(discord)).await;
    (app, dir)
}

/// Starts a relay with `options`, storing its outbox in `data_dir` (reused across restarts).
pub async fn spawn_app_in(data_dir: &Path, options: Options) -> TestApp {
    assert_eq!(
        Handle::current().runtime_flavor(),
        RuntimeFlavor::CurrentThread,
        "the relay's tasks must run on the test's own thread for its logs to be captured"
    );
    init_logging();
    let lines = this_tests_lines();
    let mut vars = options.vars;
    vars.entry("DATA_DIR".into()).or_insert_with(|| data_dir.display().to_string());
    vars.entry("TEMPLATES_DIR".into()).or_insert_with(|| data_dir.join("no-templates").display().to_string());
    let mut config = Config::from_vars(&vars).expect("test configuration is valid");
    shrink_delays(&mut config, !vars.contains_key("RETRY_SCHEDULE"));
    (options.tweak)(&mut config);

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let application = Application::build_with_worker_start(config, listener, move || route_here(lines.clone()))
        .await
        .expect("the relay builds");
    let address = format!("http://127.0.0.1:{}", application.port());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(application.run_until_stopped(shutdown.clone()));
    TestApp { address, client: reqwest::Client::new(), shutdown, task }
}

fn shrink_delays(config: &mut Config, schedule: bool) {
    let ms = Duration::from_millis;
    let delivery = &mut config.delivery;
    if schedule {
        delivery.retry_schedule = vec![ms(50), ms(100), ms(200)];
    }
    delivery.ban_cooldown = ms(1500);
    delivery.idle_poll = ms(200);
    delivery.pause_reminder = ms(500);
    delivery.shutdown_grace = ms(500);
}

impl TestApp {
    /// POSTs `body` to `/` with the test secret.
    pub async fn post(&self, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.post_to("/", body, Some(SECRET)).await
    }

    /// POSTs `body` to `path` with `secret` in `x-webhook-secret` (none: no header).
    pub async fn post_to(&self, path: &str, body: impl Into<reqwest::Body>, secret: Option<&str>) -> reqwest::Response {
        let mut request = self.client.post(format!("{}{path}", self.address)).body(body);
        if let Some(secret) = secret {
            request = request.header("x-webhook-secret", secret);
        }
        request.send().await.expect("the relay answers")
    }

    /// The port the relay listens on.
    pub fn port(&self) -> u16 {
        self.address.rsplit(':').next().and_then(|p| p.parse().ok()).expect("the address ends with a port")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(format!("{}{path}", self.address)).send().await.expect("the relay answers")
    }

    /// The sum of `/metrics`' `relay_pending_rows` over every destination.
    pub async fn pending_rows(&self) -> f64 {
        let text = self.get("/metrics").await.text().await.unwrap();
        text.lines()
            .filter(|line| line.starts_with("relay_pending_rows{"))
            .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum()
    }

    /// Waits until no row is pending: everything stored so far was delivered or is a dead letter.
    pub async fn wait_until_settled(&self) {
        poll_until("no pending rows", || async { (self.pending_rows().await == 0.0).then_some(()) }).await;
    }

    /// Stops the relay as SIGTERM would, and waits for it.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap().unwrap();
    }
}

/// Sends `head` then `body` as raw bytes on a new connection to 127.0.0.1:`port` and returns the
/// start of the answer (empty when the connection closed without one). Blocking: call it from
/// `spawn_blocking`.
pub fn raw_exchange(port: u16, head: &[u8], body: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    stream.write_all(head).unwrap();
    stream.write_all(body).unwrap();
    let mut answer = [0u8; 64];
    let read = stream.read(&mut answer).unwrap_or(0);
    String::from_utf8_lossy(&answer[..read]).into_owned()
}

/// The head of a POST to `/` with the test secret, announcing `length` bytes of body.
pub fn post_head(length: usize) -> String {
    format!("POST / HTTP/1.1\r\nHost: relay\r\nx-webhook-secret: {SECRET}\r\nContent-Length: {length}\r\n\r\n")
}

/// The text of a fixture in `tests/fixtures/`.
pub fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// Every Marzban 0.8.4 fixture, by file name.
pub fn marzban_fixtures() -> Vec<(String, String)> {
    fixtures_in(MARZBAN)
}

/// The folders of `tests/fixtures/` holding real captures, one per panel.
pub const MARZBAN: &str = "marzban-0.8.4";
pub const PASARGUARD: &str = "pasarguard-5.2.1";
pub const MARZNESHIN: &str = "marzneshin-0.7.4";

/// Every request body (`.json` file) of the capture folder `panel`, by file name, in file order.
pub fn fixtures_in(panel: &str) -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(panel);
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".json"))
        .collect();
    names.sort();
    names.into_iter().map(|name| (name.clone(), fixture(&format!("{panel}/{name}")))).collect()
}

/// Every real request body of the three panels, named `<folder>/<file>`.
pub fn every_capture() -> Vec<(String, String)> {
    [MARZBAN, PASARGUARD, MARZNESHIN]
        .into_iter()
        .flat_map(|panel| fixtures_in(panel).into_iter().map(move |(name, body)| (format!("{panel}/{name}"), body)))
        .collect()
}

/// The one capture of `panel` whose file name starts with `prefix` (`"005"`).
pub fn capture(panel: &str, prefix: &str) -> String {
    let mut found = fixtures_in(panel).into_iter().filter(|(name, _)| name.starts_with(prefix));
    let (_, body) = found.next().unwrap_or_else(|| panic!("no capture {prefix} in {panel}"));
    assert!(found.next().is_none(), "more than one capture {prefix} in {panel}");
    body
}

/// Posts every capture of `panel` in order, checking each is wholly accepted as `expected` says
/// (capture number, titles of its events), and returns the embeds Discord got for all of them.
pub async fn deliver_every_capture(panel: &str, expected: &[(&str, &[&str])]) -> Vec<serde_json::Value> {
    let discord = crate::fake_discord::FakeDiscord::start().await;
    let (app, _dir) = spawn_app(&discord).await;
    let captures = fixtures_in(panel);
    let numbers: Vec<&str> = expected.iter().map(|(number, _)| *number).collect();
    let names: Vec<&str> = captures.iter().map(|(name, _)| &name[..3]).collect();
    assert_eq!(names, numbers, "an expectation for every capture");
    let mut titles: Vec<&str> = Vec::new();
    for ((name, body), (_, events)) in captures.iter().zip(expected) {
        let response = app.post(body.clone()).await;
        assert_eq!(response.status(), 200, "{name}");
        let receipt: serde_json::Value = response.json().await.unwrap();
        let counts = [&receipt["accepted"], &receipt["rejected"], &receipt["duplicates"]].map(|n| n.as_u64());
        assert_eq!(counts, [Some(events.len() as u64), Some(0), Some(0)], "{name}: {receipt}");
        titles.extend(events.iter());
    }
    let embeds = discord.wait_for_embeds(titles.len(), SETTLE).await;
    let got: Vec<&str> = embeds.iter().map(title).collect();
    assert_eq!(got, titles, "in the order received");
    assert_eq!(discord.count_status(400), 0, "nothing over Discord's limits");
    for embed in &embeds {
        assert!(embed["timestamp"].is_string(), "{}: a timestamp", title(embed));
    }
    app.stop().await;
    embeds
}

/// An embed's title ("" without one).
pub fn title(embed: &serde_json::Value) -> &str {
    embed["title"].as_str().unwrap_or_default()
}

/// The value of the embed's field called `name`, if it has one.
pub fn field<'a>(embed: &'a serde_json::Value, name: &str) -> Option<&'a str> {
    let bare = |text: &str| text.replace(['\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}'], "");
    embed["fields"].as_array()?.iter().find(|f| f["name"].as_str().is_some_and(|n| bare(n) == name))?["value"].as_str()
}

/// The embed whose title is `wanted`; panics listing the titles there are.
pub fn embed_titled<'a>(embeds: &'a [serde_json::Value], wanted: &str) -> &'a serde_json::Value {
    embeds.iter().find(|e| title(e) == wanted).unwrap_or_else(|| {
        let titles: Vec<&str> = embeds.iter().map(title).collect();
        panic!("no embed titled {wanted:?} among {titles:?}")
    })
}

// ---------------------------------------------------------------------------------------------
// Log capture: each test sees only its own lines. The `log` crate has one logger for the whole
// binary, so it routes each record by a thread-local buffer. A test's thread has one, and its
// current-thread runtime runs the relay's startup and delivery tasks there; the relay's HTTP worker
// threads get the same buffer as they start (`Application::build_with_worker_start`), and a line
// from a runtime's blocking pool is handed to that runtime to record. Lines from threads outside
// any runtime and test (the outbox's writer thread) are kept by none. `TEST_LOG=1` prints every
// line.

static INIT: Once = Once::new();

/// One test's log lines.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<String>>>);

thread_local! {
    static LINES: RefCell<Option<Lines>> = const { RefCell::new(None) };
}

impl Lines {
    fn push(&self, line: String) {
        self.0.lock().unwrap().push(line);
    }
}

/// The lines of the test running on this thread.
fn this_tests_lines() -> Lines {
    LINES.with(|lines| lines.borrow_mut().get_or_insert_with(Lines::default).clone())
}

/// Sends what this thread logs to `lines`.
fn route_here(lines: Lines) {
    LINES.with(|slot| *slot.borrow_mut() = Some(lines));
}

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.target().starts_with("marzban_discord_relay") || metadata.target() == "dry_run"
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = format!("{} {}: {}", record.level(), record.target(), record.args());
        if std::env::var_os("TEST_LOG").is_some() {
            eprintln!("{line}");
        }
        match LINES.try_with(|lines| lines.borrow().clone()).ok().flatten() {
            Some(lines) => lines.push(line),
            // A thread of a runtime's blocking pool (the relay parses, renders and routes there):
            // the line goes to the test whose thread runs that runtime.
            None => {
                if let Ok(runtime) = Handle::try_current() {
                    runtime
                        .spawn(async move { LINES.with(|lines| lines.borrow().clone()).map(|lines| lines.push(line)) });
                }
            }
        }
    }

    fn flush(&self) {}
}

/// Installs the logger (once) and starts capturing this thread's test's lines.
pub fn init_logging() {
    INIT.call_once(|| {
        log::set_logger(&Capture).unwrap();
        log::set_max_level(log::LevelFilter::Debug);
    });
    this_tests_lines();
}

/// Every line this test's relays logged so far.
pub fn logs() -> Vec<String> {
    this_tests_lines().0.lock().unwrap().clone()
}

/// Calls `probe` every 20 ms until it gives a value; panics after [`SETTLE`].
pub async fn poll_until<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + SETTLE;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(std::time::Instant::now() < deadline, "timed out after {SETTLE:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `condition` holds, checking every 20 ms; panics after `timeout`.
pub async fn eventually(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + timeout;
    while !condition() {
        assert!(std::time::Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The relay's binary running `serve` as its own process, logging to a file. Killed (and reaped)
/// when dropped, so a failing test leaves no relay behind.
pub struct Process {
    child: Child,
    pub port: u16,
    log: PathBuf,
}

impl Process {
    /// Starts `serve` in `dir` with only `vars` set, on 127.0.0.1 port 0, and waits until it
    /// listens: the port it got is read from its log. A restart in the same `dir` appends to the
    /// same log.
    pub async fn start(dir: &Path, vars: &[(&str, &str)]) -> Self {
        let log = dir.join("relay.log");
        let earlier = std::fs::read_to_string(&log).map_or(0, |text| text.len());
        // Whatever else the test wants logged, the line that names the port is logged.
        let rust_log = vars.iter().find(|(name, _)| *name == "RUST_LOG").map_or("info", |(_, value)| value);
        let child = Command::new(env!("CARGO_BIN_EXE_marzban-discord-relay"))
            .current_dir(dir)
            .env_clear()
            .envs(vars.iter().copied())
            .env("LISTEN_ADDR", "127.0.0.1:0")
            .env("RUST_LOG", format!("{rust_log},marzban_discord_relay::startup=info"))
            .stderr(std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap())
            .spawn()
            .unwrap();
        let mut process = Self { child, port: 0, log };
        process.port = process.wait_for_port(earlier).await;
        process
    }

    /// The port in the first "listening on port" line after byte `from` of the log.
    async fn wait_for_port(&mut self, from: usize) -> u16 {
        let deadline = std::time::Instant::now() + SETTLE;
        loop {
            let log = self.log();
            let port = log.get(from..).and_then(|log| log.split("listening on port ").nth(1)).and_then(|rest| {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                digits.parse().ok()
            });
            if let Some(port) = port {
                return port;
            }
            let exited = self.child.try_wait().unwrap();
            assert!(exited.is_none(), "the relay exited ({exited:?}) before listening:\n{log}");
            assert!(std::time::Instant::now() < deadline, "the relay did not listen:\n{log}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The relay's address.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends the signal `name` (`TERM`, `HUP`, `KILL`). A signal the relay handles is sent only once
    /// the relay has its handler in place, so it is never taken for the default action.
    pub async fn signal(&self, name: &str) {
        let number = match name {
            "HUP" => Some(1),
            "INT" => Some(2),
            "TERM" => Some(15),
            _ => None,
        };
        if let Some(number) = number {
            let what = format!("the relay to handle SIG{name}");
            eventually(SETTLE, &what, || caught_signals(self.pid()) & (1 << (number - 1)) != 0).await;
        }
        let status = Command::new("kill").args(["-s", name, &self.pid().to_string()]).status();
        assert!(status.unwrap().success());
    }

    /// Waits for the relay to exit.
    pub async fn wait(&mut self) -> ExitStatus {
        let deadline = std::time::Instant::now() + SETTLE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(std::time::Instant::now() < deadline, "the relay did not exit:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn wait_for_log(&self, needle: &str) {
        let what = format!("{needle:?} in the log");
        eventually(SETTLE, &what, || self.log().contains(needle)).await;
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The signals process `pid` has handlers for, as the bit mask `SigCgt` of `/proc/<pid>/status`.
fn caught_signals(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let mask = status.lines().find_map(|line| line.strip_prefix("SigCgt:")).unwrap_or_default();
    u64::from_str_radix(mask.trim(), 16).unwrap_or(0)
}

/// A listener on 127.0.0.1 that takes every connection and closes it at once: an address where
/// nothing answers, held for as long as the test runs (a port merely closed could be taken by
/// another test meanwhile).
pub async fn refusing_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            drop(stream);
        }
    });
    port
}

/// `n` copies of the first event of a Marzban fixture, as one JSON array body, each changed by
/// `edit` (given its index), with distinct usernames `{prefix}{index}`.
pub fn batch_of(fixture_name: &str, n: usize, prefix: &str, edit: impl Fn(usize, &mut serde_json::Value)) -> String {
    let events: Vec<serde_json::Value> =
        serde_json::from_str(&fixture(&format!("marzban-0.8.4/{fixture_name}.json"))).unwrap();
    let batch: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            let mut event = events[0].clone();
            let name = format!("{prefix}{i}");
            event["username"] = serde_json::Value::from(name.clone());
            if event["user"].is_object() {
                event["user"]["username"] = serde_json::Value::from(name);
            }
            edit(i, &mut event);
            event
        })
        .collect();
    serde_json::to_string(&batch).unwrap()
}
