//! What a digest template renders: one embed summarising many events of one action for one
//! destination (`DIGEST_THRESHOLD`, `DIGEST_WINDOW`).

/// One event summarised in a digest.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DigestEntry {
    pub username: String,
    pub panel: Option<String>,
    /// When the relay received it, unix seconds.
    pub event_time: f64,
}

/// What a digest template renders: one embed of a digest message summarising many events of one
/// action for one destination.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Digest {
    pub action: String,
    /// Events in the whole burst (across messages, when it was gathered over `DIGEST_WINDOW`).
    pub total: usize,
    /// Events summarised in this embed.
    pub count: usize,
    /// This embed's place among all the burst's embeds, across messages (1-based), and how many
    /// there are.
    pub part: usize,
    pub parts: usize,
    pub usernames: Vec<String>,
    pub events: Vec<DigestEntry>,
    /// The panel of the first event.
    pub panel: Option<String>,
    /// The newest event's receive time, unix seconds; the embed's timestamp.
    pub event_time: f64,
}
