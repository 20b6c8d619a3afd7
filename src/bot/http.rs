//! `POST /interactions`: Discord's HTTP interactions endpoint. The signature headers are checked
//! before the body is read, the body is bounded in size and time, and the signature over it is
//! verified before it is parsed: anything else is `401` and never reaches the handler.

use std::time::{Duration, Instant, SystemTime};

use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serenity::model::application::Interaction;

use super::verify::verify;
use super::Bot;
use crate::ingest::{read_body, Sender};

/// The largest interaction read: a click carries the message it is on (an embed of at most
/// 6,000 characters and its buttons), well under this.
pub const MAX_BODY_BYTES: usize = 256 << 10;

/// How long a client may take to send the body: Discord's few kilobytes arrive at once, and a body
/// still coming after a second could not be answered within Discord's 3 s anyway.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(1);

/// The bytes all bodies not yet verified may hold together (each takes one of 32 places and its
/// bytes as they arrive; past either, `503` at once). The endpoint's own budget: strangers here
/// do not take the places of the panels' HMAC-signed webhooks, nor those of Discord.
pub const UNVERIFIED_BYTES: usize = 32 * MAX_BODY_BYTES;

pub const SIGNATURE_HEADER: &str = "x-signature-ed25519";
pub const TIMESTAMP_HEADER: &str = "x-signature-timestamp";

/// Serves `POST /interactions` with the [`Bot`] in the app data.
pub fn routes(config: &mut web::ServiceConfig) {
    config.service(web::resource("/interactions").route(web::post().to(receive)));
}

async fn receive(request: HttpRequest, payload: web::Payload, bot: web::Data<Bot>) -> HttpResponse {
    // Without DISCORD_PUBLIC_KEY the gateway brings the interactions: no endpoint.
    let Some(key) = bot.settings().public_key else {
        return HttpResponse::NotFound().finish();
    };
    // Discord's 3 s run from here: reading and checking the body count against them.
    let arrived = Instant::now();
    let headers = request.headers();
    let (Some(signature), Some(timestamp)) = (headers.get(SIGNATURE_HEADER), headers.get(TIMESTAMP_HEADER)) else {
        return unauthorized();
    };
    let body =
        match read_body(&request, payload, MAX_BODY_BYTES, BODY_TIMEOUT, Sender::Unverified(&bot.unverified)).await {
            Ok(body) => body,
            Err(err) => return err.error_response(),
        };
    let body = &body.bytes;
    if let Err(err) = verify(&key, Some(signature.as_bytes()), Some(timestamp.as_bytes()), body, SystemTime::now()) {
        log::debug!("bot: refused an interaction: {err}");
        return unauthorized();
    }
    let interaction: Interaction = match serde_json::from_slice(body) {
        Ok(interaction) => interaction,
        Err(err) => {
            let reason: String = err.to_string().chars().take(200).collect();
            log::warn!("bot: a signed interaction could not be read: {reason}");
            return HttpResponse::BadRequest().body("the interaction could not be read");
        }
    };
    let answer = bot.handle_from(interaction, arrived).await;
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
pub(super) fn without_null_data(mut body: serde_json::Value) -> serde_json::Value {
    if let Some(map) = body.as_object_mut() {
        if map.get("data").is_some_and(serde_json::Value::is_null) {
            map.remove("data");
        }
    }
    body
}

fn unauthorized() -> HttpResponse {
    HttpResponse::Unauthorized().body("invalid request signature")
}
