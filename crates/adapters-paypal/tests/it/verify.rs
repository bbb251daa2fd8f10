//! Transmission signature verification through `GatewayAdapter::verify`.

use std::time::Duration;

use payhook_adapters_paypal::PaypalAdapter;
use payhook_domain::ports::{GatewayAdapter, VerifyError};

use crate::support::{
    adapter, at, event, request, sent_at_plus, sign, Call, TestKey, EVENTS, SENT_AT,
    TRANSMISSION_ID, WEBHOOK_ID,
};

/// Made once with the openssl CLI (see the README's PayPal section) from
/// `PAYMENT.CAPTURE.COMPLETED.json`, [`TRANSMISSION_ID`], [`SENT_AT`],
/// [`WEBHOOK_ID`] and the first test-only key.
const OPENSSL_SIGNATURE: &str = "AXAJdaoi/fHUwo/Y+ipsnIl+GAnYGyCguQRtTukk9vfj1GDxnI/2UsPOP9GyD5hN6ALmkb8s3V/2Igxui5S0A3uXFbDGA1Wc0v6EwsgdGNlqiBlhzMyPO0KfScaGlIyv0uaDTsLbDRPBEql7QwGmnI70u/W5YHhbumHMS4w17VkxrcQsr34yiFSs5zT1hX6/2dUGtXYRR5SHwo7qPzPHJb4RkqcVvQvFF0NJCkoBhiMO6fYGr61Uv5LYmkXgWLHPG0eZ9x8YrBPrUJVC7rBuDl47XkHYrEoeBbmW+A3wS//LGPYIvC6XgbopsGE4bRN2BNq4CTn3rd2EGQzQyk27Jg==";

/// The CRC32 of that fixture, as `gzip`'s trailer and Python's `zlib.crc32` give it.
const COMPLETED_CRC32: u32 = 2_832_201_069;

fn verify_call(
    adapter: &PaypalAdapter,
    call: &Call,
    body: &[u8],
    now: &str,
) -> Result<(), VerifyError> {
    let headers = call.headers();
    adapter.verify(&request(&headers, body), at(now))
}

fn verify_with_first(call: &Call, body: &[u8]) -> Result<(), VerifyError> {
    verify_call(&adapter(&[TestKey::First]), call, body, SENT_AT)
}

#[test]
fn crc32_matches_the_known_values() {
    assert_eq!(crc32fast::hash(b"hello"), 907_060_870);
    assert_eq!(
        crc32fast::hash(&event("PAYMENT.CAPTURE.COMPLETED")),
        COMPLETED_CRC32
    );
}

#[test]
fn the_test_signer_reproduces_the_openssl_signature() {
    // PKCS#1 v1.5 is deterministic: two correct signers agree byte for byte.
    let body = event("PAYMENT.CAPTURE.COMPLETED");
    assert_eq!(
        sign(TestKey::First, TRANSMISSION_ID, SENT_AT, WEBHOOK_ID, &body),
        OPENSSL_SIGNATURE
    );
}

#[test]
fn the_openssl_signature_is_accepted() {
    let body = event("PAYMENT.CAPTURE.COMPLETED");
    let call = Call {
        signature: OPENSSL_SIGNATURE.to_owned(),
        ..Call::signed(TestKey::First, &body)
    };
    assert_eq!(verify_with_first(&call, &body), Ok(()));
}

#[test]
fn every_fixture_verifies_when_signed() {
    for name in EVENTS {
        let body = event(name);
        let call = Call::signed(TestKey::First, &body);
        assert_eq!(verify_with_first(&call, &body), Ok(()), "{name}");
    }
}

#[test]
fn an_empty_body_verifies_when_signed() {
    let call = Call::signed(TestKey::First, b"");
    assert_eq!(verify_with_first(&call, b""), Ok(()));
}

#[test]
fn a_tampered_body_is_a_bad_signature() {
    let body = event("PAYMENT.CAPTURE.COMPLETED");
    let call = Call::signed(TestKey::First, &body);
    let tampered = String::from_utf8(body.clone())
        .unwrap()
        .replacen("\"value\": \"150.00\"", "\"value\": \"1.50\"", 1)
        .into_bytes();
    assert_ne!(tampered, body);
    assert_eq!(
        verify_with_first(&call, &tampered),
        Err(VerifyError::BadSignature)
    );
    let mut appended = body.clone();
    appended.push(b'\n');
    assert_eq!(
        verify_with_first(&call, &appended),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn a_signature_for_another_webhook_id_is_a_bad_signature() {
    let body = event("PAYMENT.CAPTURE.COMPLETED");
    let call = Call {
        signature: sign(
            TestKey::First,
            TRANSMISSION_ID,
            SENT_AT,
            "8PT597110X687430LKGECATA",
            &body,
        ),
        ..Call::signed(TestKey::First, &body)
    };
    assert_eq!(
        verify_with_first(&call, &body),
        Err(VerifyError::BadSignature)
    );

    // And the other way round: a correct call for a differently configured id.
    let other = PaypalAdapter::new(
        "8PT597110X687430LKGECATA".to_owned(),
        &TestKey::First.certificate_pem(),
    )
    .unwrap();
    let call = Call::signed(TestKey::First, &body);
    assert_eq!(
        verify_call(&other, &call, &body, SENT_AT),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn a_signature_by_an_unpinned_certificate_is_a_bad_signature() {
    let body = event("PAYMENT.CAPTURE.DENIED");
    let call = Call::signed(TestKey::Second, &body);
    assert_eq!(
        verify_with_first(&call, &body),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn during_rotation_either_pinned_certificate_verifies() {
    let body = event("PAYMENT.CAPTURE.COMPLETED");
    let both = adapter(&[TestKey::First, TestKey::Second]);
    assert_eq!(both.certificate_count(), 2);
    for signer in [TestKey::Second, TestKey::First] {
        let call = Call::signed(signer, &body);
        assert_eq!(
            verify_call(&both, &call, &body, SENT_AT),
            Ok(()),
            "{signer:?}"
        );
    }
    let reversed = adapter(&[TestKey::Second, TestKey::First]);
    let call = Call::signed(TestKey::Second, &body);
    assert_eq!(verify_call(&reversed, &call, &body, SENT_AT), Ok(()));

    // Once the old certificate is unpinned, its signatures stop verifying.
    let retired = Call::signed(TestKey::First, &body);
    assert_eq!(
        verify_call(&adapter(&[TestKey::Second]), &retired, &body, SENT_AT),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn moving_the_time_or_the_transmission_id_breaks_the_signature() {
    // A replayed call cannot be refreshed by rewriting its time: it is signed.
    let body = event("PAYMENT.CAPTURE.COMPLETED");
    let old = Call::signed_at(TestKey::First, &sent_at_plus(-3600), &body);
    let refreshed = Call {
        time: SENT_AT.to_owned(),
        ..old.clone()
    };
    assert_eq!(
        verify_with_first(&refreshed, &body),
        Err(VerifyError::BadSignature)
    );
    let renamed = Call {
        transmission_id: "b2d5a4e0-cb7f-11f0-9a3b-4d6f3c2a1e91".to_owned(),
        ..Call::signed(TestKey::First, &body)
    };
    assert_eq!(
        verify_with_first(&renamed, &body),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn an_old_transmission_time_is_stale() {
    let body = event("PAYMENT.CAPTURE.COMPLETED");
    let call = Call::signed_at(TestKey::First, &sent_at_plus(-301), &body);
    assert_eq!(
        verify_with_first(&call, &body),
        Err(VerifyError::StaleTimestamp)
    );
    let call = Call::signed_at(TestKey::First, &sent_at_plus(-300), &body);
    assert_eq!(verify_with_first(&call, &body), Ok(()));
    let call = Call::signed_at(TestKey::First, "2016-11-27T01:02:05Z", &body);
    assert_eq!(
        verify_with_first(&call, &body),
        Err(VerifyError::StaleTimestamp)
    );
}

#[test]
fn a_transmission_time_too_far_in_the_future_is_stale() {
    let body = event("PAYMENT.CAPTURE.COMPLETED");
    let call = Call::signed_at(TestKey::First, &sent_at_plus(301), &body);
    assert_eq!(
        verify_with_first(&call, &body),
        Err(VerifyError::StaleTimestamp)
    );
    let call = Call::signed_at(TestKey::First, &sent_at_plus(300), &body);
    assert_eq!(verify_with_first(&call, &body), Ok(()));
    let call = Call::signed_at(TestKey::First, "9999-12-31T23:59:59Z", &body);
    assert_eq!(
        verify_with_first(&call, &body),
        Err(VerifyError::StaleTimestamp)
    );
}

#[test]
fn a_custom_tolerance_applies() {
    let body = event("PAYMENT.CAPTURE.DENIED");
    let call = Call::signed_at(TestKey::First, &sent_at_plus(-31), &body);
    let strict = adapter(&[TestKey::First]).with_tolerance(Duration::from_secs(30));
    assert_eq!(
        verify_call(&strict, &call, &body, SENT_AT),
        Err(VerifyError::StaleTimestamp)
    );
    let lenient = adapter(&[TestKey::First]).with_tolerance(Duration::from_secs(3600));
    assert_eq!(verify_call(&lenient, &call, &body, SENT_AT), Ok(()));
}

#[test]
fn a_time_with_an_offset_or_fraction_is_signed_as_written() {
    let body = event("PAYMENT.CAPTURE.COMPLETED");
    for time in ["2026-11-27T02:02:05+01:00", "2026-11-27T01:02:05.250Z"] {
        let call = Call::signed_at(TestKey::First, time, &body);
        assert_eq!(verify_with_first(&call, &body), Ok(()), "{time}");
    }
}

#[test]
fn each_missing_header_is_reported_by_name() {
    let body = event("PAYMENT.CAPTURE.COMPLETED");
    let call = Call::signed(TestKey::First, &body);
    for name in [
        "PAYPAL-TRANSMISSION-ID",
        "PAYPAL-TRANSMISSION-TIME",
        "PAYPAL-TRANSMISSION-SIG",
        "PAYPAL-CERT-URL",
        "PAYPAL-AUTH-ALGO",
    ] {
        let headers: Vec<(String, String)> = call
            .headers()
            .into_iter()
            .filter(|(header, _)| header != name)
            .collect();
        assert_eq!(
            adapter(&[TestKey::First]).verify(&request(&headers, &body), at(SENT_AT)),
            Err(VerifyError::MissingHeader(name)),
        );
    }
    let none: Vec<(&str, &str)> = Vec::new();
    assert_eq!(
        adapter(&[TestKey::First]).verify(&request(&none, &body), at(SENT_AT)),
        Err(VerifyError::MissingHeader("PAYPAL-TRANSMISSION-ID"))
    );
}

#[test]
fn header_names_are_case_insensitive() {
    let body = event("PAYMENT.CAPTURE.COMPLETED");
    let call = Call::signed(TestKey::First, &body);
    let renames: [fn(&str) -> String; 2] = [str::to_ascii_lowercase, |name| {
        name.replace("PAYPAL", "Paypal")
    }];
    for rename in renames {
        let headers: Vec<(String, String)> = call
            .headers()
            .into_iter()
            .map(|(name, value)| (rename(&name), value))
            .collect();
        assert_eq!(
            adapter(&[TestKey::First]).verify(&request(&headers, &body), at(SENT_AT)),
            Ok(())
        );
    }
}

#[test]
fn headers_as_str_pairs_work_too() {
    let body = event("PAYMENT.CAPTURE.COMPLETED");
    let call = Call::signed(TestKey::First, &body);
    let headers = [
        ("paypal-transmission-id", call.transmission_id.as_str()),
        ("paypal-transmission-time", call.time.as_str()),
        ("paypal-transmission-sig", call.signature.as_str()),
        ("paypal-cert-url", call.cert_url.as_str()),
        ("paypal-auth-algo", call.auth_algo.as_str()),
    ];
    assert_eq!(
        adapter(&[TestKey::First]).verify(&request(&headers, &body), at(SENT_AT)),
        Ok(())
    );
}

#[test]
fn another_algorithm_is_unsupported() {
    let body = event("PAYMENT.CAPTURE.COMPLETED");
    for algo in [
        "SHA1withRSA",
        "SHA512withRSA",
        "SHA256withECDSA",
        "RS256",
        "",
        "SHA256withRSA ",
    ] {
        let call = Call {
            auth_algo: algo.to_owned(),
            ..Call::signed(TestKey::First, &body)
        };
        assert_eq!(
            verify_with_first(&call, &body),
            Err(VerifyError::UnsupportedAlgorithm),
            "{algo:?}"
        );
    }
    let call = Call {
        auth_algo: "sha256withrsa".to_owned(),
        ..Call::signed(TestKey::First, &body)
    };
    assert_eq!(verify_with_first(&call, &body), Ok(()));
}

#[test]
fn a_certificate_url_off_paypal_is_untrusted() {
    let body = event("PAYMENT.CAPTURE.COMPLETED");
    for url in [
        "https://evil.com/cert.pem",
        "https://paypal.com.evil.com/x",
        "https://api.paypal.com.evil.com/v1/notifications/certs/CERT-1",
        "https://paypal.com@evil.com/x",
        "http://api.paypal.com/v1/notifications/certs/CERT-1",
        "file:///etc/ssl/cert.pem",
        "",
    ] {
        let call = Call {
            cert_url: url.to_owned(),
            ..Call::signed(TestKey::First, &body)
        };
        assert_eq!(
            verify_with_first(&call, &body),
            Err(VerifyError::UntrustedCertificate),
            "{url}"
        );
    }
}

#[test]
fn sandbox_and_bare_paypal_hosts_are_trusted() {
    let body = event("PAYMENT.CAPTURE.COMPLETED");
    for url in [
        "https://api.sandbox.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-a5cafa77",
        "https://paypal.com/cert.pem",
    ] {
        let call = Call {
            cert_url: url.to_owned(),
            ..Call::signed(TestKey::First, &body)
        };
        assert_eq!(verify_with_first(&call, &body), Ok(()), "{url}");
    }
}

#[test]
fn an_unreadable_time_is_malformed() {
    let body = event("PAYMENT.CAPTURE.COMPLETED");
    for time in [
        "yesterday",
        "1795741325",
        "2026-11-27T01:02:05",
        "2026-11-27",
        "",
    ] {
        let call = Call::signed_at(TestKey::First, time, &body);
        assert_eq!(
            verify_with_first(&call, &body),
            Err(VerifyError::MalformedHeader("PAYPAL-TRANSMISSION-TIME")),
            "{time:?}"
        );
    }
}

#[test]
fn a_signature_that_is_not_base64_is_malformed() {
    let body = event("PAYMENT.CAPTURE.COMPLETED");
    let good = Call::signed(TestKey::First, &body).signature;
    for signature in [
        "not base64!".to_owned(),
        good.replace('=', ""),
        format!("{good}=="),
        good.replace('+', "-").replace('/', "_") + "-_",
    ] {
        let call = Call {
            signature: signature.clone(),
            ..Call::signed(TestKey::First, &body)
        };
        assert_eq!(
            verify_with_first(&call, &body),
            Err(VerifyError::MalformedHeader("PAYPAL-TRANSMISSION-SIG")),
            "{signature}"
        );
    }
}

#[test]
fn base64_that_is_not_the_signature_is_a_bad_signature() {
    let body = event("PAYMENT.CAPTURE.COMPLETED");
    for signature in ["", "AAAA", &"A".repeat(344), &"QUJD".repeat(256)] {
        let call = Call {
            signature: signature.to_owned(),
            ..Call::signed(TestKey::First, &body)
        };
        assert_eq!(
            verify_with_first(&call, &body),
            Err(VerifyError::BadSignature),
            "{signature}"
        );
    }
}

#[test]
fn an_empty_or_ambiguous_transmission_id_is_malformed() {
    let body = event("PAYMENT.CAPTURE.COMPLETED");
    for transmission_id in ["", "b2d5a4e0|2026-11-27T01:02:05Z"] {
        let call = Call {
            transmission_id: transmission_id.to_owned(),
            signature: sign(TestKey::First, transmission_id, SENT_AT, WEBHOOK_ID, &body),
            ..Call::signed(TestKey::First, &body)
        };
        assert_eq!(
            verify_with_first(&call, &body),
            Err(VerifyError::MalformedHeader("PAYPAL-TRANSMISSION-ID")),
            "{transmission_id:?}"
        );
    }
}

#[test]
fn oversized_headers_are_refused_before_any_work() {
    let body = event("PAYMENT.CAPTURE.COMPLETED");
    let base = Call::signed(TestKey::First, &body);
    let huge = "A".repeat(100_000);
    let cases = [
        (
            Call {
                transmission_id: huge.clone(),
                ..base.clone()
            },
            "PAYPAL-TRANSMISSION-ID",
        ),
        (
            Call {
                time: huge.clone(),
                ..base.clone()
            },
            "PAYPAL-TRANSMISSION-TIME",
        ),
        (
            Call {
                signature: huge.clone(),
                ..base.clone()
            },
            "PAYPAL-TRANSMISSION-SIG",
        ),
        (
            Call {
                cert_url: format!("https://api.paypal.com/{huge}"),
                ..base.clone()
            },
            "PAYPAL-CERT-URL",
        ),
    ];
    for (call, name) in cases {
        assert_eq!(
            verify_with_first(&call, &body),
            Err(VerifyError::MalformedHeader(name)),
            "{name}"
        );
    }
    let call = Call {
        auth_algo: huge,
        ..base
    };
    assert_eq!(
        verify_with_first(&call, &body),
        Err(VerifyError::UnsupportedAlgorithm)
    );
}

#[test]
fn a_bad_signature_is_reported_before_a_stale_time() {
    let body = event("PAYMENT.CAPTURE.COMPLETED");
    let call = Call::signed_at(TestKey::Second, &sent_at_plus(-3600), &body);
    assert_eq!(
        verify_with_first(&call, &body),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn a_missing_header_is_reported_before_an_oversized_one() {
    let body = event("PAYMENT.CAPTURE.COMPLETED");
    let call = Call {
        transmission_id: "A".repeat(100_000),
        ..Call::signed(TestKey::First, &body)
    };
    let headers: Vec<(String, String)> = call
        .headers()
        .into_iter()
        .filter(|(name, _)| name != "PAYPAL-AUTH-ALGO")
        .collect();
    assert_eq!(
        adapter(&[TestKey::First]).verify(&request(&headers, &body), at(SENT_AT)),
        Err(VerifyError::MissingHeader("PAYPAL-AUTH-ALGO"))
    );
}
