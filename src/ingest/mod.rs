//! Ingest: the HTTP surface the panel talks to, and the operations endpoints.
//!
//! `POST /` and `POST /webhook` (Marzban's docs use the root path) with `WEBHOOK_SECRET`, and
//! `POST /webhook/<panel>` with that panel's own secret: check the secret, read the body (a JSON
//! array or one object, any Content-Type), normalise, route and render each element, store the
//! rows, and answer 200 only after the outbox committed them. One bad element does not sink the
//! batch; it is reported in the answer.
//!
//! `GET /healthz` answers 200 while the process serves; `GET /readyz` only while the outbox can
//! commit and no destination is paused or parked, listing shorter waits as notices; `GET
//! /metrics` gives the Prometheus metrics.

mod body;
mod operations;
mod prepare;
mod throttle;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::RETRY_AFTER;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde::Serialize;
use time::OffsetDateTime;

use crate::deliver::Dispatch;
use crate::event::{BodyError, Rejection};
use crate::metrics::{ActionLabels, Health, Metrics, PanelLabels};
use crate::outbox::{Batch, Outbox};
use crate::render::Templates;
use crate::routing::Router;
use crate::secret::{HeaderCheck, Secret};
use prepare::prepare;

pub use body::{read_body, PanelBodies, Sender, Unverified};
pub use prepare::{prepare_events, states_after, Prepared};
pub use throttle::{HeldBack, LogThrottle};

/// The header Marzban, PasarGuard and Marzneshin put the secret in.
pub const SECRET_HEADER: &str = "x-webhook-secret";

/// Who may post where.
pub struct Auth {
    /// `POST /`: `Some(secret)`, or `None` for no secret at all (dry run or `ALLOW_NO_SECRET`).
    pub root: RootAuth,
    /// `POST /webhook/<label>`: each panel's own secret.
    pub panels: HashMap<String, Secret>,
}

/// How `POST /` is guarded.
pub enum RootAuth {
    Secret(Secret),
    /// Every request is accepted (no secret configured, and that is allowed).
    Open,
    /// Only the panels' own paths take events (panels are configured, `WEBHOOK_SECRET` is not).
    Closed,
}

/// What every request handler shares.
pub struct State {
    pub auth: Auth,
    pub templates: Arc<Templates>,
    /// The label of events posted to `POST /` (`PANEL_NAME`), for templates and rules.
    pub panel_name: Option<String>,
    pub router: Arc<Router>,
    pub outbox: Outbox,
    pub dispatch: Dispatch,
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    pub max_body_bytes: usize,
    /// How long a client may take to send its body (slow senders hold a connection otherwise).
    pub body_timeout: Duration,
    /// Re-sends of a notification within this window are stored once.
    pub dedup_window: Option<Duration>,
    /// Whether a `user_updated` and the status event of the same edit are stored as one
    /// (`FOLD_UPDATES`).
    pub fold_updates: bool,
    /// Whether each user's last state is remembered, so edits show what they changed
    /// (`USER_STATE_RETENTION` above 0).
    pub user_states: bool,
    /// Bytes of bodies read before their HMAC could be checked, shared by every request.
    pub unverified: Unverified,
    /// Places and bytes of bodies sent with a panel's secret (`PANEL_BODY_BYTES`,
    /// `PANEL_REQUESTS_MAX`).
    pub panel_bodies: PanelBodies,
    /// Whether the relay has answered 503 yet: the first time, the log says how that can lose
    /// events (`hint_at_first_503`).
    pub answered_503: AtomicBool,
    /// Refused requests are logged a few times a minute at most.
    pub refusals: LogThrottle,
}

/// Why a request was not accepted. 4xx bodies say exactly what was wrong; 5xx bodies reveal nothing.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("unauthorized")]
    Unauthorized,
    #[error("{0}")]
    Body(#[from] BodyError),
    #[error("body is larger than MAX_BODY_BYTES ({0} bytes)")]
    TooLarge(usize),
    #[error("an HMAC-signed body may be at most UNVERIFIED_BODY_BYTES ({0} bytes)")]
    TooLargeUnverified(usize),
    #[error("a body may be at most half of PANEL_BODY_BYTES ({0} bytes)")]
    TooLargeForShare(usize),
    #[error("the body was not received in time")]
    BodyTimeout,
    #[error("the body could not be read: {0}")]
    BodyRead(String),
    #[error("the relay cannot store events right now; send them again later")]
    Unavailable,
    #[error("{}", .0.message())]
    Busy(Crowd),
}

/// Whose bodies were too many, or too large together, to read one more: the answer is 503 with
/// `Retry-After`, and the panel sends again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crowd {
    /// Bodies with an HMAC-shaped header (`UNVERIFIED_BODY_BYTES`).
    Unverified,
    /// Bodies with this panel's secret (`PANEL_REQUESTS_MAX`), or with any (`PANEL_BODY_BYTES`).
    Panel,
}

impl Crowd {
    fn message(self) -> &'static str {
        match self {
            Crowd::Unverified => "too many HMAC-signed bodies are being received at once; send again later",
            Crowd::Panel => {
                "too many bodies are being received from this panel, or from all, at once; send again later"
            }
        }
    }
}

impl ResponseError for IngestError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Body(_) | Self::BodyRead(_) => StatusCode::BAD_REQUEST,
            Self::TooLarge(_) | Self::TooLargeUnverified(_) | Self::TooLargeForShare(_) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            Self::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::Unavailable | Self::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        match self {
            Self::Unauthorized => response.finish(),
            Self::Busy(_) => {
                response.insert_header((RETRY_AFTER, "5")).json(serde_json::json!({ "error": self.to_string() }))
            }
            _ => response.json(serde_json::json!({ "error": self.to_string() })),
        }
    }
}

/// The answer to an accepted request.
#[derive(Debug, Serialize)]
pub struct Receipt {
    pub accepted: usize,
    pub rejected: usize,
    /// Accepted events that were re-sends of ones already stored.
    pub duplicates: usize,
    /// What was wrong with the first [`crate::event::REJECTIONS_SHOWN`] rejected elements.
    pub errors: Vec<Rejection>,
    /// Rejected elements not described in `errors`.
    pub errors_not_shown: usize,
}

/// Mounts the routes.
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .service(web::resource(["/", "/webhook", "/webhook/"]).route(web::post().to(receive_root)))
        .service(web::resource(["/webhook/{panel}", "/webhook/{panel}/"]).route(web::post().to(receive_panel)))
        .service(web::resource("/healthz").route(web::get().to(operations::healthz)))
        .service(web::resource("/readyz").route(web::get().to(operations::readyz)))
        .service(web::resource("/metrics").route(web::get().to(operations::metrics_text)));
}

async fn receive_root(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<State>,
) -> Result<HttpResponse, IngestError> {
    let panel = state.panel_name.clone();
    let secret = match &state.auth.root {
        RootAuth::Secret(secret) => Some(secret),
        RootAuth::Open => None,
        RootAuth::Closed => {
            warn_refused(&state, &request, format_args!("only the panels' own paths take events"));
            state.metrics.auth_failures.get_or_create(&PanelLabels::of(panel.as_deref())).inc();
            return Err(IngestError::Unauthorized);
        }
    };
    receive(request, payload, &state, panel, secret).await
}

async fn receive_panel(
    request: HttpRequest,
    payload: web::Payload,
    path: web::Path<String>,
    state: web::Data<State>,
) -> Result<HttpResponse, IngestError> {
    let label = path.into_inner();
    let Some(secret) = state.auth.panels.get(&label) else {
        let shown: String = label.chars().take(40).collect();
        warn_refused(&state, &request, format_args!("no panel is called {shown:?}"));
        state.metrics.auth_failures.get_or_create(&PanelLabels::of(Some("unknown"))).inc();
        return Err(IngestError::Unauthorized);
    };
    receive(request, payload, &state, Some(label.clone()), Some(secret)).await
}

async fn receive(
    request: HttpRequest,
    payload: web::Payload,
    state: &State,
    panel: Option<String>,
    secret: Option<&Secret>,
) -> Result<HttpResponse, IngestError> {
    let received_at = OffsetDateTime::now_utc();
    let panel_labels = PanelLabels::of(panel.as_deref());
    let refuse = || {
        state.metrics.auth_failures.get_or_create(&panel_labels).inc();
        warn_refused(state, &request, format_args!("missing or wrong {SECRET_HEADER}"));
        IngestError::Unauthorized
    };
    // Bodies whose sender is not known yet (an HMAC-shaped header) share one budget of bytes.
    let presented = request.headers().get(SECRET_HEADER).map(|v| v.as_bytes().to_vec()).unwrap_or_default();
    let check = secret.map_or(HeaderCheck::Accepted, |secret| secret.check_header(&presented));
    if check == HeaderCheck::Refused {
        return Err(refuse());
    }
    let authorized = check == HeaderCheck::Accepted;
    let sender = if authorized {
        Sender::Panel(&state.panel_bodies, panel.as_deref())
    } else {
        Sender::Unverified(&state.unverified)
    };
    let body = match read_body(&request, payload, state.max_body_bytes, state.body_timeout, sender).await {
        Ok(body) => body,
        Err(err) if !authorized => {
            state.metrics.unverified_refused.inc();
            warn_refused(state, &request, format_args!("HMAC-signed, and {err}"));
            return Err(err);
        }
        Err(err @ IngestError::Busy(_)) => {
            state.metrics.bodies_refused.get_or_create(&panel_labels).inc();
            warn_refused(state, &request, format_args!("{err}"));
            return Err(err);
        }
        Err(err) => return Err(err),
    };
    if !authorized && !secret.is_some_and(|secret| secret.verify(&presented, &body.bytes)) {
        return Err(refuse());
    }
    let body = body.bytes;

    let renderer = state.templates.current();
    let router = state.router.clone();
    let label = panel.clone();
    let fold = state.fold_updates;
    let states = state.user_states.then(|| state.outbox.clone());
    let prepared =
        web::block(move || prepare(&body, received_at, panel.as_deref(), (&renderer, &router), fold, states.as_ref()))
            .await
            .map_err(|_| {
                hint_at_first_503(state, label.as_deref());
                IngestError::Unavailable
            })??;

    let batch = Batch {
        rows: prepared.rows,
        destinations: prepared.remember,
        tally: prepared.tally,
        states: prepared.states,
        held: prepared.held,
    };
    let stored = state.outbox.enqueue_batch(batch, state.dedup_window).await;
    let enqueued = stored.map_err(|err| {
        log::error!("could not store {} events, answering 503 so the panel retries: {err}", prepared.accepted);
        hint_at_first_503(state, label.as_deref());
        IngestError::Unavailable
    })?;
    for destination in prepared.destinations.values() {
        state.dispatch.wake(destination);
    }
    count(&state.metrics, &panel_labels, &prepared.actions, prepared.rejected_total, enqueued.duplicates);
    if let Some(first) = prepared.rejected.first() {
        log::warn!(
            "rejected {} elements of a batch of {}; the first, element {}: {}",
            prepared.rejected_total,
            prepared.accepted + prepared.rejected_total,
            first.index,
            first.error
        );
    }
    log::info!(
        "received {} events ({} rejected, {} duplicates)",
        prepared.accepted,
        prepared.rejected_total,
        enqueued.duplicates
    );
    Ok(HttpResponse::Ok().json(Receipt {
        accepted: prepared.accepted,
        rejected: prepared.rejected_total,
        duplicates: enqueued.duplicates,
        errors_not_shown: prepared.rejected_total - prepared.rejected.len(),
        errors: prepared.rejected,
    }))
}

/// Logs, the first time the relay answers 503, why that answer can lose events: Marzban and
/// PasarGuard count a batch as delivered when any one of their webhooks answers 2xx, and then never
/// send it again.
fn hint_at_first_503(state: &State, panel: Option<&str>) {
    if state.answered_503.swap(true, Ordering::Relaxed) {
        return;
    }
    let panel = panel.map_or_else(String::new, |label| format!(" (panel {label})"));
    log::warn!(
        "first 503 since start{panel}: Marzban and PasarGuard treat a batch as delivered when any one of their \
         webhooks answers 2xx, so if the panel has another webhook that accepted this batch, it will not re-send it \
         here and these events are lost. Make the relay the panel's only webhook (see docs/PANELS.md, \
         PasarGuard). This hint is logged once"
    );
}

fn count(metrics: &Metrics, panel: &PanelLabels, actions: &[String], rejected: usize, duplicates: usize) {
    metrics.events_received.get_or_create(panel).inc_by((actions.len() + rejected) as u64);
    metrics.events_rejected.get_or_create(panel).inc_by(rejected as u64);
    metrics.events_duplicate.get_or_create(panel).inc_by(duplicates as u64);
    for action in actions {
        // Only the actions the panels send become label values: any other name (a sender may make
        // up thousands) counts as `other`, so the number of series stays bounded.
        let known = crate::event::KNOWN_ACTIONS.contains(&action.as_str());
        let action = if known { action.clone() } else { "other".to_owned() };
        let labels = ActionLabels { panel: panel.clone(), action };
        metrics.events_accepted.get_or_create(&labels).inc();
    }
}

/// Logs a refused request, a few times a minute at most (strangers can send them at will).
fn warn_refused(state: &State, request: &HttpRequest, why: std::fmt::Arguments) {
    if let Some(held_back) = state.refusals.admit() {
        let path: String = request.path().chars().take(60).collect();
        log::warn!("refused a request to {path} from {}: {why}{}", peer(request), held_back.note());
    }
}

fn peer(request: &HttpRequest) -> String {
    request.peer_addr().map_or_else(|| "an unknown address".to_owned(), |addr| addr.ip().to_string())
}
