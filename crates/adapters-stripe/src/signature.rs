//! The `Stripe-Signature` scheme: `t=<unix seconds>,v1=<hex>[,v1=<hex>...]`,
//! each `v1` an HMAC-SHA256 of `"<t>." + raw body`.
//!
//! This module only reads the header and checks MACs; it never looks inside
//! the body, which must arrive exactly as Stripe sent it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use payhook_domain::ports::VerifyError;
use ring::hmac;

/// The header Stripe puts its signatures in.
pub const SIGNATURE_HEADER: &str = "Stripe-Signature";

/// Stripe's real headers are well under 300 bytes (one `t`, one `v1` per
/// active secret, sometimes a `v0`); anything this large is not from Stripe,
/// and refusing it keeps the parsing work bounded.
const MAX_HEADER_BYTES: usize = 8 * 1024;

/// At most this many `v1` items are tried. Each costs one HMAC over the
/// whole body per configured secret, so a hostile header with hundreds of
/// them would otherwise multiply the work.
const MAX_SIGNATURES: usize = 8;

/// Length of an HMAC-SHA256 tag.
const TAG_BYTES: usize = 32;

/// What the header says, once read.
#[derive(Debug, PartialEq, Eq)]
struct SignatureHeader {
    timestamp: i64,
    /// The first [`MAX_SIGNATURES`] `v1` values that are 32 bytes of hex;
    /// others cannot match and are dropped without computing anything.
    candidates: Vec<[u8; TAG_BYTES]>,
}

/// Checks `header` (the `Stripe-Signature` value, if any) against `body`
/// with every key. See [`crate::StripeAdapter`]'s `verify` for the errors.
pub(crate) fn verify(
    keys: &[hmac::Key],
    header: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
    tolerance: Duration,
) -> Result<(), VerifyError> {
    let header = header.ok_or(VerifyError::MissingHeader(SIGNATURE_HEADER))?;
    let SignatureHeader {
        timestamp,
        candidates,
    } = read_header(header)?;

    // Stripe's libraries sign the timestamp as a formatted integer, not as
    // the header's text, so a `t` with leading zeros signs the same way.
    let timestamp_text = timestamp.to_string();
    let mut signed_payload = Vec::with_capacity(timestamp_text.len() + 1 + body.len());
    signed_payload.extend_from_slice(timestamp_text.as_bytes());
    signed_payload.push(b'.');
    signed_payload.extend_from_slice(body);

    // `hmac::verify` compares in constant time; which key or which candidate
    // matched is not secret, so stopping at the first match is fine.
    let matched = keys.iter().any(|key| {
        candidates
            .iter()
            .any(|candidate| hmac::verify(key, &signed_payload, candidate).is_ok())
    });
    if !matched {
        return Err(VerifyError::BadSignature);
    }

    // Checked after the MAC, as Stripe does: only an authentic but old (or
    // future-dated) call is told its timestamp is the problem.
    let skew = i128::from(now.timestamp()) - i128::from(timestamp);
    if skew.unsigned_abs() > u128::from(tolerance.as_secs()) {
        return Err(VerifyError::StaleTimestamp);
    }
    Ok(())
}

/// Splits the header into items at `,` and each item at its first `=`.
/// Items without `=` and unknown keys (`v0`, future schemes) are ignored,
/// as Stripe's libraries do.
fn read_header(header: &str) -> Result<SignatureHeader, VerifyError> {
    let malformed = VerifyError::MalformedHeader(SIGNATURE_HEADER);
    if header.len() > MAX_HEADER_BYTES {
        return Err(malformed);
    }
    let mut timestamp = None;
    let mut v1_items = 0_usize;
    let mut candidates = Vec::new();
    for (key, value) in header.split(',').filter_map(|item| item.split_once('=')) {
        match key {
            "t" => {
                // Two timestamps would make "which one was signed" a matter
                // of parser choice; Stripe never sends that, so refuse it.
                if timestamp.is_some() {
                    return Err(malformed);
                }
                timestamp = Some(read_timestamp(value).ok_or(malformed.clone())?);
            }
            "v1" => {
                v1_items += 1;
                if v1_items > MAX_SIGNATURES {
                    continue;
                }
                let mut tag = [0_u8; TAG_BYTES];
                // A value that is not 64 hex digits can never match: it is
                // a wrong signature, not a malformed header.
                if hex::decode_to_slice(value, &mut tag).is_ok() {
                    candidates.push(tag);
                }
            }
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(malformed)?;
    if v1_items == 0 {
        return Err(VerifyError::NoAcceptedSignature);
    }
    Ok(SignatureHeader {
        timestamp,
        candidates,
    })
}

/// Unix seconds as plain ASCII digits; no sign, no spaces.
fn read_timestamp(text: &str) -> Option<i64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAG_HEX: &str = "d95c6b7477fbd7e9f90b1b0ef5f9c7ac25abca5382460e0d988c2b2a5b71b990";

    fn tag() -> [u8; TAG_BYTES] {
        let mut tag = [0; TAG_BYTES];
        hex::decode_to_slice(TAG_HEX, &mut tag).unwrap();
        tag
    }

    #[test]
    fn reads_timestamp_and_signatures_ignoring_other_schemes() {
        let header = format!("t=1700000000,v0=abc,v1={TAG_HEX},x=1,novalue");
        assert_eq!(
            read_header(&header),
            Ok(SignatureHeader {
                timestamp: 1_700_000_000,
                candidates: vec![tag()],
            })
        );
    }

    #[test]
    fn splits_each_item_at_its_first_equals_sign() {
        // A value containing `=` stays whole, so it is simply not valid hex.
        let header = format!("t=1,v1={TAG_HEX}=");
        assert_eq!(
            read_header(&header).unwrap().candidates,
            Vec::<[u8; 32]>::new()
        );
    }

    #[test]
    fn a_missing_or_unreadable_timestamp_is_malformed() {
        let malformed = Err(VerifyError::MalformedHeader("Stripe-Signature"));
        for header in [
            "",
            "v1=00",
            "t=,v1=00",
            "t=abc,v1=00",
            "t=-5,v1=00",
            "t=+5,v1=00",
            "t= 5,v1=00",
            "t=99999999999999999999,v1=00",
            "t=1,t=1,v1=00",
            "T=1,v1=00",
        ] {
            assert_eq!(read_header(header), malformed, "{header:?}");
        }
    }

    #[test]
    fn no_v1_item_means_no_accepted_signature() {
        assert_eq!(
            read_header("t=1,v0=abcdef"),
            Err(VerifyError::NoAcceptedSignature)
        );
    }

    #[test]
    fn invalid_hex_is_kept_out_of_the_candidates_but_still_counts_as_v1() {
        let header = format!("t=1,v1=zz,v1={},v1=", &TAG_HEX[..62]);
        assert_eq!(read_header(&header).unwrap().candidates.len(), 0);
    }

    #[test]
    fn only_the_first_signatures_are_tried() {
        let header = format!("t=1{}", format!(",v1={TAG_HEX}").repeat(MAX_SIGNATURES + 5));
        assert_eq!(
            read_header(&header).unwrap().candidates.len(),
            MAX_SIGNATURES
        );
    }

    #[test]
    fn oversized_headers_are_refused_before_parsing() {
        let header = format!("t=1,v1={TAG_HEX},{}", "v0=0,".repeat(MAX_HEADER_BYTES / 5));
        assert_eq!(
            read_header(&header),
            Err(VerifyError::MalformedHeader("Stripe-Signature"))
        );
    }

    #[test]
    fn leading_zeros_in_the_timestamp_sign_the_plain_number() {
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"whsec_test_secret");
        let body = br#"{"id":"evt_test_webhook","object":"event"}"#;
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let header = format!("t=0001700000000,v1={TAG_HEX}");
        assert_eq!(
            verify(&[key], Some(&header), body, now, Duration::from_secs(300)),
            Ok(())
        );
    }

    #[test]
    fn the_tolerance_is_inclusive_and_symmetric() {
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"whsec_test_secret");
        let body = br#"{"id":"evt_test_webhook","object":"event"}"#;
        let header = format!("t=1700000000,v1={TAG_HEX}");
        let check = |now: i64| {
            let now = DateTime::from_timestamp(now, 0).unwrap();
            verify(
                std::slice::from_ref(&key),
                Some(&header),
                body,
                now,
                Duration::from_secs(10),
            )
        };
        assert_eq!(check(1_700_000_010), Ok(()));
        assert_eq!(check(1_699_999_990), Ok(()));
        assert_eq!(check(1_700_000_011), Err(VerifyError::StaleTimestamp));
        assert_eq!(check(1_699_999_989), Err(VerifyError::StaleTimestamp));
    }

    #[test]
    fn a_wrong_signature_is_reported_before_a_stale_timestamp() {
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"whsec_other");
        let header = format!("t=1,v1={TAG_HEX}");
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        assert_eq!(
            verify(&[key], Some(&header), b"{}", now, Duration::from_secs(300)),
            Err(VerifyError::BadSignature)
        );
    }
}
