//! Delivery settings: retries, Discord's channel rate limit, digests and the readiness notice.

use super::{
    parse_count, parse_duration_in, parse_rate, parse_schedule, ConfigError, Env, DIGEST_WINDOW, RETRY_MAX_AGE,
    WAIT_NOTICE,
};
use crate::deliver::DeliverySettings;

/// `RETRY_SCHEDULE`, `RETRY_MAX_AGE`, `CHANNEL_RATE_LIMIT`, `DIGEST_*` and `READYZ_WAIT_NOTICE`.
pub(super) fn delivery_settings(env: &Env) -> Result<DeliverySettings, ConfigError> {
    let defaults = DeliverySettings::default();
    let channel =
        env.parse_or("CHANNEL_RATE_LIMIT", (defaults.channel_messages, defaults.channel_window), parse_rate)?;
    Ok(DeliverySettings {
        retry_schedule: env.parse_or("RETRY_SCHEDULE", defaults.retry_schedule.clone(), parse_schedule)?,
        retry_max_age: env
            .parse_or("RETRY_MAX_AGE", defaults.retry_max_age, |s| parse_duration_in(s, RETRY_MAX_AGE))?,
        channel_messages: channel.0,
        channel_window: channel.1,
        digest_threshold: env.parse_or("DIGEST_THRESHOLD", defaults.digest_threshold, |s| {
            parse_count(s, 0..=DIGEST_THRESHOLD_MAX).map_err(|e| format!("{e} (0 turns digests off)"))
        })?,
        digest_window: env
            .parse_or("DIGEST_WINDOW", defaults.digest_window, |s| parse_duration_in(s, DIGEST_WINDOW))?,
        wait_notice: env.parse_or("READYZ_WAIT_NOTICE", defaults.wait_notice, |s| parse_duration_in(s, WAIT_NOTICE))?,
        ..defaults
    })
}

/// The largest `DIGEST_THRESHOLD`: a delivery task finds a burst among the 2,000 oldest pending
/// events, so a larger threshold could never be passed.
pub const DIGEST_THRESHOLD_MAX: usize = crate::deliver::DIGEST_LOOKAHEAD - 1;
