//! PayPal's transmission signature: five `PAYPAL-*` headers, and an RSA
//! PKCS#1 v1.5 SHA-256 signature over
//! `<transmission id>|<transmission time>|<webhook id>|<CRC32 of the raw body>`.
//!
//! This module only reads the headers and checks the signature; it never
//! looks inside the body beyond its CRC32, and never fetches the certificate
//! the call points at.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use payhook_domain::ports::{Headers, VerifyError};

use crate::certificate::PinnedKey;

/// The header carrying PayPal's unique id of this delivery attempt.
pub const TRANSMISSION_ID_HEADER: &str = "PAYPAL-TRANSMISSION-ID";
/// The header carrying when PayPal sent the call, in RFC 3339.
pub const TRANSMISSION_TIME_HEADER: &str = "PAYPAL-TRANSMISSION-TIME";
/// The header carrying the base64 signature.
pub const TRANSMISSION_SIG_HEADER: &str = "PAYPAL-TRANSMISSION-SIG";
/// The header naming where PayPal's signing certificate can be fetched.
pub const CERT_URL_HEADER: &str = "PAYPAL-CERT-URL";
/// The header naming the signature algorithm.
pub const AUTH_ALGO_HEADER: &str = "PAYPAL-AUTH-ALGO";

/// The only algorithm PayPal uses, and the only one accepted.
pub const SUPPORTED_AUTH_ALGO: &str = "SHA256withRSA";

/// Size caps, far above what PayPal sends (a UUID, a 20-byte time, a
/// 344-character signature for its 2048-bit key, a URL of about 90 bytes),
/// so that hostile headers cost bounded work. The signature cap fits an
/// 8192-bit key's 1368 characters.
const MAX_TRANSMISSION_ID_BYTES: usize = 256;
const MAX_TRANSMISSION_TIME_BYTES: usize = 64;
const MAX_SIGNATURE_BYTES: usize = 2048;
const MAX_CERT_URL_BYTES: usize = 2048;

/// The host PayPal's certificates are served from, or its subdomains
/// (`api.paypal.com`, `api.sandbox.paypal.com`).
const PAYPAL_DOMAIN: &str = "paypal.com";

/// The five headers, read and size-checked.
struct Transmission<'a> {
    id: &'a str,
    time: &'a str,
    signature: &'a str,
    cert_url: &'a str,
    auth_algo: &'a str,
}

/// Checks the request's signature against every pinned key. See
/// [`crate::PaypalAdapter`]'s `verify` for the errors and their order.
pub(crate) fn verify(
    keys: &[PinnedKey],
    webhook_id: &str,
    headers: &(dyn Headers + Sync),
    body: &[u8],
    now: DateTime<Utc>,
    tolerance: Duration,
) -> Result<(), VerifyError> {
    let transmission = read_headers(headers)?;
    if !transmission
        .auth_algo
        .eq_ignore_ascii_case(SUPPORTED_AUTH_ALGO)
    {
        return Err(VerifyError::UnsupportedAlgorithm);
    }
    // The URL is never fetched: the key comes from the pinned certificate.
    // A URL elsewhere than PayPal still means the call was not built by
    // PayPal, whatever its signature says.
    if !is_paypal_cert_url(transmission.cert_url) {
        return Err(VerifyError::UntrustedCertificate);
    }
    let sent_at = DateTime::parse_from_rfc3339(transmission.time)
        .map_err(|_| VerifyError::MalformedHeader(TRANSMISSION_TIME_HEADER))?
        .with_timezone(&Utc);
    let signature = STANDARD
        .decode(transmission.signature)
        .map_err(|_| VerifyError::MalformedHeader(TRANSMISSION_SIG_HEADER))?;

    // PayPal signs the headers' text as sent, not a re-formatted time.
    let message = signed_message(transmission.id, transmission.time, webhook_id, body);
    if !keys
        .iter()
        .any(|key| key.verifies(message.as_bytes(), &signature))
    {
        return Err(VerifyError::BadSignature);
    }

    // Checked after the signature, as for Stripe: only an authentic but old
    // (or future-dated) call is told its time is the problem.
    let skew = (now - sent_at).abs();
    if !skew.to_std().is_ok_and(|skew| skew <= tolerance) {
        return Err(VerifyError::StaleTimestamp);
    }
    Ok(())
}

/// The five headers: all present first, then each within its size cap.
fn read_headers(headers: &(dyn Headers + Sync)) -> Result<Transmission<'_>, VerifyError> {
    let present = |name: &'static str| headers.get(name).ok_or(VerifyError::MissingHeader(name));
    let transmission = Transmission {
        id: present(TRANSMISSION_ID_HEADER)?,
        time: present(TRANSMISSION_TIME_HEADER)?,
        signature: present(TRANSMISSION_SIG_HEADER)?,
        cert_url: present(CERT_URL_HEADER)?,
        auth_algo: present(AUTH_ALGO_HEADER)?,
    };
    // The algorithm is only ever compared with a short constant, so any
    // size of it is cheap and needs no cap.
    for (value, cap, name) in [
        (
            transmission.id,
            MAX_TRANSMISSION_ID_BYTES,
            TRANSMISSION_ID_HEADER,
        ),
        (
            transmission.time,
            MAX_TRANSMISSION_TIME_BYTES,
            TRANSMISSION_TIME_HEADER,
        ),
        (
            transmission.signature,
            MAX_SIGNATURE_BYTES,
            TRANSMISSION_SIG_HEADER,
        ),
        (transmission.cert_url, MAX_CERT_URL_BYTES, CERT_URL_HEADER),
    ] {
        if value.len() > cap {
            return Err(VerifyError::MalformedHeader(name));
        }
    }
    // An empty id or one with the separator would let two different
    // transmissions sign the same message; PayPal's ids are UUIDs.
    if transmission.id.is_empty() || transmission.id.contains('|') {
        return Err(VerifyError::MalformedHeader(TRANSMISSION_ID_HEADER));
    }
    Ok(transmission)
}

/// `<transmission id>|<transmission time>|<webhook id>|<crc32>`, the CRC32
/// (IEEE, as Java's `java.util.zip.CRC32`) of the raw body as an unsigned
/// decimal.
fn signed_message(transmission_id: &str, time: &str, webhook_id: &str, body: &[u8]) -> String {
    let crc = crc32fast::hash(body);
    format!("{transmission_id}|{time}|{webhook_id}|{crc}")
}

/// True for an `https` URL whose host is `paypal.com` or a subdomain of it.
///
/// Parsed by hand rather than with a URL library: only the host matters,
/// and anything unusual in it (user info, IP literals, percent-escapes,
/// empty labels, a trailing dot) is simply refused.
fn is_paypal_cert_url(url: &str) -> bool {
    const SCHEME: &str = "https://";
    let Some(rest) = url
        .get(..SCHEME.len())
        .filter(|scheme| scheme.eq_ignore_ascii_case(SCHEME))
        .map(|_| &url[SCHEME.len()..])
    else {
        return false;
    };
    // A backslash ends the authority too: browsers' URL parsers treat it as
    // `/` in `https` URLs.
    let authority_end = rest.find(['/', '?', '#', '\\']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => host,
        Some(_) => return false,
        None => authority,
    };
    let well_formed = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        && host.split('.').all(|label| !label.is_empty());
    if !well_formed {
        return false;
    }
    let host = host.to_ascii_lowercase();
    host == PAYPAL_DOMAIN
        || host
            .strip_suffix(PAYPAL_DOMAIN)
            .is_some_and(|prefix| prefix.ends_with('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_is_the_ieee_checksum_as_java_computes_it() {
        assert_eq!(crc32fast::hash(b"hello"), 907_060_870);
        assert_eq!(crc32fast::hash(b""), 0);
    }

    #[test]
    fn the_signed_message_joins_the_four_fields_with_pipes() {
        assert_eq!(
            signed_message("tid-1", "2026-11-27T01:02:03Z", "WH1", b"hello"),
            "tid-1|2026-11-27T01:02:03Z|WH1|907060870"
        );
        // The CRC32 is unsigned: values above i32::MAX stay positive.
        let high = crc32fast::hash(b"a");
        assert!(high > 0x8000_0000);
        assert!(signed_message("t", "x", "w", b"a").ends_with(&format!("|{high}")));
    }

    #[test]
    fn paypal_hosts_are_trusted() {
        for url in [
            "https://api.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-1d93a270",
            "https://api.sandbox.paypal.com/v1/notifications/certs/CERT-360caa42",
            "https://paypal.com/cert.pem",
            "https://paypal.com",
            "HTTPS://API.PAYPAL.COM/x",
            "https://api.paypal.com:443/x",
            "https://api.paypal.com?x=1",
            "https://api.paypal.com#x",
        ] {
            assert!(is_paypal_cert_url(url), "{url}");
        }
    }

    #[test]
    fn other_hosts_and_schemes_are_not() {
        for url in [
            "",
            "https://",
            "https://evil.com/cert.pem",
            "https://paypal.com.evil.com/x",
            "https://evilpaypal.com/x",
            "https://api.paypal.co/x",
            "https://paypal.com@evil.com/x",
            "https://api.paypal.com@evil.com/x",
            "https://evil.com\\@api.paypal.com/x",
            "https://evil.com\\.paypal.com/x",
            "https://api.paypal.com./x",
            "https://.paypal.com/x",
            "https://api..paypal.com/x",
            "https://api.paypal.com:/x",
            "https://api.paypal.com:443x/x",
            "https://api%2epaypal.com/x",
            "https://[::1]/x",
            "http://api.paypal.com/x",
            "ftp://api.paypal.com/x",
            "//api.paypal.com/x",
            "api.paypal.com/x",
            " https://api.paypal.com/x",
            "https://api.paypal.com\u{e9}/x",
            "https\u{e9}/",
        ] {
            assert!(!is_paypal_cert_url(url), "{url}");
        }
    }
}
