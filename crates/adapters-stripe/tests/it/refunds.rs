//! Refunds and disputes (DESIGN.md, "The whole life of a payment"):
//! `charge.refunded`, the Refund events and the Dispute events, each read
//! from its fixture and from the fixture with one thing changed.

use chrono::{DateTime, Utc};
use payhook_domain::ports::{GatewayAdapter, ParseError};
use payhook_domain::{
    Currency, Dispute, DisputeStatus, EventKind, GatewayEvent, Money, MoneyError, References,
    Refund, RefundReport, RefundStatus, Report,
};
use serde_json::{json, Map, Value};

use crate::support::{adapter, fixture, request, TestHeaders, SECRET};

/// The charge and PaymentIntent every fixture of this module is about.
const INTENT: &str = "pi_3PqR8sLkdIwHu7ix1Fg4Hj5K";
const FIRST_REFUND: &str = "re_3PqR8sLkdIwHu7ix1Ab7Cd8E";
const SECOND_REFUND: &str = "re_3PqR8sLkdIwHu7ix1Gh9Jk0L";
const DISPUTE: &str = "dp_1PqT3uLkdIwHu7ix0Vw2Xy3Z";

const REFUND_TYPES: [&str; 4] = [
    "refund.created",
    "refund.updated",
    "refund.failed",
    "charge.refund.updated",
];

const DISPUTE_TYPES: [&str; 5] = [
    "charge.dispute.created",
    "charge.dispute.updated",
    "charge.dispute.closed",
    "charge.dispute.funds_withdrawn",
    "charge.dispute.funds_reinstated",
];

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
    change: impl FnOnce(&mut Map<String, Value>),
) -> Result<GatewayEvent, ParseError> {
    let mut event: Value = serde_json::from_slice(&fixture(name)).unwrap();
    change(event["data"]["object"].as_object_mut().unwrap());
    parse(&serde_json::to_vec(&event).unwrap())
}

fn money(minor: i64, code: &str) -> Money {
    Money::from_minor(minor, Currency::parse(code).unwrap())
}

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds, 0).unwrap()
}

fn usd_refund(id: &str, minor: i64, status: RefundStatus) -> Refund {
    Refund {
        refund_id: id.into(),
        amount: money(minor, "USD"),
        status,
    }
}

/// Found by the PaymentIntent, as external id and as gateway reference.
fn by_intent(transaction_id: Option<&str>) -> References {
    References {
        transaction_id: transaction_id.map(str::to_owned),
        external_id: Some(INTENT.into()),
        gateway_reference: Some(INTENT.into()),
    }
}

fn refund_event(
    event_id: &str,
    event_type: &str,
    references: References,
    amount: Money,
    report: RefundReport,
) -> GatewayEvent {
    GatewayEvent {
        gateway: "stripe".into(),
        event_id: event_id.into(),
        event_type: event_type.into(),
        kind: EventKind::Refund,
        references,
        amount: Some(amount),
        report: Some(Report::Refund(report)),
    }
}

fn one_refund(refund: Refund, seconds: i64) -> RefundReport {
    RefundReport {
        refunds: vec![refund],
        running_total: None,
        reported_at: at(seconds),
    }
}

fn dispute_event(event_id: &str, event_type: &str, status: DisputeStatus) -> GatewayEvent {
    GatewayEvent {
        gateway: "stripe".into(),
        event_id: event_id.into(),
        event_type: event_type.into(),
        kind: EventKind::Dispute,
        references: by_intent(None),
        amount: Some(money(15000, "USD")),
        report: Some(Report::Dispute(Dispute {
            dispute_id: DISPUTE.into(),
            status,
            amount: money(15000, "USD"),
            reason: Some("fraudulent".into()),
        })),
    }
}

fn refund_report(event: GatewayEvent) -> RefundReport {
    match event.report {
        Some(Report::Refund(report)) => report,
        other => panic!("not a refund report: {other:?}"),
    }
}

fn dispute_report(event: GatewayEvent) -> Dispute {
    match event.report {
        Some(Report::Dispute(dispute)) => dispute,
        other => panic!("not a dispute report: {other:?}"),
    }
}

#[test]
fn charge_refunded_reports_the_running_total_and_every_listed_refund() {
    // The shop refunded 50.00 and then the remaining 100.00; Stripe lists
    // the newest refund first.
    assert_eq!(
        parse_fixture("charge.refunded"),
        refund_event(
            "evt_3PqR8sLkdIwHu7ix1Re5Fd6A",
            "charge.refunded",
            by_intent(Some("TXN-8F3A2C91D4")),
            money(15000, "USD"),
            RefundReport {
                refunds: vec![
                    usd_refund(SECOND_REFUND, 10000, RefundStatus::Succeeded),
                    usd_refund(FIRST_REFUND, 5000, RefundStatus::Succeeded),
                ],
                running_total: Some(money(15000, "USD")),
                reported_at: at(1_700_086_201),
            },
        )
    );
}

#[test]
fn refund_created() {
    // Made in the dashboard: no shop id in the refund's own metadata.
    assert_eq!(
        parse_fixture("refund.created"),
        refund_event(
            "evt_3PqR8sLkdIwHu7ix1Rc2Ab3D",
            "refund.created",
            by_intent(None),
            money(5000, "USD"),
            one_refund(
                usd_refund(FIRST_REFUND, 5000, RefundStatus::Succeeded),
                1_700_040_001
            ),
        )
    );
}

#[test]
fn refund_updated() {
    assert_eq!(
        parse_fixture("refund.updated"),
        refund_event(
            "evt_3PqR8sLkdIwHu7ix1Ru4Cd5E",
            "refund.updated",
            by_intent(None),
            money(10000, "USD"),
            one_refund(
                usd_refund(SECOND_REFUND, 10000, RefundStatus::Succeeded),
                1_700_086_200
            ),
        )
    );
}

#[test]
fn charge_refund_updated() {
    // Stripe sends it beside refund.updated for the same change.
    let event = parse_fixture("charge.refund.updated");
    assert_eq!(
        event,
        refund_event(
            "evt_3PqR8sLkdIwHu7ix1Cr6Ef7G",
            "charge.refund.updated",
            by_intent(None),
            money(10000, "USD"),
            one_refund(
                usd_refund(SECOND_REFUND, 10000, RefundStatus::Succeeded),
                1_700_086_200
            ),
        )
    );
    assert_eq!(event.report, parse_fixture("refund.updated").report);
}

#[test]
fn refund_failed() {
    assert_eq!(
        parse_fixture("refund.failed"),
        refund_event(
            "evt_3PqR8sLkdIwHu7ix1Rx8Gh9J",
            "refund.failed",
            by_intent(None),
            money(5000, "USD"),
            one_refund(
                usd_refund(FIRST_REFUND, 5000, RefundStatus::Failed),
                1_700_300_000
            ),
        )
    );
}

#[test]
fn charge_dispute_created() {
    assert_eq!(
        parse_fixture("charge.dispute.created"),
        dispute_event(
            "evt_1PqT3uLkdIwHu7ix0Dc1Ab2C",
            "charge.dispute.created",
            DisputeStatus::Open
        )
    );
}

#[test]
fn charge_dispute_funds_withdrawn() {
    assert_eq!(
        parse_fixture("charge.dispute.funds_withdrawn"),
        dispute_event(
            "evt_1PqT3uLkdIwHu7ix0Dw3Cd4E",
            "charge.dispute.funds_withdrawn",
            DisputeStatus::Open
        )
    );
}

#[test]
fn charge_dispute_updated() {
    // Evidence submitted: under review, still open.
    assert_eq!(
        parse_fixture("charge.dispute.updated"),
        dispute_event(
            "evt_1PqT3uLkdIwHu7ix0Du5Ef6G",
            "charge.dispute.updated",
            DisputeStatus::Open
        )
    );
}

#[test]
fn charge_dispute_closed() {
    assert_eq!(
        parse_fixture("charge.dispute.closed"),
        dispute_event(
            "evt_1PqT3uLkdIwHu7ix0Dx7Gh8J",
            "charge.dispute.closed",
            DisputeStatus::Won
        )
    );
}

#[test]
fn charge_dispute_funds_reinstated() {
    assert_eq!(
        parse_fixture("charge.dispute.funds_reinstated"),
        dispute_event(
            "evt_1PqT3uLkdIwHu7ix0Dr9Jk0L",
            "charge.dispute.funds_reinstated",
            DisputeStatus::Won
        )
    );
}

#[test]
fn a_charge_without_its_refund_list_reports_the_running_total_alone() {
    // API versions from 2022-11-15 on leave the list out unless expanded.
    let report = refund_report(
        parse_changed("charge.refunded", |charge| {
            charge.remove("refunds");
        })
        .unwrap(),
    );
    assert_eq!(report.refunds, []);
    assert_eq!(report.running_total, Some(money(15000, "USD")));
}

#[test]
fn a_partial_refund_total_is_the_amount_refunded_not_the_charges_amount() {
    let event = parse_changed("charge.refunded", |charge| {
        charge.insert("amount_refunded".into(), 5000.into());
        charge.insert("refunded".into(), false.into());
        charge["refunds"]["data"].as_array_mut().unwrap().remove(0);
    })
    .unwrap();
    assert_eq!(event.amount, Some(money(5000, "USD")));
    let report = refund_report(event);
    assert_eq!(report.running_total, Some(money(5000, "USD")));
    assert_eq!(
        report.refunds,
        [usd_refund(FIRST_REFUND, 5000, RefundStatus::Succeeded)]
    );
}

#[test]
fn refund_statuses_are_read_as_stripe_documents_them() {
    for (status, expected) in [
        ("pending", RefundStatus::Pending),
        ("requires_action", RefundStatus::Pending),
        ("succeeded", RefundStatus::Succeeded),
        ("failed", RefundStatus::Failed),
        ("canceled", RefundStatus::Canceled),
    ] {
        for event_type in REFUND_TYPES {
            let report = refund_report(
                parse_changed(event_type, |refund| {
                    refund.insert("status".into(), status.into());
                })
                .unwrap(),
            );
            assert_eq!(report.refunds[0].status, expected, "{event_type} {status}");
        }
        let report = refund_report(
            parse_changed("charge.refunded", |charge| {
                charge["refunds"]["data"][1]["status"] = status.into();
            })
            .unwrap(),
        );
        assert_eq!(report.refunds[1].status, expected, "listed {status}");
    }
}

#[test]
fn the_refunds_status_not_the_event_type_says_where_it_stands() {
    // refund.failed only says that the refund changed; its object says how.
    let event = parse_changed("refund.failed", |refund| {
        refund.insert("status".into(), "succeeded".into());
    })
    .unwrap();
    assert_eq!(
        refund_report(event).refunds[0].status,
        RefundStatus::Succeeded
    );
}

#[test]
fn an_unknown_refund_status_is_refused_not_guessed() {
    for status in [json!("refunded"), json!("SUCCEEDED"), json!(""), json!(1)] {
        for event_type in REFUND_TYPES {
            let result = parse_changed(event_type, |refund| {
                refund.insert("status".into(), status.clone());
            });
            assert!(
                matches!(
                    result,
                    Err(ParseError::InvalidField {
                        field: "data.object.status",
                        ..
                    })
                ),
                "{event_type} {status}: {result:?}"
            );
        }
        let listed = parse_changed("charge.refunded", |charge| {
            charge["refunds"]["data"][0]["status"] = status.clone();
        });
        assert!(
            matches!(
                listed,
                Err(ParseError::InvalidField {
                    field: "data.object.refunds.data[].status",
                    ..
                })
            ),
            "listed {status}: {listed:?}"
        );
    }
    for event_type in REFUND_TYPES {
        let missing = parse_changed(event_type, |refund| {
            refund.insert("status".into(), Value::Null);
        });
        assert_eq!(
            missing,
            Err(ParseError::MissingField("data.object.status")),
            "{event_type}"
        );
    }
}

#[test]
fn dispute_statuses_are_read_as_stripe_documents_them() {
    for (status, expected) in [
        ("warning_needs_response", DisputeStatus::Open),
        ("warning_under_review", DisputeStatus::Open),
        ("needs_response", DisputeStatus::Open),
        ("under_review", DisputeStatus::Open),
        ("won", DisputeStatus::Won),
        ("lost", DisputeStatus::Lost),
        ("warning_closed", DisputeStatus::Closed),
    ] {
        for event_type in DISPUTE_TYPES {
            let dispute = dispute_report(
                parse_changed(event_type, |dispute| {
                    dispute.insert("status".into(), status.into());
                })
                .unwrap(),
            );
            assert_eq!(dispute.status, expected, "{event_type} {status}");
        }
    }
}

#[test]
fn an_unknown_dispute_status_is_refused_not_guessed() {
    for status in [
        json!("charge_refunded"),
        json!("closed"),
        json!("WON"),
        json!(""),
        json!(true),
    ] {
        for event_type in DISPUTE_TYPES {
            let result = parse_changed(event_type, |dispute| {
                dispute.insert("status".into(), status.clone());
            });
            assert!(
                matches!(
                    result,
                    Err(ParseError::InvalidField {
                        field: "data.object.status",
                        ..
                    })
                ),
                "{event_type} {status}: {result:?}"
            );
        }
    }
    let missing = parse_changed("charge.dispute.created", |dispute| {
        dispute.remove("status");
    });
    assert_eq!(missing, Err(ParseError::MissingField("data.object.status")));
}

#[test]
fn every_refund_and_dispute_needs_its_amount() {
    for event_type in REFUND_TYPES.into_iter().chain(DISPUTE_TYPES) {
        let result = parse_changed(event_type, |object| {
            object.remove("amount");
        });
        assert_eq!(
            result,
            Err(ParseError::MissingField("data.object.amount")),
            "{event_type}"
        );
        let result = parse_changed(event_type, |object| {
            object.insert("amount".into(), Value::Null);
        });
        assert_eq!(
            result,
            Err(ParseError::MissingField("data.object.amount")),
            "{event_type}"
        );
    }
    let total = parse_changed("charge.refunded", |charge| {
        charge.remove("amount_refunded");
    });
    assert_eq!(
        total,
        Err(ParseError::MissingField("data.object.amount_refunded"))
    );
    let listed = parse_changed("charge.refunded", |charge| {
        charge["refunds"]["data"][1]
            .as_object_mut()
            .unwrap()
            .remove("amount");
    });
    assert_eq!(
        listed,
        Err(ParseError::MissingField(
            "data.object.refunds.data[].amount"
        ))
    );
}

#[test]
fn amounts_must_be_non_negative_integers_everywhere() {
    for amount in [json!(-1), json!(1.5), json!("5000")] {
        for (event_type, field) in [
            ("refund.created", "data.object.amount"),
            ("charge.dispute.created", "data.object.amount"),
            ("charge.refunded", "data.object.amount_refunded"),
        ] {
            let key = field.rsplit('.').next().unwrap();
            let result = parse_changed(event_type, |object| {
                object.insert(key.into(), amount.clone());
            });
            assert!(
                matches!(result, Err(ParseError::InvalidField { field: got, .. }) if got == field),
                "{event_type} {amount}: {result:?}"
            );
        }
    }
}

#[test]
fn every_refund_and_dispute_needs_its_id_and_currency() {
    for event_type in REFUND_TYPES.into_iter().chain(DISPUTE_TYPES) {
        for (member, field) in [
            ("id", "data.object.id"),
            ("currency", "data.object.currency"),
        ] {
            let result = parse_changed(event_type, |object| {
                object.insert(member.into(), Value::Null);
            });
            assert_eq!(
                result,
                Err(ParseError::MissingField(field)),
                "{event_type} {member}"
            );
        }
        let empty_id = parse_changed(event_type, |object| {
            object.insert("id".into(), "".into());
        });
        assert_eq!(
            empty_id,
            Err(ParseError::MissingField("data.object.id")),
            "{event_type}"
        );
    }
    for (member, field) in [
        ("id", "data.object.refunds.data[].id"),
        ("currency", "data.object.refunds.data[].currency"),
    ] {
        let result = parse_changed("charge.refunded", |charge| {
            charge["refunds"]["data"][0][member] = Value::Null;
        });
        assert_eq!(result, Err(ParseError::MissingField(field)), "{member}");
    }
    let unknown = parse_changed("charge.refunded", |charge| {
        charge.insert("currency".into(), "xyz".into());
    });
    assert_eq!(
        unknown,
        Err(ParseError::Money {
            field: "data.object.currency",
            source: MoneyError::UnknownCurrency("xyz".into()),
        })
    );
}

#[test]
fn refund_and_dispute_amounts_follow_stripes_currency_exponents() {
    let refund = |amount: i64, currency: &str| {
        parse_changed("refund.created", |refund| {
            refund.insert("amount".into(), amount.into());
            refund.insert("currency".into(), currency.into());
        })
        .map(|event| refund_report(event).refunds[0].amount)
    };
    assert_eq!(refund(1500, "jpy"), Ok(money(1500, "JPY")));
    assert_eq!(refund(50000, "isk"), Ok(money(500, "ISK")));
    assert_eq!(refund(5000, "mga"), Ok(money(500_000, "MGA")));
    assert_eq!(refund(5120, "kwd"), Ok(money(5120, "KWD")));
    assert!(matches!(
        refund(50050, "isk"),
        Err(ParseError::Money {
            field: "data.object.amount",
            source: MoneyError::TooPrecise { .. }
        })
    ));

    let charge = parse_changed("charge.refunded", |charge| {
        charge.insert("currency".into(), "isk".into());
        charge.insert("amount".into(), 1_500_000.into());
        charge.insert("amount_refunded".into(), 1_500_000.into());
        for (refund, amount) in charge["refunds"]["data"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .zip([1_000_000, 500_000])
        {
            refund["currency"] = "isk".into();
            refund["amount"] = amount.into();
        }
    })
    .unwrap();
    let report = refund_report(charge);
    assert_eq!(report.running_total, Some(money(15000, "ISK")));
    assert_eq!(
        report
            .refunds
            .iter()
            .map(|refund| refund.amount)
            .collect::<Vec<_>>(),
        [money(10000, "ISK"), money(5000, "ISK")]
    );
    let too_precise = parse_changed("charge.refunded", |charge| {
        charge.insert("currency".into(), "isk".into());
        charge.insert("amount_refunded".into(), 150_050.into());
    });
    assert!(matches!(
        too_precise,
        Err(ParseError::Money {
            field: "data.object.amount_refunded",
            source: MoneyError::TooPrecise { .. }
        })
    ));

    let dispute = parse_changed("charge.dispute.created", |dispute| {
        dispute.insert("amount".into(), 5000.into());
        dispute.insert("currency".into(), "mga".into());
    })
    .unwrap();
    assert_eq!(dispute.amount, Some(money(500_000, "MGA")));
    assert_eq!(dispute_report(dispute).amount, money(500_000, "MGA"));
}

#[test]
fn a_listed_refund_keeps_its_own_currency() {
    // The domain refuses a refund in another currency than the payment's;
    // the adapter reports what Stripe said.
    let report = refund_report(
        parse_changed("charge.refunded", |charge| {
            charge["refunds"]["data"][0]["currency"] = "eur".into();
        })
        .unwrap(),
    );
    assert_eq!(report.refunds[0].amount, money(10000, "EUR"));
    assert_eq!(report.running_total, Some(money(15000, "USD")));
}

#[test]
fn a_refund_is_found_by_the_shops_id_in_its_metadata_then_by_its_payment_intent_or_charge() {
    let with_id = parse_changed("refund.created", |refund| {
        refund.insert(
            "metadata".into(),
            json!({"transaction_id": "TXN-8F3A2C91D4"}),
        );
    })
    .unwrap();
    assert_eq!(with_id.references, by_intent(Some("TXN-8F3A2C91D4")));

    // A refund of a charge made without a PaymentIntent (the legacy
    // Charges API) is found by its charge, the reference such a charge's
    // own events give the payment.
    let legacy = parse_changed("refund.created", |refund| {
        refund.insert("payment_intent".into(), Value::Null);
    })
    .unwrap();
    assert_eq!(
        legacy.references,
        References {
            transaction_id: None,
            external_id: None,
            gateway_reference: Some("ch_3PqR8sLkdIwHu7ix1Lm6Np7Q".into()),
        }
    );
    let neither = parse_changed("refund.created", |refund| {
        refund.insert("payment_intent".into(), Value::Null);
        refund.insert("charge".into(), Value::Null);
    })
    .unwrap();
    assert!(neither.references.is_empty());
    let legacy_charge = parse_changed("charge.refunded", |charge| {
        charge.insert("payment_intent".into(), Value::Null);
        charge.insert("metadata".into(), json!({}));
    })
    .unwrap();
    assert_eq!(
        legacy_charge.references.gateway_reference.as_deref(),
        Some("ch_3PqR8sLkdIwHu7ix1Lm6Np7Q")
    );

    let charge = parse_changed("charge.refunded", |charge| {
        charge.insert("metadata".into(), json!({}));
    })
    .unwrap();
    assert_eq!(charge.references, by_intent(None));
}

#[test]
fn a_dispute_is_found_by_its_payment_intent_or_its_charge() {
    // A dispute's metadata is the dispute's own, never the shop's payment id.
    let event = parse_changed("charge.dispute.created", |dispute| {
        dispute.insert("metadata".into(), json!({"transaction_id": "TXN-OTHER"}));
    })
    .unwrap();
    assert_eq!(event.references, by_intent(None));
    // Without a PaymentIntent (a legacy charge), by its charge.
    let legacy = parse_changed("charge.dispute.created", |dispute| {
        dispute.insert("payment_intent".into(), Value::Null);
    })
    .unwrap();
    assert_eq!(
        legacy.references.gateway_reference.as_deref(),
        Some("ch_3PqR8sLkdIwHu7ix1Lm6Np7Q")
    );
    assert_eq!(legacy.references.external_id, None);
    let without = parse_changed("charge.dispute.created", |dispute| {
        dispute.insert("payment_intent".into(), Value::Null);
        dispute.insert("charge".into(), Value::Null);
    })
    .unwrap();
    assert!(without.references.is_empty());
}

#[test]
fn a_dispute_reason_is_kept_when_stripe_gives_one() {
    let reason = |value: Value| {
        parse_changed("charge.dispute.created", |dispute| {
            dispute.insert("reason".into(), value);
        })
        .map(|event| dispute_report(event).reason)
    };
    assert_eq!(
        reason(json!("product_not_received")),
        Ok(Some("product_not_received".into()))
    );
    assert_eq!(reason(Value::Null), Ok(None));
    assert_eq!(
        reason(json!(7)),
        Err(ParseError::InvalidField {
            field: "data.object.reason",
            reason: "expected a string".into()
        })
    );
}

#[test]
fn every_refund_and_dispute_type_needs_its_object() {
    for event_type in ["charge.refunded"]
        .into_iter()
        .chain(REFUND_TYPES)
        .chain(DISPUTE_TYPES)
    {
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
fn refund_reports_need_the_events_time_and_disputes_do_not() {
    for event_type in ["charge.refunded"].into_iter().chain(REFUND_TYPES) {
        let mut event: Value = serde_json::from_slice(&fixture(event_type)).unwrap();
        event.as_object_mut().unwrap().remove("created");
        assert_eq!(
            parse(&serde_json::to_vec(&event).unwrap()),
            Err(ParseError::MissingField("created")),
            "{event_type}"
        );
    }
    for event_type in DISPUTE_TYPES {
        let mut event: Value = serde_json::from_slice(&fixture(event_type)).unwrap();
        event.as_object_mut().unwrap().remove("created");
        let event = parse(&serde_json::to_vec(&event).unwrap()).unwrap();
        assert_eq!(event.kind, EventKind::Dispute, "{event_type}");
    }
}

#[test]
fn neighbouring_types_stay_not_handled() {
    for (fixture_name, event_type) in [
        ("charge.refunded", "charge.captured"),
        ("charge.refunded", "charge.updated"),
        ("refund.created", "charge.expired"),
        ("charge.dispute.created", "issuing_dispute.created"),
        (
            "charge.dispute.created",
            "radar.early_fraud_warning.created",
        ),
    ] {
        let mut event: Value = serde_json::from_slice(&fixture(fixture_name)).unwrap();
        event["type"] = event_type.into();
        let event = parse(&serde_json::to_vec(&event).unwrap()).unwrap();
        assert_eq!(event.kind, EventKind::NotHandled, "{event_type}");
        assert_eq!(event.report, None, "{event_type}");
    }
}
