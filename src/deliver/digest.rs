//! Digests: a burst of one action (more than `digest_threshold` pending) goes out as digest
//! embeds listing the users.
//!
//! A burst is read as one: before its first digest goes out, the worker waits until no event of
//! the burst has arrived for `digest_window` (so a burst the panel sends over several requests,
//! 50 events each, is gathered), but never longer than [`HOLD_WINDOWS`] windows after the burst's
//! first event. It then plans the whole burst at once, as a [`Burst`] of numbered parts, and sends
//! them message by message: every part carries the burst's total and its place among all parts.
//! Events arriving after the plan was made wait for the next burst (or go out on their own).

use std::collections::{HashSet, VecDeque};

use super::forum::digest_post_at;
use super::{digest_chunks, digest_members, fitting_parts, mention_chars, DeliverySettings, DIGEST_EMBED_BUDGET};
use crate::destination::Mentions;
use crate::outbox::{now_ms, PostKey, RowMeta};
use crate::render::{limits, Digest, DigestEntry, Part, Renderer};

/// How many pending rows are looked at to find a burst for a digest.
pub const DIGEST_LOOKAHEAD: usize = 2000;

/// A burst still arriving is held at most this many `digest_window`s after its first event, so a
/// steady stream of events cannot hold it for ever.
pub const HOLD_WINDOWS: u32 = 10;

/// A burst planned as numbered digest parts, of which the first `sent` are delivered.
#[derive(Debug, Clone)]
pub struct Burst {
    action: String,
    /// Events in the whole burst.
    total: usize,
    /// Parts in the whole burst.
    parts: usize,
    /// Parts not yet delivered, each with its number (1-based), oldest first.
    pending: VecDeque<(usize, Vec<RowMeta>)>,
    /// When its first event was received (ms): in forum mode, the day whose post holds every part.
    began_ms: i64,
}

impl Burst {
    /// Plans `members` (rows of one action) as parts of at most `budget` characters of names.
    pub fn plan(members: &[&RowMeta], budget: usize) -> Self {
        let chunks = digest_chunks(members, budget);
        Self {
            action: members.first().map(|row| row.action.clone()).unwrap_or_default(),
            total: members.len(),
            parts: chunks.len(),
            began_ms: members.first().map_or(0, |row| row.received_at_ms),
            pending: chunks
                .into_iter()
                .enumerate()
                .map(|(i, chunk)| (i + 1, chunk.into_iter().cloned().collect()))
                .collect(),
        }
    }

    /// Forgets rows no longer pending (delivered or removed by hand); `None` once nothing is left.
    pub fn keep_pending(mut self, window: &[RowMeta]) -> Option<Self> {
        let pending: HashSet<i64> = window.iter().map(|row| row.id).collect();
        for (_, rows) in &mut self.pending {
            rows.retain(|row| pending.contains(&row.id));
        }
        self.pending.retain(|(_, rows)| !rows.is_empty());
        (!self.pending.is_empty()).then_some(self)
    }

    /// The context of each of the next `count` parts.
    fn contexts(&self, count: usize) -> Vec<Digest> {
        self.pending.iter().take(count).map(|(part, rows)| digest(rows, self.total, *part, self.parts)).collect()
    }

    /// The forum post every part of the burst goes into: that of the UTC day its first event was
    /// received, even when later parts hold events received after midnight.
    pub fn post(&self) -> PostKey {
        digest_post_at(self.began_ms)
    }

    /// The first `parts` parts were delivered.
    pub fn delivered(&mut self, parts: usize) {
        self.pending.drain(..parts.min(self.pending.len()));
    }

    /// The action of every event in the burst.
    pub fn action(&self) -> &str {
        &self.action
    }

    /// Events in the whole burst.
    pub fn total(&self) -> usize {
        self.total
    }

    pub fn is_done(&self) -> bool {
        self.pending.is_empty()
    }

    /// Renders as many of the burst's next parts as fit in one message with `renderer`; returns
    /// their rows and embeds. What the delivery task sends, and what `render --burst` prints.
    pub fn next_message(&self, renderer: &Renderer) -> (Vec<RowMeta>, Vec<Part>) {
        let render = |count: usize| -> Vec<Part> {
            self.contexts(count).iter().map(|context| renderer.render_digest(context)).collect()
        };
        let mut taken = self.pending.len().min(limits::EMBEDS_PER_MESSAGE);
        let mut parts = render(taken);
        let mentions = Mentions::union(self.pending.iter().take(taken).flat_map(|(_, rows)| rows).map(|r| &r.mentions));
        let fitting = fitting_parts(&parts, taken, mention_chars(&mentions));
        if fitting < taken {
            taken = fitting;
            parts = render(taken);
        }
        let rows = self.pending.iter().take(taken).flat_map(|(_, rows)| rows.iter().cloned()).collect();
        (rows, parts)
    }
}

/// A burst starting at the head of `window`, once it has stopped arriving; rows up to
/// `no_digest_through` start none (a digest with them was refused).
pub(super) fn plan_burst(window: &[RowMeta], no_digest_through: Option<i64>, settings: &DeliverySettings) -> Planned {
    let Some(head) = window.first() else {
        return Planned::Nothing;
    };
    if no_digest_through.is_some_and(|through| head.id <= through) {
        return Planned::Nothing;
    }
    let Some(members) = digest_members(window, settings.digest_threshold) else {
        return Planned::Nothing;
    };
    let newest = members.iter().map(|row| row.received_at_ms).max().unwrap_or(head.received_at_ms);
    if let Some(wait) = hold(settings.digest_window, head.received_at_ms, newest, now_ms()) {
        return Planned::Hold(wait);
    }
    Planned::Burst(Burst::plan(&members, DIGEST_EMBED_BUDGET))
}

/// What the head of the queue makes of a digest.
pub(super) enum Planned {
    /// No burst.
    Nothing,
    /// A burst that may still be arriving: look again after this long.
    Hold(std::time::Duration),
    Burst(Burst),
}

/// How much longer to wait before planning a burst whose first event arrived at `first_ms` and
/// newest at `newest_ms` (now being `now_ms`): until `window` has passed without a new event, at
/// most until [`HOLD_WINDOWS`] windows after the first. `None`: plan it now.
fn hold(window: std::time::Duration, first_ms: i64, newest_ms: i64, now_ms: i64) -> Option<std::time::Duration> {
    let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
    let quiet_at = newest_ms.saturating_add(window_ms);
    let latest = first_ms.saturating_add(window_ms.saturating_mul(i64::from(HOLD_WINDOWS)));
    let until = quiet_at.min(latest);
    (until > now_ms).then(|| std::time::Duration::from_millis(u64::try_from(until - now_ms).unwrap_or(0)))
}

/// The context of one digest embed: part `part` of `parts` of a burst of `total` events.
fn digest(chunk: &[RowMeta], total: usize, part: usize, parts: usize) -> Digest {
    let seconds = |ms: i64| ms as f64 / 1000.0;
    Digest {
        action: chunk[0].action.clone(),
        total,
        count: chunk.len(),
        part,
        parts,
        usernames: chunk.iter().map(|row| row.username.clone()).collect(),
        events: chunk
            .iter()
            .map(|row| DigestEntry {
                username: row.username.clone(),
                panel: row.panel.clone(),
                event_time: seconds(row.received_at_ms),
            })
            .collect(),
        panel: chunk[0].panel.clone(),
        event_time: seconds(chunk.iter().map(|row| row.received_at_ms).max().unwrap_or_default()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn meta(id: i64, username: &str) -> RowMeta {
        RowMeta {
            id,
            action: "user_expired".into(),
            username: username.into(),
            panel: None,
            received_at_ms: 0,
            mentions: Mentions::default(),
        }
    }

    #[test]
    fn holds_a_burst_until_it_is_quiet_for_a_window_but_not_for_ever() {
        let window = Duration::from_secs(5);
        assert_eq!(hold(window, 0, 1_000, 2_000), Some(Duration::from_secs(4)), "1 s after the newest event");
        assert_eq!(hold(window, 0, 1_000, 6_000), None, "quiet for a whole window");
        assert_eq!(hold(window, 0, 49_000, 49_500), Some(Duration::from_millis(500)), "capped at 10 windows");
        assert_eq!(hold(window, 0, 60_000, 60_000), None, "still arriving after 10 windows: send what is there");
        assert_eq!(hold(Duration::ZERO, 0, 1_000, 1_000), None, "a zero window never holds");
    }

    #[test]
    fn numbers_the_parts_across_the_whole_burst() {
        let rows: Vec<RowMeta> = (0..500).map(|i| meta(i, &format!("user_{i:05}"))).collect();
        let members: Vec<&RowMeta> = rows.iter().collect();
        let mut burst = Burst::plan(&members, DIGEST_EMBED_BUDGET);
        assert_eq!((burst.total, burst.parts), (500, 3));
        let first = burst.contexts(2);
        assert_eq!(first.iter().map(|d| (d.total, d.part, d.parts)).collect::<Vec<_>>(), [(500, 1, 3), (500, 2, 3)]);
        burst.delivered(2);
        let last = burst.contexts(10);
        assert_eq!(last.iter().map(|d| (d.total, d.part, d.parts, d.count)).collect::<Vec<_>>(), [(500, 3, 3, 70)]);
        burst.delivered(1);
        assert!(burst.is_done());
    }

    #[test]
    fn forgets_planned_rows_that_are_no_longer_pending() {
        let rows: Vec<RowMeta> = (0..3).map(|i| meta(i, &format!("u{i}"))).collect();
        let members: Vec<&RowMeta> = rows.iter().collect();
        let burst = Burst::plan(&members, 4);
        assert_eq!(burst.parts, 3);
        let burst = burst.keep_pending(&rows[2..]).unwrap();
        assert_eq!(burst.contexts(10).iter().map(|d| d.part).collect::<Vec<_>>(), [3]);
        assert!(burst.keep_pending(&[]).is_none());
    }
}
