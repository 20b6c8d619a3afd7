//! The rest of the fake panel's API for the bot (`fake_bot_peers::FakePanel`): Marzneshin's login
//! and user paths, each family's counts for `/stats` (`GET /api/system`, Marzneshin's
//! `/api/system/stats/users` and `/traffic`), and the user list autocomplete searches
//! (`GET /api/users`, recorded with its query).

#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use crate::fake_bot_peers::{login, PanelState, Shape};

type State = web::Data<Arc<Mutex<PanelState>>>;

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/api/admins/token", web::post().to(marzneshin_login))
        .route("/api/users", web::get().to(list))
        .route("/api/users/{username}", web::get().to(marzneshin_user))
        .route("/api/users/{username}", web::put().to(marzneshin_user))
        .route("/api/users/{username}", web::delete().to(marzneshin_user))
        .route("/api/users/{username}/{action}", web::post().to(marzneshin_user))
        .route("/api/system", web::get().to(system))
        .route("/api/system/stats/{what}", web::get().to(marzneshin_stats));
}

/// `GET /api/users/u_full` of Marzneshin 0.7.4 (the user of its `user_deactivated` webhook,
/// tests/fixtures/marzneshin-0.7.4/005_user_deactivated.json): expired.
pub fn marzneshin_alice() -> Value {
    let path = format!("{}/tests/fixtures/marzneshin-0.7.4/005_user_deactivated.json", env!("CARGO_MANIFEST_DIR"));
    let body: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    body["user"].clone()
}

/// What each family answers for its counts (the fake's panel has 12 users).
pub fn system_answer(shape: Shape) -> Value {
    match shape {
        Shape::Marzban => json!({"version": "0.8.4", "mem_total": 4_000_000_000u64, "mem_used": 1_000_000_000u64,
            "cpu_cores": 2, "cpu_usage": 3.5, "total_user": 12, "online_users": 3, "users_active": 7,
            "users_on_hold": 1, "users_disabled": 2, "users_expired": 1, "users_limited": 1,
            "incoming_bandwidth": 1_073_741_824u64, "outgoing_bandwidth": 1_073_741_824u64,
            "incoming_bandwidth_speed": 0, "outgoing_bandwidth_speed": 0}),
        Shape::PasarGuard => json!({"version": "5.2.1", "uptime_seconds": 60, "mem_total": null, "mem_used": null,
            "total_user": 12, "online_users": 3, "active_users": 7, "on_hold_users": 1, "disabled_users": 2,
            "expired_users": 1, "limited_users": 1, "incoming_bandwidth": 1_073_741_824u64,
            "outgoing_bandwidth": 1_073_741_824u64}),
        Shape::Marzneshin => json!({"total": 12, "active": 7, "on_hold": 1, "expired": 1, "limited": 1, "online": 3}),
    }
}

/// Whether `request` carries the token of the last login (taking a pending `expire_token`).
fn authorized(request: &HttpRequest, state: &mut PanelState) -> bool {
    let bearer = request.headers().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let expected = state.token.as_ref().map(|t| format!("Bearer {t}"));
    bearer.is_some() && bearer == expected && !std::mem::take(&mut state.expire_token)
}

/// Waits the state's delay, records the call, checks the token: `Err` is the answer to give.
async fn enter(request: &HttpRequest, state: &State, record: String) -> Result<(), HttpResponse> {
    let delay = state.lock().unwrap().delay;
    tokio::time::sleep(delay).await;
    let mut state = state.lock().unwrap();
    state.calls.push((request.method().to_string(), record));
    if authorized(request, &mut state) {
        Ok(())
    } else {
        Err(HttpResponse::Unauthorized().json(json!({"detail": "Could not validate credentials"})))
    }
}

async fn marzneshin_login(state: State, form: String) -> HttpResponse {
    if state.lock().unwrap().shape != Some(Shape::Marzneshin) {
        return HttpResponse::NotFound().finish();
    }
    login(state, form).await
}

async fn list(request: HttpRequest, state: State) -> HttpResponse {
    if let Err(answer) = enter(&request, &state, request.uri().to_string()).await {
        return answer;
    }
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(request.query_string().as_bytes()).into_owned().collect();
    let state = state.lock().unwrap();
    let key = if state.shape == Some(Shape::Marzneshin) { "username" } else { "search" };
    let typed = query.iter().find(|(k, _)| k == key).map(|(_, v)| v.to_lowercase()).unwrap_or_default();
    let users: Vec<Value> = state
        .users
        .iter()
        .filter(|u| u["username"].as_str().unwrap_or_default().to_lowercase().contains(&typed))
        .cloned()
        .collect();
    let total = users.len();
    if state.shape == Some(Shape::Marzneshin) {
        return HttpResponse::Ok().json(json!({"items": users, "total": total, "page": 1, "size": 25, "pages": 1}));
    }
    HttpResponse::Ok().json(json!({"users": users, "total": total}))
}

async fn system(request: HttpRequest, state: State) -> HttpResponse {
    let shape = state.lock().unwrap().shape.unwrap_or(Shape::Marzban);
    if shape == Shape::Marzneshin {
        return HttpResponse::NotFound().json(json!({"detail": "Not Found"}));
    }
    if let Err(answer) = enter(&request, &state, request.path().to_owned()).await {
        return answer;
    }
    HttpResponse::Ok().json(system_answer(shape))
}

async fn marzneshin_stats(request: HttpRequest, state: State) -> HttpResponse {
    if state.lock().unwrap().shape != Some(Shape::Marzneshin) {
        return HttpResponse::NotFound().finish();
    }
    if let Err(answer) = enter(&request, &state, request.path().to_owned()).await {
        return answer;
    }
    match request.match_info().get("what") {
        Some("users") => HttpResponse::Ok().json(system_answer(Shape::Marzneshin)),
        Some("traffic") => HttpResponse::Ok().json(json!({"step": 3600, "total": 2_147_483_648u64, "usages": []})),
        _ => HttpResponse::NotFound().finish(),
    }
}

/// Marzneshin's `/api/users/{username}` with `/reset`, `/enable`, `/disable`, `/revoke_sub`, and
/// its `PUT` (the expiry or the data limit) and `DELETE`.
async fn marzneshin_user(request: HttpRequest, state: State, body: String) -> HttpResponse {
    if state.lock().unwrap().shape != Some(Shape::Marzneshin) {
        return HttpResponse::NotFound().finish();
    }
    if let Err(answer) = enter(&request, &state, request.path().to_owned()).await {
        return answer;
    }
    let mut state = state.lock().unwrap();
    let name = request.match_info().get("username").unwrap_or_default().to_owned();
    let Some(user) = state.users.iter_mut().find(|u| u["username"] == name.as_str()) else {
        return HttpResponse::NotFound().json(json!({"detail": "User not found"}));
    };
    match (request.method().as_str(), request.match_info().get("action")) {
        ("GET", None) => {}
        ("POST", Some("reset")) => {
            user["used_traffic"] = json!(0);
            user["data_limit_reached"] = json!(false);
        }
        ("POST", Some("enable")) => user["enabled"] = json!(true),
        ("POST", Some("disable")) => user["enabled"] = json!(false),
        ("POST", Some("revoke_sub")) => user["key"] = json!("b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0"),
        ("PUT", None) => {
            let Ok(change) = serde_json::from_str::<Value>(&body) else {
                return HttpResponse::UnprocessableEntity().finish();
            };
            // Marzneshin's UserModify requires the username, and fixed_date an expire_date.
            if change["username"] != name.as_str()
                || (change["expire_strategy"] == "fixed_date" && !change["expire_date"].is_string())
            {
                return HttpResponse::UnprocessableEntity().json(json!({"detail": "invalid modification"}));
            }
            for key in ["expire_strategy", "expire_date", "data_limit"] {
                if let Some(value) = change.get(key) {
                    user[key] = value.clone();
                }
            }
            if change.get("expire_date").is_some() {
                user["expired"] = json!(false);
            }
        }
        ("DELETE", None) => {
            state.users.retain(|u| u["username"] != name.as_str());
            return HttpResponse::Ok().json(json!({}));
        }
        _ => return HttpResponse::NotFound().finish(),
    }
    HttpResponse::Ok().json(user.clone())
}
