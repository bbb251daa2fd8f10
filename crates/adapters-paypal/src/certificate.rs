//! The pinned signing certificates: from PEM text to the RSA public keys
//! that verify PayPal's signatures.
//!
//! Only what verification needs is taken from a certificate: its
//! SubjectPublicKeyInfo, checked to hold an RSA key that `ring` accepts.
//! The certificate's own signature, issuer chain, validity dates and
//! extensions are not looked at: it is trusted because it is pinned.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ring::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use x509_cert::der::asn1::UintRef;
use x509_cert::der::oid::ObjectIdentifier;
use x509_cert::der::{Decode, Reader, SliceReader};
use x509_cert::Certificate;

use crate::ConfigError;

/// `rsaEncryption` (RFC 8017, appendix C): the key algorithm of an RSA
/// SubjectPublicKeyInfo. RSASSA-PSS-only keys have another OID and are
/// refused, since PayPal signs PKCS#1 v1.5.
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

const BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
const END: &[u8] = b"-----END CERTIFICATE-----";

/// The modulus sizes `RSA_PKCS1_2048_8192_SHA256` verifies with.
const MIN_MODULUS_BITS: usize = 2048;
const MAX_MODULUS_BITS: usize = 8192;

/// The public exponents `ring` accepts: odd, at least 3, at most 33 bits.
const MAX_EXPONENT_BITS: usize = 33;

/// One pinned certificate's RSA public key, ready for `ring`. A public
/// key, so `Debug` may show it.
#[derive(Clone, Debug)]
pub(crate) struct PinnedKey(UnparsedPublicKey<Vec<u8>>);

impl PinnedKey {
    /// True when `signature` is this key's RSA PKCS#1 v1.5 SHA-256
    /// signature of `message`.
    pub(crate) fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        self.0.verify(message, signature).is_ok()
    }
}

/// The keys of every `CERTIFICATE` block in `pem`, in order. See
/// [`crate::PaypalAdapter::new`] for the errors.
pub(crate) fn pinned_keys(pem: &[u8]) -> Result<Vec<PinnedKey>, ConfigError> {
    let blocks = certificate_blocks(pem);
    if blocks.is_empty() {
        return Err(ConfigError::NoCertificate);
    }
    blocks
        .into_iter()
        .enumerate()
        .map(|(position, block)| {
            let der = block.ok_or(ConfigError::InvalidCertificate { position })?;
            rsa_key(&der, position)
                .map(|key| PinnedKey(UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, key)))
        })
        .collect()
}

/// The DER bytes of each `CERTIFICATE` block, `None` for a block that is
/// unterminated or not base64. Everything outside the blocks (comments,
/// OpenSSL's "Bag Attributes", keys) is skipped.
fn certificate_blocks(pem: &[u8]) -> Vec<Option<Vec<u8>>> {
    let mut blocks = Vec::new();
    let mut rest = pem;
    while let Some(start) = find(rest, BEGIN) {
        let body = &rest[start + BEGIN.len()..];
        let Some(end) = find(body, END) else {
            blocks.push(None);
            break;
        };
        let text: Vec<u8> = body[..end]
            .iter()
            .copied()
            .filter(|byte| !byte.is_ascii_whitespace())
            .collect();
        blocks.push(STANDARD.decode(text).ok());
        rest = &body[end + END.len()..];
    }
    blocks
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// The PKCS#1 `RSAPublicKey` DER of the certificate's subject key, which is
/// what `ring` verifies with: the content of the SubjectPublicKeyInfo's BIT
/// STRING.
fn rsa_key(der: &[u8], position: usize) -> Result<Vec<u8>, ConfigError> {
    let certificate =
        Certificate::from_der(der).map_err(|_| ConfigError::InvalidCertificate { position })?;
    let key_info = certificate.tbs_certificate().subject_public_key_info();
    if key_info.algorithm.oid != RSA_ENCRYPTION {
        return Err(ConfigError::NotRsa { position });
    }
    let unsupported = |reason| ConfigError::UnsupportedRsaKey { position, reason };
    let key = key_info
        .subject_public_key
        .as_bytes()
        .ok_or(unsupported("the key is not a whole number of bytes"))?;
    check_rsa_public_key(key).map_err(unsupported)?;
    Ok(key.to_vec())
}

/// Refuses at start-up the keys `ring` would refuse on every call, so that a
/// wrong certificate is a configuration error rather than a stream of
/// `BadSignature`s.
fn check_rsa_public_key(key: &[u8]) -> Result<(), &'static str> {
    let mut reader = SliceReader::new(key).map_err(|_| "not an RSAPublicKey")?;
    let (modulus, exponent) = reader
        .sequence(|fields| Ok::<_, x509_cert::der::Error>((fields.decode()?, fields.decode()?)))
        .map_err(|_| "not an RSAPublicKey")?;
    reader.finish().map_err(|_| "not an RSAPublicKey")?;
    let (modulus, exponent): (UintRef<'_>, UintRef<'_>) = (modulus, exponent);

    let modulus_bits = bit_length(modulus.as_bytes());
    if !(MIN_MODULUS_BITS..=MAX_MODULUS_BITS).contains(&modulus_bits) {
        return Err("the modulus must have 2048 to 8192 bits");
    }
    let exponent = exponent.as_bytes();
    let odd = exponent.last().is_some_and(|byte| byte & 1 == 1);
    if !odd || bit_length(exponent) > MAX_EXPONENT_BITS || exponent == [1] {
        return Err("the public exponent must be odd, at least 3 and at most 33 bits");
    }
    Ok(())
}

/// Bits of a big-endian unsigned integer without leading zero bytes.
fn bit_length(bytes: &[u8]) -> usize {
    match bytes.first() {
        None => 0,
        Some(&first) => (bytes.len() - 1) * 8 + (8 - first.leading_zeros() as usize),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIRST: &str = include_str!("../tests/fixtures/test-only-cert.pem");
    const SECOND: &str = include_str!("../tests/fixtures/test-only-second-cert.pem");
    const EC: &str = include_str!("../tests/fixtures/test-only-ec-cert.pem");
    const RSA_1024: &str = include_str!("../tests/fixtures/test-only-rsa1024-cert.pem");

    #[test]
    fn reads_one_key_per_certificate_and_skips_text_around_them() {
        let pem = format!(
            "Bag Attributes\n    friendlyName: first\n{FIRST}\n\n# the new one\r\n{SECOND}trailing text"
        );
        assert_eq!(pinned_keys(pem.as_bytes()).unwrap().len(), 2);
    }

    #[test]
    fn crlf_line_endings_are_fine() {
        let pem = FIRST.replace('\n', "\r\n");
        assert_eq!(pinned_keys(pem.as_bytes()).unwrap().len(), 1);
    }

    #[test]
    fn blocks_of_other_kinds_are_ignored() {
        let key = include_str!("../tests/fixtures/test-only-second-signing-key.pk8.pem");
        let pem = format!("{key}{FIRST}");
        assert_eq!(pinned_keys(pem.as_bytes()).unwrap().len(), 1);
        assert_eq!(
            pinned_keys(key.as_bytes()).unwrap_err(),
            ConfigError::NoCertificate
        );
    }

    #[test]
    fn no_certificate_block_is_an_error() {
        for pem in [&b""[..], b"hello", b"-----BEGIN TRUSTED CERTIFICATE-----"] {
            assert_eq!(pinned_keys(pem).unwrap_err(), ConfigError::NoCertificate);
        }
    }

    #[test]
    fn an_unreadable_block_is_named_by_position() {
        let unterminated = format!("{FIRST}-----BEGIN CERTIFICATE-----\nMIIB");
        let not_base64 = format!("{FIRST}{}", FIRST.replacen("MII", "M*I", 1));
        let not_der = format!("{FIRST}{BEGIN_TEXT}\naGVsbG8=\n{END_TEXT}\n");
        for pem in [unterminated, not_base64, not_der] {
            assert_eq!(
                pinned_keys(pem.as_bytes()).unwrap_err(),
                ConfigError::InvalidCertificate { position: 1 },
                "{pem}"
            );
        }
    }

    const BEGIN_TEXT: &str = "-----BEGIN CERTIFICATE-----";
    const END_TEXT: &str = "-----END CERTIFICATE-----";

    #[test]
    fn a_non_rsa_key_is_refused() {
        let pem = format!("{FIRST}{EC}");
        assert_eq!(
            pinned_keys(pem.as_bytes()).unwrap_err(),
            ConfigError::NotRsa { position: 1 }
        );
    }

    #[test]
    fn a_key_ring_would_refuse_is_refused_at_start() {
        assert!(matches!(
            pinned_keys(RSA_1024.as_bytes()),
            Err(ConfigError::UnsupportedRsaKey { position: 0, .. })
        ));
    }

    #[test]
    fn exponent_rules_follow_ring() {
        let modulus = [0xC5_u8; 256];
        let key = |exponent: &[u8]| {
            // SEQUENCE { INTEGER modulus (with a leading 0), INTEGER exponent }
            let mut body = vec![0x02, 0x82, 0x01, 0x01, 0x00];
            body.extend_from_slice(&modulus);
            body.push(0x02);
            body.push(u8::try_from(exponent.len()).unwrap());
            body.extend_from_slice(exponent);
            let mut der = vec![0x30, 0x82];
            der.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
            der.extend(body);
            der
        };
        assert_eq!(check_rsa_public_key(&key(&[0x01, 0x00, 0x01])), Ok(()));
        assert_eq!(check_rsa_public_key(&key(&[0x03])), Ok(()));
        for exponent in [&[0x01][..], &[0x02], &[0x01, 0x00, 0x00], &[0x03; 5]] {
            assert!(
                check_rsa_public_key(&key(exponent)).is_err(),
                "{exponent:?}"
            );
        }
        assert!(check_rsa_public_key(b"\x30\x00").is_err());
        assert!(check_rsa_public_key(&[]).is_err());
    }

    #[test]
    fn bit_lengths() {
        assert_eq!(bit_length(&[]), 0);
        assert_eq!(bit_length(&[1]), 1);
        assert_eq!(bit_length(&[0x80, 0]), 16);
        assert_eq!(bit_length(&[0x01, 0, 0, 0, 0]), 33);
    }
}
