//! The two signature schemes of the generic gateway:
//!
//! - Standard Webhooks: `webhook-id`, `webhook-timestamp` and
//!   `webhook-signature: v1,<base64>[ v1,<base64>...]`, each `v1` an
//!   HMAC-SHA256 of `"<id>.<timestamp>.<raw body>"`;
//! - simple: `X-Webhook-Signature: sha256=<hex>`, an HMAC-SHA256 of the raw
//!   body alone.
//!
//! This module only reads headers and checks MACs; it never looks inside the
//! body, which must arrive exactly as the gateway sent it.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use payhook_domain::ports::{Headers, VerifyError};
use payhook_domain::Secret;
use ring::hmac;

use crate::event_id;
use crate::headers::{
    SIMPLE_SIGNATURE_HEADER, WEBHOOK_ID_HEADER, WEBHOOK_SIGNATURE_HEADER, WEBHOOK_TIMESTAMP_HEADER,
};
use crate::ConfigError;

/// The prefix that marks a Standard Webhooks secret as base64.
const SECRET_PREFIX: &str = "whsec_";

/// Real signature headers hold a few entries of 47 bytes; anything this
/// large is not from a gateway, and refusing it bounds the parsing work.
const MAX_HEADER_BYTES: usize = 8 * 1024;

/// At most this many `v1` entries are tried. Each costs one HMAC over the
/// whole body per configured secret, so a hostile header with hundreds of
/// them would otherwise multiply the work.
const MAX_SIGNATURES: usize = 8;

/// Length of an HMAC-SHA256 tag.
const TAG_BYTES: usize = 32;

/// Length of a tag in padded base64.
const TAG_BASE64_LEN: usize = 44;

/// The MAC keys one configured secret gives, one per scheme.
#[derive(Clone)]
pub(crate) struct Keys {
    /// The `whsec_` secret base64-decoded, or the secret's text as is.
    standard: hmac::Key,
    /// Always the secret's text as is.
    simple: hmac::Key,
}

impl Keys {
    /// The keys of the secret at `position` in the configured list.
    pub(crate) fn new(secret: &Secret, position: usize) -> Result<Self, ConfigError> {
        let text = secret.expose();
        if text.is_empty() {
            return Err(ConfigError::EmptySecret { position });
        }
        let standard = match text.strip_prefix(SECRET_PREFIX) {
            // Standard Webhooks libraries key the MAC with the decoded bytes
            // of what follows `whsec_`, not with the text.
            Some("") => return Err(ConfigError::EmptySecret { position }),
            Some(encoded) => {
                let decoded = BASE64
                    .decode(encoded)
                    .map_err(|_| ConfigError::InvalidSecret { position })?;
                hmac::Key::new(hmac::HMAC_SHA256, &decoded)
            }
            None => hmac::Key::new(hmac::HMAC_SHA256, text.as_bytes()),
        };
        Ok(Self {
            standard,
            simple: hmac::Key::new(hmac::HMAC_SHA256, text.as_bytes()),
        })
    }
}

/// Checks the request's signature with every key, choosing the scheme by
/// header. See [`crate::GenericAdapter`]'s `verify` for the errors.
pub(crate) fn verify<H: Headers + ?Sized>(
    keys: &[Keys],
    headers: &H,
    body: &[u8],
    now: DateTime<Utc>,
    tolerance: Duration,
) -> Result<(), VerifyError> {
    if let Some(signatures) = headers.get(WEBHOOK_SIGNATURE_HEADER) {
        verify_standard(keys, headers, signatures, body, now, tolerance)
    } else if let Some(signature) = headers.get(SIMPLE_SIGNATURE_HEADER) {
        verify_simple(keys, signature, body)
    } else {
        Err(VerifyError::MissingHeader(WEBHOOK_SIGNATURE_HEADER))
    }
}

fn verify_standard<H: Headers + ?Sized>(
    keys: &[Keys],
    headers: &H,
    signatures: &str,
    body: &[u8],
    now: DateTime<Utc>,
    tolerance: Duration,
) -> Result<(), VerifyError> {
    let id = headers
        .get(WEBHOOK_ID_HEADER)
        .ok_or(VerifyError::MissingHeader(WEBHOOK_ID_HEADER))?;
    // The id is both signed and stored as the event id, so it is bounded
    // before any work is done with it.
    if !event_id::is_usable(id) {
        return Err(VerifyError::MalformedHeader(WEBHOOK_ID_HEADER));
    }
    let timestamp = headers
        .get(WEBHOOK_TIMESTAMP_HEADER)
        .ok_or(VerifyError::MissingHeader(WEBHOOK_TIMESTAMP_HEADER))?;
    let timestamp =
        read_timestamp(timestamp).ok_or(VerifyError::MalformedHeader(WEBHOOK_TIMESTAMP_HEADER))?;
    let candidates = read_standard_signatures(signatures)?;

    // The libraries sign the timestamp as a formatted integer, so a header
    // with leading zeros signs the plain number.
    let prefix = format!("{id}.{timestamp}.");
    let mut signed_content = Vec::with_capacity(prefix.len() + body.len());
    signed_content.extend_from_slice(prefix.as_bytes());
    signed_content.extend_from_slice(body);

    // `hmac::verify` compares in constant time; which key or which entry
    // matched is not secret, so stopping at the first match is fine.
    let matched = keys.iter().any(|key| {
        candidates
            .iter()
            .any(|candidate| hmac::verify(&key.standard, &signed_content, candidate).is_ok())
    });
    if !matched {
        return Err(VerifyError::BadSignature);
    }

    // Checked after the MAC, as the Stripe adapter does: only an authentic
    // but old (or future-dated) call is told its timestamp is the problem.
    let skew = i128::from(now.timestamp()) - i128::from(timestamp);
    if skew.unsigned_abs() > u128::from(tolerance.as_secs()) {
        return Err(VerifyError::StaleTimestamp);
    }
    Ok(())
}

/// The `v1` tags of a `webhook-signature` value: entries separated by
/// spaces, each `<version>,<base64>`. Entries of other versions (`v1a`, an
/// asymmetric signature) and entries without a comma are ignored, as the
/// Standard Webhooks libraries do.
fn read_standard_signatures(value: &str) -> Result<Vec<[u8; TAG_BYTES]>, VerifyError> {
    if value.len() > MAX_HEADER_BYTES {
        return Err(VerifyError::MalformedHeader(WEBHOOK_SIGNATURE_HEADER));
    }
    let mut v1_entries = 0_usize;
    let mut candidates = Vec::new();
    for (version, signature) in value.split(' ').filter_map(|entry| entry.split_once(',')) {
        if version != "v1" {
            continue;
        }
        v1_entries += 1;
        if v1_entries > MAX_SIGNATURES {
            continue;
        }
        // A value that is not a 32-byte tag in base64 can never match: it
        // is a wrong signature, not a malformed header.
        if let Some(tag) = decode_base64_tag(signature) {
            candidates.push(tag);
        }
    }
    if v1_entries == 0 {
        return Err(VerifyError::NoAcceptedSignature);
    }
    Ok(candidates)
}

fn decode_base64_tag(text: &str) -> Option<[u8; TAG_BYTES]> {
    if text.len() != TAG_BASE64_LEN {
        return None;
    }
    BASE64.decode(text).ok()?.try_into().ok()
}

/// Unix seconds as plain ASCII digits; no sign, no spaces.
fn read_timestamp(text: &str) -> Option<i64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The simple scheme. It carries no timestamp and signs no header, so a
/// captured call can be replayed with any headers; the store's
/// deduplication, on an event id taken from the signed body alone (see
/// `event_id`), is then the only defence, which is why Standard Webhooks is
/// preferred when the sender supports it.
fn verify_simple(keys: &[Keys], value: &str, body: &[u8]) -> Result<(), VerifyError> {
    let malformed = VerifyError::MalformedHeader(SIMPLE_SIGNATURE_HEADER);
    if value.len() > MAX_HEADER_BYTES {
        return Err(malformed);
    }
    let (algorithm, hex_tag) = value.split_once('=').ok_or(malformed)?;
    if !algorithm.eq_ignore_ascii_case("sha256") {
        return Err(VerifyError::UnsupportedAlgorithm);
    }
    let mut tag = [0_u8; TAG_BYTES];
    // As for `v1`: text that is not 64 hex digits simply cannot match.
    if hex::decode_to_slice(hex_tag, &mut tag).is_err() {
        return Err(VerifyError::BadSignature);
    }
    if keys
        .iter()
        .any(|key| hmac::verify(&key.simple, body, &tag).is_ok())
    {
        Ok(())
    } else {
        Err(VerifyError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TIMESTAMP: i64 = 1_614_265_330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const V1: &str = "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn keys(secret: &str) -> Vec<Keys> {
        vec![Keys::new(&Secret::new(secret), 0).unwrap()]
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, 0).unwrap()
    }

    fn check(headers: &[(&str, &str)], now: i64, tolerance: u64) -> Result<(), VerifyError> {
        verify(
            &keys(SECRET),
            headers,
            BODY,
            at(now),
            Duration::from_secs(tolerance),
        )
    }

    #[test]
    fn reads_v1_entries_and_ignores_other_versions() {
        let header = format!("v1a,{V1} v2,{V1}  v1,{V1} nocomma v1,short");
        let candidates = read_standard_signatures(&header).unwrap();
        assert_eq!(candidates, vec![decode_base64_tag(V1).unwrap()]);
    }

    #[test]
    fn no_v1_entry_means_no_accepted_signature() {
        for header in ["", "v1a,abc", "v0,abc v2,def", "v1"] {
            assert_eq!(
                read_standard_signatures(header),
                Err(VerifyError::NoAcceptedSignature),
                "{header:?}"
            );
        }
    }

    #[test]
    fn only_the_first_signatures_are_tried() {
        let header = format!("v1,{V1} ").repeat(MAX_SIGNATURES + 5);
        assert_eq!(
            read_standard_signatures(&header).unwrap().len(),
            MAX_SIGNATURES
        );
    }

    #[test]
    fn oversized_signature_headers_are_refused_before_parsing() {
        let header = format!("v1,{V1} {}", "v0,x ".repeat(MAX_HEADER_BYTES / 5));
        assert_eq!(
            read_standard_signatures(&header),
            Err(VerifyError::MalformedHeader("webhook-signature"))
        );
    }

    #[test]
    fn base64_tags_must_be_32_padded_bytes() {
        assert!(decode_base64_tag(V1).is_some());
        assert!(decode_base64_tag(V1.trim_end_matches('=')).is_none());
        assert!(decode_base64_tag(&V1.replace('+', "-")).is_none());
        assert!(decode_base64_tag(&"A".repeat(44)).is_none());
    }

    #[test]
    fn a_whsec_secret_is_base64_decoded_and_a_raw_one_is_not() {
        let timestamp = TIMESTAMP.to_string();
        let signature = format!("v1,{V1}");
        let headers = [
            ("webhook-id", ID),
            ("webhook-timestamp", timestamp.as_str()),
            ("webhook-signature", signature.as_str()),
        ];
        let verify_with = |secret: &str| {
            verify(
                &keys(secret),
                &headers[..],
                BODY,
                at(TIMESTAMP),
                Duration::from_secs(300),
            )
        };
        assert_eq!(verify_with(SECRET), Ok(()));
        // The same bytes as a raw secret: the text, not the decoded key.
        assert_eq!(
            verify_with("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn the_tolerance_is_inclusive_and_symmetric() {
        let timestamp = TIMESTAMP.to_string();
        let signature = format!("v1,{V1}");
        let headers = [
            ("webhook-id", ID),
            ("webhook-timestamp", timestamp.as_str()),
            ("webhook-signature", signature.as_str()),
        ];
        assert_eq!(check(&headers, TIMESTAMP + 10, 10), Ok(()));
        assert_eq!(check(&headers, TIMESTAMP - 10, 10), Ok(()));
        assert_eq!(
            check(&headers, TIMESTAMP + 11, 10),
            Err(VerifyError::StaleTimestamp)
        );
        assert_eq!(
            check(&headers, TIMESTAMP - 11, 10),
            Err(VerifyError::StaleTimestamp)
        );
    }

    #[test]
    fn leading_zeros_in_the_timestamp_sign_the_plain_number() {
        let timestamp = format!("000{TIMESTAMP}");
        let signature = format!("v1,{V1}");
        let headers = [
            ("webhook-id", ID),
            ("webhook-timestamp", timestamp.as_str()),
            ("webhook-signature", signature.as_str()),
        ];
        assert_eq!(check(&headers, TIMESTAMP, 300), Ok(()));
    }

    #[test]
    fn a_wrong_signature_is_reported_before_a_stale_timestamp() {
        let signature = format!("v1,{V1}");
        let headers = [
            ("webhook-id", ID),
            ("webhook-timestamp", "1"),
            ("webhook-signature", signature.as_str()),
        ];
        assert_eq!(
            check(&headers, TIMESTAMP, 300),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn unreadable_timestamps_are_malformed() {
        let signature = format!("v1,{V1}");
        for timestamp in ["", "soon", "-1", "+1", " 1", "1.5", "99999999999999999999"] {
            let headers = [
                ("webhook-id", ID),
                ("webhook-timestamp", timestamp),
                ("webhook-signature", signature.as_str()),
            ];
            assert_eq!(
                check(&headers, TIMESTAMP, 300),
                Err(VerifyError::MalformedHeader("webhook-timestamp")),
                "{timestamp:?}"
            );
        }
    }

    #[test]
    fn simple_header_shapes() {
        let keys = keys("raw secret");
        let simple = |value: &str| verify_simple(&keys, value, BODY);
        assert_eq!(
            simple("no-equals-sign"),
            Err(VerifyError::MalformedHeader("X-Webhook-Signature"))
        );
        assert_eq!(
            simple(&"0".repeat(MAX_HEADER_BYTES + 1)),
            Err(VerifyError::MalformedHeader("X-Webhook-Signature"))
        );
        assert_eq!(
            simple(&format!("sha1={}", "0".repeat(40))),
            Err(VerifyError::UnsupportedAlgorithm)
        );
        assert_eq!(simple("sha256="), Err(VerifyError::BadSignature));
        assert_eq!(
            simple(&format!("sha256={}", "0".repeat(64))),
            Err(VerifyError::BadSignature)
        );
    }
}
