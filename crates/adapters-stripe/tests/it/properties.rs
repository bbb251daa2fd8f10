//! Property tests: hostile input never panics, and what Stripe signs
//! always verifies.

use payhook_domain::ports::{GatewayAdapter, ParseError, VerifyError};
use payhook_domain::EventKind;
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
        "metadata",
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
                r#"{{"id":"evt_1","type":"{event_type}","data":{{"object":{{{}}}}}}}"#,
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
