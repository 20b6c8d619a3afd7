//! What the bot talks to, faked on 127.0.0.1: a Marzban panel's user API (login with a JWT, one
//! user `alice`, slow or expiring its token on request), Discord's REST API for the bot
//! (editing a deferred response, registering commands, interaction callbacks, `/gateway/bot`) and
//! Discord's gateway (a websocket: HELLO, IDENTIFY, READY, heartbeats, RESUME, close codes,
//! INVALID_SESSION, dispatched events). All record what they receive.

#![allow(dead_code)]

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{json, Value};

use crate::fake_bot_more;
pub use crate::fake_panel::Shape;

pub const PANEL_USER: &str = "relay-admin";
pub const PANEL_PASSWORD: &str = "panel-pass-5d1e";
/// A JWT shaped token: the relay must never show it.
pub const JWT_PREFIX: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJyZWxheS1hZG1pbiJ9.sig";

#[derive(Default)]
pub struct PanelState {
    pub users: Vec<Value>,
    pub logins: u32,
    /// Every call but logins: (method, path).
    pub calls: Vec<(String, String)>,
    /// Each answer to a user path waits this long.
    pub delay: Duration,
    /// The next user call is answered 401 once (the panel restarted with a new secret key).
    pub expire_token: bool,
    /// Characters of padding added to every user answer (a hostile or broken panel).
    pub padding: usize,
    /// A deletion is answered `204 No Content`, as PasarGuard does (Marzban answers a JSON detail).
    pub delete_no_content: bool,
    pub(crate) token: Option<String>,
    /// Which panel's API it is (Marzban when none): see `fake_bot_more`.
    pub shape: Option<Shape>,
}

/// A fake Marzban 0.8.4 user API.
pub struct FakePanel {
    pub state: Arc<Mutex<PanelState>>,
    pub port: u16,
}

impl FakePanel {
    pub async fn start() -> Self {
        Self::start_as(Shape::Marzban).await
    }

    /// A fake of `shape`'s user API: Marzban's above, PasarGuard's (the same paths), or
    /// Marzneshin's (`fake_bot_more`).
    pub async fn start_as(shape: Shape) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let users = vec![if shape == Shape::Marzneshin { fake_bot_more::marzneshin_alice() } else { alice() }];
        let state = Arc::new(Mutex::new(PanelState { users, shape: Some(shape), ..PanelState::default() }));
        let data = web::Data::new(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/api/admin/token", web::post().to(admin_login))
                .route("/api/user/{username}", web::get().to(user))
                .route("/api/user/{username}", web::put().to(user))
                .route("/api/user/{username}", web::delete().to(user))
                .route("/api/user/{username}/{action}", web::post().to(user))
                .configure(fake_bot_more::routes)
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        Self { state, port }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn user(&self, name: &str) -> Value {
        self.find(name).expect("the user exists")
    }

    /// The user named `name`, if the panel has them.
    pub fn find(&self, name: &str) -> Option<Value> {
        let state = self.state.lock().unwrap();
        state.users.iter().find(|u| u["username"] == name).cloned()
    }

    /// How many calls of `method` to a path ending with `end` the panel received.
    pub fn count(&self, method: &str, end: &str) -> usize {
        self.calls().iter().filter(|(m, path)| m == method && path.ends_with(end)).count()
    }

    pub fn calls(&self) -> Vec<(String, String)> {
        self.state.lock().unwrap().calls.clone()
    }
}

/// A limited user, as Marzban 0.8.4 answers `GET /api/user/alice` (fixtures' shape).
pub fn alice() -> Value {
    json!({
        "proxies": {"vless": {"id": "281f2177-afa0-4b3d-a73b-d00e8d3b7c2c", "flow": ""}},
        "expire": 4_102_444_800u64, "data_limit": 1_048_576, "data_limit_reset_strategy": "no_reset",
        "inbounds": {"vless": ["VLESS TCP"]}, "note": "**vip** @everyone", "sub_updated_at": null,
        "sub_last_user_agent": null, "online_at": "2026-11-27T17:39:50.120875", "on_hold_expire_duration": null,
        "on_hold_timeout": null, "auto_delete_in_days": null, "next_plan": null, "username": "alice",
        "status": "limited", "used_traffic": 1_500_000, "lifetime_used_traffic": 1_500_000,
        "created_at": "2026-11-27T17:39:50.120875",
        "links": ["vless://281f2177-afa0-4b3d-a73b-d00e8d3b7c2c@127.0.0.1:20001?security=none#alice"],
        "subscription_url": "/sub/YWxpY2UsMTc5NTgwMTE5MgDi5YR0K5s6", "excluded_inbounds": {"vless": []},
        "admin": {"username": "harness", "is_sudo": true, "telegram_id": null,
            "discord_webhook": "https://discord.com/api/webhooks/1/owner-webhook-token", "users_usage": 0}
    })
}

/// `POST /api/admin/token`: Marzban's and PasarGuard's login (Marzneshin has none there).
async fn admin_login(state: web::Data<Arc<Mutex<PanelState>>>, form: String) -> HttpResponse {
    if state.lock().unwrap().shape == Some(Shape::Marzneshin) {
        return HttpResponse::NotFound().finish();
    }
    login(state, form).await
}

pub(crate) async fn login(state: web::Data<Arc<Mutex<PanelState>>>, form: String) -> HttpResponse {
    let mut state = state.lock().unwrap();
    if !form.contains(&format!("username={PANEL_USER}")) || !form.contains(&format!("password={PANEL_PASSWORD}")) {
        return HttpResponse::Unauthorized().json(json!({"detail": "Incorrect username or password"}));
    }
    state.logins += 1;
    let token = format!("{JWT_PREFIX}{}", state.logins);
    state.token = Some(token.clone());
    HttpResponse::Ok().json(json!({"access_token": token, "token_type": "bearer"}))
}

async fn user(request: HttpRequest, state: web::Data<Arc<Mutex<PanelState>>>, body: String) -> HttpResponse {
    let delay = state.lock().unwrap().delay;
    tokio::time::sleep(delay).await;
    let mut state = state.lock().unwrap();
    state.calls.push((request.method().to_string(), request.path().to_owned()));
    if state.shape == Some(Shape::Marzneshin) {
        return HttpResponse::NotFound().json(json!({"detail": "Not Found"}));
    }
    let bearer = request.headers().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let expected = state.token.as_ref().map(|t| format!("Bearer {t}"));
    if bearer.is_none() || bearer != expected || std::mem::take(&mut state.expire_token) {
        return HttpResponse::Unauthorized().json(json!({"detail": "Could not validate credentials"}));
    }
    let name = request.match_info().get("username").unwrap_or_default().to_owned();
    let Some(user) = state.users.iter_mut().find(|u| u["username"] == name.as_str()) else {
        return HttpResponse::NotFound().json(json!({"detail": "User not found"}));
    };
    match (request.method().as_str(), request.match_info().get("action")) {
        ("GET", None) => {}
        ("POST", Some("reset")) => {
            user["used_traffic"] = json!(0);
            if user["status"] == "limited" {
                user["status"] = json!("active");
            }
        }
        ("POST", Some("revoke_sub")) => user["subscription_url"] = json!("/sub/bmV3LXN1Yi1saW5rLWFmdGVyLXJldm9rZQ"),
        ("PUT", None) => {
            let Ok(change) = serde_json::from_str::<Value>(&body) else {
                return HttpResponse::UnprocessableEntity().finish();
            };
            for key in ["status", "expire", "data_limit"] {
                if let Some(value) = change.get(key) {
                    user[key] = value.clone();
                }
            }
        }
        ("DELETE", None) => {
            state.users.retain(|u| u["username"] != name.as_str());
            if state.delete_no_content {
                return HttpResponse::NoContent().finish();
            }
            return HttpResponse::Ok().json(json!({"detail": "User successfully deleted"}));
        }
        _ => return HttpResponse::NotFound().finish(),
    }
    let mut answer = user.clone();
    if state.padding > 0 {
        answer["excluded_inbounds"] = json!({"vless": ["x".repeat(state.padding)]});
    }
    HttpResponse::Ok().json(answer)
}

/// One request Discord's REST API received.
#[derive(Debug, Clone)]
pub struct RestCall {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub body: Value,
}

/// A fake of Discord's REST API for the bot: `DISCORD_API_BASE` points at [`FakeRest::base`].
pub struct FakeRest {
    pub calls: Arc<Mutex<Vec<RestCall>>>,
    pub port: u16,
    /// What `GET /gateway/bot` answers as the gateway's URL (see [`FakeRest::use_gateway`]).
    pub gateway_url: Arc<Mutex<String>>,
    /// The session starts `GET /gateway/bot` says are left today.
    pub sessions_left: Arc<Mutex<u64>>,
}

impl FakeRest {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let gateway_url = Arc::new(Mutex::new("ws://127.0.0.1:9".to_owned()));
        let sessions_left = Arc::new(Mutex::new(999u64));
        let data = web::Data::new(calls.clone());
        let gateway = web::Data::new((gateway_url.clone(), sessions_left.clone()));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(gateway.clone())
                .route("/api/v10/webhooks/{app}/{token}/messages/@original", web::patch().to(record))
                .route("/api/v10/applications/{app}/guilds/{guild}/commands", web::put().to(record))
                .route("/api/v10/interactions/{id}/{token}/callback", web::post().to(callback))
                .route("/api/v10/gateway/bot", web::get().to(gateway_bot))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        Self { calls, port, gateway_url, sessions_left }
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}/api/v10", self.port)
    }

    pub fn calls(&self) -> Vec<RestCall> {
        self.calls.lock().unwrap().clone()
    }

    /// `GET /gateway/bot` sends the relay to `gateway`.
    pub fn use_gateway(&self, gateway: &FakeGateway) {
        *self.gateway_url.lock().unwrap() = gateway.url();
    }

    /// The interaction callbacks received: (interaction id, the response's JSON).
    pub fn callbacks(&self) -> Vec<(String, Value)> {
        let calls = self.calls();
        let callbacks = calls.iter().filter(|call| call.path.ends_with("/callback"));
        callbacks.map(|call| (call.path.split('/').nth(4).unwrap_or_default().to_owned(), call.body.clone())).collect()
    }
}

/// An interaction's callback: 204, as Discord answers it.
async fn callback(request: HttpRequest, calls: web::Data<Arc<Mutex<Vec<RestCall>>>>, body: String) -> HttpResponse {
    let _ = record(request, calls, body).await;
    HttpResponse::NoContent().finish()
}

/// What `GET /gateway/bot` answers: the gateway's URL and the session starts left.
type GatewayAnswer = (Arc<Mutex<String>>, Arc<Mutex<u64>>);

/// `GET /gateway/bot`: 401 without the bot token [`GATEWAY_TOKEN`] (the one the fake gateway
/// takes), the gateway's URL with it.
async fn gateway_bot(
    request: HttpRequest,
    calls: web::Data<Arc<Mutex<Vec<RestCall>>>>,
    gateway: web::Data<GatewayAnswer>,
) -> HttpResponse {
    let _ = record(request.clone(), calls, String::new()).await;
    let authorization = request.headers().get("authorization").and_then(|v| v.to_str().ok());
    if authorization != Some(&format!("Bot {GATEWAY_TOKEN}")) {
        return HttpResponse::Unauthorized().json(json!({"message": "401: Unauthorized", "code": 0}));
    }
    let (url, left) = (gateway.0.lock().unwrap().clone(), *gateway.1.lock().unwrap());
    HttpResponse::Ok().json(json!({
        "url": url, "shards": 1,
        "session_start_limit": {"total": 1000, "remaining": left, "reset_after": 14_400_000, "max_concurrency": 1}
    }))
}

async fn record(request: HttpRequest, calls: web::Data<Arc<Mutex<Vec<RestCall>>>>, body: String) -> HttpResponse {
    let call = RestCall {
        method: request.method().to_string(),
        path: request.path().to_owned(),
        authorization: request.headers().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned),
        body: serde_json::from_str(&body).unwrap_or(Value::Null),
    };
    let answer = call.body.clone();
    calls.lock().unwrap().push(call);
    HttpResponse::Ok().json(answer)
}

/// The bot token Discord (the fake REST API and the fake gateway) accepts.
pub const GATEWAY_TOKEN: &str = "MTIzNDU2Nzg5MDEyMzQ1Njc4OQ.GwAy.gateway-bot-token-never-shown";

/// What the test makes the fake gateway do on the relay's current connection.
#[derive(Debug)]
pub enum GatewayCommand {
    /// An event (op 0) with the next sequence number.
    Dispatch(&'static str, Value),
    /// Closes the connection with this close code.
    Close(u16),
    /// INVALID_SESSION (op 9), resumable or not.
    InvalidSession(bool),
}

#[derive(Default)]
pub struct GatewayState {
    /// Every payload the relay sent (IDENTIFY, RESUME, heartbeats), in order.
    pub received: Vec<Value>,
    /// Websocket connections made.
    pub connections: u32,
    /// Refuse connections (the websocket handshake is never answered: the gateway is down).
    pub down: bool,
    /// Close every IDENTIFY with 4004 (the token was reset in the portal).
    pub refuse_identify: bool,
    /// The last sequence number sent, by session id.
    seqs: std::collections::HashMap<String, u64>,
    sessions: u32,
    current: Option<tokio::sync::mpsc::UnboundedSender<GatewayCommand>>,
}

/// A fake of Discord's gateway v10 (JSON, no compression), on 127.0.0.1.
pub struct FakeGateway {
    pub state: Arc<Mutex<GatewayState>>,
    pub port: u16,
}

impl FakeGateway {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(GatewayState::default()));
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = shared.clone();
                let down = {
                    let mut state = state.lock().unwrap();
                    state.connections += 1;
                    state.down
                };
                if !down {
                    tokio::spawn(serve_gateway(stream, state, port));
                }
            }
        });
        Self { state, port }
    }

    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    /// Does `command` on the relay's current connection; false when there is none.
    pub fn send(&self, command: GatewayCommand) -> bool {
        let state = self.state.lock().unwrap();
        state.current.as_ref().is_some_and(|current| current.send(command).is_ok())
    }

    pub fn received(&self) -> Vec<Value> {
        self.state.lock().unwrap().received.clone()
    }

    /// The payloads the relay sent with opcode `op` (2: IDENTIFY, 6: RESUME, 1: heartbeat).
    pub fn sent_with_op(&self, op: u64) -> Vec<Value> {
        self.received().into_iter().filter(|payload| payload["op"] == op).collect()
    }

    pub fn connections(&self) -> u32 {
        self.state.lock().unwrap().connections
    }

    /// The last sequence number sent in `session`.
    pub fn seq(&self, session: &str) -> u64 {
        self.state.lock().unwrap().seqs.get(session).copied().unwrap_or(0)
    }

    /// Down: new connections get no answer, the current one is closed (1011) without a word.
    pub fn set_down(&self, down: bool) {
        self.state.lock().unwrap().down = down;
        if down {
            self.send(GatewayCommand::Close(1011));
        }
    }
}

async fn serve_gateway(stream: tokio::net::TcpStream, state: Arc<Mutex<GatewayState>>, port: u16) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    use tokio_tungstenite::tungstenite::Message;

    let Ok(mut socket) = tokio_tungstenite::accept_async(stream).await else { return };
    let send = |payload: Value| Message::text(payload.to_string());
    if socket.send(send(json!({"op": 10, "d": {"heartbeat_interval": 1000}, "s": null, "t": null}))).await.is_err() {
        return;
    }
    let (commands, mut orders) = tokio::sync::mpsc::unbounded_channel();
    state.lock().unwrap().current = Some(commands);
    let mut session: Option<String> = None;
    let dispatch = |state: &Arc<Mutex<GatewayState>>, session: &str, t: &str, d: Value| {
        let mut state = state.lock().unwrap();
        let seq = state.seqs.entry(session.to_owned()).or_default();
        *seq += 1;
        send(json!({"op": 0, "s": *seq, "t": t, "d": d}))
    };
    loop {
        tokio::select! {
            order = orders.recv() => {
                let message = match order {
                    Some(GatewayCommand::Dispatch(t, d)) => match &session {
                        Some(id) => dispatch(&state, id, t, d),
                        None => continue,
                    },
                    Some(GatewayCommand::InvalidSession(resumable)) => send(json!({"op": 9, "d": resumable})),
                    Some(GatewayCommand::Close(code)) => {
                        let frame = CloseFrame { code: CloseCode::from(code), reason: "".into() };
                        let _ = socket.send(Message::Close(Some(frame))).await;
                        return;
                    }
                    None => return,
                };
                if socket.send(message).await.is_err() {
                    return;
                }
            }
            message = socket.next() => {
                let Some(Ok(Message::Text(text))) = message else { return };
                let payload: Value = serde_json::from_str(text.as_str()).unwrap_or_default();
                state.lock().unwrap().received.push(payload.clone());
                let reply = match payload["op"].as_u64() {
                    Some(1) => Some(send(json!({"op": 11}))),
                    Some(2) if payload["d"]["token"] != GATEWAY_TOKEN || state.lock().unwrap().refuse_identify => {
                        let frame = CloseFrame { code: CloseCode::from(4004), reason: "Authentication failed.".into() };
                        let _ = socket.send(Message::Close(Some(frame))).await;
                        return;
                    }
                    Some(2) => {
                        let id = {
                            let mut state = state.lock().unwrap();
                            state.sessions += 1;
                            format!("fake-session-{}", state.sessions)
                        };
                        session = Some(id.clone());
                        let ready = json!({
                            "v": 10, "session_id": id, "resume_gateway_url": format!("ws://127.0.0.1:{port}"),
                            "user": {"id": APPLICATION, "username": "relay", "discriminator": "0", "bot": true},
                            "guilds": [{"id": "1100000000000000001", "unavailable": true}],
                            "application": {"id": APPLICATION, "flags": 0}, "shard": [0, 1]
                        });
                        Some(dispatch(&state, &id, "READY", ready))
                    }
                    Some(6) => {
                        let id = payload["d"]["session_id"].as_str().unwrap_or_default().to_owned();
                        let known = state.lock().unwrap().seqs.get(&id).copied();
                        // Only a known session at the last sequence number sent resumes.
                        if known.is_some() && known == payload["d"]["seq"].as_u64() && payload["d"]["token"] == GATEWAY_TOKEN {
                            session = Some(id.clone());
                            Some(dispatch(&state, &id, "RESUMED", Value::Null))
                        } else {
                            Some(send(json!({"op": 9, "d": false})))
                        }
                    }
                    _ => None,
                };
                if let Some(reply) = reply {
                    if socket.send(reply).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

const APPLICATION: &str = "1234567890123456789";
