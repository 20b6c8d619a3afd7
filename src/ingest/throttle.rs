//! A throttle for log lines that strangers can trigger at will.

use std::time::Duration;

/// Lets a warning that strangers can trigger at will (a refused request) through a few times a
/// minute, and counts the rest, so a flood of bad requests cannot flood the log.
#[derive(Debug, Default)]
pub struct LogThrottle {
    state: std::sync::Mutex<ThrottleState>,
}

#[derive(Debug, Default)]
struct ThrottleState {
    minute_started: Option<std::time::Instant>,
    logged: u32,
    held_back: u64,
}

/// How many like lines were not logged since the last one that was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldBack(pub u64);

impl HeldBack {
    /// `" (N more like this were not logged)"`, or nothing.
    pub fn note(self) -> String {
        if self.0 == 0 {
            String::new()
        } else {
            format!(" ({} more like this were not logged)", self.0)
        }
    }
}

impl LogThrottle {
    /// Lines logged per minute at most.
    pub const PER_MINUTE: u32 = 5;

    /// `Some` when this one may be logged (with how many were held back before it), `None` when not.
    pub fn admit(&self) -> Option<HeldBack> {
        let Ok(mut state) = self.state.lock() else { return None };
        let now = std::time::Instant::now();
        if state.minute_started.is_none_or(|started| now.duration_since(started) >= Duration::from_secs(60)) {
            state.minute_started = Some(now);
            state.logged = 0;
        }
        if state.logged >= Self::PER_MINUTE {
            state.held_back = state.held_back.saturating_add(1);
            return None;
        }
        state.logged += 1;
        Some(HeldBack(std::mem::take(&mut state.held_back)))
    }
}
