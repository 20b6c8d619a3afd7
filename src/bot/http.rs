//! `POST /interactions`: Discord's HTTP interactions endpoint. The signature headers are checked
//! before the body is read, the body is bounded in size and time, and the signature over it is
//! verified before it is parsed: anything else is `401` and never reaches the handler.

use std::time::{Duration, SystemTime};

use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serenity::model::application::Interaction;

use super::verify::verify;
use super::Bot;

/// The largest interaction read: a click carries the message it is on (an embed of at most
/// 6,000 characters and its buttons), well under this.
pub const MAX_BODY_BYTES: usize = 256 << 10;

/// How long a client may take to send the body.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);

pub const SIGNATURE_HEADER: &str = "x-signature-ed25519";
pub const TIMESTAMP_HEADER: &str = "x-signature-timestamp";

/// Serves `POST /interactions` with the [`Bot`] in the app data.
pub fn routes(config: &mut web::ServiceConfig) {
    config.service(web::resource("/interactions").route(web::post().to(receive)));
}

async fn receive(request: HttpRequest, payload: web::Payload, bot: web::Data<Bot>) -> HttpResponse {
    let headers = request.headers();
    let (Some(signature), Some(timestamp)) = (headers.get(SIGNATURE_HEADER), headers.get(TIMESTAMP_HEADER)) else {
        return unauthorized();
    };
    let body = match tokio::time::timeout(BODY_TIMEOUT, read(payload)).await {
        Ok(Ok(body)) => body,
        Ok(Err(response)) => return response,
        Err(_) => return HttpResponse::RequestTimeout().finish(),
    };
    let key = &bot.settings().public_key;
    if let Err(err) = verify(key, Some(signature.as_bytes()), Some(timestamp.as_bytes()), &body, SystemTime::now()) {
        log::debug!("bot: refused an interaction: {err}");
        return unauthorized();
    }
    let interaction: Interaction = match serde_json::from_slice(&body) {
        Ok(interaction) => interaction,
        Err(err) => {
            let reason: String = err.to_string().chars().take(200).collect();
            log::warn!("bot: a signed interaction could not be read: {reason}");
            return HttpResponse::BadRequest().body("the interaction could not be read");
        }
    };
    let answer = bot.handle(interaction).await;
    if let Some(follow_up) = answer.follow_up {
        tokio::spawn(follow_up);
    }
    match serde_json::to_value(&answer.response) {
        Ok(body) => HttpResponse::Ok().content_type("application/json").body(without_null_data(body).to_string()),
        Err(_) => HttpResponse::InternalServerError().finish(),
    }
}

/// The response as Discord documents it: serenity writes `"data": null` for a PONG (type 1) and a
/// deferred update (type 6), which take no data at all.
fn without_null_data(mut body: serde_json::Value) -> serde_json::Value {
    if let Some(map) = body.as_object_mut() {
        if map.get("data").is_some_and(serde_json::Value::is_null) {
            map.remove("data");
        }
    }
    body
}

/// The body, up to [`MAX_BODY_BYTES`]; a larger one is answered `413`.
async fn read(mut payload: web::Payload) -> Result<Vec<u8>, HttpResponse> {
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| HttpResponse::BadRequest().finish())?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(HttpResponse::PayloadTooLarge().finish());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn unauthorized() -> HttpResponse {
    HttpResponse::Unauthorized().body("invalid request signature")
}
