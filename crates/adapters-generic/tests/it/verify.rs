//! Signature verification through `GatewayAdapter::verify`, in both
//! schemes, signed and unsigned.

use std::time::Duration;

use payhook_adapters_generic::GenericAdapter;
use payhook_domain::ports::{GatewayAdapter, VerifyError};

use crate::support::{
    adapter, at, fixture, request, sign_simple, sign_standard, signed_simple, signed_standard,
    simple_headers, standard_headers, with, without, TestHeaders, FIXTURES, ID, RAW_SECRET, SECRET,
};

const NOW: i64 = 1_700_000_000;

fn verify_with(
    secrets: &[&str],
    headers: &TestHeaders,
    body: &[u8],
    now: i64,
) -> Result<(), VerifyError> {
    adapter(secrets).verify(&request(headers, body), at(now))
}

/// The Standard Webhooks specification's published test vectors.
const VECTORS: [(&str, &str, i64, &str, &str); 2] = [
    (
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1_614_265_330,
        r#"{"test": 2432232314}"#,
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    ),
    (
        "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
        "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
        1_649_367_553,
        r#"{"email":"test@example.com","username":"test_user"}"#,
        "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
    ),
];

#[test]
fn the_test_signer_reproduces_the_published_vectors() {
    for (secret, id, timestamp, body, signature) in VECTORS {
        assert_eq!(
            format!(
                "v1,{}",
                sign_standard(secret, id, timestamp, body.as_bytes())
            ),
            signature
        );
    }
}

#[test]
fn the_published_vectors_are_accepted() {
    for (secret, id, timestamp, body, signature) in VECTORS {
        let headers = standard_headers(id, timestamp, signature);
        assert_eq!(
            verify_with(&[secret], &headers, body.as_bytes(), timestamp),
            Ok(()),
            "{id}"
        );
    }
}

#[test]
fn each_published_vector_needs_its_own_secret() {
    let (_, id, timestamp, body, signature) = VECTORS[0];
    let headers = standard_headers(id, timestamp, signature);
    assert_eq!(
        verify_with(&[VECTORS[1].0], &headers, body.as_bytes(), timestamp),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn every_fixture_verifies_in_both_schemes() {
    for name in FIXTURES {
        let body = fixture(name);
        let standard = signed_standard(SECRET, ID, NOW - 3, &body);
        assert_eq!(
            verify_with(&[SECRET], &standard, &body, NOW),
            Ok(()),
            "{name}"
        );
        let simple = signed_simple(RAW_SECRET, &body);
        assert_eq!(
            verify_with(&[RAW_SECRET], &simple, &body, NOW),
            Ok(()),
            "{name}"
        );
    }
}

#[test]
fn a_raw_secret_signs_standard_webhooks_with_its_text() {
    let body = fixture("payment.completed");
    let headers = signed_standard(RAW_SECRET, ID, NOW, &body);
    assert_eq!(verify_with(&[RAW_SECRET], &headers, &body, NOW), Ok(()));
}

#[test]
fn a_tampered_body_is_a_bad_signature_in_both_schemes() {
    let body = fixture("payment.completed");
    let tampered = String::from_utf8(body.clone())
        .unwrap()
        .replace("150.00", "1.50")
        .into_bytes();
    assert_ne!(tampered, body);
    let mut appended = body.clone();
    appended.push(b'\n');

    let standard = signed_standard(SECRET, ID, NOW, &body);
    let simple = signed_simple(RAW_SECRET, &body);
    for changed in [&tampered, &appended] {
        assert_eq!(
            verify_with(&[SECRET], &standard, changed, NOW),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            verify_with(&[RAW_SECRET], &simple, changed, NOW),
            Err(VerifyError::BadSignature)
        );
    }
}

#[test]
fn the_message_id_and_timestamp_are_signed() {
    let body = fixture("payment.completed");
    let signature = format!("v1,{}", sign_standard(SECRET, ID, NOW - 3600, &body));
    // A replay cannot be refreshed by rewriting the timestamp...
    let moved = standard_headers(ID, NOW, &signature);
    assert_eq!(
        verify_with(&[SECRET], &moved, &body, NOW),
        Err(VerifyError::BadSignature)
    );
    // ...nor given a new id to slip past deduplication.
    let signature = format!("v1,{}", sign_standard(SECRET, ID, NOW, &body));
    let renamed = standard_headers("msg_other", NOW, &signature);
    assert_eq!(
        verify_with(&[SECRET], &renamed, &body, NOW),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn a_signature_from_another_secret_is_a_bad_signature() {
    let body = fixture("payment.failed");
    let standard = signed_standard("whsec_c29tZW9uZSBlbHNl", ID, NOW, &body);
    assert_eq!(
        verify_with(&[SECRET], &standard, &body, NOW),
        Err(VerifyError::BadSignature)
    );
    let simple = signed_simple("someone else", &body);
    assert_eq!(
        verify_with(&[RAW_SECRET], &simple, &body, NOW),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn the_simple_scheme_keys_with_the_secret_text_prefix_included() {
    let body = fixture("payment.completed");
    assert_eq!(
        verify_with(&[SECRET], &signed_simple(SECRET, &body), &body, NOW),
        Ok(())
    );
    // Not with the base64-decoded key, and not without the prefix.
    let decoded_key_tag = {
        use base64::Engine as _;
        let key = base64::engine::general_purpose::STANDARD
            .decode(SECRET.trim_start_matches("whsec_"))
            .unwrap();
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
        hex::encode(ring::hmac::sign(&key, &body).as_ref())
    };
    for value in [
        format!("sha256={decoded_key_tag}"),
        format!(
            "sha256={}",
            sign_simple(SECRET.trim_start_matches("whsec_"), &body)
        ),
    ] {
        assert_eq!(
            verify_with(&[SECRET], &simple_headers(&value), &body, NOW),
            Err(VerifyError::BadSignature),
            "{value}"
        );
    }
}

#[test]
fn simple_hex_signatures_valid_and_invalid() {
    let body = fixture("payment.completed");
    let good = sign_simple(RAW_SECRET, &body);
    for value in [
        format!("sha256={good}"),
        format!("sha256={}", good.to_uppercase()),
        format!("SHA256={good}"),
    ] {
        assert_eq!(
            verify_with(&[RAW_SECRET], &simple_headers(&value), &body, NOW),
            Ok(()),
            "{value}"
        );
    }
    for value in [
        "sha256=".to_owned(),
        "sha256=zz".to_owned(),
        format!("sha256={}", &good[..63]),
        format!("sha256={good}0"),
        format!("sha256={}", "g".repeat(64)),
        format!("sha256= {good}"),
        format!("sha256={good},sha256={good}"),
        format!("sha256={}", "0".repeat(64)),
    ] {
        assert_eq!(
            verify_with(&[RAW_SECRET], &simple_headers(&value), &body, NOW),
            Err(VerifyError::BadSignature),
            "{value}"
        );
    }
    assert_eq!(
        verify_with(&[RAW_SECRET], &simple_headers(&good), &body, NOW),
        Err(VerifyError::MalformedHeader("X-Webhook-Signature"))
    );
    assert_eq!(
        verify_with(
            &[RAW_SECRET],
            &simple_headers(&format!("sha512={good}")),
            &body,
            NOW
        ),
        Err(VerifyError::UnsupportedAlgorithm)
    );
}

#[test]
fn during_rotation_either_configured_secret_verifies() {
    let old = "whsec_b2xkIHNlY3JldCBvZiB0aGUgZ2F0ZXdheQ==";
    let new = "whsec_bmV3IHNlY3JldCBvZiB0aGUgZ2F0ZXdheQ==";
    let body = fixture("payment.completed");

    for signer in [old, new] {
        let standard = signed_standard(signer, ID, NOW, &body);
        assert_eq!(
            verify_with(&[old, new], &standard, &body, NOW),
            Ok(()),
            "{signer}"
        );
        let simple = signed_simple(signer, &body);
        assert_eq!(
            verify_with(&[old, new], &simple, &body, NOW),
            Ok(()),
            "{signer}"
        );
    }

    // What a Standard Webhooks sender sends while rotating: one v1 per secret.
    let both = format!(
        "v1,{} v1,{}",
        sign_standard(new, ID, NOW, &body),
        sign_standard(old, ID, NOW, &body)
    );
    let headers = standard_headers(ID, NOW, &both);
    assert_eq!(verify_with(&[old, new], &headers, &body, NOW), Ok(()));
    assert_eq!(verify_with(&[new], &headers, &body, NOW), Ok(()));

    let retired = signed_standard(old, ID, NOW, &body);
    assert_eq!(
        verify_with(&[new], &retired, &body, NOW),
        Err(VerifyError::BadSignature)
    );
    let retired = signed_simple(old, &body);
    assert_eq!(
        verify_with(&[new], &retired, &body, NOW),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn one_valid_signature_among_several_is_enough() {
    let body = fixture("payment.failed");
    let good = sign_standard(SECRET, ID, NOW, &body);
    let wrong = sign_standard("whsec_b3RoZXI=", ID, NOW, &body);
    let header = format!(
        "v1,{wrong} v1,not-base64 v1a,{good} v2,{good}  v1,{good} v1,{}",
        "A".repeat(44)
    );
    let headers = standard_headers(ID, NOW, &header);
    assert_eq!(verify_with(&[SECRET], &headers, &body, NOW), Ok(()));
}

#[test]
fn only_other_versions_is_no_accepted_signature() {
    let body = fixture("payment.failed");
    let good = sign_standard(SECRET, ID, NOW, &body);
    for header in [
        format!("v1a,{good}"),
        format!("v2,{good} v1a,{good}"),
        good.clone(),
    ] {
        let headers = standard_headers(ID, NOW, &header);
        assert_eq!(
            verify_with(&[SECRET], &headers, &body, NOW),
            Err(VerifyError::NoAcceptedSignature),
            "{header}"
        );
    }
}

#[test]
fn unusable_base64_is_just_a_wrong_signature() {
    let body = fixture("payment.failed");
    let good = sign_standard(SECRET, ID, NOW, &body);
    for v1 in [
        String::new(),
        "zz".to_owned(),
        good.trim_end_matches('=').to_owned(),
        good.replace('+', "-").replace('/', "_"),
        format!("{good}A"),
        hex::encode([0_u8; 32]),
    ] {
        if v1 == good {
            continue;
        }
        let headers = standard_headers(ID, NOW, &format!("v1,{v1}"));
        assert_eq!(
            verify_with(&[SECRET], &headers, &body, NOW),
            Err(VerifyError::BadSignature),
            "{v1:?}"
        );
    }
}

#[test]
fn an_expired_timestamp_is_stale() {
    let body = fixture("payment.completed");
    let headers = signed_standard(SECRET, ID, NOW - 301, &body);
    assert_eq!(
        verify_with(&[SECRET], &headers, &body, NOW),
        Err(VerifyError::StaleTimestamp)
    );
    let headers = signed_standard(SECRET, ID, NOW - 300, &body);
    assert_eq!(verify_with(&[SECRET], &headers, &body, NOW), Ok(()));
}

#[test]
fn a_timestamp_too_far_in_the_future_is_stale() {
    let body = fixture("payment.completed");
    let headers = signed_standard(SECRET, ID, NOW + 301, &body);
    assert_eq!(
        verify_with(&[SECRET], &headers, &body, NOW),
        Err(VerifyError::StaleTimestamp)
    );
    let headers = signed_standard(SECRET, ID, NOW + 300, &body);
    assert_eq!(verify_with(&[SECRET], &headers, &body, NOW), Ok(()));
}

#[test]
fn extreme_timestamps_are_stale_not_a_crash() {
    let body = fixture("payment.completed");
    for timestamp in [0, i64::MAX] {
        let headers = signed_standard(SECRET, ID, timestamp, &body);
        assert_eq!(
            verify_with(&[SECRET], &headers, &body, NOW),
            Err(VerifyError::StaleTimestamp),
            "{timestamp}"
        );
    }
}

#[test]
fn a_custom_tolerance_applies() {
    let body = fixture("payment.failed");
    let headers = signed_standard(SECRET, ID, NOW - 31, &body);
    let strict = adapter(&[SECRET]).with_tolerance(Duration::from_secs(30));
    assert_eq!(
        strict.verify(&request(&headers, &body), at(NOW)),
        Err(VerifyError::StaleTimestamp)
    );
    let lenient = adapter(&[SECRET]).with_tolerance(Duration::from_secs(3600));
    assert_eq!(lenient.verify(&request(&headers, &body), at(NOW)), Ok(()));
}

#[test]
fn the_simple_scheme_has_no_timestamp_to_expire() {
    let body = fixture("payment.completed");
    let headers = signed_simple(RAW_SECRET, &body);
    assert_eq!(verify_with(&[RAW_SECRET], &headers, &body, 0), Ok(()));
    assert_eq!(
        verify_with(&[RAW_SECRET], &headers, &body, i64::from(i32::MAX)),
        Ok(())
    );
}

#[test]
fn a_request_without_any_signature_is_refused() {
    let body = fixture("payment.completed");
    for headers in [
        vec![("content-type".to_owned(), "application/json".to_owned())],
        vec![("webhook-id".to_owned(), ID.to_owned())],
        vec![("Idempotency-Key".to_owned(), "key-1".to_owned())],
        Vec::new(),
    ] {
        assert_eq!(
            verify_with(&[SECRET], &headers, &body, NOW),
            Err(VerifyError::MissingHeader("webhook-signature"))
        );
    }
}

#[test]
fn standard_webhooks_needs_its_id_and_timestamp() {
    let body = fixture("payment.completed");
    let headers = signed_standard(SECRET, ID, NOW, &body);
    assert_eq!(
        verify_with(
            &[SECRET],
            &without(headers.clone(), "webhook-id"),
            &body,
            NOW
        ),
        Err(VerifyError::MissingHeader("webhook-id"))
    );
    assert_eq!(
        verify_with(
            &[SECRET],
            &without(headers, "webhook-timestamp"),
            &body,
            NOW
        ),
        Err(VerifyError::MissingHeader("webhook-timestamp"))
    );
}

#[test]
fn webhook_signature_wins_over_the_simple_header() {
    let body = fixture("payment.completed");
    // A valid simple signature does not rescue an invalid Standard one...
    let headers = with(
        standard_headers(ID, NOW, &format!("v1,{}", "A".repeat(43) + "=")),
        "X-Webhook-Signature",
        &format!("sha256={}", sign_simple(SECRET, &body)),
    );
    assert_eq!(
        verify_with(&[SECRET], &headers, &body, NOW),
        Err(VerifyError::BadSignature)
    );
    // ...and an incomplete Standard set is reported, not skipped.
    let headers = with(
        without(signed_standard(SECRET, ID, NOW, &body), "webhook-id"),
        "X-Webhook-Signature",
        &format!("sha256={}", sign_simple(SECRET, &body)),
    );
    assert_eq!(
        verify_with(&[SECRET], &headers, &body, NOW),
        Err(VerifyError::MissingHeader("webhook-id"))
    );
}

#[test]
fn header_names_are_case_insensitive() {
    let body = fixture("payment.completed");
    let signature = format!("v1,{}", sign_standard(SECRET, ID, NOW, &body));
    let headers: TestHeaders = vec![
        ("Webhook-Id".into(), ID.into()),
        ("WEBHOOK-TIMESTAMP".into(), NOW.to_string()),
        ("Webhook-Signature".into(), signature),
    ];
    assert_eq!(verify_with(&[SECRET], &headers, &body, NOW), Ok(()));
    for name in [
        "X-Webhook-Signature",
        "x-webhook-signature",
        "X-WEBHOOK-SIGNATURE",
    ] {
        let headers = vec![(
            name.to_owned(),
            format!("sha256={}", sign_simple(RAW_SECRET, &body)),
        )];
        assert_eq!(
            verify_with(&[RAW_SECRET], &headers, &body, NOW),
            Ok(()),
            "{name}"
        );
    }
}

#[test]
fn an_unusable_webhook_id_is_malformed() {
    let body = fixture("payment.completed");
    let long = "m".repeat(256);
    for id in [long.as_str(), "", "msg 1", "msg\u{7f}"] {
        let headers = signed_standard(SECRET, id, NOW, &body);
        assert_eq!(
            verify_with(&[SECRET], &headers, &body, NOW),
            Err(VerifyError::MalformedHeader("webhook-id")),
            "{id:?}"
        );
    }
    let longest = "m".repeat(255);
    let headers = signed_standard(SECRET, &longest, NOW, &body);
    assert_eq!(verify_with(&[SECRET], &headers, &body, NOW), Ok(()));
}

#[test]
fn the_simple_scheme_does_not_look_at_headers_it_does_not_sign() {
    // The event id of the simple scheme comes from the body, so the id
    // headers of other schemes are neither read nor judged: whatever they
    // hold, the call is as genuine as its body's signature.
    let body = fixture("payment.completed");
    let long = "m".repeat(256);
    for (name, value) in [
        ("Idempotency-Key", long.as_str()),
        ("Idempotency-Key", "two words"),
        ("Idempotency-Key", "8e0c1a52-3b7e-4bb0-9d5f-6b1f0c2f0a11"),
        ("webhook-id", ""),
        ("webhook-id", "msg_1"),
    ] {
        let headers = with(signed_simple(RAW_SECRET, &body), name, value);
        assert_eq!(
            verify_with(&[RAW_SECRET], &headers, &body, NOW),
            Ok(()),
            "{name}: {value:?}"
        );
    }
}

#[test]
fn hostile_headers_are_refused_without_panicking() {
    let body = fixture("payment.completed");
    let flood = "v1, ".repeat(100_000);
    let headers = standard_headers(ID, NOW, &flood);
    assert_eq!(
        verify_with(&[SECRET], &headers, &body, NOW),
        Err(VerifyError::MalformedHeader("webhook-signature"))
    );
    let headers = simple_headers(&format!("sha256={}", "0".repeat(100_000)));
    assert_eq!(
        verify_with(&[SECRET], &headers, &body, NOW),
        Err(VerifyError::MalformedHeader("X-Webhook-Signature"))
    );
    // Many v1 entries within the size cap: only the first few are tried, so
    // a valid one hidden at the end is not found.
    let wrong = sign_standard("whsec_b3RoZXI=", ID, NOW, &body);
    let good = sign_standard(SECRET, ID, NOW, &body);
    let crowded = format!("{}v1,{good}", format!("v1,{wrong} ").repeat(20));
    let headers = standard_headers(ID, NOW, &crowded);
    assert_eq!(
        verify_with(&[SECRET], &headers, &body, NOW),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn the_unsigned_adapter_accepts_any_request() {
    let unsigned = GenericAdapter::unsigned();
    let body = fixture("payment.completed");
    let wrong = simple_headers(&format!("sha256={}", "0".repeat(64)));
    let stale = signed_standard(SECRET, ID, 0, &body);
    for headers in [Vec::new(), wrong, stale, signed_simple(RAW_SECRET, &body)] {
        assert_eq!(unsigned.verify(&request(&headers, &body), at(NOW)), Ok(()));
        assert_eq!(
            unsigned.verify(&request(&headers, b"\xff not json"), at(NOW)),
            Ok(())
        );
    }
}

#[test]
fn a_signed_adapter_refuses_what_the_unsigned_one_accepts() {
    let body = fixture("payment.completed");
    let headers: TestHeaders = vec![("Idempotency-Key".into(), "key-1".into())];
    assert_eq!(
        GenericAdapter::unsigned().verify(&request(&headers, &body), at(NOW)),
        Ok(())
    );
    assert_eq!(
        verify_with(&[SECRET], &headers, &body, NOW),
        Err(VerifyError::MissingHeader("webhook-signature"))
    );
}

#[test]
fn headers_can_be_borrowed_pairs_or_arrays() {
    let body = fixture("payment.completed");
    let signature = format!("sha256={}", sign_simple(RAW_SECRET, &body));
    let array = [("X-Webhook-Signature", signature.as_str())];
    let pairs: Vec<(&str, &str)> = array.to_vec();
    let adapter = adapter(&[RAW_SECRET]);
    let now = at(NOW);
    assert_eq!(
        adapter.verify(
            &payhook_domain::ports::WebhookRequest {
                headers: &array,
                body: &body
            },
            now
        ),
        Ok(())
    );
    assert_eq!(
        adapter.verify(
            &payhook_domain::ports::WebhookRequest {
                headers: &pairs,
                body: &body
            },
            now
        ),
        Ok(())
    );
}
