//! Property tests: hostile input never panics, and what PayPal signs always
//! verifies.

use payhook_domain::ports::{GatewayAdapter, VerifyError};
use payhook_domain::{DisputeStatus, EventKind, Report};
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
        Just("\"2026-11-28T09:14:04.543Z\"".to_owned()),
        Just("\"COMPLETED\"".to_owned()),
        Just(r#"{"total_refunded_amount":{"currency_code":"USD","value":"80.00"}}"#.to_owned()),
        Just(
            r#"[{"rel":"up","href":"https://api.paypal.com/v2/payments/captures/CAP1"}]"#
                .to_owned()
        ),
        Just(r#"[{"rel":"up","href":"/captures/"},{"rel":7}]"#.to_owned()),
        Just(r#"{"outcome_code":"RESOLVED_BUYER_FAVOUR"}"#.to_owned()),
        Just(r#"[{"seller_transaction_id":"CAP1","custom":"TXN-1"}]"#.to_owned()),
        Just(r#"{"reason":"ECHECK"}"#.to_owned()),
    ];
    let event_type = prop_oneof![
        Just("PAYMENT.CAPTURE.COMPLETED"),
        Just("PAYMENT.CAPTURE.DENIED"),
        Just("PAYMENT.CAPTURE.DECLINED"),
        Just("PAYMENT.CAPTURE.PENDING"),
        Just("CHECKOUT.ORDER.APPROVED"),
        Just("PAYMENT.AUTHORIZATION.CREATED"),
        Just("PAYMENT.CAPTURE.REFUNDED"),
        Just("PAYMENT.CAPTURE.REVERSED"),
        Just("CUSTOMER.DISPUTE.CREATED"),
        Just("CUSTOMER.DISPUTE.UPDATED"),
        Just("CUSTOMER.DISPUTE.RESOLVED"),
    ];
    // The fields of a capture, a checkout order, a refund and a dispute,
    // mixed: each type reads its own and must ignore the others. Each is,
    // by turns, a value of the shape PayPal sends (so that whole events
    // parse often enough for the properties to say something), any value,
    // or absent.
    let fields: [(&str, &str); 17] = [
        ("id", r#""CAP1""#),
        ("amount", r#"{"currency_code":"USD","value":"30.00"}"#),
        ("custom_id", r#""TXN-1""#),
        ("invoice_id", r#""INV-1""#),
        (
            "supplementary_data",
            r#"{"related_ids":{"order_id":"5O1"}}"#,
        ),
        (
            "purchase_units",
            r#"[{"custom_id":"TXN-1","amount":{"currency_code":"USD","value":"1.00"}}]"#,
        ),
        ("status", r#""COMPLETED""#),
        ("status_details", r#"{"reason":"ECHECK"}"#),
        (
            "seller_payable_breakdown",
            r#"{"total_refunded_amount":{"currency_code":"USD","value":"80.00"}}"#,
        ),
        (
            "links",
            r#"[{"rel":"up","href":"https://api.paypal.com/v2/payments/captures/CAP1"}]"#,
        ),
        ("update_time", r#""2026-11-28T01:13:29-08:00""#),
        ("create_time", r#""2026-11-28T01:13:29-08:00""#),
        ("dispute_id", r#""PP-D-1""#),
        (
            "dispute_amount",
            r#"{"currency_code":"USD","value":"150.00"}"#,
        ),
        ("reason", r#""MERCHANDISE_OR_SERVICE_NOT_RECEIVED""#),
        (
            "dispute_outcome",
            r#"{"outcome_code":"RESOLVED_BUYER_FAVOUR"}"#,
        ),
        (
            "disputed_transactions",
            r#"[{"seller_transaction_id":"CAP1","custom":"TXN-1"}]"#,
        ),
    ];
    let member = |name: &'static str, shaped: &'static str| {
        prop_oneof![
            4 => Just(Some(format!("\"{name}\":{shaped}"))),
            1 => json_value.clone().prop_map(move |value| Some(format!("\"{name}\":{value}"))),
            1 => Just(None),
        ]
    };
    let members: Vec<_> = fields
        .iter()
        .map(|(name, shaped)| member(name, shaped))
        .collect();
    let event_time = member("create_time", r#""2026-11-28T09:14:04.543Z""#);
    (event_type, members, event_time).prop_map(|(event_type, members, event_time)| {
        let members: Vec<String> = members.into_iter().flatten().collect();
        // The envelope's own create_time, which refunds are ordered by.
        let event_time = event_time
            .map(|time| format!("{time},"))
            .unwrap_or_default();
        format!(
            r#"{{"id":"WH-1",{event_time}"event_type":"{event_type}","resource":{{{}}}}}"#,
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
    // Parsing is fast, and a whole refund is one body in fifty or so.
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn a_report_comes_with_its_kind_and_its_amount(body in event_like()) {
        let headers: Vec<(String, String)> = Vec::new();
        if let Ok(event) = adapter(&[TestKey::First]).parse(&request(&headers, &body)) {
            match (event.kind, &event.report) {
                (EventKind::Refund, Some(Report::Refund(report))) => {
                    // One PayPal refund per event, and the event's amount is it.
                    prop_assert_eq!(report.refunds.len(), 1);
                    prop_assert_eq!(event.amount, Some(report.refunds[0].amount));
                    prop_assert!(!report.refunds[0].refund_id.is_empty());
                }
                (EventKind::Dispute, Some(Report::Dispute(dispute))) => {
                    prop_assert_eq!(event.amount, Some(dispute.amount));
                    prop_assert!(!dispute.dispute_id.is_empty());
                    if event.event_type == "PAYMENT.CAPTURE.REVERSED" {
                        prop_assert_eq!(dispute.status, DisputeStatus::Lost);
                    } else if event.event_type != "CUSTOMER.DISPUTE.RESOLVED" {
                        prop_assert_eq!(dispute.status, DisputeStatus::Open);
                    } else {
                        prop_assert!(dispute.status.is_final());
                    }
                }
                (EventKind::Refund | EventKind::Dispute, report) => {
                    prop_assert!(false, "{:?} with {:?}", event.kind, report);
                }
                (_, report) => prop_assert_eq!(report, &None),
            }
        }
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
