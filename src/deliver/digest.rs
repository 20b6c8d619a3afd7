//! Digests: a burst of one action (more than `digest_threshold` pending) goes out as digest
//! embeds listing the users, as many as fit in one message.

use super::worker::Worker;
use super::{digest_chunks, digest_members, fitting_parts, mention_chars, Sent, Step, DIGEST_EMBED_BUDGET};
use crate::destination::Mentions;
use crate::outbox::{OutboxError, RowMeta};
use crate::render::{limits, Digest, DigestEntry, Part};

/// How many pending rows are looked at to find a burst for a digest.
const DIGEST_LOOKAHEAD: usize = 2000;

impl Worker {
    /// Sends a digest if the head of the queue starts a burst.
    pub(super) async fn try_digest(&mut self) -> Result<Option<Step>, OutboxError> {
        if self.settings.digest_threshold == 0 {
            return Ok(None);
        }
        let window = self.outbox.pending_meta(&self.destination.name, DIGEST_LOOKAHEAD).await?;
        let Some(head) = window.first() else {
            return Ok(None);
        };
        if self.no_digest_through.is_some_and(|through| head.id <= through) {
            return Ok(None);
        }
        let threshold = match &self.digesting {
            Some(action) if *action == head.action => self.settings.digest_threshold.min(limits::EMBEDS_PER_MESSAGE),
            _ => self.settings.digest_threshold,
        };
        let Some(members) = digest_members(&window, threshold) else {
            return Ok(None);
        };
        let (rows, parts) = self.render_digest(&digest_chunks(&members, DIGEST_EMBED_BUDGET));
        log::info!("{}: sending {} {} events as a digest", self.destination.name, rows.len(), rows[0].action);
        let outcome = self.send(&parts, &Mentions::union(rows.iter().map(|row| &row.mentions))).await;
        self.settle(&rows, parts.len(), outcome, Sent::Digest).await.map(Some)
    }

    /// Renders as many digest chunks as fit in one message; returns their rows and embeds.
    fn render_digest(&self, chunks: &[Vec<&RowMeta>]) -> (Vec<RowMeta>, Vec<Part>) {
        let renderer = self.templates.current();
        let render = |chunks: &[Vec<&RowMeta>]| -> Vec<Part> {
            let total = chunks.iter().map(Vec::len).sum();
            let parts = chunks.len();
            chunks
                .iter()
                .enumerate()
                .map(|(i, chunk)| renderer.render_digest(&digest(chunk, total, i + 1, parts)))
                .collect()
        };
        let mut taken = chunks.len().min(limits::EMBEDS_PER_MESSAGE);
        let mut parts = render(&chunks[..taken]);
        let mentions = Mentions::union(chunks[..taken].iter().flatten().map(|row| &row.mentions));
        let fitting = fitting_parts(&parts, taken, mention_chars(&mentions));
        if fitting < taken {
            taken = fitting;
            parts = render(&chunks[..taken]);
        }
        let rows = chunks[..taken].iter().flatten().map(|row| (*row).clone()).collect();
        (rows, parts)
    }
}

/// The context of one digest embed.
fn digest(chunk: &[&RowMeta], total: usize, part: usize, parts: usize) -> Digest {
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
