//! Pacing one destination: no request before a wait an answer imposed (rate-limit bucket empty,
//! 429, backoff) has passed, and at most `channel_messages` messages per `channel_window`
//! (Discord's hidden per-channel limit, about 30 a minute).

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use super::DeliverySettings;
use crate::discord;

/// When a destination may send next.
#[derive(Debug)]
pub struct Pacer {
    /// No request before this instant.
    not_before: Option<Instant>,
    /// When the last messages were accepted, for the per-channel limit.
    sent: VecDeque<Instant>,
    /// At most this many messages per `window`; 0 is no limit.
    messages: usize,
    window: Duration,
}

impl Pacer {
    pub fn new(settings: &DeliverySettings) -> Self {
        Self {
            not_before: None,
            sent: VecDeque::new(),
            messages: settings.channel_messages,
            window: settings.channel_window,
        }
    }

    /// How long to wait before the next request, if at all: a backoff or rate-limit wait, or the
    /// per-channel message limit.
    pub fn wait(&mut self) -> Option<Duration> {
        let now = Instant::now();
        let window = self.window;
        while self.sent.front().is_some_and(|at| now.duration_since(*at) >= window) {
            self.sent.pop_front();
        }
        let limit = self.messages;
        let channel = match self.sent.front() {
            Some(oldest) if limit > 0 && self.sent.len() >= limit => oldest.checked_add(window),
            _ => None,
        };
        let until = self.not_before.into_iter().chain(channel).max()?;
        Some(until.checked_duration_since(now)?).filter(|wait| !wait.is_zero())
    }

    /// Sends nothing for `wait` from now (at most [`discord::MAX_WAIT`]), unless a longer wait
    /// is already due.
    pub fn delay(&mut self, wait: Duration) {
        let now = Instant::now();
        let at = now.checked_add(wait.min(discord::MAX_WAIT)).unwrap_or(now);
        self.not_before = Some(self.not_before.map_or(at, |current| current.max(at)));
    }

    /// Discord accepted a message just now.
    pub fn sent(&mut self) {
        if self.messages > 0 {
            self.sent.push_back(Instant::now());
        }
    }
}
