//! The filters templates use, and the Discord-markdown escaping applied to every `{{ … }}`.
//!
//! Filters that produce markup of their own (`ts` gives `<t:…:R>`) return safe strings so the
//! escaping does not break them; everything else is escaped when printed.

use minijinja::value::Value;
use minijinja::{Error, ErrorKind};

use super::builtin::{Labels, RESETS, STATUSES};
use super::limits;
use crate::event::parse_datetime;

/// The Discord timestamp styles `ts` accepts.
const TS_STYLES: &str = "tTdDfFR";

/// Makes panel text inert in Discord: drops the characters that hide or reorder text (see
/// [`strip_invisible`]) and escapes markdown so it shows as written: no bold, links, headings,
/// lists, quotes, mentions (`@everyone`, `<@&1>`), custom emoji or timestamps made from it.
pub fn escape_markdown(text: &str) -> String {
    let chars = strip_invisible(text);
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    let mut line_start = true;
    // Only ASCII digits since the start of the line (after its indentation): `1. ` would be a list.
    let mut list_number = false;
    for (i, &ch) in chars.iter().enumerate() {
        // At the very start too: the template may have put the digits just before the value.
        let list_dot = ch == '.'
            && (list_number || (i == 0 && line_start))
            && chars.get(i + 1).is_none_or(|next| next.is_whitespace());
        let special = matches!(ch, '\\' | '*' | '_' | '~' | '`' | '|' | '[' | ']' | '<' | '>' | '@' | '#')
            || (line_start && matches!(ch, '-' | '+'))
            || list_dot;
        if special {
            out.push('\\');
        }
        out.push(ch);
        list_number = ch.is_ascii_digit() && (line_start || list_number);
        line_start = ch == '\n' || (line_start && ch.is_whitespace());
    }
    out
}

/// `text` without the characters that make what Discord shows differ from what was sent:
///
/// * control characters (C0, DEL, C1) other than newline and tab; U+2028 and U+2029 become
///   newlines, so that the line-start escapes see them;
/// * bidirectional controls (U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069): an override
///   in a username would reverse the text around it. The isolates the relay wraps values in for
///   right-to-left templates are added after this, so they stay;
/// * invisible characters (U+200B, U+2060–U+2064, U+FEFF, U+206A–U+206F), and the ones that
///   draw as nothing though they are not format characters: the soft hyphen (U+00AD), the
///   combining grapheme joiner (U+034F), the Hangul fillers (U+115F, U+1160, U+3164, U+FFA0), the
///   Khmer inherent vowels (U+17B4, U+17B5), the Mongolian vowel separator (U+180E), interlinear
///   annotation marks (U+FFF9–U+FFFB) and musical formatting (U+1D173–U+1D17A). A name made of
///   Hangul fillers would otherwise show as blank;
/// * tag characters (U+E0000–U+E007F), except in the run that follows a black flag (U+1F3F4),
///   where they spell a subdivision flag (🏴󠁧󠁢󠁳󠁣󠁴󠁿);
/// * zero-width (non-)joiners (U+200C, U+200D), except between two non-ASCII visible characters,
///   where they carry meaning: Persian words (`می‌خواهم`), emoji sequences (`👨‍👩‍👧`). Between
///   Latin letters they only disguise a name.
pub fn strip_invisible(text: &str) -> Vec<char> {
    let mut in_flag = false;
    let kept: Vec<char> = text
        .chars()
        .filter(|&ch| {
            let tag = matches!(ch, '\u{E0000}'..='\u{E007F}');
            let keep = !is_hidden(ch) && (!tag || in_flag);
            in_flag = ch == '\u{1F3F4}' || (in_flag && tag && ch != '\u{E007F}');
            keep
        })
        .map(|ch| if matches!(ch, '\u{2028}' | '\u{2029}') { '\n' } else { ch })
        .collect();
    let joins = |ch: Option<&char>| ch.is_some_and(|&ch| !ch.is_ascii() && !ch.is_whitespace() && !is_joiner(ch));
    kept.iter()
        .enumerate()
        .filter(|&(i, &ch)| !is_joiner(ch) || (i > 0 && joins(kept.get(i - 1)) && joins(kept.get(i + 1))))
        .map(|(_, &ch)| ch)
        .collect()
}

/// Characters dropped from panel text wherever they are (see [`strip_invisible`]).
fn is_hidden(ch: char) -> bool {
    (ch.is_control() && !matches!(ch, '\n' | '\t'))
        || matches!(
            ch,
            '\u{061C}'
                | '\u{200B}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{00AD}'
                | '\u{034F}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{17B4}'
                | '\u{17B5}'
                | '\u{180E}'
                | '\u{3164}'
                | '\u{FFA0}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{1D173}'..='\u{1D17A}'
        )
}

/// ZERO WIDTH NON-JOINER and ZERO WIDTH JOINER.
fn is_joiner(ch: char) -> bool {
    matches!(ch, '\u{200C}' | '\u{200D}')
}

fn undefined_check(value: &Value) -> Result<(), Error> {
    if value.is_undefined() {
        return Err(Error::new(ErrorKind::UndefinedError, "the filter was given an undefined value"));
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
/// decimal separator: `1.5 GiB`, `0 B`, ru `1,5 ГиБ`.
pub fn format_bytes(amount: f64, labels: &Labels) -> String {
    let sign = if amount < 0.0 { "-" } else { "" };
    let mut scaled = amount.abs();
    let mut unit = 0;
    while scaled >= 1024.0 && unit + 1 < labels.byte_units.len() {
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

/// `{{ user.note | truncate(100) }}`: at most `length` characters (code points), ending with `…`
/// when cut. Still escaped when printed.
pub fn truncate(value: &Value, length: usize) -> Result<Value, Error> {
    undefined_check(value)?;
    if value.is_none() {
        return Ok(Value::from(""));
    }
    Ok(Value::from(limits::truncate(&value.to_string(), length)))
}

/// `{{ user.note | md }}`: escaped for Discord markdown now (and not again when printed).
pub fn md(value: &Value) -> Result<Value, Error> {
    undefined_check(value)?;
    if value.is_none() {
        return Ok(Value::from_safe_string(String::new()));
    }
    Ok(Value::from_safe_string(escape_markdown(&value.to_string())))
}

/// `{{ user.note | raw }}`: printed with its markdown working, but still without the control,
/// bidirectional and invisible characters [`strip_invisible`] drops (`safe` keeps even those).
pub fn raw(value: &Value) -> Result<Value, Error> {
    undefined_check(value)?;
    if value.is_none() {
        return Ok(Value::from_safe_string(String::new()));
    }
    Ok(Value::from_safe_string(strip_invisible(&value.to_string()).into_iter().collect()))
}

/// `{{ user.status | status_emoji }}` → 🟢 active, 🟡 on hold, 🟠 limited, 🔴 expired,
/// ⚫ disabled, ⚪ anything else.
pub fn status_emoji(value: &Value) -> Result<Value, Error> {
    undefined_check(value)?;
    let emoji = match value.as_str() {
        None if value.is_none() => "",
        Some("active") => "🟢",
        Some("on_hold") => "🟡",
        Some("limited") => "🟠",
        Some("expired") => "🔴",
        Some("disabled") => "⚫",
        _ => "⚪",
    };
    Ok(Value::from_safe_string(emoji.to_owned()))
}

/// `{{ user.status | status_text }}` → `Active`, `On hold`… in the template set's language;
/// unknown statuses print as they are.
pub fn status_text(value: &Value, labels: &Labels) -> Result<Value, Error> {
    translate(value, &STATUSES, &labels.statuses)
}

/// `{{ user.data_limit_reset_strategy | reset_text }}` → `Monthly`… in the template set's language.
pub fn reset_text(value: &Value, labels: &Labels) -> Result<Value, Error> {
    translate(value, &RESETS, &labels.resets)
}

/// The word of `words` at the position of `value` in `keys`; other values print as they are.
fn translate(value: &Value, keys: &[&str], words: &[&'static str]) -> Result<Value, Error> {
    undefined_check(value)?;
    let Some(key) = value.as_str() else {
        return Ok(if value.is_none() { Value::from_safe_string(String::new()) } else { value.clone() });
    };
    Ok(match keys.iter().position(|k| *k == key) {
        Some(i) => Value::from_safe_string(words[i].to_owned()),
        None => Value::from(key),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::Lang;

    #[test]
    fn escapes_markdown_and_mentions() {
        assert_eq!(escape_markdown("**bold** _x_ `c`"), r"\*\*bold\*\* \_x\_ \`c\`");
        assert_eq!(escape_markdown("@everyone <@&1>"), r"\@everyone \<\@&1\>");
        assert_eq!(escape_markdown("[link](http://x)"), r"\[link\](http://x)");
        assert_eq!(escape_markdown("# head\n- item\n> quote"), "\\# head\n\\- item\n\\> quote");
        assert_eq!(escape_markdown("a-b"), "a-b");
        assert_eq!(escape_markdown("ünïcødé 🚀"), "ünïcødé 🚀");
    }

    #[test]
    fn escapes_what_would_become_markdown_structure_at_the_start_of_a_line() {
        assert_eq!(escape_markdown("1. first"), r"1\. first");
        assert_eq!(escape_markdown("note:\n  42. item\n1.5 GiB\nv1. x"), "note:\n  42\\. item\n1.5 GiB\nv1. x");
        assert_eq!(escape_markdown("7."), r"7\.");
        assert_eq!(escape_markdown("- a\n* b\n> c\n# d\n## e\n-# f\n+ g\n>>> h"), {
            "\\- a\n\\* b\n\\> c\n\\# d\n\\#\\# e\n\\-\\# f\n\\+ g\n\\>\\>\\> h"
        });
        assert_eq!(escape_markdown("a 1. b"), "a 1. b");
        assert_eq!(escape_markdown(". after the template's digits"), r"\. after the template's digits");
    }

    #[test]
    fn drops_bidi_overrides_and_control_and_invisible_characters() {
        // U+202E would show "admin\u{202E}gpj.exe" as "adminexe.jpg".
        assert_eq!(escape_markdown("admin\u{202E}gpj.exe"), "admingpj.exe");
        for bidi in ['\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}'] {
            assert_eq!(escape_markdown(&format!("a{bidi}b")), "ab", "U+{:04X}", bidi as u32);
        }
        for hidden in ['\u{200B}', '\u{200E}', '\u{200F}', '\u{2060}', '\u{FEFF}', '\u{061C}'] {
            assert_eq!(escape_markdown(&format!("a{hidden}b")), "ab", "U+{:04X}", hidden as u32);
        }
        for blank in ['\u{00AD}', '\u{034F}', '\u{115F}', '\u{1160}', '\u{3164}', '\u{FFA0}', '\u{180E}', '\u{E0041}'] {
            assert_eq!(escape_markdown(&format!("a{blank}{blank}b")), "ab", "U+{:04X}", blank as u32);
        }
        // A name of Hangul fillers is empty, not a blank that looks like a name.
        assert_eq!(escape_markdown("\u{3164}\u{3164}"), "");
        // Tag characters spell a subdivision flag after a black flag, and only there.
        let scotland = "\u{1F3F4}\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}";
        assert_eq!(escape_markdown(&format!("{scotland} fan")), format!("{scotland} fan"));
        assert_eq!(escape_markdown("x\u{E0067}\u{E0062}\u{E007F}"), "x");
        assert_eq!(escape_markdown(&format!("{scotland}\u{E0067}")), scotland);
        assert_eq!(escape_markdown("bob\0\x1b[31mred\x07\u{85}\u{9b}\r\nnext\tcol"), "bob\\[31mred\nnext\tcol");
        assert_eq!(escape_markdown("line\u{2028}- item"), "line\n\\- item");
        // A control character cannot hide a line start from the list escape either.
        assert_eq!(escape_markdown("x\n\x001. y"), "x\n1\\. y");
    }

    #[test]
    fn keeps_joiners_only_where_they_join_non_latin_text() {
        assert_eq!(escape_markdown("می\u{200C}خواهم"), "می\u{200C}خواهم");
        assert_eq!(escape_markdown("👨\u{200D}👩\u{200D}👧"), "👨\u{200D}👩\u{200D}👧");
        assert_eq!(escape_markdown("❤\u{FE0F}\u{200D}🔥"), "❤\u{FE0F}\u{200D}🔥");
        assert_eq!(escape_markdown("ad\u{200D}min"), "admin");
        assert_eq!(escape_markdown("\u{200C}سلام\u{200C}"), "سلام");
        assert_eq!(escape_markdown("م\u{200C}\u{200C}ی"), "می");
    }

    #[test]
    fn raw_keeps_markdown_but_not_hidden_characters() {
        assert_eq!(raw(&Value::from("**x**\u{202E}\0")).unwrap().to_string(), "**x**");
    }

    #[test]
    fn formats_bytes_in_binary_units() {
        let en = Lang::En.labels();
        assert_eq!(format_bytes(0.0, &en), "0 B");
        assert_eq!(format_bytes(1023.0, &en), "1023 B");
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
        assert_eq!(format_duration(273_600.0, &Lang::Ru.labels()), "3 д 4 ч");
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

    #[test]
    fn truncates_by_code_points() {
        assert_eq!(truncate(&Value::from("ünïcødé 🚀 text"), 9).unwrap().to_string(), "ünïcødé…");
        assert_eq!(truncate(&Value::from("short"), 10).unwrap().to_string(), "short");
        assert!(!truncate(&Value::from("**x**"), 10).unwrap().is_safe(), "still escaped when printed");
    }

    #[test]
    fn md_escapes_and_raw_does_not() {
        let md = md(&Value::from("**x** @everyone")).unwrap();
        assert!(md.is_safe());
        assert_eq!(md.to_string(), r"\*\*x\*\* \@everyone");
        let raw = raw(&Value::from("**x**")).unwrap();
        assert!(raw.is_safe());
        assert_eq!(raw.to_string(), "**x**");
    }

    #[test]
    fn shows_statuses_as_emoji_and_words() {
        let show = |s: &str| status_emoji(&Value::from(s)).unwrap().to_string();
        assert_eq!(
            [show("active"), show("on_hold"), show("limited"), show("expired"), show("disabled")].concat(),
            "🟢🟡🟠🔴⚫"
        );
        assert_eq!(show("archived"), "⚪");
        assert_eq!(status_text(&Value::from("on_hold"), &Lang::En.labels()).unwrap().to_string(), "On hold");
        assert_eq!(status_text(&Value::from("expired"), &Lang::Ru.labels()).unwrap().to_string(), "Истёк");
        assert_eq!(status_text(&Value::from("archived"), &Lang::Zh.labels()).unwrap().to_string(), "archived");
        assert_eq!(reset_text(&Value::from("month"), &Lang::En.labels()).unwrap().to_string(), "Monthly");
        assert_eq!(reset_text(&Value::from("week"), &Lang::Fa.labels()).unwrap().to_string(), "هفتگی");
    }
}
