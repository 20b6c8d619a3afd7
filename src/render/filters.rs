//! The filters templates use, and the Discord-markdown escaping applied to every `{{ … }}`.
//!
//! Filters that produce markup of their own (`ts` gives `<t:…:R>`) return safe strings so the
//! escaping does not break them; everything else is escaped when printed.

use minijinja::value::Value;
use minijinja::{Error, ErrorKind};

use crate::event::parse_datetime;

/// The Discord timestamp styles `ts` accepts.
const TS_STYLES: &str = "tTdDfFR";

/// Units for `bytes`, each 1024 times the one before.
const BYTE_UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];

/// Escapes Discord markdown so `text` shows as written: no bold, links, headings, quotes,
/// mentions (`@everyone`, `<@&1>`), custom emoji or timestamps made from it.
pub fn escape_markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    let mut line_start = true;
    for ch in text.chars() {
        let special = matches!(
            ch,
            '\\' | '*' | '_' | '~' | '`' | '|' | '[' | ']' | '<' | '>' | '@' | '#'
        ) || (line_start && matches!(ch, '-' | '+'));
        if special {
            out.push('\\');
        }
        out.push(ch);
        line_start = ch == '\n' || (line_start && ch.is_whitespace());
    }
    out
}

fn undefined_check(value: &Value) -> Result<(), Error> {
    if value.is_undefined() {
        return Err(Error::new(
            ErrorKind::UndefinedError,
            "the filter was given an undefined value",
        ));
    }
    Ok(())
}

fn number(value: &Value, filter: &str) -> Result<Option<f64>, Error> {
    undefined_check(value)?;
    if value.is_none() {
        return Ok(None);
    }
    if let Some(text) = value.as_str() {
        return text.trim().parse::<f64>().map(Some).map_err(|_| {
            Error::new(
                ErrorKind::InvalidOperation,
                format!("{filter} expects a number, not the text {text:?}"),
            )
        });
    }
    f64::try_from(value.clone()).map(Some).map_err(|_| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!("{filter} expects a number, not {}", value.kind()),
        )
    })
}

/// `{{ user.data_limit | bytes }}` → `10 GiB`; none → `unlimited_label`.
pub fn bytes(value: &Value, unlimited_label: &str) -> Result<Value, Error> {
    let Some(amount) = number(value, "bytes")? else {
        return Ok(Value::from_safe_string(unlimited_label.to_owned()));
    };
    Ok(Value::from_safe_string(format_bytes(amount)))
}

/// Binary units with at most two decimals, trailing zeros dropped: `1.5 GiB`, `0 B`.
pub fn format_bytes(amount: f64) -> String {
    let sign = if amount < 0.0 { "-" } else { "" };
    let mut scaled = amount.abs();
    let mut unit = 0;
    while scaled >= 1024.0 && unit + 1 < BYTE_UNITS.len() {
        scaled /= 1024.0;
        unit += 1;
    }
    format!("{sign}{} {}", trim_decimals(scaled, 2), BYTE_UNITS[unit])
}

/// `n` with at most `places` decimals and no trailing zeros.
pub fn trim_decimals(n: f64, places: usize) -> String {
    let text = format!("{n:.places$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

/// `{{ user.expire | ts }}` → `<t:1798393156:R>`; `ts('F')` for another style. Accepts unix
/// seconds (int or float, or digits in a string) and ISO 8601 datetimes with or without offset.
/// None prints nothing.
pub fn ts(value: &Value, style: Option<&str>) -> Result<Value, Error> {
    undefined_check(value)?;
    let style = style.unwrap_or("R");
    if style.chars().count() != 1 || !TS_STYLES.contains(style) {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("ts style must be one of t, T, d, D, f, F, R, not {style:?}"),
        ));
    }
    let Some(seconds) = unix_seconds(value)? else {
        return Ok(Value::from_safe_string(String::new()));
    };
    Ok(Value::from_safe_string(format!("<t:{seconds}:{style}>")))
}

/// Unix seconds from a template value: a number, digits, or an ISO datetime; none is none.
pub fn unix_seconds(value: &Value) -> Result<Option<i64>, Error> {
    undefined_check(value)?;
    if value.is_none() {
        return Ok(None);
    }
    if let Some(text) = value.as_str() {
        if let Ok(n) = text.trim().parse::<f64>() {
            return Ok(Some(n.floor() as i64));
        }
        return parse_datetime(text)
            .map(|dt| Some(dt.unix_timestamp()))
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidOperation,
                    format!("{text:?} is neither unix seconds nor an ISO datetime"),
                )
            });
    }
    number(value, "ts").map(|n| n.map(|n| n.floor() as i64))
}

/// `{{ user.on_hold_expire_duration | duration }}` → `3d 4h`: the two largest non-zero units.
pub fn duration(value: &Value) -> Result<Value, Error> {
    let Some(seconds) = number(value, "duration")? else {
        return Ok(Value::from_safe_string(String::new()));
    };
    Ok(Value::from_safe_string(format_duration(seconds)))
}

/// Seconds as `3d 4h`, `5m 2s`, `0s`.
pub fn format_duration(seconds: f64) -> String {
    let sign = if seconds < 0.0 { "-" } else { "" };
    let mut rest = seconds.abs().round() as u64;
    let mut parts = Vec::new();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if rest >= size {
            parts.push(format!("{}{unit}", rest / size));
            rest %= size;
        } else if !parts.is_empty() {
            // Units are only shown adjacent: "3d 4h", never "3d 4s".
            break;
        }
        if parts.len() == 2 {
            break;
        }
    }
    if parts.is_empty() {
        return "0s".to_owned();
    }
    format!("{sign}{}", parts.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markdown_and_mentions() {
        assert_eq!(
            escape_markdown("**bold** _x_ `c`"),
            r"\*\*bold\*\* \_x\_ \`c\`"
        );
        assert_eq!(escape_markdown("@everyone <@&1>"), r"\@everyone \<\@&1\>");
        assert_eq!(escape_markdown("[link](http://x)"), r"\[link\](http://x)");
        assert_eq!(
            escape_markdown("# head\n- item\n> quote"),
            "\\# head\n\\- item\n\\> quote"
        );
        assert_eq!(escape_markdown("a-b"), "a-b");
        assert_eq!(escape_markdown("ünïcødé 🚀"), "ünïcødé 🚀");
    }

    #[test]
    fn formats_bytes_in_binary_units() {
        assert_eq!(format_bytes(0.0), "0 B");
        assert_eq!(format_bytes(1023.0), "1023 B");
        assert_eq!(format_bytes(1536.0), "1.5 KiB");
        assert_eq!(format_bytes(10_737_418_240.0), "10 GiB");
        assert_eq!(format_bytes(921_600.0), "900 KiB");
        assert_eq!(format_bytes(1_228_800.0), "1.17 MiB");
        assert_eq!(
            bytes(&Value::from(()), "Unlimited").unwrap().to_string(),
            "Unlimited"
        );
        assert!(bytes(&Value::UNDEFINED, "Unlimited").is_err());
    }

    #[test]
    fn formats_discord_timestamps_from_every_input() {
        let show = |v: Value, style: Option<&str>| ts(&v, style).unwrap().to_string();
        assert_eq!(show(Value::from(1798393156), None), "<t:1798393156:R>");
        assert_eq!(
            show(Value::from(1798393156.9), Some("F")),
            "<t:1798393156:F>"
        );
        assert_eq!(
            show(Value::from("2026-11-27T17:34:50.056027"), Some("f")),
            "<t:1795800890:f>"
        );
        assert_eq!(
            show(Value::from("2026-11-27T17:34:50Z"), Some("d")),
            "<t:1795800890:d>"
        );
        assert_eq!(
            show(Value::from("2026-11-27T20:34:50+03:00"), Some("T")),
            "<t:1795800890:T>"
        );
        assert_eq!(show(Value::from(()), None), "");
        assert!(ts(&Value::from(1), Some("x")).is_err());
        assert!(ts(&Value::from("tomorrow"), None).is_err());
    }

    #[test]
    fn formats_durations_with_two_units() {
        assert_eq!(format_duration(0.0), "0s");
        assert_eq!(format_duration(59.0), "59s");
        assert_eq!(format_duration(273_600.0), "3d 4h");
        assert_eq!(format_duration(259_205.0), "3d");
        assert_eq!(format_duration(3_661.0), "1h 1m");
        assert_eq!(format_duration(-90.0), "-1m 30s");
    }
}
