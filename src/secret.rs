//! The shared secret a panel sends in `x-webhook-secret`, and the check of what a request presents.
//!
//! Marzban, PasarGuard and Marzneshin send the raw secret. Marzban's English docs show a receiver
//! that expects the lowercase hex HMAC-SHA256 of the body instead, so a proxy written after those
//! docs may send that: both are accepted. Every comparison is constant-time.
//!
//! Header bytes are not text. Marzban sends the header through Python `requests`, whose
//! `http.client` encodes a `str` header value as latin-1, so `pässwörd` arrives as `70 e4 73 …`,
//! not as its UTF-8 bytes. The raw secret is therefore accepted in both encodings. A secret with
//! characters beyond latin-1 (Cyrillic, Persian, Chinese, emoji) cannot be sent by Marzban at all;
//! [`Secret::has_latin1_form`] lets the configuration warn about it. The HMAC key is the secret's
//! UTF-8 bytes only: the key never crosses HTTP, and the senders that compute an HMAC (the docs'
//! Flask example with `secret.encode()`, Node's `createHmac`) encode it as UTF-8.
//!
//! Secrets reach the relay inline or in a file (compose secrets): [`inline_or_file`] reads either.

use std::fmt;
use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::{Choice, ConstantTimeEq};

/// A secret value: never printed, never compared with `==`.
#[derive(Clone)]
pub struct Secret {
    value: String,
    /// The latin-1 bytes of a secret that has non-ASCII characters, all of them in latin-1 (for
    /// ASCII secrets they would equal the UTF-8 bytes).
    latin1: Option<Vec<u8>>,
}

/// What the `x-webhook-secret` header alone says about a request, before its body is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderCheck {
    /// The secret itself: the request is authorized.
    Accepted,
    /// Shaped like an HMAC of the body: read the body, then [`Secret::verify`] it.
    NeedsBody,
    /// Neither: refuse without reading the body.
    Refused,
}

/// Why a string cannot be a secret.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("is empty")]
    Empty,
    #[error("has leading or trailing whitespace (the panel sends the value exactly as configured)")]
    Whitespace,
}

impl Secret {
    /// Accepts any non-empty value without surrounding whitespace.
    pub fn parse(value: impl Into<String>) -> Result<Self, SecretError> {
        let value = value.into();
        if value.is_empty() {
            return Err(SecretError::Empty);
        }
        if value.trim() != value {
            return Err(SecretError::Whitespace);
        }
        let latin1 = if value.is_ascii() { None } else { latin1(&value) };
        Ok(Self { value, latin1 })
    }

    /// The raw value, for the few places that must show or send it (tests and tools).
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// Whether every character is in latin-1 (U+0000 to U+00FF), so that Marzban, which encodes the
    /// header as latin-1, can send it. ASCII secrets always can.
    pub fn has_latin1_form(&self) -> bool {
        self.value.is_ascii() || self.latin1.is_some()
    }

    /// What `presented` (the header's bytes) proves without the body: so a stranger cannot make
    /// the relay read (and hold) a large body, only a header shaped like an HMAC needs it.
    pub fn check_header(&self, presented: &[u8]) -> HeaderCheck {
        if self.matches(presented) {
            HeaderCheck::Accepted
        } else if could_be_hmac(presented) {
            HeaderCheck::NeedsBody
        } else {
            HeaderCheck::Refused
        }
    }

    /// Whether `presented` (the header's bytes) proves knowledge of this secret for `body`: either
    /// the secret itself or the lowercase hex HMAC-SHA256 of the body keyed by it.
    pub fn verify(&self, presented: &[u8], body: &[u8]) -> bool {
        self.matches(presented) || (could_be_hmac(presented) && self.matches_hmac(presented, body))
    }

    /// Whether `presented` is the secret itself, in UTF-8 or in latin-1 (no body needed to tell).
    /// Both encodings are always compared, so the time taken does not tell which one matched.
    pub fn matches(&self, presented: &[u8]) -> bool {
        let utf8 = presented.ct_eq(self.value.as_bytes());
        let latin1 = self.latin1.as_deref().map_or(Choice::from(0), |latin1| presented.ct_eq(latin1));
        (utf8 | latin1).into()
    }

    /// Whether `presented` is the lowercase hex HMAC-SHA256 of `body` keyed by this secret.
    pub fn matches_hmac(&self, presented: &[u8], body: &[u8]) -> bool {
        constant_time_eq(presented, self.hmac_hex(body).as_bytes())
    }

    /// The lowercase hex HMAC-SHA256 of `body` keyed by this secret.
    pub fn hmac_hex(&self, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.value.as_bytes()).expect("HMAC accepts keys of any length");
        mac.update(body);
        lower_hex(&mac.finalize().into_bytes())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// The latin-1 bytes of `text`, if every character has one.
fn latin1(text: &str) -> Option<Vec<u8>> {
    text.chars().map(|ch| u8::try_from(u32::from(ch)).ok()).collect()
}

/// Whether `presented` has the shape of a hex HMAC-SHA256 (64 hex digits), so that reading the body
/// to check it is worth it.
pub fn could_be_hmac(presented: &[u8]) -> bool {
    presented.len() == 64 && presented.iter().all(u8::is_ascii_hexdigit)
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// `bytes` as lowercase hexadecimal, two digits a byte.
pub fn lower_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut text, byte| {
        let _ = write!(text, "{byte:02x}");
        text
    })
}

/// Why a value given inline or in a file could not be had.
#[derive(Debug, thiserror::Error)]
pub enum InlineOrFileError {
    #[error("it is given both inline and in a file")]
    Both,
    #[error("its file cannot be read: {0}")]
    Unreadable(std::io::Error),
}

/// A value given inline or in a file (as compose secrets are), but not both. A file's trailing
/// newline is removed. `None` when neither is given.
pub fn inline_or_file(inline: Option<String>, file: Option<&Path>) -> Result<Option<String>, InlineOrFileError> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(InlineOrFileError::Both),
        (Some(value), None) => Ok(Some(value)),
        (None, Some(file)) => std::fs::read_to_string(file)
            .map(|value| Some(value.trim_end_matches(['\n', '\r']).to_owned()))
            .map_err(InlineOrFileError::Unreadable),
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_raw_secret_and_the_hmac_of_the_body() {
        let secret = Secret::parse("s3cret").unwrap();
        let body = br#"[{"action":"user_created"}]"#;
        assert!(secret.verify(b"s3cret", body));
        // Reference value computed independently with Python's hmac module.
        let expected = "5dcfbfaa6bb2c1d5f39d70dcbf05a0ff87d371ff0e1121eddaea2dc21b10679a";
        assert_eq!(secret.hmac_hex(body), expected);
        assert!(secret.verify(expected.as_bytes(), body));
    }

    #[test]
    fn rejects_wrong_values() {
        let secret = Secret::parse("s3cret").unwrap();
        assert!(!secret.verify(b"s3cre", b"{}"));
        assert!(!secret.verify(b"", b"{}"));
        assert!(!secret.verify(secret.hmac_hex(b"other").as_bytes(), b"{}"));
        assert!(!secret.verify(secret.hmac_hex(b"{}").to_uppercase().as_bytes(), b"{}"));
    }

    #[test]
    fn only_a_hex_digest_is_worth_checking_against_the_body() {
        assert!(could_be_hmac("5dcfbfaa6bb2c1d5f39d70dcbf05a0ff87d371ff0e1121eddaea2dc21b10679a".as_bytes()));
        assert!(!could_be_hmac(b"s3cret"));
        assert!(!could_be_hmac("z".repeat(64).as_bytes()));
    }

    #[test]
    fn accepts_a_non_ascii_secret_as_marzban_sends_it_in_latin1_and_in_utf8() {
        let secret = Secret::parse("pässwörd").unwrap();
        assert!(secret.has_latin1_form());
        assert!(secret.matches(b"p\xe4ssw\xf6rd"), "latin-1, as Python's http.client sends it");
        assert!(secret.matches("pässwörd".as_bytes()), "UTF-8");
        assert!(secret.verify(b"p\xe4ssw\xf6rd", b"{}"));
        assert!(!secret.matches(b"p\xe4ssw\xf6rt") && !secret.matches(b"passwoerd") && !secret.matches(b""));
        // The HMAC is keyed by the UTF-8 bytes only (reference value from Python's
        // hmac.new("pässwörd".encode(), b"{}", "sha256")).
        let utf8_key = "bf90bb219b9c0b0ee8a9173834c52b3369cf30280563bfb527a03c2959ce3d5c";
        assert_eq!(secret.hmac_hex(b"{}"), utf8_key);
        assert!(secret.verify(utf8_key.as_bytes(), b"{}"));
        // hmac.new("pässwörd".encode("latin-1"), b"{}", "sha256"): not a key anyone uses.
        let latin1_key = "6cd8629611610b53b41fc55c7a64577c9d92fb476029e98ebd629741728180b8";
        assert!(!secret.verify(latin1_key.as_bytes(), b"{}"));
    }

    #[test]
    fn knows_which_secrets_marzban_cannot_send() {
        assert!(Secret::parse("ascii-only").unwrap().has_latin1_form());
        assert!(Secret::parse("ÿ-is-the-last-latin-1").unwrap().has_latin1_form());
        assert!(!Secret::parse("пароль").unwrap().has_latin1_form());
        assert!(!Secret::parse("pässwörd€").unwrap().has_latin1_form(), "€ is not in latin-1");
        // A secret without a latin-1 form is still accepted in UTF-8 (another sender may use it).
        assert!(Secret::parse("пароль").unwrap().matches("пароль".as_bytes()));
    }

    #[test]
    fn never_prints_its_value() {
        let secret = Secret::parse("s3cret").unwrap();
        assert_eq!(format!("{secret:?}"), "Secret([redacted])");
    }

    #[test]
    fn refuses_empty_and_padded_values() {
        assert_eq!(Secret::parse("").unwrap_err(), SecretError::Empty);
        assert_eq!(Secret::parse(" x").unwrap_err(), SecretError::Whitespace);
    }

    #[test]
    fn the_header_alone_accepts_the_secret_and_needs_the_body_only_for_an_hmac() {
        let secret = Secret::parse("s3cret").unwrap();
        assert_eq!(secret.check_header(b"s3cret"), HeaderCheck::Accepted);
        assert_eq!(secret.check_header(secret.hmac_hex(b"{}").as_bytes()), HeaderCheck::NeedsBody);
        assert_eq!(secret.check_header(b"s3cre"), HeaderCheck::Refused);
    }
}
