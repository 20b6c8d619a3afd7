//! Ingest: the HTTP surface the panel talks to.
//!
//! `POST /` and `POST /webhook` (Marzban's docs use the root path): check the secret, read the body
//! (a JSON array or one object, any Content-Type), normalise and render each element, store the
//! rows, and answer 200 only after the outbox committed them. One bad element does not sink the
//! batch; it is reported in the answer. `GET /healthz` answers 200 while the process serves.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use futures_util::StreamExt;
use serde::Serialize;
use time::OffsetDateTime;

use crate::deliver::Waker;
use crate::event::{parse_batch, BodyError, Rejection};
use crate::outbox::{NewRow, Outbox};
use crate::render::{Renderer, Templates};
use crate::routing::Router;
use crate::secret::Secret;

/// The header Marzban, PasarGuard and Marzneshin put the secret in.
pub const SECRET_HEADER: &str = "x-webhook-secret";

/// How long a client may take to send its body (slow senders hold a connection otherwise).
const BODY_TIMEOUT: Duration = Duration::from_secs(60);

/// What every request handler shares.
pub struct State {
    pub secret: Option<Secret>,
    pub templates: std::sync::Arc<Templates>,
    /// The label of the panel (`PANEL_NAME`), for templates.
    pub panel_name: Option<String>,
    pub router: Router,
    pub outbox: Outbox,
    pub waker: Waker,
    pub max_body_bytes: usize,
    /// Re-sends of a notification within this window are stored once.
    pub dedup_window: Option<Duration>,
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
    #[error("the body was not received in time")]
    BodyTimeout,
    #[error("the body could not be read: {0}")]
    BodyRead(String),
    #[error("the relay cannot store events right now; send them again later")]
    Unavailable,
}

impl ResponseError for IngestError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Body(_) | Self::BodyRead(_) => StatusCode::BAD_REQUEST,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        match self {
            Self::Unauthorized => response.finish(),
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
    pub errors: Vec<Rejection>,
}

/// Mounts the routes.
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .service(web::resource(["/", "/webhook", "/webhook/"]).route(web::post().to(receive)))
        .service(web::resource("/healthz").route(web::get().to(healthz)));
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok")
}

async fn receive(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<State>,
) -> Result<HttpResponse, IngestError> {
    let received_at = OffsetDateTime::now_utc();
    let body = read_body(&request, payload, state.max_body_bytes).await?;
    authorize(&request, &body, state.secret.as_ref())?;

    let renderer = state.templates.current();
    let router = state.router.clone();
    let dedup_window = state.dedup_window;
    let panel = state.panel_name.clone();
    let prepared = web::block(move || prepare(&body, received_at, panel.as_deref(), &renderer, &router))
        .await
        .map_err(|_| IngestError::Unavailable)??;

    let enqueued = state.outbox.enqueue(prepared.rows, dedup_window).await.map_err(|err| {
        log::error!("could not store {} events, answering 503 so the panel retries: {err}", prepared.accepted);
        IngestError::Unavailable
    })?;
    for destination in &prepared.destinations {
        state.waker.wake(destination);
    }
    for rejection in &prepared.rejected {
        log::warn!("rejected element {} of a batch: {}", rejection.index, rejection.error);
    }
    log::info!(
        "received {} events ({} rejected, {} duplicates)",
        prepared.accepted,
        prepared.rejected.len(),
        enqueued.duplicates
    );
    Ok(HttpResponse::Ok().json(Receipt {
        accepted: prepared.accepted,
        rejected: prepared.rejected.len(),
        duplicates: enqueued.duplicates,
        errors: prepared.rejected,
    }))
}

/// Reads the whole body, refusing more than `limit` bytes (by `Content-Length` up front, or as it
/// streams in) and bodies that take too long.
async fn read_body(request: &HttpRequest, mut payload: web::Payload, limit: usize) -> Result<Vec<u8>, IngestError> {
    let declared = request
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(IngestError::TooLarge(limit));
    }
    let read = async {
        let mut body = Vec::with_capacity(declared.unwrap_or(0).min(limit));
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|err| IngestError::BodyRead(err.to_string()))?;
            if body.len() + chunk.len() > limit {
                return Err(IngestError::TooLarge(limit));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    };
    tokio::time::timeout(BODY_TIMEOUT, read).await.map_err(|_| IngestError::BodyTimeout)?
}

fn authorize(request: &HttpRequest, body: &[u8], secret: Option<&Secret>) -> Result<(), IngestError> {
    let Some(secret) = secret else {
        return Ok(());
    };
    let presented = request.headers().get(SECRET_HEADER).map(|v| v.as_bytes()).unwrap_or_default();
    if secret.verify(presented, body) {
        Ok(())
    } else {
        log::warn!("refused a request from {}: missing or wrong {SECRET_HEADER}", peer(request));
        Err(IngestError::Unauthorized)
    }
}

fn peer(request: &HttpRequest) -> String {
    request.peer_addr().map_or_else(|| "an unknown address".to_owned(), |addr| addr.ip().to_string())
}

/// A parsed and rendered batch, ready to store.
struct Prepared {
    accepted: usize,
    rejected: Vec<Rejection>,
    rows: Vec<NewRow>,
    destinations: Vec<String>,
}

/// Parses and renders a body: CPU work, run off the async workers.
fn prepare(
    body: &[u8],
    received_at: OffsetDateTime,
    panel: Option<&str>,
    renderer: &Renderer,
    router: &Router,
) -> Result<Prepared, IngestError> {
    let batch = parse_batch(body, received_at, panel)?;
    let received_at_ms = (received_at.unix_timestamp_nanos() / 1_000_000) as i64;
    let mut rows = Vec::with_capacity(batch.events.len());
    let mut destinations: Vec<String> = Vec::new();
    for event in &batch.events {
        let part = renderer.render(event);
        let part = serde_json::to_string(&part).expect("a rendered part always serialises");
        for destination in router.route(event) {
            if !destinations.iter().any(|d| d == destination) {
                destinations.push(destination.to_owned());
            }
            rows.push(NewRow {
                destination: destination.to_owned(),
                received_at_ms,
                action: event.action.to_string(),
                username: event.username.clone(),
                panel: event.panel.clone(),
                part: part.clone(),
                fingerprint: Some(event.fingerprint.clone()),
            });
        }
    }
    Ok(Prepared { accepted: batch.events.len(), rejected: batch.rejected, rows, destinations })
}
