//! A fake panel API (Marzban, PasarGuard or Marzneshin shapes) on 127.0.0.1: the login, the node
//! list and Marzban's core status, with nodes, token revocation, outages and delays each test sets.
// The benchmark uses a part of it only.
#![allow(dead_code)]

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Marzban,
    PasarGuard,
    Marzneshin,
}

pub const API_KEY: &str = "pg-api-key-0123456789";

#[derive(Default)]
struct Inner {
    shape: Option<Shape>,
    /// `(id, name, status, message)`.
    nodes: Vec<(i64, String, String, Option<String>)>,
    logins: usize,
    token: Option<String>,
    down: bool,
    delay: Duration,
    core_started: bool,
    /// The admin logged in is not a sudo admin: the node list is 403, as Marzban answers.
    not_sudo: bool,
}

#[derive(Clone)]
pub struct FakePanel {
    inner: Arc<Mutex<Inner>>,
    port: u16,
}

impl FakePanel {
    pub async fn start(shape: Shape) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake panel");
        let port = listener.local_addr().unwrap().port();
        let inner = Arc::new(Mutex::new(Inner { shape: Some(shape), core_started: true, ..Inner::default() }));
        let data = web::Data::new(inner.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/api/admin/token", web::post().to(login))
                .route("/api/admins/token", web::post().to(login))
                .route("/api/nodes", web::get().to(nodes))
                .route("/api/core", web::get().to(core))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run();
        tokio::spawn(server);
        Self { inner, port }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn set_node(&self, id: i64, name: &str, status: &str, message: Option<&str>) {
        let mut inner = self.inner.lock().unwrap();
        inner.nodes.retain(|node| node.0 != id);
        inner.nodes.push((id, name.into(), status.into(), message.map(str::to_owned)));
        inner.nodes.sort_by_key(|node| node.0);
    }

    pub fn remove_node(&self, id: i64) {
        self.inner.lock().unwrap().nodes.retain(|node| node.0 != id);
    }

    /// Answers 502 to everything while `down`.
    pub fn set_down(&self, down: bool) {
        self.inner.lock().unwrap().down = down;
    }

    /// Holds every answer this long.
    pub fn set_delay(&self, delay: Duration) {
        self.inner.lock().unwrap().delay = delay;
    }

    /// Forgets the token it gave: the next call with it gets 401.
    pub fn revoke_token(&self) {
        self.inner.lock().unwrap().token = None;
    }

    /// Makes the admin a non-sudo one: the node list answers 403 "You're not allowed".
    pub fn set_not_sudo(&self, not_sudo: bool) {
        self.inner.lock().unwrap().not_sudo = not_sudo;
    }

    pub fn logins(&self) -> usize {
        self.inner.lock().unwrap().logins
    }
}

type Data = web::Data<Arc<Mutex<Inner>>>;

/// The delay and the outage, before any answer.
async fn hold(data: &Data) -> Option<HttpResponse> {
    let (delay, down) = {
        let inner = data.lock().unwrap();
        (inner.delay, inner.down)
    };
    tokio::time::sleep(delay).await;
    down.then(|| HttpResponse::BadGateway().finish())
}

async fn login(data: Data, form: web::Form<Vec<(String, String)>>) -> HttpResponse {
    if let Some(answer) = hold(&data).await {
        return answer;
    }
    let field = |name: &str| form.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone());
    if field("username").as_deref() != Some("admin") || field("password").as_deref() != Some("s3cret-pw") {
        return HttpResponse::Unauthorized().json(json!({"detail": "Incorrect username or password"}));
    }
    let mut inner = data.lock().unwrap();
    inner.logins += 1;
    let token = format!("token-{}", inner.logins);
    inner.token = Some(token.clone());
    HttpResponse::Ok().json(json!({"access_token": token, "token_type": "bearer"}))
}

fn authorized(inner: &Inner, request: &HttpRequest) -> bool {
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    if inner.shape == Some(Shape::PasarGuard) && header("x-api-key").as_deref() == Some(API_KEY) {
        return true;
    }
    let bearer = header("authorization").and_then(|v| v.strip_prefix("Bearer ").map(str::to_owned));
    bearer.is_some() && bearer == inner.token
}

async fn nodes(data: Data, request: HttpRequest) -> HttpResponse {
    if let Some(answer) = hold(&data).await {
        return answer;
    }
    let inner = data.lock().unwrap();
    if !authorized(&inner, &request) {
        return HttpResponse::Unauthorized().json(json!({"detail": "Could not validate credentials"}));
    }
    if inner.not_sudo {
        return HttpResponse::Forbidden().json(json!({"detail": "You're not allowed"}));
    }
    let list: Vec<Value> = inner
        .nodes
        .iter()
        .map(|(id, name, status, message)| {
            json!({"id": id, "name": name, "address": format!("10.0.0.{id}"), "port": 62050, "api_port": 62051,
                   "usage_coefficient": 1.0, "xray_version": "1.8.24", "status": status, "message": message,
                   "api_key": "node-secret-key-that-must-never-show"})
        })
        .collect();
    let total = list.len();
    match inner.shape {
        Some(Shape::PasarGuard) => HttpResponse::Ok().json(json!({"nodes": list, "total": total})),
        Some(Shape::Marzneshin) => {
            HttpResponse::Ok().json(json!({"items": list, "total": total, "page": 1, "size": 100, "pages": 1}))
        }
        _ => HttpResponse::Ok().json(list),
    }
}

async fn core(data: Data, request: HttpRequest) -> HttpResponse {
    if let Some(answer) = hold(&data).await {
        return answer;
    }
    let inner = data.lock().unwrap();
    if !authorized(&inner, &request) {
        return HttpResponse::Unauthorized().finish();
    }
    HttpResponse::Ok()
        .json(json!({"version": "1.8.24", "started": inner.core_started, "logs_websocket": "/api/core/logs"}))
}
