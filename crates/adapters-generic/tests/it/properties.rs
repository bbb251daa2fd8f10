//! Property tests: hostile input never panics, whatever a sender signs
//! verifies, and exact amounts survive the trip through the payload.

use payhook_adapters_generic::GenericAdapter;
use payhook_domain::ports::{GatewayAdapter, VerifyError};
use payhook_domain::{Currency, EventKind, Money, RefundStatus, Report};
use proptest::prelude::*;

use crate::support::{
    adapter, at, fixture, request, sign_simple, sign_standard, signed_simple, signed_standard,
    TestHeaders, FIXTURES, ID, RAW_SECRET, SECRET,
};

const NOW: i64 = 1_700_000_000;

/// Header values that look like the schemes' own: well-formed entries with
/// odd values mixed in, so that the parsers' branches are all reached.
fn signature_like() -> impl Strategy<Value = String> {
    let entry = prop_oneof![
        "v1,[A-Za-z0-9+/]{0,46}={0,2}",
        "v1a,[A-Za-z0-9+/=]{0,10}",
        "sha256=[0-9a-fA-F]{0,70}",
        "[a-z0-9]{0,4}[,=]?[^ ]{0,10}",
        "\\PC{0,20}",
    ];
    prop::collection::vec(entry, 0..10).prop_map(|entries| entries.join(" "))
}

/// Any subset of the headers the adapter reads, with arbitrary values.
fn headers_like() -> impl Strategy<Value = TestHeaders> {
    let value = prop_oneof![
        signature_like(),
        "[0-9]{0,22}",
        "[ -~]{0,300}",
        "\\PC{0,40}",
    ];
    let name = prop::sample::select(vec![
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "X-Webhook-Signature",
        "Idempotency-Key",
        "content-type",
    ]);
    prop::collection::vec((name, value), 0..8).prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect()
    })
}

/// Bodies shaped like the generic payload, with arbitrary values in the
/// fields the parser reads.
fn payload_like() -> impl Strategy<Value = Vec<u8>> {
    let json_value = prop_oneof![
        Just("null".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|n| format!("{n:?}")),
        "-?[0-9]{1,25}(\\.[0-9]{0,6})?".prop_map(|n| n.clone()),
        "-?[0-9]{1,25}(\\.[0-9]{0,6})?".prop_map(|n| format!("\"{n}\"")),
        "[a-zA-Z_]{0,10}".prop_map(|s| format!("\"{s}\"")),
        Just("\"completed\"".to_owned()),
        Just("\"failed\"".to_owned()),
        Just("\"pending\"".to_owned()),
        Just("\"canceled\"".to_owned()),
        Just("\"refunded\"".to_owned()),
        Just("\"USD\"".to_owned()),
        Just("{}".to_owned()),
        Just("[]".to_owned()),
    ];
    // Each field is, by turns, a value of the shape a gateway sends (so
    // that whole calls parse often enough for the properties to say
    // something), any value, or absent.
    let fields: [(&str, &str); 6] = [
        ("payment_id", r#""ext_1""#),
        ("transaction_id", r#""TXN-1""#),
        ("status", r#""refunded""#),
        ("amount", r#""50.00""#),
        ("currency", r#""USD""#),
        ("refund_id", r#""rf_1""#),
    ];
    let members: Vec<_> = fields
        .into_iter()
        .map(|(name, shaped)| {
            prop_oneof![
                2 => Just(Some(format!("\"{name}\":{shaped}"))),
                1 => json_value.clone().prop_map(move |value| Some(format!("\"{name}\":{value}"))),
                1 => Just(None),
            ]
        })
        .collect();
    members.prop_map(|members| {
        let members: Vec<String> = members.into_iter().flatten().collect();
        format!("{{{}}}", members.join(",")).into_bytes()
    })
}

proptest! {
    #[test]
    fn arbitrary_bytes_and_headers_never_panic(
        body in prop::collection::vec(any::<u8>(), 0..512),
        headers in headers_like(),
        now in any::<i64>(),
    ) {
        let now = chrono::DateTime::from_timestamp(now / 1000, 0).unwrap_or_else(|| at(NOW));
        let request = request(&headers, &body);
        for adapter in [adapter(&[SECRET, RAW_SECRET]), GenericAdapter::unsigned()] {
            let _ = adapter.verify(&request, now);
            let _ = adapter.parse(&request);
        }
    }

    #[test]
    fn payload_shaped_bodies_never_panic(body in payload_like(), headers in headers_like()) {
        let _ = adapter(&[SECRET]).parse(&request(&headers, &body));
    }

    #[test]
    fn whatever_is_signed_verifies(
        body in prop::collection::vec(any::<u8>(), 0..512),
        skew in -300_i64..=300,
        id in "[!-~]{1,255}",
    ) {
        let headers = signed_standard(SECRET, &id, NOW + skew, &body);
        prop_assert_eq!(adapter(&[SECRET]).verify(&request(&headers, &body), at(NOW)), Ok(()));
        let headers = signed_simple(RAW_SECRET, &body);
        prop_assert_eq!(adapter(&[RAW_SECRET]).verify(&request(&headers, &body), at(NOW)), Ok(()));
    }

    #[test]
    fn any_change_to_the_body_breaks_the_signature(
        body in prop::collection::vec(any::<u8>(), 1..512),
        index in any::<prop::sample::Index>(),
        flip in 1_u8..=255,
    ) {
        let standard = format!("v1,{}", sign_standard(SECRET, ID, NOW, &body));
        let simple = format!("sha256={}", sign_simple(RAW_SECRET, &body));
        let mut changed = body.clone();
        changed[index.index(body.len())] ^= flip;
        let headers = crate::support::standard_headers(ID, NOW, &standard);
        prop_assert_eq!(
            adapter(&[SECRET]).verify(&request(&headers, &changed), at(NOW)),
            Err(VerifyError::BadSignature)
        );
        let headers = crate::support::simple_headers(&simple);
        prop_assert_eq!(
            adapter(&[RAW_SECRET]).verify(&request(&headers, &changed), at(NOW)),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn headers_a_replay_can_change_never_change_the_simple_event_id(
        extra in headers_like(),
        fixture_name in prop::sample::select(FIXTURES.to_vec()),
    ) {
        // What an attacker holding one captured simple call can vary is
        // every header but the signature (the body is signed). None of it
        // may make the call another event.
        let body = fixture(fixture_name);
        let signed = signed_simple(RAW_SECRET, &body);
        let adapter = adapter(&[RAW_SECRET]);
        let first = adapter.parse(&request(&signed, &body)).unwrap();
        let mut replay: TestHeaders = extra
            .into_iter()
            .filter(|(name, _)| {
                !name.eq_ignore_ascii_case("webhook-signature")
                    && !name.eq_ignore_ascii_case("X-Webhook-Signature")
            })
            .collect();
        replay.extend(signed);
        let request = request(&replay, &body);
        prop_assert_eq!(adapter.verify(&request, at(NOW)), Ok(()));
        let replayed = adapter.parse(&request).unwrap();
        prop_assert_eq!(replayed.event_id, first.event_id);
        // Nor another time: an unsigned webhook-timestamp does not date a
        // refund.
        prop_assert_eq!(replayed.report, first.report);
    }

    #[test]
    fn a_refund_is_one_succeeded_refund_of_the_amount(
        body in payload_like(),
        headers in headers_like(),
    ) {
        if let Ok(event) = adapter(&[SECRET]).parse(&request(&headers, &body)) {
            match (&event.kind, &event.report) {
                (EventKind::Refund, Some(Report::Refund(report))) => {
                    prop_assert_eq!(event.event_type.as_str(), "payment.refunded");
                    prop_assert_eq!(report.refunds.len(), 1);
                    let refund = &report.refunds[0];
                    prop_assert!(!refund.refund_id.is_empty());
                    prop_assert_eq!(Some(refund.amount), event.amount);
                    prop_assert_eq!(refund.status, RefundStatus::Succeeded);
                    prop_assert_eq!(report.running_total, None);
                }
                (EventKind::Refund, report) => prop_assert!(false, "a refund with {:?}", report),
                (_, report) => prop_assert_eq!(report, &None),
            }
        }
    }

    #[test]
    fn exact_amounts_round_trip_as_numbers_and_strings(
        minor in 0_i64..=i64::MAX,
        code in prop::sample::select(vec!["USD", "JPY", "KWD", "EUR", "CLF", "BHD"]),
        quoted in any::<bool>(),
    ) {
        let currency = Currency::parse(code).unwrap();
        let money = Money::from_minor(minor, currency);
        let text = money.amount_string();
        let amount = if quoted { format!("\"{text}\"") } else { text };
        let body = format!(
            r#"{{"transaction_id":"TXN-1","status":"failed","amount":{amount},"currency":"{code}"}}"#
        );
        let headers = TestHeaders::new();
        let event = adapter(&[SECRET]).parse(&request(&headers, body.as_bytes())).unwrap();
        prop_assert_eq!(event.amount, Some(money));
    }
}
