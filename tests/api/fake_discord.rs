//! A fake Discord webhook server on 127.0.0.1 that behaves like the real one: it enforces the
//! payload limits on its own (independently of the relay's code), answers with rate-limit headers,
//! limits requests per webhook bucket and, optionally, messages per channel (the hidden limit), and
//! can be scripted to fail. It records every request it receives.
//!
//! Self-contained (actix-web, serde_json, tokio) so benchmarks can include it too.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{json, Value};

#[path = "fake_channels.rs"]
mod channels;
#[path = "fake_forum.rs"]
mod forum;
#[allow(unused_imports)]
pub use channels::{AppHook, Scripted, APPLICATION_ID};
pub use forum::Thread;

pub const WEBHOOK_ID: u64 = 112233445566778899;
pub const WEBHOOK_TOKEN: &str = "fake-token_ABCdef0123456789";

/// Rate limits the fake enforces.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Requests per bucket window (Discord: about 5 per 2 s per webhook).
    pub bucket_requests: u32,
    pub bucket_window: Duration,
    /// The hidden per-channel limit: messages per window, and the `retry_after` it answers with.
    pub channel: Option<ChannelLimit>,
}

#[derive(Debug, Clone)]
pub struct ChannelLimit {
    pub messages: u32,
    pub window: Duration,
    pub retry_after: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self { bucket_requests: 5, bucket_window: Duration::from_secs(2), channel: None }
    }
}

/// A scripted answer, used instead of the normal handling for one request.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn status(status: u16, body: &str) -> Self {
        Self { status, headers: Vec::new(), body: body.to_owned() }
    }

    pub fn server_error() -> Self {
        Self::status(500, r#"{"message": "500: Internal Server Error", "code": 0}"#)
    }

    pub fn bad_gateway() -> Self {
        Self::status(502, "<html><body>502 Bad Gateway</body></html>")
    }

    /// A 429 with `retry_after` in the body and the `Retry-After` header, like Discord's.
    pub fn too_many(retry_after: Duration) -> Self {
        let secs = retry_after.as_secs_f64();
        Self {
            status: 429,
            headers: vec![("retry-after".into(), secs.ceil().to_string()), ("x-ratelimit-scope".into(), "user".into())],
            body: json!({"message": "You are being rate limited.", "retry_after": secs, "global": false}).to_string(),
        }
    }

    /// A 429 that carries the delay only in the `Retry-After` header.
    pub fn too_many_header_only(seconds: u64) -> Self {
        Self { status: 429, headers: vec![("retry-after".into(), seconds.to_string())], body: String::new() }
    }

    /// A 429 with no delay anywhere and an HTML body: Cloudflare's temporary ban.
    pub fn ban() -> Self {
        Self::status(429, "<html><body>Error 1015: You are being rate limited</body></html>")
    }

    pub fn not_found() -> Self {
        Self::status(404, r#"{"message": "Unknown Webhook", "code": 10015}"#)
    }
}

/// What the fake saw of one request.
#[derive(Debug, Clone)]
pub struct Request {
    pub at: Instant,
    pub path: String,
    pub query: String,
    pub status: u16,
    pub body: String,
}

type EmbedPredicate = Box<dyn Fn(&Value) -> bool + Send>;

#[derive(Default)]
struct Inner {
    limits: Limits,
    script: VecDeque<Reply>,
    down: bool,
    reject_embed: Option<EmbedPredicate>,
    delay: Duration,
    /// Requests that have arrived, answered or not (still in their delay).
    arrived: usize,
    bucket_start: Option<Instant>,
    bucket_used: u32,
    channel_sent: VecDeque<Instant>,
    requests: Vec<Request>,
    /// Accepted messages, with the id of the webhook they were sent to.
    messages: Vec<(u64, Value)>,
    /// Webhook ids that exist (all with the same token).
    webhooks: Vec<u64>,
    /// Which of them belong to forum channels, and their posts.
    forums: forum::Forums,
    /// Channels and the webhooks the application made in them.
    channels: channels::Channels,
}

/// A running fake Discord. Dropping it does not stop the server; the test runtime's end does.
#[derive(Clone)]
pub struct FakeDiscord {
    inner: Arc<Mutex<Inner>>,
    port: u16,
    server: actix_web::dev::ServerHandle,
}

impl FakeDiscord {
    pub async fn start() -> Self {
        Self::start_with(Limits::default()).await
    }

    pub async fn start_with(limits: Limits) -> Self {
        Self::start_on(TcpListener::bind("127.0.0.1:0").expect("bind the fake Discord"), limits).await
    }

    /// Starts on a given listener (to come back on the same port after a stop).
    pub async fn start_on(listener: TcpListener, limits: Limits) -> Self {
        let port = listener.local_addr().unwrap().port();
        let inner = Arc::new(Mutex::new(Inner { limits, webhooks: vec![WEBHOOK_ID], ..Inner::default() }));
        let data = web::Data::new(inner.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(32 * 1024 * 1024))
                .route("/api/webhooks/{id}/{token}", web::post().to(execute))
                .route("/api/v{version}/webhooks/{id}/{token}", web::post().to(execute))
                .route("/api/v10/channels/{channel}/webhooks", web::post().to(create_webhook))
                .route("/api/v10/channels/{channel}/webhooks", web::get().to(list_webhooks))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self { inner, port, server: handle }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The webhook URL to configure the relay with.
    pub fn webhook_url(&self) -> String {
        format!("http://127.0.0.1:{}/api/webhooks/{WEBHOOK_ID}/{WEBHOOK_TOKEN}", self.port)
    }

    /// The URL of another webhook of this fake (another channel), created on first use.
    pub fn webhook_url_for(&self, id: u64) -> String {
        let mut inner = self.inner.lock().unwrap();
        if !inner.webhooks.contains(&id) {
            inner.webhooks.push(id);
        }
        format!("http://127.0.0.1:{}/api/webhooks/{id}/{WEBHOOK_TOKEN}", self.port)
    }

    /// The URL of a webhook `id` of a forum channel, created on first use.
    pub fn forum_webhook_url(&self, id: u64) -> String {
        let url = self.webhook_url_for(id);
        self.inner.lock().unwrap().forums.add_webhook(id);
        url
    }

    /// `DISCORD_API_BASE` for the relay's REST calls (its own webhooks are executed through it).
    pub fn api_base(&self) -> String {
        format!("http://127.0.0.1:{}/api/v10", self.port)
    }

    /// The webhooks the application made, deleted ones included, in order.
    pub fn app_hooks(&self) -> Vec<AppHook> {
        self.inner.lock().unwrap().channels.hooks.clone()
    }

    /// Deletes the application's webhook `id` (as a server admin would): executing it is 404.
    pub fn delete_app_hook(&self, id: u64) {
        let mut inner = self.inner.lock().unwrap();
        inner.channels.hooks.iter_mut().filter(|hook| hook.id == id).for_each(|hook| hook.deleted = true);
        inner.webhooks.retain(|known| *known != id);
    }

    /// Answers the next channel calls of each method as scripted, in order.
    pub fn script_channel_calls(&self, scripted: impl IntoIterator<Item = Scripted>) {
        self.inner.lock().unwrap().channels.scripted.extend(scripted);
    }

    /// While set, the bot lacks Manage Webhooks: the channel endpoints answer 403.
    pub fn forbid_webhooks(&self, forbidden: bool) {
        self.inner.lock().unwrap().channels.forbidden = forbidden;
    }

    /// Makes `channel` a forum: webhooks made there are forum webhooks.
    pub fn make_forum_channel(&self, channel: u64) {
        self.inner.lock().unwrap().channels.forums.push(channel);
    }

    /// Every call to the channel webhook endpoints: (method, path without the API base).
    pub fn channel_calls(&self) -> Vec<(String, String)> {
        self.inner.lock().unwrap().channels.calls.clone()
    }

    /// Makes the forum of webhook `id` require a tag on every new post.
    pub fn require_tags(&self, id: u64) {
        self.inner.lock().unwrap().forums.require_tags(id);
    }

    /// Makes AutoMod block every new forum post whose title holds `word`.
    pub fn block_title_word(&self, word: &str) {
        self.inner.lock().unwrap().forums.block_title_word(word);
    }

    /// The posts of every forum channel, in the order they were created.
    pub fn threads(&self) -> Vec<Thread> {
        self.inner.lock().unwrap().forums.threads.clone()
    }

    /// Deletes post `id` (as a moderator would): messages into it get 404, code 10003.
    pub fn delete_thread(&self, id: u64) {
        self.inner.lock().unwrap().forums.thread_mut(id).expect("a post of the fake").deleted = true;
    }

    /// Locks post `id`: messages into it get 403, code 160005.
    pub fn lock_thread(&self, id: u64) {
        self.inner.lock().unwrap().forums.thread_mut(id).expect("a post of the fake").locked = true;
    }

    /// The bodies of the messages accepted by webhook `id`, in order.
    pub fn messages_to(&self, id: u64) -> Vec<Value> {
        self.inner.lock().unwrap().messages.iter().filter(|(to, _)| *to == id).map(|(_, m)| m.clone()).collect()
    }

    /// Stops listening (connections are refused afterwards).
    pub async fn stop(&self) {
        self.server.stop(false).await;
    }

    /// Queues answers used, in order, for the next requests.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.inner.lock().unwrap().script.extend(replies);
    }

    /// While down, every request gets a 503.
    pub fn set_down(&self, down: bool) {
        self.inner.lock().unwrap().down = down;
    }

    /// How many requests have arrived, including those not answered yet.
    pub fn arrived(&self) -> usize {
        self.inner.lock().unwrap().arrived
    }

    /// Every request waits this long before it is answered.
    pub fn set_delay(&self, delay: Duration) {
        self.inner.lock().unwrap().delay = delay;
    }

    /// Messages holding an embed for which `predicate` is true are refused with a 400.
    pub fn reject_embeds(&self, predicate: impl Fn(&Value) -> bool + Send + 'static) {
        self.inner.lock().unwrap().reject_embed = Some(Box::new(predicate));
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.inner.lock().unwrap().requests.clone()
    }

    /// The bodies of the messages Discord accepted, in order.
    pub fn messages(&self) -> Vec<Value> {
        self.inner.lock().unwrap().messages.iter().map(|(_, m)| m.clone()).collect()
    }

    /// Every embed of every accepted message, in order.
    pub fn embeds(&self) -> Vec<Value> {
        self.messages().iter().flat_map(|m| m["embeds"].as_array().cloned().unwrap_or_default()).collect()
    }

    /// How many requests were answered with `status`.
    pub fn count_status(&self, status: u16) -> usize {
        self.inner.lock().unwrap().requests.iter().filter(|r| r.status == status).count()
    }

    /// Waits until at least `count` embeds were accepted; panics after `timeout`.
    pub async fn wait_for_embeds(&self, count: usize, timeout: Duration) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let embeds = self.embeds();
            if embeds.len() >= count {
                return embeds;
            }
            assert!(Instant::now() < deadline, "expected {count} embeds, got {} after {timeout:?}", embeds.len());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until at least `count` requests arrived; panics after `timeout`.
    pub async fn wait_for_requests(&self, count: usize, timeout: Duration) -> Vec<Request> {
        let deadline = Instant::now() + timeout;
        loop {
            let requests = self.requests();
            if requests.len() >= count {
                return requests;
            }
            assert!(Instant::now() < deadline, "expected {count} requests, got {} after {timeout:?}", requests.len());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn execute(
    request: HttpRequest,
    path: web::Path<Vec<String>>,
    body: web::Bytes,
    inner: web::Data<Arc<Mutex<Inner>>>,
) -> HttpResponse {
    let delay = {
        let mut inner = inner.lock().unwrap();
        inner.arrived += 1;
        inner.delay
    };
    // As Discord does, the request is carried out even when the client stops waiting for the
    // answer (a timeout, a relay that shuts down): the work runs as a task of its own.
    let (answered, answer_here) = tokio::sync::oneshot::channel();
    actix_web::rt::spawn(async move {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let body = String::from_utf8_lossy(&body).into_owned();
        let mut inner = inner.lock().unwrap();
        let (status, response) = answer(&mut inner, &path, request.query_string(), &body);
        inner.requests.push(Request {
            at: Instant::now(),
            path: request.path().to_owned(),
            query: request.query_string().to_owned(),
            status,
            body,
        });
        let _ = answered.send(response);
    });
    answer_here.await.unwrap_or_else(|_| HttpResponse::InternalServerError().finish())
}

fn answer(inner: &mut Inner, path: &[String], query: &str, body: &str) -> (u16, HttpResponse) {
    let (id, token) = (&path[path.len() - 2], &path[path.len() - 1]);
    if let Some(reply) = inner.script.pop_front() {
        return (reply.status, scripted(reply));
    }
    if inner.down {
        return (503, error(503, json!({"message": "503: Service Unavailable", "code": 0})));
    }
    let Some(id) = id.parse::<u64>().ok().filter(|id| inner.webhooks.contains(id)) else {
        return (404, error(404, json!({"message": "Unknown Webhook", "code": 10015})));
    };
    if token != inner.channels.token_of(id).unwrap_or(WEBHOOK_TOKEN) {
        return (401, error(401, json!({"message": "Invalid Webhook Token", "code": 50027})));
    }
    let now = Instant::now();
    let limits = inner.limits.clone();
    let window_start = match inner.bucket_start {
        Some(start) if now.duration_since(start) < limits.bucket_window => start,
        _ => {
            inner.bucket_used = 0;
            inner.bucket_start = Some(now);
            now
        }
    };
    let reset_after = limits.bucket_window.saturating_sub(now.duration_since(window_start));
    if inner.bucket_used >= limits.bucket_requests {
        let mut response = too_many(reset_after, "user");
        add_bucket_headers(&mut response, limits.bucket_requests, 0, reset_after);
        return (429, response);
    }
    inner.bucket_used += 1;
    let remaining = limits.bucket_requests - inner.bucket_used;

    let mut message: Value = match serde_json::from_str(body) {
        Ok(message) => message,
        Err(_) => return (400, error(400, json!({"message": "Cannot send an empty message", "code": 50006}))),
    };
    let mut problems = validate(&message);
    problems.extend(channels::validate(&message));
    if !channels::keeps_components(&inner.channels, id, query) {
        // As Discord does: a webhook a person made (or no `with_components`) drops them silently.
        if let Some(message) = message.as_object_mut() {
            message.remove("components");
        }
    }
    if let Some(reject) = &inner.reject_embed {
        let embeds = message["embeds"].as_array().cloned().unwrap_or_default();
        for (i, embed) in embeds.iter().enumerate() {
            if reject(embed) {
                problems.push(format!("embeds.{i}: refused by the test"));
            }
        }
    }
    if !problems.is_empty() {
        let mut response = error(400, json!({"code": 50035, "message": "Invalid Form Body", "errors": problems}));
        add_bucket_headers(&mut response, limits.bucket_requests, remaining, reset_after);
        return (400, response);
    }
    if let Err((status, body)) = inner.forums.check(id, query, &message) {
        let mut response = error(status, body);
        add_bucket_headers(&mut response, limits.bucket_requests, remaining, reset_after);
        return (status, response);
    }
    if let Some(channel) = &limits.channel {
        while inner.channel_sent.front().is_some_and(|at| now.duration_since(*at) >= channel.window) {
            inner.channel_sent.pop_front();
        }
        if inner.channel_sent.len() as u32 >= channel.messages {
            let mut response = too_many(channel.retry_after, "user");
            add_bucket_headers(&mut response, limits.bucket_requests, remaining, reset_after);
            return (429, response);
        }
        inner.channel_sent.push_back(now);
    }
    inner.messages.push((id, message.clone()));
    let channel_id = match inner.forums.place(id, query, &message) {
        forum::Placed::Channel => "998877".to_owned(),
        forum::Placed::Thread(thread) => thread.to_string(),
    };
    let wait = query.split('&').any(|pair| pair == "wait=true");
    let mut response = if wait {
        HttpResponse::Ok().json(json!({
            "id": (inner.messages.len() as u64 + 1_000_000).to_string(),
            "type": 0,
            "channel_id": channel_id,
            "webhook_id": WEBHOOK_ID.to_string(),
            "content": message["content"].as_str().unwrap_or_default(),
            "embeds": message["embeds"].clone(),
            "timestamp": "2026-11-27T18:00:00.000000+00:00",
        }))
    } else {
        HttpResponse::NoContent().finish()
    };
    add_bucket_headers(&mut response, limits.bucket_requests, remaining, reset_after);
    (if wait { 200 } else { 204 }, response)
}

async fn create_webhook(
    request: HttpRequest,
    channel: web::Path<u64>,
    body: String,
    inner: web::Data<Arc<Mutex<Inner>>>,
) -> HttpResponse {
    let mut inner = inner.lock().unwrap();
    let authorization = request.headers().get("authorization").and_then(|v| v.to_str().ok());
    let (status, body, made) = inner.channels.create(*channel, authorization, &body);
    if let Some(hook) = made {
        inner.webhooks.push(hook.id);
        if inner.channels.forums.contains(&hook.channel) {
            inner.forums.add_webhook(hook.id);
        }
    }
    error(status, body)
}

async fn list_webhooks(
    request: HttpRequest,
    channel: web::Path<u64>,
    inner: web::Data<Arc<Mutex<Inner>>>,
) -> HttpResponse {
    let mut inner = inner.lock().unwrap();
    let authorization = request.headers().get("authorization").and_then(|v| v.to_str().ok());
    let (status, body) = inner.channels.list(*channel, authorization, (WEBHOOK_ID, WEBHOOK_TOKEN));
    error(status, body)
}

/// Discord's documented limits, checked without any of the relay's code.
pub fn validate(message: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let len = |v: &Value| v.as_str().map_or(0, |s| s.chars().count());
    let content = len(&message["content"]);
    if content > 2000 {
        problems.push(format!("content: {content} > 2000"));
    }
    let embeds = message["embeds"].as_array().cloned().unwrap_or_default();
    if embeds.len() > 10 {
        problems.push(format!("embeds: {} > 10", embeds.len()));
    }
    if content == 0 && embeds.is_empty() {
        problems.push("message: empty".into());
    }
    let mut total = 0;
    for (i, embed) in embeds.iter().enumerate() {
        let mut check = |problems: &mut Vec<String>, what: &str, value: &Value, max: usize| {
            let n = len(value);
            if n > max {
                problems.push(format!("embeds.{i}.{what}: {n} > {max}"));
            }
            total += n;
        };
        check(&mut problems, "title", &embed["title"], 256);
        check(&mut problems, "description", &embed["description"], 4096);
        check(&mut problems, "footer.text", &embed["footer"]["text"], 2048);
        check(&mut problems, "author.name", &embed["author"]["name"], 256);
        let fields = embed["fields"].as_array().cloned().unwrap_or_default();
        for (j, field) in fields.iter().enumerate() {
            check(&mut problems, &format!("fields.{j}.name"), &field["name"], 256);
            check(&mut problems, &format!("fields.{j}.value"), &field["value"], 1024);
            for key in ["name", "value"] {
                if field[key].as_str().is_none_or(|s| s.trim().is_empty()) {
                    problems.push(format!("embeds.{i}.fields.{j}.{key}: must not be empty"));
                }
            }
        }
        if fields.len() > 25 {
            problems.push(format!("embeds.{i}.fields: {} > 25", fields.len()));
        }
        if let Some(color) = embed.get("color").filter(|c| !c.is_null()) {
            if color.as_u64().is_none_or(|c| c > 0xFF_FFFF) {
                problems.push(format!("embeds.{i}.color: {color} is not a colour"));
            }
        }
        if let Some(url) = embed["url"].as_str() {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                problems.push(format!("embeds.{i}.url: not a URL"));
            }
        }
        let visible = ["title", "description", "fields", "author", "footer", "image", "thumbnail"]
            .iter()
            .any(|k| !embed[*k].is_null());
        if !visible {
            problems.push(format!("embeds.{i}: empty embed"));
        }
    }
    if total > 6000 {
        problems.push(format!("embeds: {total} characters > 6000"));
    }
    problems.extend(forum::validate(message));
    if let Some(mentions) = message.get("allowed_mentions") {
        let parse = mentions["parse"].as_array().cloned().unwrap_or_default();
        for kind in ["users", "roles"] {
            let listed = mentions[kind].as_array().is_some_and(|ids| !ids.is_empty());
            if listed && parse.iter().any(|p| p == kind) {
                problems.push(format!("allowed_mentions: {kind} both parsed and listed"));
            }
        }
    }
    problems
}

fn scripted(reply: Reply) -> HttpResponse {
    let mut response = HttpResponse::build(actix_web::http::StatusCode::from_u16(reply.status).unwrap());
    for (name, value) in &reply.headers {
        response.insert_header((name.as_str(), value.as_str()));
    }
    if reply.body.starts_with('{') {
        response.content_type("application/json");
    }
    response.body(reply.body)
}

fn error(status: u16, body: Value) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).json(body)
}

fn too_many(retry_after: Duration, scope: &str) -> HttpResponse {
    let secs = retry_after.as_secs_f64();
    HttpResponse::TooManyRequests()
        .insert_header(("retry-after", secs.ceil().max(1.0).to_string()))
        .insert_header(("x-ratelimit-scope", scope))
        .json(json!({"message": "You are being rate limited.", "retry_after": secs, "global": false}))
}

fn add_bucket_headers(response: &mut HttpResponse, limit: u32, remaining: u32, reset_after: Duration) {
    let reset = SystemTime::now().duration_since(UNIX_EPOCH).unwrap() + reset_after;
    let headers = response.headers_mut();
    let mut set = |name: &'static str, value: String| {
        headers.insert(
            actix_web::http::header::HeaderName::from_static(name),
            actix_web::http::header::HeaderValue::from_str(&value).unwrap(),
        );
    };
    set("x-ratelimit-limit", limit.to_string());
    set("x-ratelimit-remaining", remaining.to_string());
    set("x-ratelimit-reset", format!("{:.3}", reset.as_secs_f64()));
    set("x-ratelimit-reset-after", format!("{:.3}", reset_after.as_secs_f64()));
    set("x-ratelimit-bucket", "fakebucket0123".into());
}
