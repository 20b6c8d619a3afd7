//! What delivery would send, without sending: the messages of one destination for rows that are all
//! pending at once, in order, built as the delivery task builds them (bursts as numbered digests,
//! the rest packed). For `render`; the task itself never calls this.
//!
//! Only what decides the bodies is followed: the digest threshold, the look-ahead a burst is found
//! in ([`DIGEST_LOOKAHEAD`] rows), the burst's parts as [`Burst::next_message`] renders them, and
//! [`next_message`] packing. Timing (pacing, `DIGEST_WINDOW`, retries) changes when a body goes out,
//! not what it says: every row here has already arrived, so no burst is still arriving.

use std::collections::HashSet;

use serenity::builder::ExecuteWebhook;

use super::digest::{Burst, DIGEST_LOOKAHEAD};
use super::{build_message, digest_members, next_message, DIGEST_EMBED_BUDGET};
use crate::destination::{Destination, Mentions};
use crate::outbox::RowMeta;
use crate::render::{limits, Part, Renderer};

/// One message delivery would send.
pub struct Preview {
    pub body: ExecuteWebhook,
    /// The events it carries (embeds, or users listed in its digests).
    pub events: usize,
    /// Whether it is a digest message.
    pub digest: bool,
}

/// The messages delivery would send to `destination` for `pending` (its rows, oldest first, each
/// with its rendered part), more than `digest_threshold` rows of one action going out as digests
/// rendered with `renderer` (0: no digests).
pub fn messages(
    destination: &Destination,
    mut pending: Vec<(RowMeta, Part)>,
    digest_threshold: usize,
    renderer: &Renderer,
) -> Vec<Preview> {
    let mut messages = Vec::new();
    let mut burst: Option<Burst> = None;
    while !pending.is_empty() {
        if burst.is_none() {
            let window: Vec<RowMeta> = pending.iter().take(DIGEST_LOOKAHEAD).map(|(meta, _)| meta.clone()).collect();
            burst = digest_members(&window, digest_threshold).map(|members| Burst::plan(&members, DIGEST_EMBED_BUDGET));
        }
        if let Some(current) = &mut burst {
            let (rows, parts) = current.next_message(renderer);
            let mentions = Mentions::union(rows.iter().map(|row| &row.mentions));
            messages.push(Preview {
                body: build_message(&parts, &mentions, destination),
                events: rows.len(),
                digest: true,
            });
            let sent: HashSet<i64> = rows.iter().map(|row| row.id).collect();
            pending.retain(|(meta, _)| !sent.contains(&meta.id));
            current.delivered(parts.len());
            if current.is_done() {
                burst = None;
            }
            continue;
        }
        let head: Vec<(&Part, &Mentions)> =
            pending.iter().take(limits::EMBEDS_PER_MESSAGE).map(|(meta, part)| (part, &meta.mentions)).collect();
        let (count, mentions) = next_message(&head, limits::EMBEDS_PER_MESSAGE);
        let body = build_message(pending[..count].iter().map(|(_, part)| part), &mentions, destination);
        messages.push(Preview { body, events: count, digest: false });
        pending.drain(..count);
    }
    messages
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::destination::Target;
    use crate::render::{samples, Lang};

    fn rows(n: usize, action: &str, renderer: &Renderer) -> Vec<(RowMeta, Part)> {
        let now = time::OffsetDateTime::now_utc();
        (0..n)
            .map(|i| {
                let mut event = samples::event_for(action, now).unwrap();
                event.username = format!("user_{i:04}");
                let meta = RowMeta {
                    id: i as i64,
                    action: action.into(),
                    username: event.username.clone(),
                    panel: None,
                    received_at_ms: 0,
                    mentions: Mentions::default(),
                };
                (meta, renderer.render(&event))
            })
            .collect()
    }

    fn titles(preview: &Preview) -> Vec<String> {
        let body = serde_json::to_value(&preview.body).unwrap();
        body["embeds"].as_array().unwrap().iter().map(|e| e["title"].as_str().unwrap_or_default().into()).collect()
    }

    #[test]
    fn a_burst_above_the_threshold_is_previewed_as_the_digests_delivery_sends() {
        let renderer = Renderer::builtin(Lang::En);
        let destination = Destination::new("audit", Target::DryRun);
        let previews = messages(&destination, rows(500, "user_expired", &renderer), 30, &renderer);
        assert!(previews.iter().all(|p| p.digest));
        assert_eq!(previews.iter().map(|p| p.events).sum::<usize>(), 500);
        let titles: Vec<String> = previews.iter().flat_map(titles).collect();
        let parts = titles.len();
        for (i, title) in titles.iter().enumerate() {
            assert!(title.contains("500") && title.contains(&format!("({}/{parts})", i + 1)), "{title}");
        }
    }

    #[test]
    fn at_or_below_the_threshold_the_events_are_packed_ten_to_a_message() {
        let renderer = Renderer::builtin(Lang::En);
        let destination = Destination::new("audit", Target::DryRun);
        let previews = messages(&destination, rows(30, "user_expired", &renderer), 30, &renderer);
        assert_eq!(previews.iter().map(|p| (p.events, p.digest)).collect::<Vec<_>>(), [(10, false); 3]);
        let off = messages(&destination, rows(31, "user_expired", &renderer), 0, &renderer);
        assert!(off.iter().all(|p| !p.digest), "a threshold of 0 turns digests off");
    }

    #[test]
    fn a_burst_larger_than_the_look_ahead_goes_out_as_several_bursts() {
        let renderer = Renderer::builtin(Lang::En);
        let destination = Destination::new("audit", Target::DryRun);
        let previews = messages(&destination, rows(DIGEST_LOOKAHEAD + 40, "user_expired", &renderer), 30, &renderer);
        let titles: Vec<String> = previews.iter().flat_map(titles).collect();
        assert!(titles.first().unwrap().starts_with(&format!("📋 {DIGEST_LOOKAHEAD} users expired (1/")), "{titles:?}");
        assert_eq!(titles.last().unwrap(), "📋 40 users expired", "{titles:?}");
    }
}
