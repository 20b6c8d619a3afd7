//! Reading a request body: bounded in size and time, and, for bodies whose sender is not known
//! yet, in the bytes all such requests hold together.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::CONTENT_LENGTH;
use actix_web::{web, HttpRequest};
use futures_util::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::IngestError;

/// How many requests whose sender is not known yet are read at once; more are answered 503 at
/// once. Real HMAC senders post a batch every few seconds at most.
pub const UNVERIFIED_REQUESTS_MAX: usize = 32;

/// How long a body whose sender is not known yet may take to arrive (a panel's batch arrives in
/// milliseconds; a stranger trickling bytes must not hold a place for the full body timeout).
pub const UNVERIFIED_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// What requests whose sender is not known yet (a header shaped like an HMAC needs the whole body
/// before it can be checked) may hold, in total: [`UNVERIFIED_REQUESTS_MAX`] places and a budget
/// of bytes, taken as the bytes arrive. A request that finds no place, or whose bytes do not fit,
/// is answered 503 at once without more of its body being read; the raw secret never needs either.
#[derive(Clone)]
pub struct Unverified {
    budget: Arc<Semaphore>,
    places: Arc<Semaphore>,
    max_bytes: usize,
}

impl Unverified {
    /// A budget of `max_bytes` (`UNVERIFIED_BODY_BYTES`), at most `u32::MAX`.
    pub fn new(max_bytes: usize) -> Self {
        let max_bytes = max_bytes.min(u32::MAX as usize);
        Self {
            budget: Arc::new(Semaphore::new(max_bytes)),
            places: Arc::new(Semaphore::new(UNVERIFIED_REQUESTS_MAX)),
            max_bytes,
        }
    }

    /// Takes `bytes` from the budget until the permit is dropped, or `None` when it has not that much.
    fn take(&self, bytes: usize) -> Option<OwnedSemaphorePermit> {
        let bytes = u32::try_from(bytes).ok()?;
        self.budget.clone().try_acquire_many_owned(bytes).ok()
    }
}

/// A body read in full, with the share of the unverified budget it holds, if any.
pub struct Body {
    pub bytes: Vec<u8>,
    _budget: Option<(OwnedSemaphorePermit, Option<OwnedSemaphorePermit>)>,
}

/// Reads the whole body, refusing more than `limit` bytes (by `Content-Length` up front, or as it
/// streams in) and bodies that take too long. With a `budget`, the request first takes one of its
/// places, then every byte is taken from it as it arrives, and a body that does not fit is refused
/// before more is read.
pub async fn read_body(
    request: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
    timeout: Duration,
    budget: Option<&Unverified>,
) -> Result<Body, IngestError> {
    let too_large = |limit| match budget {
        None => IngestError::TooLarge(limit),
        Some(_) => IngestError::TooLargeUnverified(limit),
    };
    let limit = budget.map_or(limit, |budget| limit.min(budget.max_bytes));
    let declared =
        request.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(too_large(limit));
    }
    let place = match budget {
        None => None,
        Some(budget) => Some(budget.places.clone().try_acquire_owned().map_err(|_| IngestError::Busy)?),
    };
    let timeout = if budget.is_some() { timeout.min(UNVERIFIED_BODY_TIMEOUT) } else { timeout };
    let take = |bytes: usize| match budget {
        None => Ok(None),
        Some(budget) => budget.take(bytes).map(Some).ok_or(IngestError::Busy),
    };
    let mut held: Option<OwnedSemaphorePermit> = None;
    let read = async {
        // Grown as the body arrives: a declared length alone reserves at most 1 MiB.
        let mut bytes = Vec::with_capacity(declared.unwrap_or(0).min(limit).min(1 << 20));
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|err| IngestError::BodyRead(err.to_string()))?;
            if bytes.len() + chunk.len() > limit {
                return Err(too_large(limit));
            }
            if let Some(more) = take(chunk.len())? {
                match held.as_mut() {
                    Some(permit) => permit.merge(more),
                    None => held = Some(more),
                }
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    };
    let bytes = tokio::time::timeout(timeout, read).await.map_err(|_| IngestError::BodyTimeout)??;
    Ok(Body { bytes, _budget: place.map(|place| (place, held)) })
}
