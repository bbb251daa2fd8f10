//! `Stripe-Signature` verification through `GatewayAdapter::verify`.

use std::time::Duration;

use payhook_domain::ports::{GatewayAdapter, VerifyError};

use crate::support::{
    adapter, at, fixture, request, sign, signature_header, TestHeaders, FIXTURES, SECRET,
};

const NOW: i64 = 1_700_000_000;
const KNOWN_BODY: &[u8] = br#"{"id":"evt_test_webhook","object":"event"}"#;
const KNOWN_V1: &str = "d95c6b7477fbd7e9f90b1b0ef5f9c7ac25abca5382460e0d988c2b2a5b71b990";

fn verify_with(secrets: &[&str], header: &str, body: &[u8], now: i64) -> Result<(), VerifyError> {
    let headers = TestHeaders::signature(header);
    adapter(secrets).verify(&request(&headers, body), at(now))
}

#[test]
fn the_test_signer_reproduces_the_known_vector() {
    assert_eq!(
        sign("whsec_test_secret", 1_700_000_000, KNOWN_BODY),
        KNOWN_V1
    );
}

#[test]
fn the_known_vector_is_accepted() {
    let header = format!("t=1700000000,v1={KNOWN_V1}");
    assert_eq!(verify_with(&[SECRET], &header, KNOWN_BODY, NOW), Ok(()));
}

#[test]
fn every_fixture_verifies_when_signed() {
    for name in FIXTURES {
        let body = fixture(name);
        let header = signature_header(SECRET, NOW - 3, &body);
        assert_eq!(
            verify_with(&[SECRET], &header, &body, NOW),
            Ok(()),
            "{name}"
        );
    }
}

#[test]
fn a_tampered_body_is_a_bad_signature() {
    let body = fixture("payment_intent.succeeded");
    let header = signature_header(SECRET, NOW, &body);
    let tampered = String::from_utf8(body)
        .unwrap()
        .replace("\"amount_received\": 15000", "\"amount_received\": 15")
        .into_bytes();
    assert_eq!(
        verify_with(&[SECRET], &header, &tampered, NOW),
        Err(VerifyError::BadSignature)
    );
    let mut appended = fixture("payment_intent.succeeded");
    appended.push(b'\n');
    assert_eq!(
        verify_with(&[SECRET], &header, &appended, NOW),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn a_signature_from_another_secret_is_a_bad_signature() {
    let body = fixture("charge.succeeded");
    let header = signature_header("whsec_someone_else", NOW, &body);
    assert_eq!(
        verify_with(&[SECRET], &header, &body, NOW),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn the_secret_is_used_whole_including_its_prefix() {
    let body = fixture("charge.succeeded");
    let header = signature_header("test_secret", NOW, &body);
    assert_eq!(
        verify_with(&[SECRET], &header, &body, NOW),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn moving_the_timestamp_breaks_the_signature() {
    // A replayed call cannot be refreshed by rewriting `t`: it is signed.
    let body = fixture("charge.succeeded");
    let old = sign(SECRET, NOW - 3600, &body);
    let header = format!("t={NOW},v1={old}");
    assert_eq!(
        verify_with(&[SECRET], &header, &body, NOW),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn an_expired_timestamp_is_stale() {
    let body = fixture("payment_intent.succeeded");
    let header = signature_header(SECRET, NOW - 301, &body);
    assert_eq!(
        verify_with(&[SECRET], &header, &body, NOW),
        Err(VerifyError::StaleTimestamp)
    );
    let header = signature_header(SECRET, NOW - 300, &body);
    assert_eq!(verify_with(&[SECRET], &header, &body, NOW), Ok(()));
}

#[test]
fn a_timestamp_too_far_in_the_future_is_stale() {
    let body = fixture("payment_intent.succeeded");
    let header = signature_header(SECRET, NOW + 301, &body);
    assert_eq!(
        verify_with(&[SECRET], &header, &body, NOW),
        Err(VerifyError::StaleTimestamp)
    );
    let header = signature_header(SECRET, NOW + 300, &body);
    assert_eq!(verify_with(&[SECRET], &header, &body, NOW), Ok(()));
}

#[test]
fn a_custom_tolerance_applies() {
    let body = fixture("charge.failed");
    let headers = TestHeaders::signature(&signature_header(SECRET, NOW - 31, &body));
    let strict = adapter(&[SECRET]).with_tolerance(Duration::from_secs(30));
    assert_eq!(
        strict.verify(&request(&headers, &body), at(NOW)),
        Err(VerifyError::StaleTimestamp)
    );
    let lenient = adapter(&[SECRET]).with_tolerance(Duration::from_secs(3600));
    assert_eq!(lenient.verify(&request(&headers, &body), at(NOW)), Ok(()));
}

#[test]
fn a_missing_header_is_reported_by_name() {
    let body = fixture("charge.succeeded");
    let headers = TestHeaders(vec![("content-type".into(), "application/json".into())]);
    assert_eq!(
        adapter(&[SECRET]).verify(&request(&headers, &body), at(NOW)),
        Err(VerifyError::MissingHeader("Stripe-Signature"))
    );
}

#[test]
fn the_header_name_is_case_insensitive() {
    let body = fixture("charge.succeeded");
    let value = signature_header(SECRET, NOW, &body);
    for name in ["Stripe-Signature", "stripe-signature", "STRIPE-SIGNATURE"] {
        let headers = TestHeaders(vec![(name.into(), value.clone())]);
        assert_eq!(
            adapter(&[SECRET]).verify(&request(&headers, &body), at(NOW)),
            Ok(()),
            "{name}"
        );
    }
}

#[test]
fn a_header_with_only_v0_has_no_accepted_signature() {
    let body = fixture("charge.succeeded");
    let v0 = sign(SECRET, NOW, &body);
    let header = format!("t={NOW},v0={v0}");
    assert_eq!(
        verify_with(&[SECRET], &header, &body, NOW),
        Err(VerifyError::NoAcceptedSignature)
    );
}

#[test]
fn a_header_without_a_usable_timestamp_is_malformed() {
    let body = fixture("charge.succeeded");
    let v1 = sign(SECRET, NOW, &body);
    for header in [
        String::new(),
        format!("v1={v1}"),
        format!("t=,v1={v1}"),
        format!("t=soon,v1={v1}"),
        format!("t={NOW},t={NOW},v1={v1}"),
    ] {
        assert_eq!(
            verify_with(&[SECRET], &header, &body, NOW),
            Err(VerifyError::MalformedHeader("Stripe-Signature")),
            "{header:?}"
        );
    }
}

#[test]
fn one_valid_v1_among_several_is_enough() {
    let body = fixture("payment_intent.payment_failed");
    let good = sign(SECRET, NOW, &body);
    let wrong = sign("whsec_old", NOW, &body);
    let header = format!(
        "t={NOW},v1={wrong},v1=not-hex,v0={wrong},v1={good},v1={}",
        "0".repeat(64)
    );
    assert_eq!(verify_with(&[SECRET], &header, &body, NOW), Ok(()));
}

#[test]
fn invalid_hex_is_just_a_wrong_signature() {
    let body = fixture("payment_intent.payment_failed");
    for v1 in ["zz", "", &"g".repeat(64), &sign(SECRET, NOW, &body)[..63]] {
        let header = format!("t={NOW},v1={v1}");
        assert_eq!(
            verify_with(&[SECRET], &header, &body, NOW),
            Err(VerifyError::BadSignature),
            "{v1:?}"
        );
    }
}

#[test]
fn upper_case_hex_is_the_same_signature() {
    let body = fixture("payment_intent.payment_failed");
    let header = format!("t={NOW},v1={}", sign(SECRET, NOW, &body).to_uppercase());
    assert_eq!(verify_with(&[SECRET], &header, &body, NOW), Ok(()));
}

#[test]
fn during_rotation_either_configured_secret_verifies() {
    let old = "whsec_old_secret";
    let new = "whsec_new_secret";
    let body = fixture("charge.succeeded");

    for signer in [old, new] {
        let header = signature_header(signer, NOW, &body);
        assert_eq!(
            verify_with(&[old, new], &header, &body, NOW),
            Ok(()),
            "{signer}"
        );
    }

    // What Stripe sends while an old secret is still active: one v1 per secret.
    let both = format!(
        "t={NOW},v1={},v1={}",
        sign(new, NOW, &body),
        sign(old, NOW, &body)
    );
    assert_eq!(verify_with(&[old, new], &both, &body, NOW), Ok(()));
    assert_eq!(verify_with(&[new], &both, &body, NOW), Ok(()));

    let retired = signature_header(old, NOW, &body);
    assert_eq!(
        verify_with(&[new], &retired, &body, NOW),
        Err(VerifyError::BadSignature)
    );
    let stranger = signature_header("whsec_stranger", NOW, &body);
    assert_eq!(
        verify_with(&[old, new], &stranger, &body, NOW),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn a_hostile_header_is_refused_without_panicking() {
    let body = fixture("charge.succeeded");
    let flood = format!("t={NOW}{}", ",v1=".repeat(100_000));
    assert_eq!(
        verify_with(&[SECRET], &flood, &body, NOW),
        Err(VerifyError::MalformedHeader("Stripe-Signature"))
    );
    // Many v1 items within the size cap: only the first few are tried, so a
    // valid one hidden at the end is not found.
    let wrong = sign("whsec_other", NOW, &body);
    let good = sign(SECRET, NOW, &body);
    let crowded = format!("t={NOW}{},v1={good}", format!(",v1={wrong}").repeat(20));
    assert_eq!(
        verify_with(&[SECRET], &crowded, &body, NOW),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn extreme_timestamps_are_stale_not_a_crash() {
    let body = fixture("charge.succeeded");
    for timestamp in [0, i64::MAX] {
        let header = signature_header(SECRET, timestamp, &body);
        assert_eq!(
            verify_with(&[SECRET], &header, &body, NOW),
            Err(VerifyError::StaleTimestamp),
            "{timestamp}"
        );
    }
}
