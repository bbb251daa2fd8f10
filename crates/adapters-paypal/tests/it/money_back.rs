//! Refunds, reversals and disputes through `GatewayAdapter::parse`: the
//! fixtures, and the fixtures with one thing changed.

use chrono::{DateTime, Utc};
use payhook_domain::ports::{GatewayAdapter, ParseError};
use payhook_domain::{
    Currency, Dispute, DisputeStatus, EventKind, GatewayEvent, Money, MoneyError, References,
    Refund, RefundReport, RefundStatus, Report,
};
use serde_json::{json, Value};

use crate::support::{adapter, event, request, TestKey};

/// The capture id of `PAYMENT.CAPTURE.COMPLETED.json`, which every fixture
/// here refers to.
const CAPTURE_ID: &str = "2GG279541U471931P";

const DISPUTES: [&str; 3] = [
    "CUSTOMER.DISPUTE.CREATED",
    "CUSTOMER.DISPUTE.UPDATED",
    "CUSTOMER.DISPUTE.RESOLVED",
];

/// One change to a fixture's JSON.
type Change = fn(&mut Value);

/// The types whose resource is a v2 refund.
const REFUNDS: [&str; 2] = ["PAYMENT.CAPTURE.REFUNDED", "PAYMENT.CAPTURE.REVERSED"];

fn parse(body: &[u8]) -> Result<GatewayEvent, ParseError> {
    let headers: Vec<(String, String)> = Vec::new();
    adapter(&[TestKey::First]).parse(&request(&headers, body))
}

fn parse_fixture(name: &str) -> GatewayEvent {
    parse(&event(name)).unwrap_or_else(|error| panic!("{name}: {error}"))
}

/// The fixture `name` with `change` applied to its JSON.
fn parse_changed(name: &str, change: impl FnOnce(&mut Value)) -> Result<GatewayEvent, ParseError> {
    let mut json: Value = serde_json::from_slice(&event(name)).unwrap();
    change(&mut json);
    parse(&serde_json::to_vec(&json).unwrap())
}

fn resource(json: &mut Value) -> &mut serde_json::Map<String, Value> {
    json["resource"].as_object_mut().unwrap()
}

fn usd(minor: i64) -> Money {
    Money::from_minor(minor, Currency::parse("USD").unwrap())
}

fn time(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn refund_report(event: &GatewayEvent) -> &RefundReport {
    match &event.report {
        Some(Report::Refund(report)) => report,
        other => panic!("not a refund report: {other:?}"),
    }
}

fn dispute(event: &GatewayEvent) -> &Dispute {
    match &event.report {
        Some(Report::Dispute(dispute)) => dispute,
        other => panic!("not a dispute: {other:?}"),
    }
}

fn invalid_field(result: Result<GatewayEvent, ParseError>) -> &'static str {
    match result {
        Err(ParseError::InvalidField { field, .. }) => field,
        other => panic!("not an invalid field: {other:?}"),
    }
}

#[test]
fn payment_capture_refunded() {
    assert_eq!(
        parse_fixture("PAYMENT.CAPTURE.REFUNDED"),
        GatewayEvent {
            gateway: "paypal".into(),
            event_id: "WH-3RL62039TW874153K-1XB74915LN8031528".into(),
            event_type: "PAYMENT.CAPTURE.REFUNDED".into(),
            kind: EventKind::Refund,
            // A refund made from PayPal's dashboard carries no custom_id:
            // the capture of its `up` link names the payment.
            references: References {
                transaction_id: None,
                external_id: None,
                gateway_reference: Some(CAPTURE_ID.into()),
            },
            amount: Some(usd(3000)),
            report: Some(Report::Refund(RefundReport {
                refunds: vec![Refund {
                    refund_id: "5KF30129YH667841R".into(),
                    amount: usd(3000),
                    status: RefundStatus::Succeeded,
                }],
                running_total: Some(usd(8000)),
                reported_at: time("2026-11-28T09:14:04.543Z"),
            })),
        }
    );
}

#[test]
fn each_paypal_refund_status_has_its_domain_status() {
    for (paypal, status) in [
        ("COMPLETED", RefundStatus::Succeeded),
        ("PENDING", RefundStatus::Pending),
        ("FAILED", RefundStatus::Failed),
        ("CANCELLED", RefundStatus::Canceled),
    ] {
        let event = parse_changed("PAYMENT.CAPTURE.REFUNDED", |json| {
            json["resource"]["status"] = paypal.into();
        })
        .unwrap();
        assert_eq!(refund_report(&event).refunds[0].status, status, "{paypal}");
        // The kind follows the event type whatever the refund's status.
        assert_eq!(event.kind, EventKind::Refund);
    }
}

#[test]
fn a_refund_needs_a_known_status() {
    for status in ["completed", "CANCELED", "REFUNDED", ""] {
        let result = parse_changed("PAYMENT.CAPTURE.REFUNDED", |json| {
            json["resource"]["status"] = status.into();
        });
        assert_eq!(invalid_field(result), "resource.status", "{status:?}");
    }
    let result = parse_changed("PAYMENT.CAPTURE.REFUNDED", |json| {
        resource(json).remove("status");
    });
    assert_eq!(result, Err(ParseError::MissingField("resource.status")));
    let result = parse_changed("PAYMENT.CAPTURE.REFUNDED", |json| {
        json["resource"]["status"] = json!(["COMPLETED"]);
    });
    assert_eq!(invalid_field(result), "resource.status");
}

#[test]
fn a_refund_and_a_reversal_need_an_id_and_an_amount() {
    for name in REFUNDS {
        let result = parse_changed(name, |json| {
            resource(json).remove("id");
        });
        assert_eq!(
            result,
            Err(ParseError::MissingField("resource.id")),
            "{name}"
        );
        let result = parse_changed(name, |json| json["resource"]["id"] = "".into());
        assert_eq!(invalid_field(result), "resource.id", "{name}");
        let result = parse_changed(name, |json| json["resource"]["id"] = 42.into());
        assert_eq!(invalid_field(result), "resource.id", "{name}");

        let result = parse_changed(name, |json| {
            resource(json).remove("amount");
        });
        assert_eq!(
            result,
            Err(ParseError::MissingField("resource.amount")),
            "{name}"
        );
        let result = parse_changed(name, |json| {
            json["resource"]["amount"]["currency_code"] = "XYZ".into();
        });
        assert_eq!(
            result,
            Err(ParseError::Money {
                field: "resource.amount.currency_code",
                source: MoneyError::UnknownCurrency("XYZ".into()),
            }),
            "{name}"
        );
        let result = parse_changed(name, |json| {
            json["resource"]["amount"]["value"] = 30.0.into();
        });
        assert_eq!(invalid_field(result), "resource.amount.value", "{name}");
    }
}

#[test]
fn the_running_total_is_read_exactly_when_present() {
    let with_breakdown = |breakdown: Option<Value>| {
        parse_changed("PAYMENT.CAPTURE.REFUNDED", |json| {
            let resource = resource(json);
            resource.remove("seller_payable_breakdown");
            if let Some(breakdown) = breakdown {
                resource.insert("seller_payable_breakdown".into(), breakdown);
            }
        })
    };
    let total =
        |result: Result<GatewayEvent, ParseError>| refund_report(&result.unwrap()).running_total;
    assert_eq!(total(with_breakdown(None)), None);
    assert_eq!(total(with_breakdown(Some(Value::Null))), None);
    assert_eq!(total(with_breakdown(Some(json!({})))), None);
    assert_eq!(
        total(with_breakdown(Some(
            json!({"total_refunded_amount": null, "gross_amount": {"currency_code": "USD", "value": "30.00"}})
        ))),
        None
    );
    assert_eq!(
        total(with_breakdown(Some(
            json!({"total_refunded_amount": {"currency_code": "USD", "value": "150.00"}})
        ))),
        Some(usd(15000))
    );
    assert_eq!(
        with_breakdown(Some(
            json!({"total_refunded_amount": {"currency_code": "USD", "value": "80.001"}})
        ))
        .map(|_| ()),
        Err(ParseError::Money {
            field: "resource.seller_payable_breakdown.total_refunded_amount.value",
            source: MoneyError::TooPrecise {
                amount: "80.001".into(),
                currency: "USD",
                exponent: 2
            },
        })
    );
    assert_eq!(
        with_breakdown(Some(json!({"total_refunded_amount": {"value": "80.00"}}))),
        Err(ParseError::MissingField(
            "resource.seller_payable_breakdown.total_refunded_amount.currency_code"
        ))
    );
    assert_eq!(
        invalid_field(with_breakdown(Some(json!("80.00")))),
        "resource.seller_payable_breakdown"
    );
    assert_eq!(
        invalid_field(with_breakdown(Some(
            json!({"total_refunded_amount": "80.00"})
        ))),
        "resource.seller_payable_breakdown.total_refunded_amount"
    );
}

#[test]
fn the_report_time_is_the_event_time_then_the_refund_times() {
    let reported_at = |change: Change| {
        parse_changed("PAYMENT.CAPTURE.REFUNDED", change)
            .map(|event| refund_report(&event).reported_at)
    };
    assert_eq!(reported_at(|_| ()), Ok(time("2026-11-28T09:14:04.543Z")));

    let without_event_time: Change = |json| {
        json.as_object_mut().unwrap().remove("create_time");
    };
    // The refund's times carry PayPal's local offset.
    assert_eq!(
        reported_at(without_event_time),
        Ok(time("2026-11-28T09:13:29Z"))
    );
    assert_eq!(
        reported_at(|json| {
            json["create_time"] = Value::Null;
            json["resource"]["update_time"] = "2026-11-28T02:00:00-08:00".into();
        }),
        Ok(time("2026-11-28T10:00:00Z"))
    );
    assert_eq!(
        reported_at(|json| {
            json.as_object_mut().unwrap().remove("create_time");
            resource(json).remove("update_time");
            json["resource"]["create_time"] = "2026-11-27T23:59:59Z".into();
        }),
        Ok(time("2026-11-27T23:59:59Z"))
    );
    assert_eq!(
        reported_at(|json| {
            json.as_object_mut().unwrap().remove("create_time");
            resource(json).remove("update_time");
            resource(json).remove("create_time");
        }),
        Err(ParseError::MissingField("create_time"))
    );
}

#[test]
fn an_unreadable_time_is_refused_not_skipped() {
    let cases: [(&str, Change); 4] = [
        ("create_time", |json| {
            json["create_time"] = "yesterday".into()
        }),
        ("create_time", |json| {
            json["create_time"] = 1_700_000_000.into()
        }),
        ("resource.update_time", |json| {
            json.as_object_mut().unwrap().remove("create_time");
            json["resource"]["update_time"] = "2026-11-28".into();
        }),
        ("resource.create_time", |json| {
            json.as_object_mut().unwrap().remove("create_time");
            resource(json).remove("update_time");
            json["resource"]["create_time"] = "".into();
        }),
    ];
    for (field, change) in cases {
        let result = parse_changed("PAYMENT.CAPTURE.REFUNDED", change);
        assert_eq!(invalid_field(result), field);
    }
}

#[test]
fn only_a_refund_reads_the_event_time() {
    // A dispute has no time of its own in the domain: its event's time is
    // not looked at.
    for name in ["PAYMENT.CAPTURE.REVERSED", "CUSTOMER.DISPUTE.CREATED"] {
        let result = parse_changed(name, |json| json["create_time"] = "not a time".into());
        assert!(result.is_ok(), "{name}: {result:?}");
    }
}

#[test]
fn a_refund_names_its_transaction_by_its_own_custom_id_only() {
    let references = |change: Change| {
        parse_changed("PAYMENT.CAPTURE.REFUNDED", change)
            .unwrap()
            .references
    };
    assert_eq!(
        references(|json| json["resource"]["custom_id"] = "TXN-8F3A2C91D4".into()),
        References {
            transaction_id: Some("TXN-8F3A2C91D4".into()),
            external_id: None,
            gateway_reference: Some(CAPTURE_ID.into()),
        }
    );
    // The refund's invoice id comes from the refund request (a credit note
    // number, say), so it does not stand in for the transaction id.
    assert_eq!(
        references(|json| json["resource"]["invoice_id"] = "TXN-8F3A2C91D4".into()),
        References {
            transaction_id: None,
            external_id: None,
            gateway_reference: Some(CAPTURE_ID.into()),
        }
    );
    assert_eq!(
        references(|json| json["resource"]["custom_id"] = "".into()).transaction_id,
        None
    );
}

#[test]
fn the_capture_is_found_through_the_up_link_to_a_capture() {
    let gateway_reference = |links: Value| {
        parse_changed("PAYMENT.CAPTURE.REFUNDED", |json| {
            json["resource"]["links"] = links;
        })
        .map(|event| event.references.gateway_reference)
    };
    let link = |rel: &str, href: &str| json!({"href": href, "rel": rel, "method": "GET"});
    let capture = "https://api.paypal.com/v2/payments/captures/7XK61302AB991823L";
    assert_eq!(
        gateway_reference(json!([
            link(
                "self",
                "https://api.paypal.com/v2/payments/refunds/5KF30129YH667841R"
            ),
            link("up", capture),
        ])),
        Ok(Some("7XK61302AB991823L".into()))
    );
    // `up` from a refund of an authorization-captured order still names a
    // capture; an `up` link to anything else names nothing.
    assert_eq!(
        gateway_reference(json!([link(
            "up",
            "https://api.paypal.com/v2/payments/authorizations/7W5147081L658180V"
        ),])),
        Ok(None)
    );
    assert_eq!(
        gateway_reference(json!([
            link(
                "up",
                "https://api.paypal.com/v2/payments/authorizations/7W5147081L658180V"
            ),
            link("up", capture),
        ])),
        Ok(Some("7XK61302AB991823L".into()))
    );
    // Only `up`: a `self` link to a capture is not the refunded capture.
    assert_eq!(gateway_reference(json!([link("self", capture)])), Ok(None));
    assert_eq!(
        gateway_reference(json!([link("UP", capture)])),
        Ok(None),
        "rel is exact"
    );
    assert_eq!(gateway_reference(json!([])), Ok(None));
    assert_eq!(gateway_reference(Value::Null), Ok(None));
    // Entries without rel or href are skipped, not refused.
    assert_eq!(
        gateway_reference(json!([{"method": "GET"}, {"rel": "up"}, link("up", capture)])),
        Ok(Some("7XK61302AB991823L".into()))
    );
}

#[test]
fn wrongly_typed_links_are_named() {
    let cases = [
        (json!({"rel": "up"}), "resource.links"),
        (
            json!("https://api.paypal.com/v2/payments/captures/X"),
            "resource.links",
        ),
        (json!(["up"]), "resource.links[]"),
        (json!([{"rel": 1, "href": "x"}]), "resource.links[].rel"),
        (
            json!([{"rel": "up", "href": ["x"]}]),
            "resource.links[].href",
        ),
    ];
    for (links, field) in cases {
        let result = parse_changed("PAYMENT.CAPTURE.REFUNDED", |json| {
            json["resource"]["links"] = links.clone();
        });
        assert_eq!(invalid_field(result), field, "{links}");
    }
}

#[test]
fn payment_capture_reversed_is_a_lost_dispute() {
    assert_eq!(
        parse_fixture("PAYMENT.CAPTURE.REVERSED"),
        GatewayEvent {
            gateway: "paypal".into(),
            event_id: "WH-8TB51748HC093627W-4MS28163VK5550917".into(),
            event_type: "PAYMENT.CAPTURE.REVERSED".into(),
            kind: EventKind::Dispute,
            references: References {
                transaction_id: None,
                external_id: None,
                gateway_reference: Some(CAPTURE_ID.into()),
            },
            amount: Some(usd(15000)),
            report: Some(Report::Dispute(Dispute {
                dispute_id: "0RV43916MS285017J".into(),
                status: DisputeStatus::Lost,
                amount: usd(15000),
                reason: None,
            })),
        }
    );
}

#[test]
fn a_reversal_keeps_its_reason_and_ignores_its_refund_status() {
    let event = parse_changed("PAYMENT.CAPTURE.REVERSED", |json| {
        json["resource"]["status_details"] = json!({"reason": "ECHECK"});
        json["resource"]["custom_id"] = "TXN-8F3A2C91D4".into();
        json["resource"]["status"] = "PENDING".into();
        resource(json).remove("seller_payable_breakdown");
    })
    .unwrap();
    assert_eq!(
        dispute(&event),
        &Dispute {
            dispute_id: "0RV43916MS285017J".into(),
            status: DisputeStatus::Lost,
            amount: usd(15000),
            reason: Some("ECHECK".into()),
        }
    );
    assert_eq!(
        event.references.transaction_id.as_deref(),
        Some("TXN-8F3A2C91D4")
    );

    let result = parse_changed("PAYMENT.CAPTURE.REVERSED", |json| {
        resource(json).remove("status");
        json["resource"]["status_details"] = json!({"reason": ""});
    });
    assert_eq!(dispute(&result.unwrap()).reason, None);

    let result = parse_changed("PAYMENT.CAPTURE.REVERSED", |json| {
        json["resource"]["status_details"] = json!("ECHECK");
    });
    assert_eq!(invalid_field(result), "resource.status_details");
    let result = parse_changed("PAYMENT.CAPTURE.REVERSED", |json| {
        json["resource"]["status_details"] = json!({"reason": 3});
    });
    assert_eq!(invalid_field(result), "resource.status_details.reason");
}

#[test]
fn customer_dispute_created_is_an_open_dispute_of_the_capture() {
    assert_eq!(
        parse_fixture("CUSTOMER.DISPUTE.CREATED"),
        GatewayEvent {
            gateway: "paypal".into(),
            event_id: "WH-2HX90315KN448219A-6EA51307PT7724905".into(),
            event_type: "CUSTOMER.DISPUTE.CREATED".into(),
            kind: EventKind::Dispute,
            references: References {
                transaction_id: None,
                external_id: None,
                gateway_reference: Some(CAPTURE_ID.into()),
            },
            amount: Some(usd(15000)),
            report: Some(Report::Dispute(Dispute {
                dispute_id: "PP-R-NMW-10060094".into(),
                status: DisputeStatus::Open,
                amount: usd(15000),
                reason: Some("MERCHANDISE_OR_SERVICE_NOT_RECEIVED".into()),
            })),
        }
    );
}

#[test]
fn customer_dispute_updated_stays_open_whatever_paypal_status_it_shows() {
    let event = parse_fixture("CUSTOMER.DISPUTE.UPDATED");
    assert_eq!(event.event_id, "WH-5CJ17742RW930461F-3GK86290DA1197354");
    assert_eq!(
        event.report,
        parse_fixture("CUSTOMER.DISPUTE.CREATED").report,
        "the same dispute, still open"
    );
    for status in ["UNDER_REVIEW", "RESOLVED", "OTHER"] {
        let event = parse_changed("CUSTOMER.DISPUTE.UPDATED", |json| {
            json["resource"]["status"] = status.into();
            json["resource"]["dispute_outcome"] = json!({"outcome_code": "RESOLVED_SELLER_FAVOUR"});
        })
        .unwrap();
        assert_eq!(dispute(&event).status, DisputeStatus::Open, "{status}");
    }
}

#[test]
fn customer_dispute_resolved_takes_its_status_from_the_outcome() {
    let event = parse_fixture("CUSTOMER.DISPUTE.RESOLVED");
    assert_eq!(event.event_id, "WH-9NQ06581BE272340M-0TY43859XH6608127");
    assert_eq!(
        dispute(&event),
        &Dispute {
            dispute_id: "PP-R-NMW-10060094".into(),
            status: DisputeStatus::Won,
            amount: usd(15000),
            reason: Some("MERCHANDISE_OR_SERVICE_NOT_RECEIVED".into()),
        }
    );
    let resolved_with = |outcome: Option<Value>| {
        parse_changed("CUSTOMER.DISPUTE.RESOLVED", |json| {
            let resource = resource(json);
            resource.remove("dispute_outcome");
            if let Some(outcome) = outcome {
                resource.insert("dispute_outcome".into(), outcome);
            }
        })
    };
    let status =
        |outcome: Option<Value>| resolved_with(outcome).map(|event| dispute(&event).status);
    let code = |code: &str| Some(json!({"outcome_code": code}));
    assert_eq!(
        status(code("RESOLVED_SELLER_FAVOUR")),
        Ok(DisputeStatus::Won)
    );
    assert_eq!(
        status(code("RESOLVED_BUYER_FAVOUR")),
        Ok(DisputeStatus::Lost)
    );
    for other in [
        "CANCELED_BY_BUYER",
        "RESOLVED_WITH_PAYOUT",
        "ACCEPTED",
        "DENIED",
        "NONE",
        "resolved_seller_favour",
    ] {
        assert_eq!(status(code(other)), Ok(DisputeStatus::Closed), "{other}");
    }
    assert_eq!(status(None), Ok(DisputeStatus::Closed));
    assert_eq!(status(Some(Value::Null)), Ok(DisputeStatus::Closed));
    assert_eq!(status(Some(json!({}))), Ok(DisputeStatus::Closed));
    // The amount PayPal refunded beside the outcome is not a refund report.
    assert_eq!(
        status(Some(json!({
            "outcome_code": "RESOLVED_BUYER_FAVOUR",
            "amount_refunded": {"currency_code": "USD", "value": "150.00"}
        }))),
        Ok(DisputeStatus::Lost)
    );
    assert_eq!(
        invalid_field(resolved_with(Some(json!("RESOLVED_SELLER_FAVOUR")))),
        "resource.dispute_outcome"
    );
    assert_eq!(
        invalid_field(resolved_with(Some(json!({"outcome_code": 1})))),
        "resource.dispute_outcome.outcome_code"
    );
}

#[test]
fn a_dispute_names_its_payment_by_the_first_transaction() {
    let references = |transactions: Value| {
        parse_changed("CUSTOMER.DISPUTE.CREATED", |json| {
            json["resource"]["disputed_transactions"] = transactions;
        })
        .map(|event| event.references)
    };
    assert_eq!(
        references(json!([{
            "seller_transaction_id": CAPTURE_ID,
            "custom": "TXN-8F3A2C91D4",
            "invoice_number": "INV-2026-000123"
        }])),
        Ok(References {
            transaction_id: Some("TXN-8F3A2C91D4".into()),
            external_id: None,
            gateway_reference: Some(CAPTURE_ID.into()),
        })
    );
    // As on a capture: the invoice number when there is no custom field.
    assert_eq!(
        references(json!([{"seller_transaction_id": CAPTURE_ID, "custom": "", "invoice_number": "INV-2026-000123"}]))
            .unwrap()
            .transaction_id
            .as_deref(),
        Some("INV-2026-000123")
    );
    // Only the first transaction is read, even a badly typed second one.
    assert_eq!(
        references(json!([
            {"seller_transaction_id": "FIRST1"},
            {"seller_transaction_id": 7, "custom": []}
        ]))
        .unwrap()
        .gateway_reference
        .as_deref(),
        Some("FIRST1")
    );
    assert_eq!(references(json!([])), Ok(References::default()));
    assert_eq!(references(Value::Null), Ok(References::default()));
    assert_eq!(
        references(json!([{"buyer_transaction_id": "BUYER1", "seller_transaction_id": ""}])),
        Ok(References::default())
    );
    let result = parse_changed("CUSTOMER.DISPUTE.CREATED", |json| {
        resource(json).remove("disputed_transactions");
    });
    assert_eq!(result.unwrap().references, References::default());
}

#[test]
fn wrongly_typed_dispute_fields_are_named() {
    let cases: [(&str, Change); 8] = [
        ("resource.dispute_id", |json| {
            json["resource"]["dispute_id"] = 7.into()
        }),
        ("resource.dispute_id", |json| {
            json["resource"]["dispute_id"] = "".into()
        }),
        ("resource.reason", |json| {
            json["resource"]["reason"] = json!(["FRAUD"])
        }),
        ("resource.dispute_amount", |json| {
            json["resource"]["dispute_amount"] = "150.00".into()
        }),
        ("resource.dispute_amount.value", |json| {
            json["resource"]["dispute_amount"]["value"] = 150.into()
        }),
        ("resource.disputed_transactions", |json| {
            json["resource"]["disputed_transactions"] = json!({"seller_transaction_id": "X"})
        }),
        ("resource.disputed_transactions[0]", |json| {
            json["resource"]["disputed_transactions"] = json!(["X"])
        }),
        (
            "resource.disputed_transactions[0].seller_transaction_id",
            |json| json["resource"]["disputed_transactions"][0]["seller_transaction_id"] = 1.into(),
        ),
    ];
    for name in DISPUTES {
        for (field, change) in cases {
            assert_eq!(invalid_field(parse_changed(name, change)), field, "{name}");
        }
    }
}

#[test]
fn a_dispute_needs_an_id_and_an_amount() {
    for name in DISPUTES {
        let result = parse_changed(name, |json| {
            resource(json).remove("dispute_id");
        });
        assert_eq!(
            result,
            Err(ParseError::MissingField("resource.dispute_id")),
            "{name}"
        );
        let result = parse_changed(name, |json| {
            resource(json).remove("dispute_amount");
        });
        assert_eq!(
            result,
            Err(ParseError::MissingField("resource.dispute_amount")),
            "{name}"
        );
        let result = parse_changed(name, |json| {
            json["resource"]["dispute_amount"]["currency_code"] = "XYZ".into();
        });
        assert_eq!(
            result,
            Err(ParseError::Money {
                field: "resource.dispute_amount.currency_code",
                source: MoneyError::UnknownCurrency("XYZ".into()),
            }),
            "{name}"
        );
        // A dispute without a reason is still a dispute.
        let event = parse_changed(name, |json| {
            resource(json).remove("reason");
        })
        .unwrap();
        assert_eq!(dispute(&event).reason, None, "{name}");
    }
}

#[test]
fn a_dispute_resource_is_not_read_as_a_refund_nor_the_reverse() {
    // Fields of the other resource name nothing.
    let event = parse_changed("CUSTOMER.DISPUTE.CREATED", |json| {
        json["resource"]["id"] = "NOT-READ".into();
        json["resource"]["custom_id"] = "TXN-NOT-READ".into();
        json["resource"]["links"] =
            json!([{"rel": "up", "href": "https://api.paypal.com/v2/payments/captures/NOTREAD"}]);
        json["resource"]["amount"] = json!({"currency_code": "EUR", "value": "1.00"});
    })
    .unwrap();
    assert_eq!(event, parse_fixture("CUSTOMER.DISPUTE.CREATED"));

    let event = parse_changed("PAYMENT.CAPTURE.REFUNDED", |json| {
        json["resource"]["dispute_id"] = "NOT-READ".into();
        json["resource"]["disputed_transactions"] = json!([{"seller_transaction_id": "NOTREAD"}]);
        json["resource"]["supplementary_data"] = json!({"related_ids": {"order_id": "NOTREAD"}});
    })
    .unwrap();
    assert_eq!(event, parse_fixture("PAYMENT.CAPTURE.REFUNDED"));
}
