//! What delivery would send, without sending: the messages of one destination for rows that are all
//! pending at once, in order, built as the delivery task builds them (bursts as numbered digests,
//! the rest packed). For `render`; the task itself never calls this.
//!
//! Only what decides the bodies is followed: the digest threshold, the look-ahead a burst is found
//! in ([`DIGEST_LOOKAHEAD`] rows), the burst's parts as [`Burst::next_message`] renders them, and
//! [`next_message`] packing. Timing (pacing, `DIGEST_WINDOW`, retries) changes when a body goes out,
//! not what it says: every row here has already arrived, so no burst is still arriving.

use std::collections::{HashMap, HashSet, VecDeque};

use serenity::builder::ExecuteWebhook;

use super::digest::{Burst, DIGEST_LOOKAHEAD};
use super::forum::{ended_posts, new_post, new_post_of, post_key, same_post_rows, starts_a_post};
use super::{build_message, digest_members, next_message, DIGEST_EMBED_BUDGET};
use crate::destination::{Destination, Mentions};
use crate::outbox::{PostKey, RowMeta};
use crate::render::{limits, Part, Renderer};

/// One message delivery would send.
pub struct Preview {
    pub body: ExecuteWebhook,
    /// The events it carries (embeds, or users listed in its digests).
    pub events: usize,
    /// Whether it is a digest message.
    pub digest: bool,
    /// For a forum destination: the title of the post it goes into, and whether it creates it.
    pub post: Option<(String, bool)>,
}

/// How the preview treats a forum destination: which posts exist (none at first, as if the
/// relay had made none yet) and how titles are written.
struct Posts<'a> {
    renderer: &'a Renderer,
    several_panels: bool,
    made: HashMap<PostKey, String>,
}

impl Posts<'_> {
    /// `body` sent into the post of `key` (a new one, with title and tags, if none exists yet).
    fn place(&mut self, destination: &Destination, body: ExecuteWebhook, rows: &[RowMeta], key: PostKey) -> Preview {
        let digest = matches!(key, PostKey::Digest { .. });
        let action = rows.first().map(|row| row.action.as_str()).unwrap_or_default();
        let (body, post) = match self.made.get(&key) {
            Some(title) if !starts_a_post(&key, rows) => (body, (title.clone(), false)),
            _ => {
                let (title, tags) = new_post_of(destination, self.renderer, self.several_panels, &key, action);
                self.made.insert(key.clone(), title.clone());
                (new_post(body, &title, &tags), (title, true))
            }
        };
        for ended in ended_posts(&key, rows) {
            self.made.remove(&ended);
        }
        Preview { body, events: rows.len(), digest, post: Some(post) }
    }
}

/// The messages delivery would send to `destination` for `pending` (its rows, oldest first, each
/// with its rendered part), more than `digest_threshold` rows of one action going out as digests
/// rendered with `renderer` (0: no digests). For a forum destination each message goes into its
/// post as delivery places it, as if no post existed yet (`several_panels`: titles name the panel).
pub fn messages(
    destination: &Destination,
    pending: Vec<(RowMeta, Part)>,
    digest_threshold: usize,
    renderer: &Renderer,
    several_panels: bool,
) -> Vec<Preview> {
    let mut posts = destination.forum.as_ref().map(|_| Posts { renderer, several_panels, made: HashMap::new() });
    let mut messages = Vec::new();
    let mut burst: Option<Burst> = None;
    let mut pending = VecDeque::from(pending);
    while !pending.is_empty() {
        if burst.is_none() && digest_threshold > 0 {
            let window: Vec<RowMeta> = pending.iter().take(DIGEST_LOOKAHEAD).map(|(meta, _)| meta.clone()).collect();
            burst = digest_members(&window, digest_threshold).map(|members| Burst::plan(&members, DIGEST_EMBED_BUDGET));
        }
        if let Some(current) = &mut burst {
            let (rows, parts) = current.next_message(renderer);
            let mentions = Mentions::union(rows.iter().map(|row| &row.mentions));
            let body = build_message(&parts, &mentions, destination);
            messages.push(match &mut posts {
                Some(posts) => posts.place(destination, body, &rows, current.post()),
                None => Preview { body, events: rows.len(), digest: true, post: None },
            });
            let sent: HashSet<i64> = rows.iter().map(|row| row.id).collect();
            pending.retain(|(meta, _)| !sent.contains(&meta.id));
            current.delivered(parts.len());
            if current.is_done() {
                burst = None;
            }
            continue;
        }
        // The rows that can share the head's message, among the oldest a delivery step reads:
        // in a forum, only the head's user's.
        let oldest = pending.len().min(limits::EMBEDS_PER_MESSAGE);
        let candidates: Vec<usize> = match posts {
            Some(_) => same_post_rows(pending.iter().take(oldest).map(|(meta, _)| meta)),
            None => (0..oldest).collect(),
        };
        let head: Vec<(&Part, &Mentions)> =
            candidates.iter().map(|&i| (&pending[i].1, &pending[i].0.mentions)).collect();
        let (count, mentions) = next_message(&head, limits::EMBEDS_PER_MESSAGE);
        let mut taken: Vec<usize> = candidates.into_iter().take(count).collect();
        taken.sort_unstable();
        // From the back, so each index still names its row; all are near the front.
        let mut sent: Vec<(RowMeta, Part)> = taken.iter().rev().filter_map(|&i| pending.remove(i)).collect();
        sent.reverse();
        let body = build_message(sent.iter().map(|(_, part)| part), &mentions, destination);
        let rows: Vec<RowMeta> = sent.into_iter().map(|(meta, _)| meta).collect();
        messages.push(match &mut posts {
            Some(posts) => posts.place(destination, body, &rows, post_key(&rows, false)),
            None => Preview { body, events: count, digest: false, post: None },
        });
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
        let previews = messages(&destination, rows(500, "user_expired", &renderer), 30, &renderer, false);
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
        let previews = messages(&destination, rows(30, "user_expired", &renderer), 30, &renderer, false);
        assert_eq!(previews.iter().map(|p| (p.events, p.digest)).collect::<Vec<_>>(), [(10, false); 3]);
        let off = messages(&destination, rows(31, "user_expired", &renderer), 0, &renderer, false);
        assert!(off.iter().all(|p| !p.digest), "a threshold of 0 turns digests off");
    }

    #[test]
    fn a_burst_larger_than_the_look_ahead_goes_out_as_several_bursts() {
        let renderer = Renderer::builtin(Lang::En);
        let destination = Destination::new("audit", Target::DryRun);
        let previews =
            messages(&destination, rows(DIGEST_LOOKAHEAD + 40, "user_expired", &renderer), 30, &renderer, false);
        let titles: Vec<String> = previews.iter().flat_map(titles).collect();
        assert!(titles.first().unwrap().starts_with(&format!("📋 {DIGEST_LOOKAHEAD} users expired (1/")), "{titles:?}");
        assert_eq!(titles.last().unwrap(), "📋 40 users expired", "{titles:?}");
    }

    #[test]
    fn in_a_forum_each_user_has_a_post_made_by_their_first_message_and_ended_by_deletion() {
        let renderer = Renderer::builtin(Lang::En);
        let mut destination = Destination::new("forum", Target::DryRun);
        destination.forum = Some(crate::destination::Forum::default());
        let users = ["ali", "reza", "ali", "ali", "ali"];
        let actions = ["user_created", "user_created", "user_limited", "user_deleted", "user_created"];
        let pending: Vec<(RowMeta, Part)> = users
            .iter()
            .zip(actions)
            .enumerate()
            .map(|(i, (user, action))| {
                let (mut meta, part) = rows(1, action, &renderer).remove(0);
                (meta.id, meta.username) = (i as i64, (*user).to_owned());
                (meta, part)
            })
            .collect();
        let previews = messages(&destination, pending, 30, &renderer, false);
        let placed: Vec<(usize, String, bool, Option<String>)> = previews
            .iter()
            .map(|p| {
                let (title, new) = p.post.clone().unwrap();
                let body = serde_json::to_value(&p.body).unwrap();
                (p.events, title, new, body["thread_name"].as_str().map(str::to_owned))
            })
            .collect();
        assert_eq!(
            placed,
            [
                (3, "ali".into(), true, Some("ali".into())),
                (1, "reza".into(), true, Some("reza".into())),
                (1, "ali".into(), true, Some("ali".into())),
            ],
            "ali's three events share the post they made; the new ali after the deletion gets a new post"
        );
    }

    #[test]
    fn a_burst_that_spans_utc_midnight_goes_into_the_post_of_the_day_it_began() {
        let renderer = Renderer::builtin(Lang::En);
        let mut destination = Destination::new("forum", Target::DryRun);
        destination.forum = Some(crate::destination::Forum::default());
        // 2026-11-28 23:59:59 UTC, then one second past midnight for the second half.
        let before_midnight = 1_795_910_399_000;
        let mut pending = rows(600, "user_expired", &renderer);
        for (i, (meta, _)) in pending.iter_mut().enumerate() {
            meta.received_at_ms = before_midnight + if i < 300 { 0 } else { 2_000 };
        }
        let previews = messages(&destination, pending, 30, &renderer, false);
        assert!(previews.len() >= 2 && previews.iter().all(|p| p.digest));
        let posts: Vec<(String, bool)> = previews.iter().map(|p| p.post.clone().unwrap()).collect();
        let day = "📋 Digest 2026-11-28".to_owned();
        assert_eq!(posts[0], (day.clone(), true));
        assert!(posts[1..].iter().all(|post| *post == (day.clone(), false)), "one burst, one post: {posts:?}");
    }

    #[test]
    fn in_a_forum_a_message_holds_only_the_users_events_among_the_ten_oldest_as_delivery_takes_them() {
        // Delivery reads the 10 oldest pending rows and sends the head user's among them: ali's
        // second event, 11 rows behind, waits for a message of its own.
        let renderer = Renderer::builtin(Lang::En);
        let mut destination = Destination::new("forum", Target::DryRun);
        destination.forum = Some(crate::destination::Forum::default());
        let users = std::iter::once("ali").chain(std::iter::repeat_n("reza", 10)).chain(std::iter::once("ali"));
        let pending: Vec<(RowMeta, Part)> = users
            .enumerate()
            .map(|(i, user)| {
                let (mut meta, part) = rows(1, "user_updated", &renderer).remove(0);
                (meta.id, meta.username) = (i as i64, user.to_owned());
                (meta, part)
            })
            .collect();
        let previews = messages(&destination, pending, 30, &renderer, false);
        let placed: Vec<(usize, String, bool)> = previews
            .iter()
            .map(|p| {
                let (title, new) = p.post.clone().unwrap();
                (p.events, title, new)
            })
            .collect();
        assert_eq!(placed, [(1, "ali".into(), true), (10, "reza".into(), true), (1, "ali".into(), false)]);
    }
}
