//! Redaction of the panel's free text (a node's message, an error's cause) before it is cut,
//! kept, logged or sent. [`crate::discord::redact`] hides long token-like runs (60 characters
//! and more); a panel's text also carries shorter secrets: a URL's `user:password@`, a
//! `password=`/`token=`/`key=` value, a JWT's parts (each shorter than 60), a UUID (a PasarGuard
//! node's API key, a proxy user's id).

use crate::discord::redact;

const REDACTED: &str = "[redacted]";

/// Names whose `=` value is a secret (matched at the end of the word before `=`, any case).
const SECRET_KEYS: [&str; 7] = ["password", "passwd", "pass", "token", "secret", "key", "auth"];

/// `text` with every secret it may hold replaced by `[redacted]`. Redact first, then cut: a cut
/// token is no longer recognisable.
pub fn scrub(text: &str) -> String {
    let text = redact(text, None);
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while !rest.is_empty() {
        let word_len = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let (word, after) = rest.split_at(word_len);
        out.push_str(&scrub_word(word));
        let gap_len = after.find(|c: char| !c.is_whitespace()).unwrap_or(after.len());
        out.push_str(&after[..gap_len]);
        rest = &after[gap_len..];
    }
    out
}

/// One whitespace-free word: its URL credentials, secret values, JWT parts and UUIDs hidden.
fn scrub_word(word: &str) -> String {
    let word = hide_userinfo(word);
    let mut out = String::with_capacity(word.len());
    let (mut secret_value, mut jwt_next) = (false, false);
    for piece in word.split_inclusive(|c: char| !is_token_char(c)) {
        let run_len = piece.find(|c: char| !is_token_char(c)).unwrap_or(piece.len());
        let (run, separator) = piece.split_at(run_len);
        let jwt_part = jwt_next || looks_secret(run);
        if !run.is_empty() && (secret_value || jwt_part) {
            out.push_str(REDACTED);
        } else {
            out.push_str(run);
        }
        out.push_str(separator);
        // A JWT's payload and signature follow its header after a `.`, and need not start `eyJ`.
        jwt_next = jwt_part && separator == ".";
        // The value after `password=` runs to the next `&`, `;` or `,` (it may hold `.` or `-`).
        if separator == "=" {
            let name = run.to_ascii_lowercase();
            secret_value = SECRET_KEYS.iter().any(|key| name.ends_with(key));
        } else if matches!(separator, "&" | ";" | "," | "\"" | "'") {
            secret_value = false;
        }
    }
    out
}

/// `scheme://user:password@host` as `scheme://[redacted]@host`.
fn hide_userinfo(word: &str) -> String {
    let Some(start) = word.find("://").map(|at| at + 3) else {
        return word.to_owned();
    };
    let authority_end = word[start..].find(['/', '?', '#']).map_or(word.len(), |at| start + at);
    match word[start..authority_end].rfind('@') {
        Some(at) => format!("{}{REDACTED}{}", &word[..start], &word[start + at..]),
        None => word.to_owned(),
    }
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// A JWT's part (base64url of JSON starts `eyJ`) or a UUID.
fn looks_secret(run: &str) -> bool {
    let jwt_part = run.starts_with("eyJ") && run.len() >= 16;
    let uuid = run.len() == 36
        && run
            .char_indices()
            .all(|(at, c)| if matches!(at, 8 | 13 | 18 | 23) { c == '-' } else { c.is_ascii_hexdigit() });
    jwt_part || uuid
}

#[cfg(test)]
mod tests {
    use super::scrub;

    #[test]
    fn hides_short_secrets_a_panel_message_may_hold() {
        let cases = [
            ("connect to https://admin:hunter2@10.0.0.1:62050/api failed", "hunter2"),
            ("POST http://x/login?username=a&password=hunter2&x=1 refused", "hunter2"),
            ("node api_key=6f1c2b7e-0a4d-4c1e-9d1f-3a5b7c9e1f20 rejected", "6f1c2b7e"),
            ("uuid 6f1c2b7e-0a4d-4c1e-9d1f-3a5b7c9e1f20 unknown", "3a5b7c9e1f20"),
            ("Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c", "SflKxwRJ"),
            ("Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.x", "eyJzdWIiOiJhIn0"),
        ];
        for (text, secret) in cases {
            let clean = scrub(text);
            assert!(!clean.contains(secret), "{text} -> {clean}");
            assert!(clean.contains("[redacted]"), "{text} -> {clean}");
        }
        let harmless = "[Errno 111] Connect call failed ('10.0.0.1', 62050); key error: unavailable";
        assert_eq!(scrub(harmless), harmless);
        assert_eq!(scrub("https://panel.example.com/api  x=1"), "https://panel.example.com/api  x=1");
    }
}
