//! Filters that print a number for a reader: bytes, Discord timestamps, durations, percentages,
//! days and grouped numbers, each in the language's units and decimal and thousands separators.

use minijinja::value::Value;
use minijinja::{Error, ErrorKind};

use super::undefined_check;
use crate::event::parse_datetime;
use crate::render::builtin::Labels;

/// The Discord timestamp styles `ts` accepts.
const TS_STYLES: &str = "tTdDfFR";

fn number(value: &Value, filter: &str) -> Result<Option<f64>, Error> {
    undefined_check(value)?;
    if value.is_none() {
        return Ok(None);
    }
    if let Some(text) = value.as_str() {
        return text.trim().parse::<f64>().map(Some).map_err(|_| {
            Error::new(ErrorKind::InvalidOperation, format!("{filter} expects a number, not the text {text:?}"))
        });
    }
    f64::try_from(value.clone()).map(Some).map_err(|_| {
        Error::new(ErrorKind::InvalidOperation, format!("{filter} expects a number, not {}", value.kind()))
    })
}

/// `{{ user.data_limit | bytes }}` → `10 GiB` (ru `1,17 МиБ`); none → the language's "unlimited".
pub fn bytes(value: &Value, labels: &Labels) -> Result<Value, Error> {
    let Some(amount) = number(value, "bytes")? else {
        return Ok(Value::from_safe_string(labels.unlimited.to_owned()));
    };
    Ok(Value::from_safe_string(format_bytes(amount, labels)))
}

/// Binary units with at most two decimals, trailing zeros dropped, in the language's units and
/// decimal separator: `1.5 GiB`, `0 B`, ru `1,5 ГиБ`. From 1000 of a unit (as rounded) the next
/// unit is used, so a number never takes four digits: `0.99 GiB`, not `1016.76 MiB`.
pub fn format_bytes(amount: f64, labels: &Labels) -> String {
    let sign = if amount < 0.0 { "-" } else { "" };
    let mut scaled = amount.abs();
    let mut unit = 0;
    while (scaled * 100.0).round() >= 100_000.0 && unit + 1 < labels.byte_units.len() {
        scaled /= 1024.0;
        unit += 1;
    }
    let number = trim_decimals(scaled, 2).replace('.', labels.decimal);
    format!("{sign}{number} {}", labels.byte_units[unit])
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
        return parse_datetime(text).map(|dt| Some(dt.unix_timestamp())).ok_or_else(|| {
            Error::new(ErrorKind::InvalidOperation, format!("{text:?} is neither unix seconds nor an ISO datetime"))
        });
    }
    number(value, "ts").map(|n| n.map(|n| n.floor() as i64))
}

/// `{{ user.on_hold_expire_duration | duration }}` → `3d 4h`: the two largest non-zero units.
pub fn duration(value: &Value, labels: &Labels) -> Result<Value, Error> {
    let Some(seconds) = number(value, "duration")? else {
        return Ok(Value::from_safe_string(String::new()));
    };
    Ok(Value::from_safe_string(format_duration(seconds, labels)))
}

/// Seconds as `3d 4h`, `5m 2s`, `0s` (in English; units and separator come from `labels`).
pub fn format_duration(seconds: f64, labels: &Labels) -> String {
    let sign = if seconds < 0.0 { "-" } else { "" };
    let mut rest = seconds.abs().round() as u64;
    let mut parts = Vec::new();
    let [days, hours, minutes, secs] = labels.duration_units;
    for (unit, size) in [(days, 86_400), (hours, 3_600), (minutes, 60), (secs, 1)] {
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
        return format!("0{secs}");
    }
    format!("{sign}{}", parts.join(labels.duration_separator))
}

/// `{{ used_percent | percent }}` → `87.9%` (ru `87,9 %`, fa `87٫9٪`); `percent(2)` for two
/// decimals. The value is already in percent. None prints nothing.
pub fn percent(value: &Value, decimals: Option<usize>, labels: &Labels) -> Result<Value, Error> {
    let Some(n) = number(value, "percent")? else {
        return Ok(Value::from_safe_string(String::new()));
    };
    let (space, sign) = labels.percent;
    let number = trim_decimals(n, decimals.unwrap_or(1)).replace('.', labels.decimal);
    Ok(Value::from_safe_string(format!("{number}{space}{sign}")))
}

/// `{{ days_left | days }}` → `30 days`, `1 day`; ru `21 день`, `3 дня`, `30 дней`; zh `30天`.
/// None prints nothing.
pub fn days(value: &Value, labels: &Labels) -> Result<Value, Error> {
    let Some(n) = number(value, "days")? else {
        return Ok(Value::from_safe_string(String::new()));
    };
    let count = n.trunc() as i64;
    let form = (labels.plural)(count.unsigned_abs());
    Ok(Value::from_safe_string(format!("{count}{}", labels.days[form])))
}

/// `{{ user.on_hold_timeout | relative_days(event_time) }}` → `3 days left`, `2 days ago`, `today`
/// (fa `3 روز مانده`): how far the time is from `from`, in whole days, as words of the language
/// rather than Discord's `<t:…:R>`, which the reader's client draws in its own language. None
/// prints nothing.
pub fn relative_days(value: &Value, from: &Value, labels: &Labels) -> Result<Value, Error> {
    let (Some(at), Some(from)) = (unix_seconds(value)?, unix_seconds(from)?) else {
        return Ok(Value::from_safe_string(String::new()));
    };
    // Rounded to the nearest day, as `days_left` is.
    let days = at.saturating_sub(from).saturating_add(43_200).div_euclid(86_400);
    let [ahead, ago, today] = labels.relative;
    let count = |n: i64| {
        let n = n.unsigned_abs();
        format!("{n}{}", labels.days[(labels.plural)(n)])
    };
    let text = match days {
        0 => today.to_owned(),
        n if n > 0 => ahead.replace("{}", &count(n)),
        n => ago.replace("{}", &count(n)),
    };
    Ok(Value::from_safe_string(text))
}

/// `{{ user.users_usage | number }}` → `1,234,567` (the separator is the language's); floats keep
/// up to `decimals` (default 2) decimals.
pub fn number_filter(value: &Value, decimals: Option<usize>, labels: &Labels) -> Result<Value, Error> {
    let Some(n) = number(value, "number")? else {
        return Ok(Value::from_safe_string(String::new()));
    };
    Ok(Value::from_safe_string(format_number(n, decimals.unwrap_or(2), labels.thousands, labels.decimal)))
}

/// `n` with `separator` between groups of three digits and `decimal` before its fraction.
pub fn format_number(n: f64, decimals: usize, separator: &str, decimal: &str) -> String {
    let text = trim_decimals(n.abs(), decimals);
    let (whole, fraction) = text.split_once('.').map_or((text.as_str(), None), |(w, f)| (w, Some(f)));
    let mut grouped = String::new();
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push_str(separator);
        }
        grouped.push(digit);
    }
    let sign = if n < 0.0 && !text.trim_matches(['0', '.']).is_empty() { "-" } else { "" };
    match fraction {
        Some(fraction) => format!("{sign}{grouped}{decimal}{fraction}"),
        None => format!("{sign}{grouped}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::Lang;

    #[test]
    fn formats_bytes_in_binary_units() {
        let en = Lang::En.labels();
        assert_eq!(format_bytes(0.0, &en), "0 B");
        assert_eq!(format_bytes(999.0, &en), "999 B");
        assert_eq!(format_bytes(1000.0, &en), "0.98 KiB");
        assert_eq!(format_bytes(1_066_153_574.0, &en), "0.99 GiB", "not 1016.76 MiB");
        assert_eq!(format_bytes(1_073_741_823.0, &en), "1 GiB");
        assert_eq!(format_bytes(1536.0, &en), "1.5 KiB");
        assert_eq!(format_bytes(10_737_418_240.0, &en), "10 GiB");
        assert_eq!(format_bytes(921_600.0, &en), "900 KiB");
        assert_eq!(format_bytes(1_228_800.0, &en), "1.17 MiB");
        assert_eq!(bytes(&Value::from(()), &en).unwrap().to_string(), "Unlimited");
        assert!(bytes(&Value::UNDEFINED, &en).is_err());
    }

    #[test]
    fn formats_bytes_with_the_languages_decimal_separator_and_units() {
        assert_eq!(format_bytes(1_228_800.0, &Lang::Ru.labels()), "1,17 МиБ");
        assert_eq!(format_bytes(0.0, &Lang::Ru.labels()), "0 Б");
        assert_eq!(format_bytes(10_737_418_240.0, &Lang::Ru.labels()), "10 ГиБ");
        assert_eq!(format_bytes(1_228_800.0, &Lang::Fa.labels()), "1٫17 MiB");
        assert_eq!(format_bytes(1_228_800.0, &Lang::Zh.labels()), "1.17 MiB");
    }

    #[test]
    fn formats_discord_timestamps_from_every_input() {
        let show = |v: Value, style: Option<&str>| ts(&v, style).unwrap().to_string();
        assert_eq!(show(Value::from(1798393156), None), "<t:1798393156:R>");
        assert_eq!(show(Value::from(1798393156.9), Some("F")), "<t:1798393156:F>");
        assert_eq!(show(Value::from("2026-11-27T17:34:50.056027"), Some("f")), "<t:1795800890:f>");
        assert_eq!(show(Value::from("2026-11-27T17:34:50Z"), Some("d")), "<t:1795800890:d>");
        assert_eq!(show(Value::from("2026-11-27T20:34:50+03:00"), Some("T")), "<t:1795800890:T>");
        assert_eq!(show(Value::from(()), None), "");
        assert!(ts(&Value::from(1), Some("x")).is_err());
        assert!(ts(&Value::from("tomorrow"), None).is_err());
    }

    #[test]
    fn formats_durations_with_two_units() {
        let en = Lang::En.labels();
        assert_eq!(format_duration(0.0, &en), "0s");
        assert_eq!(format_duration(59.0, &en), "59s");
        assert_eq!(format_duration(273_600.0, &en), "3d 4h");
        assert_eq!(format_duration(259_205.0, &en), "3d");
        assert_eq!(format_duration(3_661.0, &en), "1h 1m");
        assert_eq!(format_duration(-90.0, &en), "-1m 30s");
        assert_eq!(format_duration(273_600.0, &Lang::Ru.labels()), "3 дн. 4 ч");
        assert_eq!(format_duration(273_600.0, &Lang::Fa.labels()), "3 روز و 4 ساعت");
        assert_eq!(format_duration(273_600.0, &Lang::Zh.labels()), "3天4小时");
        assert!(duration(&Value::UNDEFINED, &en).is_err());
        assert_eq!(duration(&Value::from(()), &en).unwrap().to_string(), "");
    }

    #[test]
    fn formats_percentages() {
        let en = Lang::En.labels();
        assert_eq!(percent(&Value::from(87.890625), None, &en).unwrap().to_string(), "87.9%");
        assert_eq!(percent(&Value::from(87.890625), Some(2), &en).unwrap().to_string(), "87.89%");
        assert_eq!(percent(&Value::from(90), None, &en).unwrap().to_string(), "90%");
        assert_eq!(percent(&Value::from(()), None, &en).unwrap().to_string(), "");
        assert_eq!(percent(&Value::from(87.890625), None, &Lang::Ru.labels()).unwrap().to_string(), "87,9 %");
        assert_eq!(percent(&Value::from(87.890625), None, &Lang::Fa.labels()).unwrap().to_string(), "87٫9٪");
        assert_eq!(percent(&Value::from(87.890625), None, &Lang::Zh.labels()).unwrap().to_string(), "87.9%");
    }

    #[test]
    fn counts_days_with_the_languages_plural_forms() {
        let show = |n: i64, lang: Lang| days(&Value::from(n), &lang.labels()).unwrap().to_string();
        assert_eq!([show(1, Lang::En), show(0, Lang::En), show(30, Lang::En)], ["1 day", "0 days", "30 days"]);
        let ru = [1, 2, 5, 11, 12, 21, 22, 25, 111, 104].map(|n| show(n, Lang::Ru));
        assert_eq!(
            ru,
            ["1 день", "2 дня", "5 дней", "11 дней", "12 дней", "21 день", "22 дня", "25 дней", "111 дней", "104 дня"]
        );
        assert_eq!(show(30, Lang::Fa), "30 روز");
        assert_eq!(show(30, Lang::Zh), "30天");
        assert_eq!(days(&Value::from(()), &Lang::En.labels()).unwrap().to_string(), "");
        assert!(days(&Value::UNDEFINED, &Lang::En.labels()).is_err());
    }

    #[test]
    fn says_how_many_days_ahead_or_ago_in_the_languages_words() {
        let show =
            |at: i64, lang: Lang| relative_days(&Value::from(at), &Value::from(0), &lang.labels()).unwrap().to_string();
        assert_eq!(
            [show(3 * 86_400, Lang::En), show(-2 * 86_400, Lang::En), show(3_600, Lang::En)],
            ["3 days left", "2 days ago", "today"]
        );
        assert_eq!(show(30 * 86_400, Lang::Fa), "30 روز مانده");
        assert_eq!(show(-86_400, Lang::Fa), "1 روز پیش");
        assert_eq!(show(2 * 86_400, Lang::Ru), "осталось 2 дня");
        assert_eq!(relative_days(&Value::from(()), &Value::from(0), &Lang::En.labels()).unwrap().to_string(), "");
    }

    #[test]
    fn formats_numbers_with_the_languages_separator() {
        let en = Lang::En.labels();
        assert_eq!(number_filter(&Value::from(1234567), None, &en).unwrap().to_string(), "1,234,567");
        assert_eq!(number_filter(&Value::from(999), None, &en).unwrap().to_string(), "999");
        assert_eq!(number_filter(&Value::from(-1234.5), None, &en).unwrap().to_string(), "-1,234.5");
        assert_eq!(number_filter(&Value::from(1234567), None, &Lang::Fa.labels()).unwrap().to_string(), "1٬234٬567");
        assert_eq!(format_number(1_000_000.0, 0, " ", "."), "1 000 000");
        assert_eq!(
            number_filter(&Value::from(1234.5), None, &Lang::Ru.labels()).unwrap().to_string(),
            "1\u{202f}234,5"
        );
    }
}
