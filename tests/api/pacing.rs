//! Retries, 429s and pacing, one delivery step at a time: a `Worker` against the fake Discord, with
//! the relay's clock stopped between steps and moved by the test. Each test checks the wait a step
//! asks for, that nothing is sent before it has passed, and that the next message goes out as soon
//! as it has, without waiting for it in real time.
//!
//! The clock runs while a request is in flight (a stopped clock would let reqwest's timeout fire
//! while the fake Discord answers) and is stopped as soon as a step returns.

use std::sync::Arc;
use std::time::Duration;

use marzban_discord_relay::deliver::{DeliverySettings, Services, Step, Worker};
use marzban_discord_relay::discord::{self, WebhookUrl};
use marzban_discord_relay::metrics::{Health, Metrics};
use marzban_discord_relay::outbox::{now_ms, NewRow, Outbox};
use marzban_discord_relay::render::{Draft, Lang, Templates};
use marzban_discord_relay::routing::{Destination, Mentions, Target};
use serde_json::json;
use tempfile::TempDir;
use tokio::sync::Notify;

use crate::fake_discord::{FakeDiscord, Reply};
use crate::helpers::{init_logging, logs};

const MS: fn(u64) -> Duration = Duration::from_millis;

/// One destination's delivery worker, its outbox, the fake Discord it sends to, and the clock.
struct Rig {
    discord: FakeDiscord,
    worker: Worker,
    outbox: Outbox,
    /// Whether tokio's clock is stopped. It must run whenever the test waits for I/O (the outbox's
    /// writer thread, the fake Discord): a stopped clock jumps to the next timer when the runtime
    /// has nothing else to do.
    stopped: bool,
    _dir: TempDir,
}

impl Rig {
    /// A worker with the settings `tweak` makes of no jitter, no digests and no channel pacing.
    async fn new(discord: FakeDiscord, tweak: impl FnOnce(&mut DeliverySettings)) -> Self {
        init_logging();
        let dir = tempfile::tempdir().unwrap();
        let mut settings =
            DeliverySettings { jitter: 0.0, digest_threshold: 0, channel_messages: 0, ..DeliverySettings::default() };
        tweak(&mut settings);
        let outbox = Outbox::open(dir.path()).unwrap();
        let url = WebhookUrl::parse(&discord.webhook_url()).unwrap();
        let services = Services {
            outbox: outbox.clone(),
            client: discord::Client::new(settings.timeouts).unwrap(),
            templates: Arc::new(Templates::load(dir.path().join("no-templates"), Lang::En).0),
            settings: Arc::new(settings),
            metrics: Arc::new(Metrics::new()),
            health: Arc::new(Health::default()),
            app_webhooks: None,
        };
        let destination = Arc::new(Destination::new("default", Target::Webhook(url)));
        let worker = Worker::new(destination, services, Arc::new(Notify::new()));
        Self { discord, worker, outbox, stopped: false, _dir: dir }
    }

    fn run_clock(&mut self) {
        if self.stopped {
            tokio::time::resume();
            self.stopped = false;
        }
    }

    fn stop_clock(&mut self) {
        if !self.stopped {
            tokio::time::pause();
            self.stopped = true;
        }
    }

    /// Moves the stopped clock `by`.
    async fn advance(&mut self, by: Duration) {
        assert!(self.stopped, "the clock is stopped first");
        tokio::time::advance(by).await;
    }

    /// Stores an event for each of `users`, received `age` ago.
    async fn store(&mut self, users: &[&str], age: Duration) {
        self.run_clock();
        let received_at_ms = now_ms() - i64::try_from(age.as_millis()).unwrap();
        let rows = users
            .iter()
            .map(|user| {
                let mut draft = Draft { title: format!("Created: {user}"), ..Draft::default() };
                draft.clamp();
                NewRow {
                    destination: "default".into(),
                    received_at_ms,
                    action: "user_created".into(),
                    username: (*user).into(),
                    panel: None,
                    part: serde_json::to_string(&draft.into_part()).unwrap(),
                    fingerprint: None,
                    may_be_resend: false,
                    mentions: Mentions::default(),
                }
            })
            .collect();
        self.outbox.enqueue(rows, None).await.unwrap();
    }

    /// One delivery step, which may send; the clock is stopped as soon as it returns.
    async fn step(&mut self) -> Step {
        self.run_clock();
        let step = self.worker.try_deliver_once().await.unwrap();
        self.stop_clock();
        step
    }

    /// A step on the stopped clock, which must not send: the wait it asks for.
    async fn wait_left(&mut self) -> Duration {
        assert!(self.stopped, "the clock is stopped first");
        match self.worker.try_deliver_once().await.unwrap() {
            Step::Wait(wait) => wait,
            other => panic!("expected a wait, got {other:?}"),
        }
    }

    /// Usernames of the dead letters.
    async fn dead(&mut self) -> Vec<(String, String)> {
        self.run_clock();
        let dead = self.outbox.dead(10).await.unwrap();
        dead.into_iter().map(|row| (row.username, row.reason.unwrap_or_default())).collect()
    }

    /// The status of every request the fake Discord got, in order.
    fn statuses(&self) -> Vec<u16> {
        self.discord.requests().iter().map(|r| r.status).collect()
    }

    /// The titles Discord accepted, in order.
    fn delivered(&self) -> Vec<String> {
        self.discord.embeds().iter().map(|e| e["title"].as_str().unwrap_or_default().to_owned()).collect()
    }

    /// With the clock stopped and `wait` left: 1 ms before its end nothing is sent, and at its end
    /// the next message goes out.
    async fn sends_exactly_when_the_wait_ends(&mut self, wait: Duration) {
        let requests = self.discord.requests().len();
        self.advance(wait - MS(1)).await;
        assert_eq!(self.wait_left().await, MS(1), "1 ms before the end of the wait");
        assert_eq!(self.discord.requests().len(), requests, "nothing was sent during the wait");
        self.advance(MS(1)).await;
        assert_eq!(self.step().await, Step::Progress, "sent when the wait ended");
        assert_eq!(self.discord.requests().len(), requests + 1);
    }
}

#[tokio::test]
async fn a_429_is_waited_out_for_exactly_its_retry_after() {
    let discord = FakeDiscord::start().await;
    discord.script([Reply::too_many(MS(700))]);
    let mut rig = Rig::new(discord, |_| {}).await;
    rig.store(&["a"], Duration::ZERO).await;

    let started = std::time::Instant::now();
    assert_eq!(rig.step().await, Step::Wait(MS(700)), "the body's retry_after");
    let left = rig.wait_left().await;
    assert!(left <= MS(700) && left >= MS(700).saturating_sub(started.elapsed()), "{left:?}");
    assert_eq!(rig.statuses(), [429], "asked again during the wait, it sends nothing");

    rig.sends_exactly_when_the_wait_ends(left).await;
    assert_eq!(rig.statuses(), [429, 200]);
    assert_eq!(rig.delivered(), ["Created: a"]);
}

#[tokio::test]
async fn a_429_with_its_delay_only_in_the_retry_after_header_is_obeyed() {
    let discord = FakeDiscord::start().await;
    discord.script([Reply::too_many_header_only(2)]);
    let mut rig = Rig::new(discord, |_| {}).await;
    rig.store(&["a"], Duration::ZERO).await;

    assert_eq!(rig.step().await, Step::Wait(Duration::from_secs(2)));
    let left = rig.wait_left().await;
    rig.sends_exactly_when_the_wait_ends(left).await;
    assert_eq!(rig.statuses(), [429, 200]);
}

#[tokio::test]
async fn a_429_asking_for_no_wait_still_waits_the_minimum() {
    let discord = FakeDiscord::start().await;
    let zero = Reply {
        status: 429,
        headers: vec![("retry-after".into(), "0".into())],
        body: json!({"retry_after": 0, "global": false}).to_string(),
    };
    discord.script([zero]);
    let mut rig = Rig::new(discord, |_| {}).await;
    rig.store(&["a"], Duration::ZERO).await;

    assert_eq!(rig.step().await, Step::Wait(discord::MIN_RETRY_AFTER), "not hammered");
    let left = rig.wait_left().await;
    rig.sends_exactly_when_the_wait_ends(left).await;
}

#[tokio::test]
async fn a_429_without_any_delay_is_a_ban_and_cools_down_for_minutes() {
    let discord = FakeDiscord::start().await;
    discord.script([Reply::ban()]);
    let mut rig = Rig::new(discord, |settings| settings.ban_cooldown = Duration::from_secs(600)).await;
    rig.store(&["a"], Duration::ZERO).await;

    assert_eq!(rig.step().await, Step::Wait(Duration::from_secs(600)));
    assert!(logs().iter().any(|l| l.starts_with("ERROR") && l.contains("temporarily banned")), "{:?}", logs());
    let left = rig.wait_left().await;
    rig.sends_exactly_when_the_wait_ends(left).await;
    assert_eq!(rig.statuses(), [429, 200]);
}

#[tokio::test]
async fn failures_back_off_on_the_schedule_whose_last_step_repeats() {
    let discord = FakeDiscord::start().await;
    discord.set_down(true);
    let mut rig = Rig::new(discord, |settings| settings.retry_schedule = vec![MS(100), MS(300)]).await;
    rig.store(&["a"], Duration::ZERO).await;

    for (failures, wait) in [MS(100), MS(300), MS(300), MS(300)].into_iter().enumerate() {
        assert_eq!(rig.step().await, Step::Wait(wait), "after {} failures", failures + 1);
        let left = rig.wait_left().await;
        rig.advance(left - MS(1)).await;
        assert_eq!(rig.wait_left().await, MS(1), "nothing is sent before the backoff ends");
        rig.advance(MS(1)).await;
    }
    rig.discord.set_down(false);
    assert_eq!(rig.step().await, Step::Progress);
    assert_eq!(rig.statuses(), [503, 503, 503, 503, 200]);
    assert_eq!(rig.delivered(), ["Created: a"]);
    let line = logs().into_iter().find(|l| l.contains("attempt 4, retrying in 300ms")).unwrap_or_default();
    assert!(line.starts_with("WARN"), "{:?}", logs());
}

#[tokio::test]
async fn rows_past_the_retry_horizon_become_dead_letters_and_the_rest_are_retried() {
    let discord = FakeDiscord::start().await;
    discord.set_down(true);
    let mut rig = Rig::new(discord, |settings| {
        settings.retry_schedule = vec![Duration::from_secs(10)];
        settings.retry_max_age = Duration::from_secs(60);
    })
    .await;
    rig.store(&["old"], Duration::from_secs(61)).await;
    rig.store(&["new"], Duration::ZERO).await;

    // Both go in one message; when it fails, the old row is given up and the new one retried.
    assert_eq!(rig.step().await, Step::Wait(Duration::from_secs(10)));
    assert!(logs().iter().any(|l| l.starts_with("ERROR") && l.contains("giving up on 1 rows older than 60s")));
    let dead = rig.dead().await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].0, "old");
    assert!(dead[0].1.starts_with("gave up after 60s of retries: HTTP 503"), "{dead:?}");

    rig.discord.set_down(false);
    rig.stop_clock();
    let left = rig.wait_left().await;
    rig.sends_exactly_when_the_wait_ends(left).await;
    assert_eq!(rig.delivered(), ["Created: new"]);
}

#[tokio::test]
async fn an_empty_bucket_is_waited_for_before_the_next_message() {
    let discord = FakeDiscord::start().await;
    let empty = Reply {
        status: 200,
        headers: vec![("x-ratelimit-remaining".into(), "0".into()), ("x-ratelimit-reset-after".into(), "30".into())],
        body: "{}".into(),
    };
    discord.script([empty]);
    let mut rig = Rig::new(discord, |_| {}).await;
    rig.store(&["a"], Duration::ZERO).await;

    let started = std::time::Instant::now();
    assert_eq!(rig.step().await, Step::Progress, "delivered; the headers say the bucket is now empty");
    rig.store(&["b"], Duration::ZERO).await;
    rig.stop_clock();
    let left = rig.wait_left().await;
    let reset = Duration::from_secs(30);
    assert!(left <= reset && left >= reset.saturating_sub(started.elapsed()), "{left:?}");
    rig.sends_exactly_when_the_wait_ends(left).await;
    assert_eq!(rig.statuses(), [200, 200], "no 429");
    assert_eq!(rig.delivered(), ["Created: b"], "the first answer was scripted");
}

#[tokio::test]
async fn keeps_under_the_channel_limit_on_its_own() {
    let discord = FakeDiscord::start().await;
    let window = Duration::from_secs(60);
    let mut rig = Rig::new(discord, |settings| {
        settings.channel_messages = 3;
        settings.channel_window = window;
    })
    .await;

    let started = std::time::Instant::now();
    for user in ["a", "b", "c"] {
        rig.store(&[user], Duration::ZERO).await;
        assert_eq!(rig.step().await, Step::Progress);
    }
    rig.store(&["d"], Duration::ZERO).await;
    rig.stop_clock();
    let left = rig.wait_left().await;
    assert!(left <= window && left >= window.saturating_sub(started.elapsed()), "{left:?}");
    rig.sends_exactly_when_the_wait_ends(left).await;
    assert_eq!(rig.delivered(), ["Created: a", "Created: b", "Created: c", "Created: d"]);
}

#[tokio::test]
async fn a_burst_held_while_it_arrives_is_not_read_again_on_every_wake() {
    let discord = FakeDiscord::start().await;
    let window = Duration::from_secs(3);
    let mut rig = Rig::new(discord, |settings| {
        settings.digest_threshold = 5;
        settings.digest_window = window;
    })
    .await;
    let users: Vec<String> = (0..10).map(|i| format!("user_{i}")).collect();
    let users: Vec<&str> = users.iter().map(String::as_str).collect();
    rig.store(&users, Duration::ZERO).await;
    let Step::Wait(held) = rig.step().await else { panic!("a burst still arriving is held") };
    assert!(held <= window, "{held:?}");

    // Every POST wakes the worker. While the burst is held, a step answers from the hold it
    // planned: rows that changed meanwhile (here, all gone) are not read until the hold ends.
    rig.run_clock();
    let ids = rig.outbox.due("default", 10).await.unwrap().iter().map(|row| row.meta.id).collect();
    rig.outbox.mark_delivered(ids).await.unwrap();
    let Step::Wait(left) = rig.step().await else { panic!("still held, without a read") };
    assert!(left <= held, "{left:?} of {held:?}");

    rig.run_clock();
    tokio::time::sleep(left).await;
    assert_eq!(rig.step().await, Step::Idle, "read again once the hold ended");
    assert!(rig.delivered().is_empty());
}
