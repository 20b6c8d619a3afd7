//! Reading values out of the panels' JSON: strings, integers, times, and what kind a value is.

use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, PrimitiveDateTime};

pub(super) fn take_str(map: &mut Map<String, Value>, key: &str) -> Option<String> {
    match map.remove(key)? {
        Value::String(s) => Some(s),
        _ => None,
    }
}

pub(super) fn take_int(map: &mut Map<String, Value>, key: &str) -> Option<i64> {
    map.remove(key).as_ref().and_then(as_int)
}

/// An integer from a JSON number; floats are truncated, anything else is no value.
pub(super) fn as_int(value: &Value) -> Option<i64> {
    value.as_i64().or_else(|| value.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
}

/// Unix seconds from a number (unix seconds) or an ISO 8601 datetime, with or without an offset
/// (without one it is UTC, as the panels mean it).
pub fn unix_seconds(value: &Value) -> Option<i64> {
    match value {
        Value::Number(_) => as_int(value),
        Value::String(text) => parse_datetime(text).map(OffsetDateTime::unix_timestamp),
        _ => None,
    }
}

/// Parses an ISO 8601 datetime as the panels send it: RFC 3339 with `Z` or an offset, or without
/// any offset (UTC), with or without fractional seconds; a bare date is midnight UTC.
pub fn parse_datetime(text: &str) -> Option<OffsetDateTime> {
    let text = text.trim();
    if let Ok(dt) = OffsetDateTime::parse(text, &Rfc3339) {
        return Some(dt);
    }
    let naive = time::macros::format_description!(
        version = 2,
        "[year]-[month]-[day][first [T] [ ]][hour]:[minute][optional [:[second][optional [.[subsecond]]]]]"
    );
    if let Ok(dt) = PrimitiveDateTime::parse(text, naive) {
        return Some(dt.assume_utc());
    }
    let date = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(text, date).ok().map(|d| d.midnight().assume_utc())
}

pub(super) fn serialize_unix<S: serde::Serializer>(at: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(at.unix_timestamp_nanos() as f64 / 1e9)
}

pub(super) fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
