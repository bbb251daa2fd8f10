//! The second-wave event types (DESIGN.md, "The whole life of a
//! payment"): PaymentIntents canceled or still in progress, and Checkout
//! Sessions, each read from its fixture and from the fixture with one
//! thing changed.

use payhook_domain::ports::{GatewayAdapter, ParseError};
use payhook_domain::{Currency, EventKind, GatewayEvent, Money, MoneyError, References};
use serde_json::{json, Value};

use crate::support::{adapter, fixture, request, TestHeaders, SECRET};

fn parse(body: &[u8]) -> Result<GatewayEvent, ParseError> {
    let headers = TestHeaders::default();
    adapter(&[SECRET]).parse(&request(&headers, body))
}

fn parse_fixture(name: &str) -> GatewayEvent {
    parse(&fixture(name)).unwrap_or_else(|error| panic!("{name}: {error}"))
}

/// The fixture `name` with `change` applied to its `data.object`.
fn parse_changed(
    name: &str,
    change: impl FnOnce(&mut serde_json::Map<String, Value>),
) -> Result<GatewayEvent, ParseError> {
    let mut event: Value = serde_json::from_slice(&fixture(name)).unwrap();
    change(event["data"]["object"].as_object_mut().unwrap());
    parse(&serde_json::to_vec(&event).unwrap())
}

fn money(minor: i64, code: &str) -> Option<Money> {
    Some(Money::from_minor(minor, Currency::parse(code).unwrap()))
}

fn stripe_event(
    event_id: &str,
    event_type: &str,
    kind: EventKind,
    references: [Option<&str>; 3],
    amount: Option<Money>,
) -> GatewayEvent {
    let [transaction_id, external_id, gateway_reference] = references.map(|r| r.map(str::to_owned));
    GatewayEvent {
        gateway: "stripe".into(),
        event_id: event_id.into(),
        event_type: event_type.into(),
        kind,
        references: References {
            transaction_id,
            external_id,
            gateway_reference,
        },
        amount,
        report: None,
    }
}

const SESSION_TYPES: [&str; 4] = [
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
];

const NEW_INTENT_TYPES: [&str; 3] = [
    "payment_intent.canceled",
    "payment_intent.processing",
    "payment_intent.requires_action",
];

#[test]
fn payment_intent_canceled() {
    assert_eq!(
        parse_fixture("payment_intent.canceled"),
        stripe_event(
            "evt_3PqY6zLkdIwHu7ix3Xy2Za3B",
            "payment_intent.canceled",
            EventKind::Canceled,
            [
                Some("TXN-91A2B3C4D5"),
                Some("pi_3PqY6zLkdIwHu7ix3St0Uv1W"),
                Some("pi_3PqY6zLkdIwHu7ix3St0Uv1W"),
            ],
            money(7500, "USD"),
        )
    );
}

#[test]
fn payment_intent_processing() {
    assert_eq!(
        parse_fixture("payment_intent.processing"),
        stripe_event(
            "evt_3PqZ7aLkdIwHu7ix4Hi7Jk8L",
            "payment_intent.processing",
            EventKind::Pending,
            [
                Some("TXN-A2B3C4D5E6"),
                Some("pi_3PqZ7aLkdIwHu7ix4Cd5Ef6G"),
                Some("pi_3PqZ7aLkdIwHu7ix4Cd5Ef6G"),
            ],
            money(15000, "USD"),
        )
    );
}

#[test]
fn payment_intent_requires_action() {
    assert_eq!(
        parse_fixture("payment_intent.requires_action"),
        stripe_event(
            "evt_3PqA8bLkdIwHu7ix5Wx3Yz4A",
            "payment_intent.requires_action",
            EventKind::Pending,
            [
                Some("TXN-B3C4D5E6F7"),
                Some("pi_3PqA8bLkdIwHu7ix5Rs1Tu2V"),
                Some("pi_3PqA8bLkdIwHu7ix5Rs1Tu2V"),
            ],
            money(3200, "EUR"),
        )
    );
}

#[test]
fn checkout_session_completed_paid() {
    assert_eq!(
        parse_fixture("checkout.session.completed"),
        stripe_event(
            "evt_1PqU2vLkdIwHu7ixQr3St4Uv",
            "checkout.session.completed",
            EventKind::Succeeded,
            [
                Some("TXN-5D6E7F8091"),
                Some("cs_test_a1Kx7Vb2Nc3Md4Pe5Qf6Rg7Sh8Ti9Uj0Vk1Wl2Xm3Yn4Zo5Ap6Bq7Cr8Ds"),
                Some("pi_3PqU2uLkdIwHu7ix0Wx5Yz6A"),
            ],
            money(15000, "USD"),
        )
    );
}

#[test]
fn checkout_session_completed_unpaid_is_pending() {
    let event = parse_changed("checkout.session.completed", |session| {
        session.insert("payment_status".into(), "unpaid".into());
    })
    .unwrap();
    assert_eq!(event.kind, EventKind::Pending);
    assert_eq!(
        event.references,
        parse_fixture("checkout.session.completed").references
    );
    assert_eq!(event.amount, money(15000, "USD"));
}

#[test]
fn checkout_session_completed_without_payment_required_succeeds() {
    // A 100 % discount: nothing to pay, the order is settled.
    let event = parse_changed("checkout.session.completed", |session| {
        session.insert("payment_status".into(), "no_payment_required".into());
        session.insert("amount_total".into(), 0.into());
        session.insert("payment_intent".into(), Value::Null);
    })
    .unwrap();
    assert_eq!(event.kind, EventKind::Succeeded);
    assert_eq!(event.amount, money(0, "USD"));
    assert_eq!(event.references.gateway_reference, None);
}

#[test]
fn checkout_session_async_payment_succeeded() {
    // The shop passed its id as `client_reference_id` only.
    assert_eq!(
        parse_fixture("checkout.session.async_payment_succeeded"),
        stripe_event(
            "evt_1PqV3wLkdIwHu7ixAb4Cd5Ef",
            "checkout.session.async_payment_succeeded",
            EventKind::Succeeded,
            [
                Some("TXN-6E7F8091A2"),
                Some("cs_test_b1Lm8Wc3Od4Ne5Qf6Rg7Sh8Ti9Uj0Vk1Wl2Xm3Yn4Zo5Ap6Bq7Cr8Ds9Et"),
                Some("pi_3PqV3xLkdIwHu7ix1Gh6Ij7K"),
            ],
            money(8990, "EUR"),
        )
    );
}

#[test]
fn checkout_session_async_payment_failed() {
    assert_eq!(
        parse_fixture("checkout.session.async_payment_failed"),
        stripe_event(
            "evt_1PqW4xLkdIwHu7ixGh5Ij6Kl",
            "checkout.session.async_payment_failed",
            EventKind::Failed,
            [
                Some("TXN-7F8091A2B3"),
                Some("cs_test_c1Mn9Xd4Pe5Of6Rg7Sh8Ti9Uj0Vk1Wl2Xm3Yn4Zo5Ap6Bq7Cr8Ds9Et0Fu"),
                Some("pi_3PqW4yLkdIwHu7ix2Mn8Op9Q"),
            ],
            money(4200, "USD"),
        )
    );
}

#[test]
fn checkout_session_expired() {
    // No PaymentIntent was ever made for it.
    assert_eq!(
        parse_fixture("checkout.session.expired"),
        stripe_event(
            "evt_1PqX5yLkdIwHu7ixMn6Op7Qr",
            "checkout.session.expired",
            EventKind::Canceled,
            [
                Some("TXN-8091A2B3C4"),
                Some("cs_test_d1No0Ye5Qf6Pg7Sh8Ti9Uj0Vk1Wl2Xm3Yn4Zo5Ap6Bq7Cr8Ds9Et0Fu1Gv"),
                None,
            ],
            money(2500, "GBP"),
        )
    );
}

#[test]
fn a_session_takes_the_shops_id_from_metadata_first_then_client_reference_id() {
    let both = parse_changed("checkout.session.completed", |session| {
        session.insert("client_reference_id".into(), "cart-77".into());
    });
    assert_eq!(
        both.unwrap().references.transaction_id.as_deref(),
        Some("TXN-5D6E7F8091")
    );

    let reference_only = parse_changed("checkout.session.completed", |session| {
        session.insert("metadata".into(), json!({"order_id": "1044"}));
    });
    assert_eq!(
        reference_only.unwrap().references.transaction_id.as_deref(),
        Some("TXN-5D6E7F8091")
    );

    let empty_metadata_value = parse_changed("checkout.session.completed", |session| {
        session.insert("metadata".into(), json!({"transaction_id": ""}));
        session.insert("client_reference_id".into(), "TXN-FROM-REF".into());
    });
    assert_eq!(
        empty_metadata_value
            .unwrap()
            .references
            .transaction_id
            .as_deref(),
        Some("TXN-FROM-REF")
    );

    let neither = parse_changed("checkout.session.completed", |session| {
        session.insert("metadata".into(), Value::Null);
        session.insert("client_reference_id".into(), Value::Null);
    })
    .unwrap();
    assert_eq!(neither.references.transaction_id, None);
    // The session id and the PaymentIntent still find the payment.
    assert!(!neither.references.is_empty());
}

#[test]
fn a_wrongly_typed_client_reference_id_is_refused_even_beside_metadata() {
    let result = parse_changed("checkout.session.completed", |session| {
        session.insert("client_reference_id".into(), 1044.into());
    });
    assert!(matches!(
        result,
        Err(ParseError::InvalidField {
            field: "data.object.client_reference_id",
            ..
        })
    ));
}

#[test]
fn an_unknown_payment_status_is_refused_not_guessed() {
    for status in [json!("processing"), json!("PAID"), json!("")] {
        let result = parse_changed("checkout.session.completed", |session| {
            session.insert("payment_status".into(), status.clone());
        });
        assert!(
            matches!(
                result,
                Err(ParseError::InvalidField {
                    field: "data.object.payment_status",
                    ..
                })
            ),
            "{status} gave {result:?}"
        );
    }
    let missing = parse_changed("checkout.session.completed", |session| {
        session.remove("payment_status");
    });
    assert_eq!(
        missing,
        Err(ParseError::MissingField("data.object.payment_status"))
    );
}

#[test]
fn a_session_without_a_total_has_no_amount() {
    for event_type in SESSION_TYPES {
        let result = parse_changed(event_type, |session| {
            session.insert("amount_total".into(), Value::Null);
        });
        let event = result.unwrap_or_else(|error| panic!("{event_type}: {error}"));
        assert_eq!(event.amount, None, "{event_type}");
    }
}

#[test]
fn a_session_total_needs_its_currency() {
    for event_type in SESSION_TYPES {
        let missing = parse_changed(event_type, |session| {
            session.insert("currency".into(), Value::Null);
        });
        assert_eq!(
            missing,
            Err(ParseError::MissingField("data.object.currency")),
            "{event_type}"
        );
        let unknown = parse_changed(event_type, |session| {
            session.insert("currency".into(), "xyz".into());
        });
        assert_eq!(
            unknown,
            Err(ParseError::Money {
                field: "data.object.currency",
                source: MoneyError::UnknownCurrency("xyz".into()),
            }),
            "{event_type}"
        );
    }
}

#[test]
fn a_session_total_follows_stripes_currency_exponents() {
    let with = |amount: i64, currency: &str| {
        parse_changed("checkout.session.completed", |session| {
            session.insert("amount_total".into(), amount.into());
            session.insert("currency".into(), currency.into());
        })
        .unwrap()
        .amount
    };
    assert_eq!(with(1500, "jpy"), money(1500, "JPY"));
    assert_eq!(with(50000, "isk"), money(500, "ISK"));
    assert_eq!(with(5000, "mga"), money(500_000, "MGA"));
}

#[test]
fn a_session_reads_neither_amount_nor_amount_received() {
    // Those are PaymentIntent members; a session's money is `amount_total`.
    let result = parse_changed("checkout.session.completed", |session| {
        session.insert("amount".into(), 1.into());
        session.insert("amount_received".into(), 2.into());
    });
    assert_eq!(result.unwrap().amount, money(15000, "USD"));
}

#[test]
fn a_session_with_an_expanded_payment_intent_names_its_id() {
    let result = parse_changed("checkout.session.completed", |session| {
        let intent: Value = serde_json::from_slice(&fixture("payment_intent.succeeded")).unwrap();
        let mut intent = intent["data"]["object"].clone();
        intent["id"] = "pi_3PqU2uLkdIwHu7ix0Wx5Yz6A".into();
        session.insert("payment_intent".into(), intent);
    });
    assert_eq!(result.unwrap(), parse_fixture("checkout.session.completed"));
}

#[test]
fn every_session_type_needs_its_object() {
    for event_type in SESSION_TYPES {
        let mut event: Value = serde_json::from_slice(&fixture(event_type)).unwrap();
        event["data"]["object"] = Value::Null;
        assert_eq!(
            parse(&serde_json::to_vec(&event).unwrap()),
            Err(ParseError::MissingField("data.object")),
            "{event_type}"
        );
    }
}

#[test]
fn the_new_intent_types_need_amount_and_currency_like_the_others() {
    for event_type in NEW_INTENT_TYPES {
        let result = parse_changed(event_type, |intent| {
            intent.remove("amount");
        });
        assert_eq!(
            result,
            Err(ParseError::MissingField("data.object.amount")),
            "{event_type}"
        );
        let result = parse_changed(event_type, |intent| {
            intent.remove("currency");
        });
        assert_eq!(
            result,
            Err(ParseError::MissingField("data.object.currency")),
            "{event_type}"
        );
    }
}

#[test]
fn only_a_succeeded_intent_reports_amount_received() {
    // A canceled or pending intent has received nothing, or not yet.
    for event_type in NEW_INTENT_TYPES {
        let result = parse_changed(event_type, |intent| {
            intent.insert("amount_received".into(), 1.into());
        });
        assert_eq!(
            result.unwrap().amount,
            parse_fixture(event_type).amount,
            "{event_type}"
        );
    }
}

#[test]
fn the_intent_types_of_other_states_stay_not_handled() {
    for event_type in [
        "payment_intent.created",
        "payment_intent.amount_capturable_updated",
        "payment_intent.partially_funded",
    ] {
        let mut event: Value = serde_json::from_slice(&fixture("payment_intent.canceled")).unwrap();
        event["type"] = event_type.into();
        let event = parse(&serde_json::to_vec(&event).unwrap()).unwrap();
        assert_eq!(event.kind, EventKind::NotHandled, "{event_type}");
        assert!(event.references.is_empty(), "{event_type}");
    }
}
