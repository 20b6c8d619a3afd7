//! The operations endpoints: `GET /healthz` (the process serves), `GET /readyz` (the outbox can
//! commit and no destination is paused or parked; shorter waits are notices) and `GET /metrics`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};

use super::State;
use crate::destination::Origin;

pub(super) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok")
}

pub(super) async fn readyz(state: web::Data<State>) -> HttpResponse {
    let mut reasons = Vec::new();
    if let Err(err) = state.outbox.probe().await {
        log::warn!("readiness: {err}");
        reasons.push(format!("the outbox cannot commit a write to its file: {err}"));
    }
    if state.outbox.is_full().await.unwrap_or(false) {
        reasons.push("the outbox is full (OUTBOX_MAX_BYTES): new events are refused until rows are delivered".into());
    }
    // An owner admin's own webhook being gone is that admin's problem, not the relay's: it shows
    // in the metrics and the log, not in readiness.
    let now = std::time::SystemTime::now();
    let configured = |name: &str| Origin::of(name) != Origin::Owner;
    reasons.extend(state.health.reasons(now, configured));
    // Waits under five minutes are Discord's pacing, which ends by itself and which nothing an
    // operator does shortens: shown, but the relay stays ready (it stores events meanwhile).
    let notices = state.health.notices(now, configured);
    let ready = reasons.is_empty();
    let mut body = serde_json::json!({ "ready": ready });
    for (key, lines) in [("reasons", reasons), ("notices", notices)].into_iter().filter(|(_, l)| !l.is_empty()) {
        body[key] = lines.into();
    }
    HttpResponse::build(if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }).json(body)
}

pub(super) async fn metrics_text(state: web::Data<State>) -> HttpResponse {
    let stats = state.outbox.stats().await.unwrap_or_default();
    state.metrics.set_forum_posts_forgotten(state.outbox.forum_posts_forgotten());
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.metrics.render(&stats, &state.health, crate::outbox::now_ms()))
}
