//! Property tests: hostile input never panics, and what PayPal signs always
//! verifies.

use payhook_domain::ports::{GatewayAdapter, VerifyError};
use proptest::prelude::*;

use crate::support::{adapter, at, request, sent_at_plus, Call, TestKey, SENT_AT};

/// Header values that look like PayPal's, with odd ones mixed in, so that
/// every branch of the checks is reached.
fn header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("SHA256withRSA".to_owned()),
        Just("https://api.paypal.com/v1/notifications/certs/CERT-1".to_owned()),
        "https?://[a-z.@:]{0,30}/[a-z]{0,5}",
        "20[0-9]{2}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(Z|[+-][0-9]{2}:[0-9]{2})",
        "[A-Za-z0-9+/=]{0,400}",
        "\\PC{0,60}",
    ]
}

/// Bodies that look like PayPal events, with arbitrary values in the fields
/// the parser reads.
fn event_like() -> impl Strategy<Value = Vec<u8>> {
    let json_value = prop_oneof![
        Just("null".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|n| format!("{n:?}")),
        "[A-Za-z0-9_.-]{0,10}".prop_map(|s| format!("\"{s}\"")),
        Just("{}".to_owned()),
        Just("[]".to_owned()),
        Just(r#"{"currency_code":"USD","value":"1.00"}"#.to_owned()),
        Just(r#"{"related_ids":{"order_id":"5O1"}}"#.to_owned()),
        Just(
            r#"[{"custom_id":"TXN-1","amount":{"currency_code":"USD","value":"1.00"}}]"#.to_owned()
        ),
        Just(r#"[{"custom_id":7,"amount":null},{}]"#.to_owned()),
        Just(r#"[null]"#.to_owned()),
    ];
    let event_type = prop_oneof![
        Just("PAYMENT.CAPTURE.COMPLETED"),
        Just("PAYMENT.CAPTURE.DENIED"),
        Just("PAYMENT.CAPTURE.DECLINED"),
        Just("PAYMENT.CAPTURE.PENDING"),
        Just("CHECKOUT.ORDER.APPROVED"),
        Just("PAYMENT.AUTHORIZATION.CREATED"),
    ];
    // A capture's fields and a checkout order's, mixed: each type reads
    // its own and must ignore the others.
    let fields = [
        "id",
        "amount",
        "custom_id",
        "invoice_id",
        "supplementary_data",
        "purchase_units",
    ];
    (
        event_type,
        prop::collection::vec(prop::option::of(json_value), fields.len()),
    )
        .prop_map(move |(event_type, values)| {
            let members: Vec<String> = fields
                .iter()
                .zip(values)
                .filter_map(|(name, value)| value.map(|value| format!("\"{name}\":{value}")))
                .collect();
            format!(
                r#"{{"id":"WH-1","event_type":"{event_type}","resource":{{{}}}}}"#,
                members.join(",")
            )
            .into_bytes()
        })
}

const NAMES: [&str; 5] = [
    "PAYPAL-TRANSMISSION-ID",
    "PAYPAL-TRANSMISSION-TIME",
    "PAYPAL-TRANSMISSION-SIG",
    "PAYPAL-CERT-URL",
    "PAYPAL-AUTH-ALGO",
];

proptest! {
    #[test]
    fn arbitrary_bytes_and_headers_never_panic(
        body in prop::collection::vec(any::<u8>(), 0..512),
        values in prop::collection::vec(prop::option::of(header_value()), NAMES.len()),
        now in any::<i64>(),
    ) {
        let headers: Vec<(String, String)> = NAMES
            .iter()
            .zip(values)
            .filter_map(|(name, value)| value.map(|value| ((*name).to_owned(), value)))
            .collect();
        let now = chrono::DateTime::from_timestamp(now / 1000, 0).unwrap_or_else(|| at(SENT_AT));
        let adapter = adapter(&[TestKey::First, TestKey::Second]);
        let request = request(&headers, &body);
        let _ = adapter.verify(&request, now);
        let _ = adapter.parse(&request);
    }

    #[test]
    fn event_shaped_bodies_never_panic(body in event_like()) {
        let headers: Vec<(String, String)> = Vec::new();
        let _ = adapter(&[TestKey::First]).parse(&request(&headers, &body));
    }
}

proptest! {
    // Each case signs with RSA, which is slow in a debug build.
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn whatever_paypal_signs_verifies(
        body in prop::collection::vec(any::<u8>(), 0..512),
        skew in -300_i64..=300,
    ) {
        let call = Call::signed_at(TestKey::Second, &sent_at_plus(skew), &body);
        let headers = call.headers();
        let adapter = adapter(&[TestKey::First, TestKey::Second]);
        prop_assert_eq!(adapter.verify(&request(&headers, &body), at(SENT_AT)), Ok(()));
    }

    #[test]
    fn any_change_to_the_body_breaks_the_signature(
        body in prop::collection::vec(any::<u8>(), 1..512),
        index in any::<prop::sample::Index>(),
        flip in 1_u8..=255,
    ) {
        let call = Call::signed(TestKey::First, &body);
        let mut changed = body.clone();
        changed[index.index(body.len())] ^= flip;
        let headers = call.headers();
        prop_assert_eq!(
            adapter(&[TestKey::First]).verify(&request(&headers, &changed), at(SENT_AT)),
            Err(VerifyError::BadSignature)
        );
    }
}
