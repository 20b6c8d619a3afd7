//! Reading a request body: bounded in size and time, and, for bodies whose sender is not known
//! yet, in the bytes all such requests hold together.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::CONTENT_LENGTH;
use actix_web::{web, HttpRequest};
use futures_util::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::IngestError;

/// The budget of bytes held, in total, for bodies whose sender is not known yet (a header shaped
/// like an HMAC needs the whole body before it can be checked). A request that does not fit is
/// answered 503 at once, without reading its body; the raw secret never needs this budget.
#[derive(Clone)]
pub struct Unverified {
    budget: Arc<Semaphore>,
    max_bytes: usize,
}

impl Unverified {
    /// A budget of `max_bytes` (`UNVERIFIED_BODY_BYTES`), at most `u32::MAX`.
    pub fn new(max_bytes: usize) -> Self {
        let max_bytes = max_bytes.min(u32::MAX as usize);
        Self { budget: Arc::new(Semaphore::new(max_bytes)), max_bytes }
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
    _budget: Option<OwnedSemaphorePermit>,
}

/// Reads the whole body, refusing more than `limit` bytes (by `Content-Length` up front, or as it
/// streams in) and bodies that take too long. With a `budget`, every byte is taken from it first
/// (the declared length up front), and a body that does not fit is refused before more is read.
pub async fn read_body(
    request: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
    timeout: Duration,
    budget: Option<&Unverified>,
) -> Result<Body, IngestError> {
    let limit = budget.map_or(limit, |budget| limit.min(budget.max_bytes));
    let declared =
        request.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(IngestError::TooLarge(limit));
    }
    let take = |bytes: usize| match budget {
        None => Ok(None),
        Some(budget) => budget.take(bytes).map(Some).ok_or(IngestError::Busy),
    };
    let mut held = take(declared.unwrap_or(0))?;
    let read = async {
        // Grown as the body arrives: a declared length alone reserves at most 1 MiB.
        let mut bytes = Vec::with_capacity(declared.unwrap_or(0).min(limit).min(1 << 20));
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|err| IngestError::BodyRead(err.to_string()))?;
            if bytes.len() + chunk.len() > limit {
                return Err(IngestError::TooLarge(limit));
            }
            let covered = declared.unwrap_or(0).saturating_sub(bytes.len());
            if let Some(more) = take(chunk.len().saturating_sub(covered))? {
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
    Ok(Body { bytes, _budget: held })
}
