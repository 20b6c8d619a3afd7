//! Discord's request signature: `X-Signature-Ed25519` is the Ed25519 signature, by the
//! application's key, of `X-Signature-Timestamp` followed by the raw body. Discord sends requests
//! with bad signatures on purpose and removes an endpoint that accepts one.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ed25519_dalek::{Signature, VerifyingKey};

use super::settings::hex;

/// A timestamp further than this from the relay's clock is refused (a replayed request).
pub const MAX_SKEW: Duration = Duration::from_secs(300);

/// Why a request is not Discord's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no signature or timestamp")]
    Missing,
    #[error("the signature or timestamp is malformed")]
    Malformed,
    #[error("the timestamp is more than 5 minutes from now")]
    Stale,
    #[error("the signature does not match")]
    Mismatch,
}

/// Checks the headers' `signature` (hex) and `timestamp` (unix seconds) over `body` at `now`.
pub fn verify(
    key: &VerifyingKey,
    signature: Option<&[u8]>,
    timestamp: Option<&[u8]>,
    body: &[u8],
    now: SystemTime,
) -> Result<(), SignatureError> {
    let (Some(signature), Some(timestamp)) = (signature, timestamp) else {
        return Err(SignatureError::Missing);
    };
    let text = std::str::from_utf8(timestamp).map_err(|_| SignatureError::Malformed)?;
    let seconds: u64 = text.parse().ok().filter(|_| text.len() <= 12).ok_or(SignatureError::Malformed)?;
    let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    if now.abs_diff(seconds) > MAX_SKEW.as_secs() {
        return Err(SignatureError::Stale);
    }
    let signature = std::str::from_utf8(signature).ok().and_then(hex).ok_or(SignatureError::Malformed)?;
    let signature = Signature::from_slice(&signature).map_err(|_| SignatureError::Malformed)?;
    let mut message = Vec::with_capacity(timestamp.len() + body.len());
    message.extend_from_slice(timestamp);
    message.extend_from_slice(body);
    key.verify_strict(&message, &signature).map_err(|_| SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signer, SigningKey};

    use super::*;

    fn hex_of(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn accepts_discords_signature_only() {
        let signing = SigningKey::from_bytes(&[7; 32]);
        let key = signing.verifying_key();
        let now = SystemTime::now();
        let ts = now.duration_since(UNIX_EPOCH).unwrap().as_secs().to_string();
        let body = br#"{"type":1}"#;
        let sig = hex_of(&signing.sign(&[ts.as_bytes(), body].concat()).to_bytes());
        let check =
            |sig: &str, ts: &str, body: &[u8]| verify(&key, Some(sig.as_bytes()), Some(ts.as_bytes()), body, now);
        assert_eq!(check(&sig, &ts, body), Ok(()));
        assert_eq!(check(&sig, &ts, br#"{"type":2}"#), Err(SignatureError::Mismatch));
        assert_eq!(check(&sig, "1", body), Err(SignatureError::Stale));
        assert_eq!(check("zz", &ts, body), Err(SignatureError::Malformed));
        assert_eq!(check(&sig, "-5", body), Err(SignatureError::Malformed));
        assert_eq!(verify(&key, None, Some(ts.as_bytes()), body, now), Err(SignatureError::Missing));
    }
}
