//! The `Stripe-Signature` scheme: `t=<unix seconds>,v1=<hex>[,v1=<hex>...]`,
//! each `v1` an HMAC-SHA256 of `"<t>." + raw body`.
//!
//! This module only reads the header and checks MACs; it never looks inside
//! the body, which must arrive exactly as Stripe sent it.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use payhook_domain::ports::VerifyError;
use ring::hmac;
use subtle::ConstantTimeEq;

/// The header Stripe puts its signatures in.
pub const SIGNATURE_HEADER: &str = "Stripe-Signature";

/// Stripe's real headers are well under 300 bytes (one `t`, one `v1` per
/// active secret, sometimes a `v0`); anything this large is not from Stripe,
/// and refusing it keeps the parsing work bounded.
const MAX_HEADER_BYTES: usize = 8 * 1024;

/// At most this many `v1` items are tried. Stripe sends one per active
/// secret; the cap keeps the candidates on the stack and the comparisons
/// bounded whatever a hostile header holds.
const MAX_SIGNATURES: usize = 8;

/// Length of an HMAC-SHA256 tag.
const TAG_BYTES: usize = 32;

/// What the header says, once read.
#[derive(Debug, PartialEq, Eq)]
struct SignatureHeader<'a> {
    timestamp: i64,
    /// `t` as Stripe's libraries sign it: they format the integer, so
    /// leading zeros of the header's text are not signed.
    signed_timestamp: &'a str,
    candidates: Candidates,
}

/// Those of the first [`MAX_SIGNATURES`] `v1` values that are 32 bytes of
/// hex; others cannot match and are dropped without computing anything.
/// Kept on the stack: a call is verified without allocating.
#[derive(Default)]
struct Candidates {
    tags: [[u8; TAG_BYTES]; MAX_SIGNATURES],
    /// How many of `tags` are filled; the others are unused space.
    len: usize,
}

impl Candidates {
    fn as_slice(&self) -> &[[u8; TAG_BYTES]] {
        &self.tags[..self.len]
    }
}

impl PartialEq for Candidates {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Candidates {}

impl fmt::Debug for Candidates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
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
        signed_timestamp,
        candidates,
    } = read_header(header)?;
    let candidates = candidates.as_slice();

    // One MAC per key, whatever the number of candidates. Which key or which
    // candidate matched is not secret, so stopping at the first match is
    // fine; each comparison itself takes the same time wherever the tags
    // differ.
    let matched = !candidates.is_empty()
        && keys.iter().any(|key| {
            // Stripe signs "{t}.{body}": fed in pieces, the body is not
            // copied into a new buffer.
            let mut context = hmac::Context::with_key(key);
            context.update(signed_timestamp.as_bytes());
            context.update(b".");
            context.update(body);
            let expected = context.sign();
            candidates
                .iter()
                .any(|candidate| tags_equal(expected.as_ref(), candidate))
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

/// Compares a computed tag with a candidate in time independent of where
/// they differ (`subtle`), since ring compares in constant time only inside
/// `hmac::verify`, which needs the signed bytes in one slice.
fn tags_equal(computed: &[u8], candidate: &[u8; TAG_BYTES]) -> bool {
    // A length is public; HMAC-SHA256 tags always have this one.
    computed.len() == TAG_BYTES && bool::from(computed.ct_eq(candidate.as_slice()))
}

/// Splits the header into items at `,` and each item at its first `=`.
/// Items without `=` and unknown keys (`v0`, future schemes) are ignored,
/// as Stripe's libraries do.
fn read_header(header: &str) -> Result<SignatureHeader<'_>, VerifyError> {
    let malformed = VerifyError::MalformedHeader(SIGNATURE_HEADER);
    if header.len() > MAX_HEADER_BYTES {
        return Err(malformed);
    }
    let mut timestamp = None;
    let mut v1_items = 0_usize;
    let mut candidates = Candidates::default();
    for (key, value) in header.split(',').filter_map(|item| item.split_once('=')) {
        match key {
            "t" => {
                // Two timestamps would make "which one was signed" a matter
                // of parser choice; Stripe never sends that, so refuse it.
                if timestamp.is_some() {
                    return Err(malformed);
                }
                let seconds = read_timestamp(value).ok_or(malformed.clone())?;
                timestamp = Some((seconds, signed_text(value)));
            }
            "v1" => {
                v1_items += 1;
                if v1_items > MAX_SIGNATURES {
                    continue;
                }
                // Fewer candidates than `v1` items so far, so there is room.
                let Some(tag) = candidates.tags.get_mut(candidates.len) else {
                    continue;
                };
                // A value that is not 64 hex digits can never match: it is
                // a wrong signature, not a malformed header.
                if hex::decode_to_slice(value, tag).is_ok() {
                    candidates.len += 1;
                }
            }
            _ => {}
        }
    }
    let (timestamp, signed_timestamp) = timestamp.ok_or(malformed)?;
    if v1_items == 0 {
        return Err(VerifyError::NoAcceptedSignature);
    }
    Ok(SignatureHeader {
        timestamp,
        signed_timestamp,
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

/// The digits of a timestamp [`read_timestamp`] accepted, as Stripe's
/// libraries format the number: without leading zeros, `0` for zero.
fn signed_text(digits: &str) -> &str {
    match digits.trim_start_matches('0') {
        "" => "0",
        significant => significant,
    }
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
        let read = read_header(&header).unwrap();
        assert_eq!(read.timestamp, 1_700_000_000);
        assert_eq!(read.signed_timestamp, "1700000000");
        assert_eq!(read.candidates.as_slice(), [tag()]);
    }

    #[test]
    fn splits_each_item_at_its_first_equals_sign() {
        // A value containing `=` stays whole, so it is simply not valid hex.
        let header = format!("t=1,v1={TAG_HEX}=");
        assert!(read_header(&header)
            .unwrap()
            .candidates
            .as_slice()
            .is_empty());
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
        assert!(read_header(&header)
            .unwrap()
            .candidates
            .as_slice()
            .is_empty());
    }

    #[test]
    fn only_the_first_signatures_are_tried() {
        let header = format!("t=1{}", format!(",v1={TAG_HEX}").repeat(MAX_SIGNATURES + 5));
        assert_eq!(
            read_header(&header).unwrap().candidates.as_slice(),
            [tag(); MAX_SIGNATURES]
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

    #[test]
    fn the_cap_counts_every_v1_item_not_only_the_valid_ones() {
        // Eight unusable `v1` items use up the cap: the ninth is not tried.
        let header = format!("t=1{},v1={TAG_HEX}", ",v1=zz".repeat(MAX_SIGNATURES));
        assert!(read_header(&header)
            .unwrap()
            .candidates
            .as_slice()
            .is_empty());
        let header = format!("t=1{},v1={TAG_HEX}", ",v1=zz".repeat(MAX_SIGNATURES - 1));
        assert_eq!(read_header(&header).unwrap().candidates.as_slice(), [tag()]);
    }

    #[test]
    fn the_signed_timestamp_is_the_number_without_leading_zeros() {
        for (digits, signed) in [("0001700000000", "1700000000"), ("0", "0"), ("000", "0")] {
            let header = format!("t={digits},v1={TAG_HEX}");
            assert_eq!(read_header(&header).unwrap().signed_timestamp, signed);
        }
    }

    #[test]
    fn a_timestamp_of_zero_signs_as_zero() {
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"whsec_test_secret");
        let body = b"{}";
        let tag = hex::encode(hmac::sign(&key, b"0.{}").as_ref());
        let now = DateTime::from_timestamp(0, 0).unwrap();
        let header = format!("t=000,v1={tag}");
        assert_eq!(
            verify(&[key], Some(&header), body, now, Duration::from_secs(300)),
            Ok(())
        );
    }

    #[test]
    fn tags_are_equal_only_when_every_byte_is() {
        let tag = tag();
        assert!(tags_equal(&tag, &tag));
        for index in [0, TAG_BYTES / 2, TAG_BYTES - 1] {
            let mut other = tag;
            other[index] ^= 0x01;
            assert!(!tags_equal(&other, &tag), "{index}");
        }
        assert!(!tags_equal(&tag[..TAG_BYTES - 1], &tag));
    }

    #[test]
    fn each_key_is_tried_against_each_candidate() {
        let old = hmac::Key::new(hmac::HMAC_SHA256, b"whsec_old");
        let new = hmac::Key::new(hmac::HMAC_SHA256, b"whsec_new");
        let body = b"{}";
        let signed_by = |key: &hmac::Key| hex::encode(hmac::sign(key, b"1700000000.{}").as_ref());
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let header = format!("t=1700000000,v1={TAG_HEX},v1={}", signed_by(&old));
        let keys = [new, old];
        assert_eq!(
            verify(&keys, Some(&header), body, now, Duration::from_secs(300)),
            Ok(())
        );
        assert_eq!(
            verify(
                &keys[..1],
                Some(&header),
                body,
                now,
                Duration::from_secs(300)
            ),
            Err(VerifyError::BadSignature)
        );
    }
}
