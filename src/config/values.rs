//! Parsers of setting values (sizes, durations, rates, counts, panels), each with the range it
//! accepts, and the error text that names what was expected.

use std::ops::RangeInclusive;
use std::time::Duration;

use crate::routing::is_panel_label;
use crate::secret::Secret;

/// `label:secret,label:secret`: panels and their secrets (a secret may hold `:` but not `,`).
pub fn parse_panels(value: &str) -> Result<Vec<(String, Secret)>, String> {
    let mut panels: Vec<(String, Secret)> = Vec::new();
    for (n, entry) in value.split(',').map(str::trim).filter(|e| !e.is_empty()).enumerate() {
        let (label, secret) =
            entry.split_once(':').ok_or_else(|| "must be label:secret pairs separated by commas".to_owned())?;
        if !is_panel_label(label) {
            // Not quoted: written secret first (`secret:label`), the "label" is the secret.
            return Err(format!(
                "panel {}: the label (before the ':') must be 1 to 32 letters, digits, '_' or '-' (not shown, in                  case it is the secret: write label:secret)",
                n + 1
            ));
        }
        if panels.iter().any(|(known, _)| known == label) {
            return Err(format!("names panel {label:?} twice"));
        }
        let secret = Secret::parse(secret).map_err(|e| format!("secret of panel {label:?} {e}"))?;
        panels.push((label.to_owned(), secret));
    }
    Ok(panels)
}

/// A whole number within `range`.
pub fn parse_count(value: &str, range: RangeInclusive<usize>) -> Result<usize, String> {
    let bad = || format!("must be a whole number from {} to {}, not {value:?}", range.start(), range.end());
    let count: usize = value.parse().map_err(|_| bad())?;
    range.contains(&count).then_some(count).ok_or_else(bad)
}

/// `true/false`, `1/0`, `yes/no`, `on/off`.
pub fn parse_bool(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("must be true or false, not {value:?}")),
    }
}

/// A byte size: a number, optionally with a unit `B`, `K`/`KiB`, `M`/`MiB`, `G`/`GiB` (binary).
pub fn parse_size(value: &str) -> Result<usize, String> {
    let bad = || format!("must be a size such as 67108864, 64MiB or 512K, not {value:?}");
    let split = value.find(|c: char| !c.is_ascii_digit()).unwrap_or(value.len());
    let (digits, unit) = value.split_at(split);
    let number: usize = digits.parse().map_err(|_| bad())?;
    let factor: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(bad()),
    };
    let size = number.checked_mul(factor).ok_or_else(bad)?;
    if size == 0 {
        return Err("must be more than 0".into());
    }
    Ok(size)
}

/// A size, as [`parse_size`], of at least `min` bytes and, when given, at most `max`.
pub fn parse_size_in(value: &str, min: usize, max: Option<usize>) -> Result<usize, String> {
    let size = parse_size(value)?;
    match max {
        Some(max) if size < min || size > max => {
            Err(format!("must be between {} and {}", show_size(min), show_size(max)))
        }
        None if size < min => {
            Err(format!("must be at least {} (a size such as 512MiB), not {value:?}", show_size(min)))
        }
        _ => Ok(size),
    }
}

/// `size` in the largest binary unit that shows it whole: `64KiB`, `1GiB`, `1000`.
fn show_size(size: usize) -> String {
    for (unit, factor) in [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if size >= factor && size % factor == 0 {
            return format!("{}{unit}", size / factor);
        }
    }
    size.to_string()
}

/// The durations a setting accepts. Out of range is an error at start naming the variable and the
/// range, never a silent clamp: a value this far off is a typo, not a wish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub min: Duration,
    pub max: Duration,
    /// Whether `0` is accepted too, to turn the setting off.
    pub zero_is_off: bool,
}

const fn days(n: u64) -> Duration {
    Duration::from_secs(n * 86_400)
}

/// Any duration at all: up to 100 years, so that every duration the relay handles fits its
/// millisecond arithmetic (`i64` milliseconds since 1970) with room to spare. Also bounds the
/// `outbox purge --delivered-older-than` argument.
pub const ANY_DURATION: Bounds = Bounds { min: Duration::ZERO, max: days(36_500), zero_is_off: false };

/// `RETRY_SCHEDULE`, each wait: 100 ms to 1 day. Faster retries only hammer a failing Discord;
/// waiting longer than a day between tries outlasts any outage worth retrying through.
pub const RETRY_STEP: Bounds = Bounds { min: Duration::from_millis(100), max: days(1), zero_is_off: false };

/// `RETRY_MAX_AGE`: 1 s to 365 days. A row is retried at most this long after it was received.
pub const RETRY_MAX_AGE: Bounds = Bounds { min: Duration::from_secs(1), max: days(365), zero_is_off: false };

/// `DEDUP_WINDOW`: 1 s to 1 day, or 0 for off. The panel re-sends a batch within minutes (three
/// times, 180 s apart); a longer window would swallow events that genuinely happened twice.
pub const DEDUP: Bounds = Bounds { min: Duration::from_secs(1), max: days(1), zero_is_off: true };

/// `DIGEST_WINDOW`: 0 (off) or 100 ms to 1 minute. A panel sends one burst's requests back to
/// back; a longer window would hold every burst's first digest for minutes.
pub const DIGEST_WINDOW: Bounds =
    Bounds { min: Duration::from_millis(100), max: Duration::from_secs(60), zero_is_off: true };

/// `READYZ_WAIT_NOTICE`: 1 second to 5 minutes. Waits an answer imposed of five minutes or more
/// already make `/readyz` answer 503, so a longer notice would show nothing more.
pub const WAIT_NOTICE: Bounds =
    Bounds { min: Duration::from_secs(1), max: Duration::from_secs(300), zero_is_off: false };

/// `DELIVERED_RETENTION`: 0 to 3650 days (0: delete delivered rows at the next hourly pruning).
pub const RETENTION: Bounds = Bounds { min: Duration::ZERO, max: days(3650), zero_is_off: false };

/// `USER_STATE_RETENTION`: 0 (keep no states) to 3650 days.
pub const USER_STATE: Bounds = Bounds { min: Duration::ZERO, max: days(3650), zero_is_off: false };

/// `CHANNEL_RATE_LIMIT`'s window: 1 s to 1 day. Discord's hidden limit is about 30 per minute.
pub const CHANNEL_WINDOW: Bounds = Bounds { min: Duration::from_secs(1), max: days(1), zero_is_off: false };

/// `CHANNEL_RATE_LIMIT`'s message count: 1 to 10,000 per window (the relay remembers the send
/// time of each message in the window).
pub const CHANNEL_MESSAGES: std::ops::RangeInclusive<usize> = 1..=10_000;

impl Bounds {
    /// Whether `seconds` is in range.
    fn contains(self, seconds: f64) -> bool {
        (seconds == 0.0 && self.zero_is_off) || (self.min.as_secs_f64() <= seconds && seconds <= self.max.as_secs_f64())
    }

    /// `from 100ms to 1d`, or `0 (off) or from 1s to 1d`.
    fn describe(self) -> String {
        let range = format!("from {} to {}", show_duration(self.min), show_duration(self.max));
        if self.zero_is_off {
            format!("0 (off) or {range}")
        } else {
            range
        }
    }
}

/// `d` in the largest unit that shows it whole: `1d`, `36h`, `90s`, `100ms`.
pub fn show_duration(d: Duration) -> String {
    let ms = d.as_millis();
    for (unit, size) in [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)] {
        if ms >= size && ms % size == 0 {
            return format!("{}{unit}", ms / size);
        }
    }
    if ms == 0 {
        "0".into()
    } else {
        format!("{ms}ms")
    }
}

/// A duration: a number with a unit `ms`, `s`, `m`, `h` or `d` (`250ms`, `30s`, `10m`, `72h`, `7d`),
/// or `0`, of at most [`ANY_DURATION`].
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    parse_duration_in(value, ANY_DURATION)
}

/// A duration, as [`parse_duration`], within `bounds`.
pub fn parse_duration_in(value: &str, bounds: Bounds) -> Result<Duration, String> {
    let value = value.trim();
    let seconds =
        seconds(value).ok_or_else(|| format!("must be a duration such as 30s, 10m, 72h or 7d, not {value:?}"))?;
    if !bounds.contains(seconds) {
        return Err(format!("must be {}, not {value:?}", bounds.describe()));
    }
    // In range, so finite, non-negative and far below `Duration::MAX`.
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("must be {}, not {value:?}", bounds.describe()))
}

/// The seconds a duration's text stands for (possibly huge, even infinite), or `None` when it is
/// not a duration.
fn seconds(value: &str) -> Option<f64> {
    if value == "0" {
        return Some(0.0);
    }
    let split = value.find(|c: char| !c.is_ascii_digit() && c != '.')?;
    let (number, unit) = value.split_at(split);
    let number: f64 = number.parse().ok()?;
    let seconds = match unit.trim() {
        "ms" => number / 1000.0,
        "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        "d" => number * 86_400.0,
        _ => return None,
    };
    // Digits and dots only, so never NaN; too many digits is infinity, which no range contains.
    Some(seconds)
}

/// A message rate: `30/1m` (messages per duration), or `0` for none; [`CHANNEL_MESSAGES`] per
/// [`CHANNEL_WINDOW`].
pub fn parse_rate(value: &str) -> Result<(usize, Duration), String> {
    if value.trim() == "0" {
        return Ok((0, Duration::from_secs(60)));
    }
    let bad = || format!("must be messages per duration such as 30/1m, or 0 for no limit, not {value:?}");
    let (count, per) = value.split_once('/').ok_or_else(bad)?;
    let count = count.trim();
    if count.is_empty() || !count.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let out_of_range = || {
        format!(
            "must be {} to {} messages per a duration {}, not {value:?}",
            CHANNEL_MESSAGES.start(),
            CHANNEL_MESSAGES.end(),
            CHANNEL_WINDOW.describe()
        )
    };
    // Digits only, so a number too large for `usize` is out of range, not malformed.
    let count = count.parse::<usize>().ok().filter(|n| CHANNEL_MESSAGES.contains(n)).ok_or_else(out_of_range)?;
    let per = seconds(per.trim()).ok_or_else(bad)?;
    if !CHANNEL_WINDOW.contains(per) {
        return Err(out_of_range());
    }
    Ok((count, Duration::try_from_secs_f64(per).map_err(|_| out_of_range())?))
}

/// A retry schedule: durations separated by commas (`1s,5s,30s,2m,10m,30m`), each within
/// [`RETRY_STEP`].
pub fn parse_schedule(value: &str) -> Result<Vec<Duration>, String> {
    value
        .split(',')
        .map(|step| parse_duration_in(step, RETRY_STEP).map_err(|e| format!("step {:?} {e}", step.trim())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes_and_durations() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("512K"), Ok(512 << 10));
        assert!(parse_size("0").is_err() && parse_size("1T").is_err());
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("72h"), Ok(Duration::from_secs(72 * 3600)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("10").is_err() && parse_duration("5w").is_err());
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(
            parse_schedule("1s, 5s,2m"),
            Ok(vec![Duration::from_secs(1), Duration::from_secs(5), Duration::from_secs(120)])
        );
        assert!(parse_schedule("1s,,5s").is_err() && parse_schedule("0").is_err());
        assert_eq!(parse_rate("30/1m"), Ok((30, Duration::from_secs(60))));
        assert_eq!(parse_rate("0").map(|r| r.0), Ok(0));
        assert!(parse_rate("30").is_err() && parse_rate("0/1m").is_err() && parse_rate("5/0").is_err());
    }

    #[test]
    fn any_duration_fits_the_millisecond_arithmetic() {
        assert_eq!(parse_duration("36500d"), Ok(Duration::from_secs(36_500 * 86_400)));
        assert!(parse_duration("36501d").is_err() && parse_duration("10000000000000000s").is_err());
        assert!(i64::try_from(ANY_DURATION.max.as_millis()).unwrap() < i64::MAX / 2);
        assert_eq!(show_duration(Duration::from_secs(90)), "90s");
        assert_eq!(show_duration(Duration::from_secs(36 * 3600)), "36h");
        assert_eq!(show_duration(Duration::from_millis(1500)), "1500ms");
    }
}
