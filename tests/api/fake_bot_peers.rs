//! What the bot talks to, faked on 127.0.0.1: a Marzban panel's user API (login with a JWT, one
//! user `alice`, slow or expiring its token on request) and Discord's REST API for the bot
//! (editing a deferred response, registering commands). Both record what they receive.

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
}

impl FakeRest {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let data = web::Data::new(calls.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/api/v10/webhooks/{app}/{token}/messages/@original", web::patch().to(record))
                .route("/api/v10/applications/{app}/guilds/{guild}/commands", web::put().to(record))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        Self { calls, port }
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}/api/v10", self.port)
    }

    pub fn calls(&self) -> Vec<RestCall> {
        self.calls.lock().unwrap().clone()
    }
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
