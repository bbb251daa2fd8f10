//! Property tests: hostile input never panics, and what Stripe signs
//! always verifies.

use payhook_domain::ports::{GatewayAdapter, ParseError, VerifyError};
use payhook_domain::{Currency, DisputeStatus, EventKind, Money, Refund, RefundStatus, Report};
use proptest::prelude::*;

use crate::support::{adapter, at, request, sign, signature_header, TestHeaders, SECRET};

const NOW: i64 = 1_700_000_000;

/// Header values that look like Stripe's: mostly well-formed items with odd
/// values mixed in, so the parser's branches are all reached.
fn header_like() -> impl Strategy<Value = String> {
    let item = prop_oneof![
        "t=[0-9]{0,20}",
        "v1=[0-9a-fA-F]{0,70}",
        "v0=[0-9a-f]{0,64}",
        "[a-z0-9]{0,3}=?[^,]{0,10}",
        "\\PC{0,20}",
    ];
    prop::collection::vec(item, 0..12).prop_map(|items| items.join(","))
}

/// Bodies that look like Stripe events, with arbitrary values in the fields
/// the parser reads.
fn event_like() -> impl Strategy<Value = Vec<u8>> {
    let json_value = prop_oneof![
        Just("null".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|n| format!("{n:?}")),
        "[a-z_]{0,8}".prop_map(|s| format!("\"{s}\"")),
        Just("{}".to_owned()),
        Just("[]".to_owned()),
        Just("\"usd\"".to_owned()),
        Just("{\"transaction_id\":\"TXN-1\"}".to_owned()),
        Just("{\"id\":\"pi_1\"}".to_owned()),
        Just("\"paid\"".to_owned()),
        Just("\"unpaid\"".to_owned()),
        Just("\"no_payment_required\"".to_owned()),
        Just("\"succeeded\"".to_owned()),
        Just("\"requires_action\"".to_owned()),
        Just("\"needs_response\"".to_owned()),
        Just("\"won\"".to_owned()),
        Just("{\"data\":[{\"id\":\"re_1\",\"amount\":1,\"currency\":\"usd\",\"status\":\"succeeded\"}]}".to_owned()),
        Just("{\"data\":[{}]}".to_owned()),
    ];
    let event_type = prop_oneof![
        Just("payment_intent.succeeded"),
        Just("payment_intent.payment_failed"),
        Just("payment_intent.canceled"),
        Just("payment_intent.processing"),
        Just("payment_intent.requires_action"),
        Just("charge.succeeded"),
        Just("charge.failed"),
        Just("checkout.session.completed"),
        Just("checkout.session.async_payment_succeeded"),
        Just("checkout.session.async_payment_failed"),
        Just("checkout.session.expired"),
        Just("charge.refunded"),
        Just("refund.created"),
        Just("refund.updated"),
        Just("refund.failed"),
        Just("charge.refund.updated"),
        Just("charge.dispute.created"),
        Just("charge.dispute.updated"),
        Just("charge.dispute.closed"),
        Just("charge.dispute.funds_withdrawn"),
        Just("charge.dispute.funds_reinstated"),
        Just("customer.created"),
    ];
    let fields = [
        "id",
        "amount",
        "amount_received",
        "amount_total",
        "currency",
        "payment_intent",
        "payment_status",
        "client_reference_id",
        "amount_refunded",
        "refunds",
        "status",
        "reason",
        "metadata",
    ];
    // Refund reports are dated by the envelope's `created`.
    let created = prop_oneof![
        Just(""),
        Just(r#""created":1700000000,"#),
        Just(r#""created":null,"#),
        Just(r#""created":-62135596801,"#),
    ];
    (
        event_type,
        created,
        prop::collection::vec(prop::option::of(json_value), fields.len()),
    )
        .prop_map(move |(event_type, created, values)| {
            let members: Vec<String> = fields
                .iter()
                .zip(values)
                .filter_map(|(name, value)| value.map(|value| format!("\"{name}\":{value}")))
                .collect();
            format!(
                r#"{{"id":"evt_1",{created}"type":"{event_type}","data":{{"object":{{{}}}}}}}"#,
                members.join(",")
            )
            .into_bytes()
        })
}

proptest! {
    #[test]
    fn arbitrary_bytes_and_headers_never_panic(
        body in prop::collection::vec(any::<u8>(), 0..512),
        header in prop_oneof![header_like(), "\\PC{0,200}"],
        has_header in any::<bool>(),
        now in any::<i64>(),
    ) {
        let headers = if has_header { TestHeaders::signature(&header) } else { TestHeaders::default() };
        let now = chrono::DateTime::from_timestamp(now / 1000, 0).unwrap_or_else(|| at(NOW));
        let adapter = adapter(&[SECRET, "whsec_second"]);
        let request = request(&headers, &body);
        let _ = adapter.verify(&request, now);
        let _ = adapter.parse(&request);
    }

    #[test]
    fn event_shaped_bodies_never_panic(body in event_like()) {
        let headers = TestHeaders::default();
        let _ = adapter(&[SECRET]).parse(&request(&headers, &body));
    }

    #[test]
    fn whatever_stripe_signs_verifies(
        body in prop::collection::vec(any::<u8>(), 0..512),
        skew in -300_i64..=300,
    ) {
        let timestamp = NOW + skew;
        let headers = TestHeaders::signature(&signature_header(SECRET, timestamp, &body));
        prop_assert_eq!(adapter(&[SECRET]).verify(&request(&headers, &body), at(NOW)), Ok(()));
    }

    #[test]
    fn any_change_to_the_body_breaks_the_signature(
        body in prop::collection::vec(any::<u8>(), 1..512),
        index in any::<prop::sample::Index>(),
        flip in 1_u8..=255,
    ) {
        let header = format!("t={NOW},v1={}", sign(SECRET, NOW, &body));
        let mut changed = body.clone();
        changed[index.index(body.len())] ^= flip;
        let headers = TestHeaders::signature(&header);
        prop_assert_eq!(
            adapter(&[SECRET]).verify(&request(&headers, &changed), at(NOW)),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn a_completed_session_succeeds_or_waits_only_on_the_documented_statuses(
        status in prop_oneof![
            Just("paid".to_owned()),
            Just("unpaid".to_owned()),
            Just("no_payment_required".to_owned()),
            "[a-z_]{0,20}",
            "\\PC{0,12}",
        ],
    ) {
        let body = serde_json::json!({
            "id": "evt_1",
            "type": "checkout.session.completed",
            "data": {"object": {"id": "cs_1", "payment_status": status}},
        });
        let body = serde_json::to_vec(&body).unwrap();
        let headers = TestHeaders::default();
        let result = adapter(&[SECRET]).parse(&request(&headers, &body));
        match status.as_str() {
            "paid" | "no_payment_required" => {
                prop_assert_eq!(result.map(|event| event.kind), Ok(EventKind::Succeeded));
            }
            "unpaid" => prop_assert_eq!(result.map(|event| event.kind), Ok(EventKind::Pending)),
            _ => prop_assert!(
                matches!(
                    result,
                    Err(ParseError::InvalidField { field: "data.object.payment_status", .. })
                ),
                "{:?}",
                result
            ),
        }
    }
}

/// Every refund status Stripe documents, as payhook reads it.
const REFUND_STATUSES: [(&str, RefundStatus); 5] = [
    ("pending", RefundStatus::Pending),
    ("requires_action", RefundStatus::Pending),
    ("succeeded", RefundStatus::Succeeded),
    ("failed", RefundStatus::Failed),
    ("canceled", RefundStatus::Canceled),
];

/// Every dispute status Stripe documents, as payhook reads it.
const DISPUTE_STATUSES: [(&str, DisputeStatus); 7] = [
    ("warning_needs_response", DisputeStatus::Open),
    ("warning_under_review", DisputeStatus::Open),
    ("needs_response", DisputeStatus::Open),
    ("under_review", DisputeStatus::Open),
    ("won", DisputeStatus::Won),
    ("lost", DisputeStatus::Lost),
    ("warning_closed", DisputeStatus::Closed),
];

/// A status: mostly a documented one, else anything.
fn status_like(documented: Vec<&'static str>) -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(documented).prop_map(str::to_owned),
        "[a-z_]{0,24}",
        "\\PC{0,12}",
    ]
}

proptest! {
    #[test]
    fn a_refund_counts_only_by_a_documented_status(
        status in status_like(REFUND_STATUSES.iter().map(|(name, _)| *name).collect()),
        event_type in prop::sample::select(vec![
            "refund.created", "refund.updated", "refund.failed", "charge.refund.updated",
        ]),
    ) {
        let body = serde_json::json!({
            "id": "evt_1",
            "created": 1_700_000_000,
            "type": event_type,
            "data": {"object": {
                "id": "re_1", "object": "refund", "amount": 500, "currency": "usd",
                "payment_intent": "pi_1", "status": status,
            }},
        });
        let body = serde_json::to_vec(&body).unwrap();
        let headers = TestHeaders::default();
        let result = adapter(&[SECRET]).parse(&request(&headers, &body));
        let documented = REFUND_STATUSES.iter().find(|(name, _)| *name == status);
        match documented {
            Some((_, expected)) => {
                let event = result.unwrap();
                prop_assert_eq!(event.kind, EventKind::Refund);
                let Some(Report::Refund(report)) = event.report else {
                    return Err(TestCaseError::fail("no refund report"));
                };
                prop_assert_eq!(report.refunds.len(), 1);
                prop_assert_eq!(report.refunds[0].status, *expected);
            }
            None => prop_assert!(
                matches!(
                    result,
                    Err(ParseError::InvalidField { field: "data.object.status", .. })
                ),
                "{:?}",
                result
            ),
        }
    }

    #[test]
    fn a_dispute_is_read_only_by_a_documented_status(
        status in status_like(DISPUTE_STATUSES.iter().map(|(name, _)| *name).collect()),
        event_type in prop::sample::select(vec![
            "charge.dispute.created",
            "charge.dispute.updated",
            "charge.dispute.closed",
            "charge.dispute.funds_withdrawn",
            "charge.dispute.funds_reinstated",
        ]),
    ) {
        let body = serde_json::json!({
            "id": "evt_1",
            "type": event_type,
            "data": {"object": {
                "id": "dp_1", "object": "dispute", "amount": 500, "currency": "usd",
                "payment_intent": "pi_1", "reason": "fraudulent", "status": status,
            }},
        });
        let body = serde_json::to_vec(&body).unwrap();
        let headers = TestHeaders::default();
        let result = adapter(&[SECRET]).parse(&request(&headers, &body));
        let documented = DISPUTE_STATUSES.iter().find(|(name, _)| *name == status);
        match documented {
            Some((_, expected)) => {
                let event = result.unwrap();
                prop_assert_eq!(event.kind, EventKind::Dispute);
                let Some(Report::Dispute(dispute)) = event.report else {
                    return Err(TestCaseError::fail("no dispute report"));
                };
                prop_assert_eq!(dispute.status, *expected);
            }
            None => prop_assert!(
                matches!(
                    result,
                    Err(ParseError::InvalidField { field: "data.object.status", .. })
                ),
                "{:?}",
                result
            ),
        }
    }

    #[test]
    fn a_refunded_charge_reports_its_total_and_each_listed_refund_in_order(
        listed in prop::collection::vec(
            (1_i64..=10_000_000, prop::sample::select(REFUND_STATUSES.to_vec())),
            0..12,
        ),
        total in 0_i64..=100_000_000,
        created in 0_i64..=4_102_444_800,
    ) {
        let data: Vec<serde_json::Value> = listed
            .iter()
            .enumerate()
            .map(|(index, (amount, (status, _)))| serde_json::json!({
                "id": format!("re_{index}"), "object": "refund", "amount": amount,
                "currency": "usd", "status": status, "payment_intent": "pi_1",
            }))
            .collect();
        let body = serde_json::json!({
            "id": "evt_1",
            "created": created,
            "type": "charge.refunded",
            "data": {"object": {
                "id": "ch_1", "object": "charge", "amount": 100_000_000,
                "amount_refunded": total, "currency": "usd", "payment_intent": "pi_1",
                "refunds": {"object": "list", "data": data, "has_more": false},
            }},
        });
        let body = serde_json::to_vec(&body).unwrap();
        let headers = TestHeaders::default();
        let event = adapter(&[SECRET]).parse(&request(&headers, &body)).unwrap();
        let usd = Currency::parse("USD").unwrap();
        let Some(Report::Refund(report)) = event.report else {
            return Err(TestCaseError::fail("no refund report"));
        };
        let expected: Vec<Refund> = listed
            .iter()
            .enumerate()
            .map(|(index, (amount, (_, status)))| Refund {
                refund_id: format!("re_{index}"),
                amount: Money::from_minor(*amount, usd),
                status: *status,
            })
            .collect();
        prop_assert_eq!(report.refunds, expected);
        prop_assert_eq!(report.running_total, Some(Money::from_minor(total, usd)));
        prop_assert_eq!(report.reported_at.timestamp(), created);
    }
}
