//! What the outbox stores and hands back: rows to store, rows waiting, dead letters, a request's
//! batch.

use super::{SeenState, StatesHeld, Tallied};
use crate::destination::Mentions;

/// A message part to store for one destination.
#[derive(Debug, Clone)]
pub struct NewRow {
    pub destination: String,
    pub received_at_ms: i64,
    pub action: String,
    pub username: String,
    pub panel: Option<String>,
    /// The rendered part as JSON (see `render::Part`).
    pub part: String,
    /// Identifies re-sends of the same notification, for de-duplication.
    pub fingerprint: Option<String>,
    /// Whether to look for an earlier row with the same fingerprint (a first attempt is stored
    /// with its fingerprint, so that its re-sends are recognised, but is never itself dropped).
    pub may_be_resend: bool,
    /// Whom the message may ping.
    pub mentions: Mentions,
}

/// A destination that is not in the configuration (an owner admin's webhook): remembered so its
/// pending rows can be delivered after a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDestination {
    pub name: String,
    /// The full webhook URL, token included.
    pub url: String,
    pub thread_id: Option<u64>,
}

/// A stored row waiting for delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// What the row is about: all a delivery needs besides the part.
    pub meta: RowMeta,
    pub destination: String,
    /// The rendered part as JSON (see `render::Part`).
    pub part: String,
    pub attempts: u32,
}

/// A pending row without its message part: enough to plan digests and to settle a delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct RowMeta {
    pub id: i64,
    pub action: String,
    pub username: String,
    pub panel: Option<String>,
    pub received_at_ms: i64,
    pub mentions: Mentions,
}

/// A dead letter, for listing.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadRow {
    pub id: i64,
    pub destination: String,
    pub action: String,
    pub username: String,
    pub received_at_ms: i64,
    pub attempts: u32,
    pub reason: Option<String>,
}

/// Which dead letters to send again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retry {
    One(i64),
    All,
}

/// What one request stores, in one transaction.
#[derive(Debug, Default)]
pub struct Batch {
    pub rows: Vec<NewRow>,
    /// Owner admins' webhooks to remember with the rows.
    pub destinations: Vec<StoredDestination>,
    /// Every accepted event, for scheduled reports.
    pub tally: Vec<Tallied>,
    /// The users' states the request showed.
    pub states: Vec<SeenState>,
    /// The users whose states the request read to make `states` (see
    /// [`Outbox::user_states_for_update`]): let go once `states` are stored.
    pub held: Option<StatesHeld>,
}

/// What `enqueue` stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Enqueued {
    pub stored: usize,
    /// Events whose rows were skipped because the same notification was stored for the same
    /// destination within the de-duplication window.
    pub duplicates: usize,
}
