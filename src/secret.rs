//! The shared secret a panel sends in `x-webhook-secret`, and the check of what a request presents.
//!
//! Marzban, PasarGuard and Marzneshin send the raw secret. Marzban's English docs show a receiver
//! that expects the lowercase hex HMAC-SHA256 of the body instead, so a proxy written after those
//! docs may send that: both are accepted. Every comparison is constant-time.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// A secret value: never printed, never compared with `==`.
#[derive(Clone)]
pub struct Secret(String);

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
        Ok(Self(value))
    }

    /// The raw value, for the few places that must send it (the `send-test` command).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `presented` (the header's bytes) proves knowledge of this secret for `body`: either
    /// the secret itself or the lowercase hex HMAC-SHA256 of the body keyed by it.
    pub fn verify(&self, presented: &[u8], body: &[u8]) -> bool {
        self.matches(presented) || (could_be_hmac(presented) && self.matches_hmac(presented, body))
    }

    /// Whether `presented` is the secret itself (no body needed to tell).
    pub fn matches(&self, presented: &[u8]) -> bool {
        constant_time_eq(presented, self.0.as_bytes())
    }

    /// Whether `presented` is the lowercase hex HMAC-SHA256 of `body` keyed by this secret.
    pub fn matches_hmac(&self, presented: &[u8], body: &[u8]) -> bool {
        constant_time_eq(presented, self.hmac_hex(body).as_bytes())
    }

    /// The lowercase hex HMAC-SHA256 of `body` keyed by this secret.
    pub fn hmac_hex(&self, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.0.as_bytes()).expect("HMAC accepts keys of any length");
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
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
    fn never_prints_its_value() {
        let secret = Secret::parse("s3cret").unwrap();
        assert_eq!(format!("{secret:?}"), "Secret([redacted])");
    }

    #[test]
    fn refuses_empty_and_padded_values() {
        assert_eq!(Secret::parse("").unwrap_err(), SecretError::Empty);
        assert_eq!(Secret::parse(" x").unwrap_err(), SecretError::Whitespace);
    }
}
