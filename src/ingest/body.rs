//! Reading a request body: bounded in size and time, and in the bytes all bodies being read hold
//! together: one budget for bodies whose sender is not known yet ([`Unverified`]), one for bodies
//! sent with a panel's secret ([`PanelBodies`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::CONTENT_LENGTH;
use actix_web::{web, HttpRequest};
use futures_util::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{Crowd, IngestError};

/// How many requests whose sender is not known yet are read at once; more are answered 503 at
/// once. Real HMAC senders post a batch every few seconds at most.
pub const UNVERIFIED_REQUESTS_MAX: usize = 32;

/// How long a body whose sender is not known yet may take to arrive (a panel's batch arrives in
/// milliseconds; a stranger trickling bytes must not hold a place for the full body timeout).
pub const UNVERIFIED_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Bytes that bodies take as they arrive and give back when their request ends.
#[derive(Clone)]
struct Pool {
    bytes: Arc<Semaphore>,
    max_bytes: usize,
}

impl Pool {
    /// A pool of `max_bytes`, at most `u32::MAX` (what one request may take at once).
    fn new(max_bytes: usize) -> Self {
        let max_bytes = max_bytes.min(u32::MAX as usize);
        Self { bytes: Arc::new(Semaphore::new(max_bytes)), max_bytes }
    }

    /// Takes `bytes` until the permit is dropped, or `None` when the pool has not that much.
    fn take(&self, bytes: usize) -> Option<OwnedSemaphorePermit> {
        let bytes = u32::try_from(bytes).ok()?;
        self.bytes.clone().try_acquire_many_owned(bytes).ok()
    }
}

/// What requests whose sender is not known yet (a header shaped like an HMAC needs the whole body
/// before it can be checked) may hold, in total: [`UNVERIFIED_REQUESTS_MAX`] places and a budget
/// of bytes, taken as the bytes arrive. A request that finds no place, or whose bytes do not fit,
/// is answered 503 at once without more of its body being read; the raw secret never needs either.
#[derive(Clone)]
pub struct Unverified {
    budget: Pool,
    places: Arc<Semaphore>,
}

impl Unverified {
    /// A budget of `max_bytes` (`UNVERIFIED_BODY_BYTES`), at most `u32::MAX`.
    pub fn new(max_bytes: usize) -> Self {
        Self { budget: Pool::new(max_bytes), places: Arc::new(Semaphore::new(UNVERIFIED_REQUESTS_MAX)) }
    }

    fn allowance(&self, max_body_bytes: usize, timeout: Duration) -> Allowance<'_> {
        Allowance {
            places: &self.places,
            pools: vec![&self.budget],
            limit: max_body_bytes.min(self.budget.max_bytes),
            timeout: timeout.min(UNVERIFIED_BODY_TIMEOUT),
            crowd: Crowd::Unverified,
        }
    }
}

/// What bodies sent with a panel's secret may hold (`PANEL_BODY_BYTES`, `PANEL_REQUESTS_MAX`): in
/// total, one budget of bytes; per panel (each label of `PANELS`, and `POST /`), a number of
/// requests at once and half of the budget, so a panel whose secret leaked can neither exhaust the
/// relay's memory nor keep the other panels out. Bytes are taken as they arrive; a request past
/// any of these is answered 503 with `Retry-After` at once, and no more of its body is read.
#[derive(Clone)]
pub struct PanelBodies {
    budget: Pool,
    panels: Arc<HashMap<Option<String>, Share>>,
}

/// One panel's part of [`PanelBodies`].
struct Share {
    places: Arc<Semaphore>,
    bytes: Pool,
}

impl PanelBodies {
    /// A budget of `max_bytes` over all `panels` (`None` is `POST /`), each with `requests` places.
    pub fn new(max_bytes: usize, requests: usize, panels: impl IntoIterator<Item = Option<String>>) -> Self {
        let share = || Share { places: Arc::new(Semaphore::new(requests)), bytes: Pool::new(max_bytes / 2) };
        Self { budget: Pool::new(max_bytes), panels: Arc::new(panels.into_iter().map(|p| (p, share())).collect()) }
    }

    /// `None` for a panel the relay was not started with: it has no place.
    fn allowance(&self, panel: Option<&str>, max_body_bytes: usize, timeout: Duration) -> Option<Allowance<'_>> {
        let share = self.panels.get(&panel.map(str::to_owned))?;
        Some(Allowance {
            places: &share.places,
            pools: vec![&share.bytes, &self.budget],
            limit: max_body_bytes.min(share.bytes.max_bytes),
            timeout,
            crowd: Crowd::Panel,
        })
    }
}

/// Where a request takes its place and its bytes from.
pub enum Sender<'a> {
    /// Not known yet: the header looks like an HMAC of the body.
    Unverified(&'a Unverified),
    /// Sent the raw secret of `panel` (`None`: `POST /`), or needs none.
    Panel(&'a PanelBodies, Option<&'a str>),
}

/// The place and the bytes one request holds, and its bounds.
struct Allowance<'a> {
    places: &'a Arc<Semaphore>,
    /// Every pool each byte is taken from.
    pools: Vec<&'a Pool>,
    /// The most bytes the body may have.
    limit: usize,
    timeout: Duration,
    crowd: Crowd,
}

impl Allowance<'_> {
    /// Takes one of the sender's places, holding no bytes yet.
    fn hold(&self) -> Result<Held, IngestError> {
        let place = self.places.clone().try_acquire_owned().map_err(|_| IngestError::Busy(self.crowd))?;
        Ok(Held { _place: place, bytes: self.pools.iter().map(|_| None).collect() })
    }
}

/// A body read in full, with the place and bytes it holds until it is dropped.
pub struct Body {
    pub bytes: Vec<u8>,
    _held: Held,
}

/// A request's place and its bytes of each pool.
struct Held {
    _place: OwnedSemaphorePermit,
    bytes: Vec<Option<OwnedSemaphorePermit>>,
}

impl Held {
    /// Takes `count` more bytes of every pool, or none at all.
    fn take(&mut self, pools: &[&Pool], count: usize) -> bool {
        let Some(taken) = pools.iter().map(|pool| pool.take(count)).collect::<Option<Vec<_>>>() else {
            return false;
        };
        for (held, more) in self.bytes.iter_mut().zip(taken) {
            match held {
                Some(permit) => permit.merge(more),
                None => *held = Some(more),
            }
        }
        true
    }
}

/// Reads the whole body, refusing more than `limit` bytes (by `Content-Length` up front, or as it
/// streams in) and bodies that take too long. The request first takes one of its sender's places,
/// then every byte is taken from the sender's pools as it arrives, and a body that does not fit is
/// refused before more is read.
pub async fn read_body(
    request: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
    timeout: Duration,
    sender: Sender<'_>,
) -> Result<Body, IngestError> {
    let allowance = match sender {
        Sender::Unverified(unverified) => unverified.allowance(limit, timeout),
        Sender::Panel(bodies, panel) => {
            bodies.allowance(panel, limit, timeout).ok_or(IngestError::Busy(Crowd::Panel))?
        }
    };
    let too_large = |bound| match allowance.crowd {
        Crowd::Unverified => IngestError::TooLargeUnverified(bound),
        Crowd::Panel if bound < limit => IngestError::TooLargeForShare(bound),
        Crowd::Panel => IngestError::TooLarge(bound),
    };
    let limit = allowance.limit;
    let declared =
        request.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(too_large(limit));
    }
    let mut held = allowance.hold()?;
    let read = async {
        // Grown as the body arrives: a declared length alone reserves at most 1 MiB.
        let mut bytes = Vec::with_capacity(declared.unwrap_or(0).min(limit).min(1 << 20));
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|err| IngestError::BodyRead(err.to_string()))?;
            if bytes.len() + chunk.len() > limit {
                return Err(too_large(limit));
            }
            if !held.take(&allowance.pools, chunk.len()) {
                return Err(IngestError::Busy(allowance.crowd));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    };
    let bytes = tokio::time::timeout(allowance.timeout, read).await.map_err(|_| IngestError::BodyTimeout)??;
    Ok(Body { bytes, _held: held })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    #[test]
    fn panels_share_one_budget_and_each_holds_at_most_half_of_it() {
        let bodies = PanelBodies::new(4 * MIB, 2, [None, Some("eu".to_owned()), Some("us".to_owned())]);
        let allowance = |panel| bodies.allowance(panel, 64 * MIB, Duration::from_secs(60)).unwrap();
        let (eu, us, root) = (allowance(Some("eu")), allowance(Some("us")), allowance(None));
        assert_eq!(eu.limit, 2 * MIB, "a body larger than half the budget is refused up front");

        let mut first = eu.hold().unwrap();
        let _second = eu.hold().unwrap();
        assert!(matches!(eu.hold(), Err(IngestError::Busy(Crowd::Panel))), "eu has 2 places");
        assert!(first.take(&eu.pools, 3 * MIB / 2));
        assert!(!first.take(&eu.pools, MIB), "eu would hold more than half of the budget");

        let mut other = us.hold().unwrap();
        assert!(other.take(&us.pools, 2 * MIB), "another panel still finds its half");
        let mut third = root.hold().unwrap();
        assert!(!third.take(&root.pools, MIB), "4 MiB in all: only half a MiB is left");
        assert!(third.take(&root.pools, MIB / 2));

        drop(first);
        assert!(third.take(&root.pools, MIB), "bytes come back when a request ends");
        assert!(bodies.allowance(Some("asia"), MIB, Duration::from_secs(1)).is_none(), "no such panel");
    }
}
