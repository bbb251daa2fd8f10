//! The services end to end over the in-memory store, with a tiny gateway
//! adapter defined here: a JSON body, and a header `x-test-sig` that must be
//! `ok`.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use payhook_domain::ports::{
    EventFilter, EventOutcome, GatewayAdapter, Headers, ParseError, StoreError, VerifyError,
    WebhookRequest,
};
use payhook_domain::testing::{FixedClock, InMemoryStore, SequentialIds};
use payhook_domain::{
    AmountMismatch, AmountPolicy, EventKind, EventPage, GatewayEvent, Money, NotificationKind,
    Order, OrderId, OrderStatus, Outcome, Payment, PaymentError, PaymentId, PaymentRef,
    PaymentService, PaymentStatus, References, TransitionError, WebhookError, WebhookOutcome,
    WebhookService,
};
use serde_json::{json, Value};

use crate::support::{at, currency, money};

/// The test gateway: verifies `x-test-sig: ok`, reads
/// `{"id", "type", "transaction_id", "external_id", "reference", "amount", "currency"}`.
struct TestAdapter {
    name: &'static str,
}

const TEST: TestAdapter = TestAdapter { name: "test" };

fn text_field(body: &Value, field: &str) -> Option<String> {
    body.get(field).and_then(Value::as_str).map(str::to_owned)
}

impl GatewayAdapter for TestAdapter {
    fn name(&self) -> &'static str {
        self.name
    }

    fn verify(&self, request: &WebhookRequest<'_>, _now: DateTime<Utc>) -> Result<(), VerifyError> {
        match request.headers.get("x-test-sig") {
            None => Err(VerifyError::MissingHeader("x-test-sig")),
            Some("ok") => Ok(()),
            Some(_) => Err(VerifyError::BadSignature),
        }
    }

    fn parse(&self, request: &WebhookRequest<'_>) -> Result<GatewayEvent, ParseError> {
        let body: Value = serde_json::from_slice(request.body)
            .map_err(|e| ParseError::Malformed(e.to_string()))?;
        let event_id = text_field(&body, "id").ok_or(ParseError::MissingField("id"))?;
        let event_type = text_field(&body, "type").ok_or(ParseError::MissingField("type"))?;
        let kind = match event_type.as_str() {
            "payment.succeeded" => EventKind::Succeeded,
            "payment.failed" => EventKind::Failed,
            "payment.canceled" => EventKind::Canceled,
            "payment.pending" => EventKind::Pending,
            _ => EventKind::NotHandled,
        };
        let amount = match (text_field(&body, "amount"), text_field(&body, "currency")) {
            (Some(amount), Some(code)) => {
                let money = |field| move |source| ParseError::Money { field, source };
                let currency = payhook_domain::Currency::parse(&code).map_err(money("currency"))?;
                Some(Money::parse(&amount, currency).map_err(money("amount"))?)
            }
            _ => None,
        };
        Ok(GatewayEvent {
            gateway: self.name.to_owned(),
            event_id,
            event_type,
            kind,
            references: References {
                transaction_id: text_field(&body, "transaction_id"),
                external_id: text_field(&body, "external_id"),
                gateway_reference: text_field(&body, "reference"),
            },
            amount,
            report: None,
        })
    }
}

/// Request headers owned by the test. (`WebhookRequest` needs a sized
/// `Headers`; this delegates to the crate's slice implementation.)
struct TestHeaders(Vec<(String, String)>);

impl Headers for TestHeaders {
    fn get(&self, name: &str) -> Option<&str> {
        // The slice's inherent `get` (by index) shadows `Headers::get`.
        Headers::get(self.0.as_slice(), name)
    }
}

struct Harness {
    store: Arc<InMemoryStore>,
    clock: Arc<FixedClock>,
    payments: PaymentService,
    webhooks: WebhookService,
}

fn harness(policy: AmountPolicy) -> Harness {
    let store = Arc::new(InMemoryStore::new());
    let clock = Arc::new(FixedClock::new(at(0)));
    let payments = PaymentService::new(
        store.clone(),
        clock.clone(),
        Arc::new(SequentialIds::default()),
        ["test", "other"],
    );
    let webhooks = WebhookService::new(store.clone(), clock.clone(), policy);
    Harness {
        store,
        clock,
        payments,
        webhooks,
    }
}

impl Harness {
    /// A webhook service over the same store and clock under another policy.
    fn webhooks_with(&self, policy: AmountPolicy) -> WebhookService {
        WebhookService::new(self.store.clone(), self.clock.clone(), policy)
    }

    /// Delivers `body` through the test adapter, signed when `signature` is given.
    async fn deliver_via(
        &self,
        webhooks: &WebhookService,
        adapter: &TestAdapter,
        body: &[u8],
        signature: Option<&str>,
    ) -> Result<WebhookOutcome, WebhookError> {
        let mut headers = vec![("Content-Type".to_owned(), "application/json".to_owned())];
        if let Some(signature) = signature {
            headers.push(("X-Test-Sig".to_owned(), signature.to_owned()));
        }
        let headers = TestHeaders(headers);
        let request = WebhookRequest {
            headers: &headers,
            body,
        };
        webhooks.handle(adapter, &request).await
    }

    async fn deliver(&self, body: &Value) -> Result<WebhookOutcome, WebhookError> {
        self.deliver_via(
            &self.webhooks,
            &TEST,
            body.to_string().as_bytes(),
            Some("ok"),
        )
        .await
    }

    async fn order_for(&self, client_id: &str) -> Order {
        self.payments
            .create_order(client_id.into(), money(15000, "USD"))
            .await
            .expect("order")
    }

    /// A payment of 150.00 USD for `order`, pending at the test gateway as `external_id`.
    async fn pending_payment(&self, order: &Order, external_id: &str) -> Payment {
        let created = self
            .payments
            .create_payment(order.id, "test".into(), money(15000, "USD"))
            .await
            .expect("payment");
        self.payments
            .mark_pending(created.id, external_id.into())
            .await
            .expect("pending")
    }

    async fn payment(&self, id: PaymentId) -> Payment {
        self.payments.payment(id).await.expect("payment exists")
    }

    async fn order_status(&self, id: OrderId) -> OrderStatus {
        self.payments.order(id).await.expect("order exists").status
    }

    /// The order's status and `paid_amount`.
    async fn order_paid(&self, id: OrderId) -> (OrderStatus, Money) {
        let order = self.payments.order(id).await.expect("order exists");
        (order.status, order.paid_amount)
    }

    fn outbox_kinds(&self) -> Vec<NotificationKind> {
        self.store.outbox().iter().map(|n| n.kind).collect()
    }

    /// The recorded events as (event id, outcome, payment), sorted by event id.
    fn events(&self) -> Vec<(String, String, Option<PaymentId>)> {
        let mut events: Vec<_> = self
            .store
            .events()
            .into_iter()
            .map(|e| {
                (
                    e.event.event_id,
                    e.outcome.as_str().to_owned(),
                    e.payment_id,
                )
            })
            .collect();
        events.sort();
        events
    }
}

fn succeeded(event_id: &str, references: Value) -> Value {
    with_type(event_id, "payment.succeeded", references)
}

fn failed(event_id: &str, references: Value) -> Value {
    with_type(event_id, "payment.failed", references)
}

fn with_type(event_id: &str, event_type: &str, references: Value) -> Value {
    let mut body = json!({"id": event_id, "type": event_type});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), references.as_object()) {
        body.extend(extra.clone());
    }
    body
}

/// What a delivery answers when it decided `outcome` for `payment`: the
/// payment named as the store holds it after the event (its status,
/// refunded amount and dispute are the answer's too), so call it after
/// the delivery.
async fn decided(h: &Harness, outcome: Outcome, payment: &Payment) -> WebhookOutcome {
    WebhookOutcome::Decided {
        outcome,
        payment: PaymentRef::from(&h.payment(payment.id).await),
    }
}

/// The body of the outbox row `index`.
fn outbox_payload(h: &Harness, index: usize) -> Value {
    serde_json::from_str(&h.store.outbox()[index].payload).expect("JSON")
}

#[tokio::test]
async fn a_success_confirms_the_payment_and_pays_the_order_once() {
    let h = harness(AmountPolicy::Warn);
    let order = h.order_for("shop-order-1").await;
    assert_eq!(order.status, OrderStatus::Pending);
    assert_eq!(order.client_id, "shop-order-1");

    let created = h
        .payments
        .create_payment(order.id, "test".into(), money(15000, "USD"))
        .await
        .expect("payment");
    assert_eq!(created.transaction_id, "TXN-TEST-1");
    assert_eq!(created.status, PaymentStatus::Created);
    assert_eq!(created.order_id, order.id);
    assert_eq!(created.external_id, None);

    h.clock.set(at(10));
    let pending = h
        .payments
        .mark_pending(created.id, "pi_1".into())
        .await
        .expect("pending");
    assert_eq!(pending.status, PaymentStatus::PendingExternal);
    assert_eq!(pending.external_id.as_deref(), Some("pi_1"));
    assert_eq!(pending.updated_at, at(10));

    h.clock.set(at(20));
    let body = succeeded(
        "evt_1",
        json!({"transaction_id": "TXN-TEST-1", "amount": "150.00", "currency": "usd"}),
    );
    let outcome = h.deliver(&body).await.expect("applied");
    assert_eq!(outcome, decided(&h, Outcome::Confirmed, &created).await);
    assert!(!outcome.amount_mismatch());

    let confirmed = h.payment(created.id).await;
    assert_eq!(confirmed.status, PaymentStatus::Completed);
    assert_eq!(confirmed.amount_mismatch, None);
    assert_eq!(confirmed.updated_at, at(20));
    assert_eq!(h.order_status(order.id).await, OrderStatus::Paid);

    let outbox = h.store.outbox();
    assert_eq!(outbox.len(), 1, "{outbox:?}");
    assert_eq!(outbox[0].kind, NotificationKind::OrderPaid);
    let payload: Value = serde_json::from_str(&outbox[0].payload).expect("JSON");
    assert_eq!(payload["type"], "order.paid");
    assert_eq!(payload["order_id"], json!(order.id.0));
    assert_eq!(payload["payment_id"], json!(created.id.0));
    assert_eq!(payload["transaction_id"], "TXN-TEST-1");
    assert_eq!(payload["amount"], "150.00");
    assert_eq!(payload["currency"], "USD");

    assert_eq!(
        h.events(),
        [("evt_1".to_owned(), "confirmed".to_owned(), Some(created.id))]
    );
    let stored = h.store.events();
    assert_eq!(stored[0].event.gateway, "test");
    assert_eq!(stored[0].event.amount, Some(money(15000, "USD")));
}

#[tokio::test]
async fn the_same_event_id_again_is_a_duplicate_and_changes_nothing() {
    let h = harness(AmountPolicy::Warn);
    let order = h.order_for("o").await;
    let payment = h.pending_payment(&order, "pi_1").await;
    let body = succeeded("evt_1", json!({"external_id": "pi_1"}));
    assert_eq!(
        h.deliver(&body).await.expect("first"),
        decided(&h, Outcome::Confirmed, &payment).await
    );
    let after_first = h.payment(payment.id).await;

    h.clock.set(at(99));
    let again = h.deliver(&body).await.expect("second");
    assert_eq!(
        again,
        WebhookOutcome::Duplicate {
            payment: Some(PaymentRef::from(&after_first))
        }
    );
    assert_eq!(h.payment(payment.id).await, after_first);
    assert_eq!(h.outbox_kinds(), [NotificationKind::OrderPaid]);
    assert_eq!(h.events().len(), 1);

    // Even a re-delivery whose content changed is recognised by its id.
    let changed = failed("evt_1", json!({"external_id": "pi_1"}));
    assert!(matches!(
        h.deliver(&changed).await,
        Ok(WebhookOutcome::Duplicate { payment: Some(_) })
    ));
    assert_eq!(h.payment(payment.id).await, after_first);
}

#[tokio::test]
async fn a_new_event_id_for_a_completed_payment_is_already_completed() {
    let h = harness(AmountPolicy::Warn);
    let order = h.order_for("o").await;
    let payment = h.pending_payment(&order, "pi_1").await;
    h.deliver(&succeeded("evt_1", json!({"external_id": "pi_1"})))
        .await
        .expect("first");
    let outcome = h
        .deliver(&succeeded("evt_2", json!({"external_id": "pi_1"})))
        .await
        .expect("second");
    assert_eq!(
        outcome,
        decided(&h, Outcome::AlreadyCompleted, &payment).await
    );
    assert_eq!(h.outbox_kinds(), [NotificationKind::OrderPaid]);
    assert_eq!(
        h.events(),
        [
            ("evt_1".to_owned(), "confirmed".to_owned(), Some(payment.id)),
            (
                "evt_2".to_owned(),
                "already_completed".to_owned(),
                Some(payment.id)
            ),
        ]
    );
}

#[tokio::test]
async fn event_ids_are_unique_per_gateway_not_globally() {
    let h = harness(AmountPolicy::Warn);
    let order = h.order_for("o").await;
    let payment = h.pending_payment(&order, "pi_1").await;
    let body = succeeded("evt_1", json!({"transaction_id": payment.transaction_id}));
    h.deliver(&body).await.expect("first");
    let other = TestAdapter { name: "other" };
    let outcome = h
        .deliver_via(&h.webhooks, &other, body.to_string().as_bytes(), Some("ok"))
        .await
        .expect("other gateway");
    // Not a duplicate of the first gateway's evt_1: recorded as an event of
    // its own. It finds no payment, since the payment is the first gateway's.
    assert_eq!(
        outcome,
        WebhookOutcome::Unmatched {
            event_id: "evt_1".into()
        }
    );
    assert_eq!(h.store.events().len(), 2);
}

#[tokio::test]
async fn an_unmatched_event_is_applied_when_redelivered_after_the_payment_exists() {
    let h = harness(AmountPolicy::Warn);
    // It names the transaction id the next payment will get, before it exists.
    let body = succeeded(
        "evt_early",
        json!({"transaction_id": "TXN-TEST-1", "amount": "150.00", "currency": "USD"}),
    );
    assert_eq!(
        h.deliver(&body).await.expect("unmatched"),
        WebhookOutcome::Unmatched {
            event_id: "evt_early".into()
        }
    );
    assert_eq!(
        h.events(),
        [("evt_early".to_owned(), "unmatched".to_owned(), None)]
    );
    assert!(h.store.outbox().is_empty());

    // Still nobody: still unmatched, not a duplicate.
    assert_eq!(
        h.deliver(&body).await.expect("unmatched again"),
        WebhookOutcome::Unmatched {
            event_id: "evt_early".into()
        }
    );

    let order = h.order_for("o").await;
    let payment = h
        .payments
        .create_payment(order.id, "test".into(), money(15000, "USD"))
        .await
        .expect("payment");
    assert_eq!(payment.transaction_id, "TXN-TEST-1");
    let outcome = h.deliver(&body).await.expect("applied now");
    assert_eq!(outcome, decided(&h, Outcome::Confirmed, &payment).await);
    assert_eq!(h.payment(payment.id).await.status, PaymentStatus::Completed);
    assert_eq!(h.order_status(order.id).await, OrderStatus::Paid);
    assert_eq!(h.outbox_kinds(), [NotificationKind::OrderPaid]);
    assert_eq!(
        h.events(),
        [(
            "evt_early".to_owned(),
            "confirmed".to_owned(),
            Some(payment.id)
        )]
    );
    assert_eq!(h.store.events()[0].attempts, 3);

    // Now it has been applied, the next delivery is a duplicate.
    assert!(matches!(
        h.deliver(&body).await,
        Ok(WebhookOutcome::Duplicate { payment: Some(p) }) if p.id == payment.id
    ));
}

#[tokio::test]
async fn an_event_without_references_is_unmatched() {
    let h = harness(AmountPolicy::Warn);
    let order = h.order_for("o").await;
    let payment = h.pending_payment(&order, "pi_1").await;
    let body = succeeded("evt_1", json!({"transaction_id": "", "external_id": ""}));
    assert_eq!(
        h.deliver(&body).await.expect("unmatched"),
        WebhookOutcome::Unmatched {
            event_id: "evt_1".into()
        }
    );
    assert_eq!(
        h.payment(payment.id).await.status,
        PaymentStatus::PendingExternal
    );
}

#[tokio::test]
async fn a_bad_signature_writes_nothing() {
    let h = harness(AmountPolicy::Warn);
    let order = h.order_for("o").await;
    let payment = h.pending_payment(&order, "pi_1").await;
    let body = succeeded("evt_1", json!({"external_id": "pi_1"})).to_string();

    let wrong = h
        .deliver_via(&h.webhooks, &TEST, body.as_bytes(), Some("forged"))
        .await;
    assert!(
        matches!(wrong, Err(WebhookError::Verify(VerifyError::BadSignature))),
        "{wrong:?}"
    );
    let missing = h
        .deliver_via(&h.webhooks, &TEST, body.as_bytes(), None)
        .await;
    assert!(
        matches!(
            missing,
            Err(WebhookError::Verify(VerifyError::MissingHeader(
                "x-test-sig"
            )))
        ),
        "{missing:?}"
    );
    // The body is not even read before the signature is checked.
    let garbage = h
        .deliver_via(&h.webhooks, &TEST, b"not json", Some("nope"))
        .await;
    assert!(
        matches!(garbage, Err(WebhookError::Verify(_))),
        "{garbage:?}"
    );

    assert!(h.store.events().is_empty());
    assert!(h.store.outbox().is_empty());
    assert_eq!(h.payment(payment.id).await, payment);
    assert_eq!(h.order_status(order.id).await, OrderStatus::Pending);
}

#[tokio::test]
async fn an_unparsable_body_writes_nothing() {
    let h = harness(AmountPolicy::Warn);
    let order = h.order_for("o").await;
    let payment = h.pending_payment(&order, "pi_1").await;

    let malformed = h
        .deliver_via(&h.webhooks, &TEST, b"{not json", Some("ok"))
        .await;
    assert!(
        matches!(
            malformed,
            Err(WebhookError::Parse(ParseError::Malformed(_)))
        ),
        "{malformed:?}"
    );

    let no_id = h
        .deliver(&json!({"type": "payment.succeeded", "external_id": "pi_1"}))
        .await;
    assert!(
        matches!(
            no_id,
            Err(WebhookError::Parse(ParseError::MissingField("id")))
        ),
        "{no_id:?}"
    );

    let too_precise = h
        .deliver(&succeeded(
            "evt_1",
            json!({"external_id": "pi_1", "amount": "150.001", "currency": "USD"}),
        ))
        .await;
    assert!(
        matches!(
            too_precise,
            Err(WebhookError::Parse(ParseError::Money {
                field: "amount",
                ..
            }))
        ),
        "{too_precise:?}"
    );

    assert!(h.store.events().is_empty());
    assert!(h.store.outbox().is_empty());
    assert_eq!(h.payment(payment.id).await, payment);
}

#[tokio::test]
async fn a_not_handled_event_is_ignored_and_not_stored() {
    let h = harness(AmountPolicy::Warn);
    let order = h.order_for("o").await;
    let payment = h.pending_payment(&order, "pi_1").await;
    let body = with_type("evt_1", "payment.created", json!({"external_id": "pi_1"}));
    assert_eq!(
        h.deliver(&body).await.expect("ignored"),
        WebhookOutcome::Ignored {
            event_type: "payment.created".into()
        }
    );
    assert!(h.store.events().is_empty());
    assert!(h.store.outbox().is_empty());
    assert_eq!(h.payment(payment.id).await, payment);
}

#[tokio::test]
async fn a_failed_payment_can_still_complete_after_a_retry() {
    let h = harness(AmountPolicy::Warn);
    let order = h.order_for("o").await;
    let payment = h.pending_payment(&order, "pi_1").await;

    let fail = failed("evt_1", json!({"external_id": "pi_1", "reference": "ch_1"}));
    assert_eq!(
        h.deliver(&fail).await.expect("failed"),
        decided(&h, Outcome::Failed, &payment).await
    );
    let after_failure = h.payment(payment.id).await;
    assert_eq!(after_failure.status, PaymentStatus::Failed);
    assert_eq!(after_failure.gateway_reference.as_deref(), Some("ch_1"));
    assert_eq!(h.order_status(order.id).await, OrderStatus::Pending);

    let fail_again = failed("evt_2", json!({"external_id": "pi_1"}));
    assert_eq!(
        h.deliver(&fail_again).await.expect("already failed"),
        decided(&h, Outcome::AlreadyFailed, &payment).await
    );

    // The shop sends the customer back to the gateway.
    let retried = h
        .payments
        .mark_pending(payment.id, "pi_1".into())
        .await
        .expect("retry");
    assert_eq!(retried.status, PaymentStatus::PendingExternal);

    let success = succeeded("evt_3", json!({"external_id": "pi_1"}));
    assert_eq!(
        h.deliver(&success).await.expect("confirmed"),
        decided(&h, Outcome::Confirmed, &payment).await
    );
    assert_eq!(h.payment(payment.id).await.status, PaymentStatus::Completed);
    assert_eq!(h.order_status(order.id).await, OrderStatus::Paid);
    assert_eq!(
        h.outbox_kinds(),
        [NotificationKind::PaymentFailed, NotificationKind::OrderPaid]
    );
}

#[tokio::test]
async fn a_late_failure_is_recorded_but_not_applied() {
    let h = harness(AmountPolicy::Warn);
    let order = h.order_for("o").await;
    let payment = h.pending_payment(&order, "pi_1").await;
    h.deliver(&succeeded("evt_1", json!({"external_id": "pi_1"})))
        .await
        .expect("confirmed");
    let completed = h.payment(payment.id).await;

    h.clock.set(at(50));
    let late = failed("evt_2", json!({"external_id": "pi_1"}));
    assert_eq!(
        h.deliver(&late).await.expect("late"),
        decided(&h, Outcome::LateFailureIgnored, &payment).await
    );
    assert_eq!(h.payment(payment.id).await, completed);
    assert_eq!(h.order_status(order.id).await, OrderStatus::Paid);
    assert_eq!(h.outbox_kinds(), [NotificationKind::OrderPaid]);
    assert!(h.events().contains(&(
        "evt_2".to_owned(),
        "late_failure_ignored".to_owned(),
        Some(payment.id)
    )));
}

#[tokio::test]
async fn a_different_amount_under_warn_confirms_and_notifies_the_mismatch() {
    let h = harness(AmountPolicy::Warn);
    assert_eq!(h.webhooks.policy(), AmountPolicy::Warn);
    let order = h.order_for("o").await;
    let payment = h.pending_payment(&order, "pi_1").await;
    let body = succeeded(
        "evt_1",
        json!({"external_id": "pi_1", "amount": "140.00", "currency": "USD"}),
    );
    let outcome = h.deliver(&body).await.expect("confirmed");
    let stored = h.payment(payment.id).await;
    // The answer names the payment as stored, mismatch flag included.
    assert_eq!(outcome, decided(&h, Outcome::Confirmed, &stored).await);
    assert!(matches!(&outcome, WebhookOutcome::Decided { payment, .. } if payment.amount_mismatch));
    assert!(
        outcome.amount_mismatch(),
        "the mismatch is a fact of the outcome"
    );
    assert_eq!(stored.status, PaymentStatus::Completed);
    assert_eq!(
        stored.amount_mismatch,
        Some(AmountMismatch {
            expected: money(15000, "USD"),
            received: money(14000, "USD"),
        })
    );
    assert_eq!(h.order_status(order.id).await, OrderStatus::Paid);
    assert_eq!(
        h.outbox_kinds(),
        [
            NotificationKind::OrderPaid,
            NotificationKind::AmountMismatch
        ]
    );
}

#[tokio::test]
async fn a_rejected_amount_is_evaluated_again_on_redelivery() {
    let h = harness(AmountPolicy::Reject);
    assert_eq!(h.webhooks.policy(), AmountPolicy::Reject);
    let order = h.order_for("o").await;
    let payment = h.pending_payment(&order, "pi_1").await;
    let body = succeeded(
        "evt_1",
        json!({"external_id": "pi_1", "amount": "15000", "currency": "JPY"}),
    );

    for _ in 0..2 {
        let outcome = h.deliver(&body).await.expect("rejected");
        assert_eq!(
            outcome,
            decided(&h, Outcome::AmountRejected, &payment).await,
            "a refused amount is not final, so never a duplicate"
        );
        assert!(outcome.amount_mismatch());
        assert_eq!(h.payment(payment.id).await, payment);
        assert_eq!(h.order_status(order.id).await, OrderStatus::Pending);
        assert!(h.store.outbox().is_empty());
    }
    assert_eq!(
        h.events(),
        [(
            "evt_1".to_owned(),
            "amount_rejected".to_owned(),
            Some(payment.id)
        )]
    );

    // The operator switches to warn; the gateway's retry now confirms.
    let warn = h.webhooks_with(AmountPolicy::Warn);
    let outcome = h
        .deliver_via(&warn, &TEST, body.to_string().as_bytes(), Some("ok"))
        .await
        .expect("confirmed");
    let stored = h.payment(payment.id).await;
    assert_eq!(outcome, decided(&h, Outcome::Confirmed, &stored).await);
    assert!(outcome.amount_mismatch());
    assert_eq!(
        stored.amount_mismatch.map(|m| m.received),
        Some(Money::from_minor(15000, currency("JPY")))
    );
    assert_eq!(h.order_status(order.id).await, OrderStatus::Paid);
}

#[tokio::test]
async fn a_second_payment_of_a_paid_order_does_not_pay_it_again() {
    let h = harness(AmountPolicy::Warn);
    let order = h.order_for("o").await;
    let first = h.pending_payment(&order, "pi_1").await;
    let second = h.pending_payment(&order, "pi_2").await;
    h.deliver(&succeeded("evt_1", json!({"external_id": "pi_1"})))
        .await
        .expect("first");
    let outcome = h
        .deliver(&succeeded("evt_2", json!({"external_id": "pi_2"})))
        .await
        .expect("second");
    assert_eq!(outcome, decided(&h, Outcome::Confirmed, &second).await);
    assert_eq!(h.payment(first.id).await.status, PaymentStatus::Completed);
    assert_eq!(h.payment(second.id).await.status, PaymentStatus::Completed);
    assert_eq!(
        h.order_paid(order.id).await,
        (OrderStatus::Paid, money(30000, "USD"))
    );
    // The shop is told once that the order is paid, then that it was paid
    // twice, so that it refunds one payment.
    assert_eq!(
        h.outbox_kinds(),
        [NotificationKind::OrderPaid, NotificationKind::OrderOverpaid]
    );
    let overpaid = outbox_payload(&h, 1);
    assert_eq!(overpaid["payment_id"], json!(second.id.0));
    assert_eq!(overpaid["payment_ids"], json!([first.id.0, second.id.0]));
    assert_eq!(overpaid["paid_amount"], "300.00");
    assert_eq!(overpaid["order_total"], "150.00");
}

#[tokio::test]
async fn lookups_follow_the_design_order() {
    let h = harness(AmountPolicy::Warn);
    let order = h.order_for("o").await;
    let a = h.pending_payment(&order, "pi_a").await;
    let b = h.pending_payment(&order, "pi_b").await;
    let c = h.pending_payment(&order, "ch_c").await;
    let d = h.pending_payment(&order, "ch_d").await;

    // The transaction id of A beats the external id of B.
    let both = failed(
        "evt_1",
        json!({"transaction_id": a.transaction_id, "external_id": "pi_b"}),
    );
    assert_eq!(
        h.deliver(&both).await.expect("A"),
        decided(&h, Outcome::Failed, &a).await
    );
    assert_eq!(h.payment(a.id).await.status, PaymentStatus::Failed);
    assert_eq!(h.payment(b.id).await.status, PaymentStatus::PendingExternal);

    // The external id of B beats a gateway reference naming C.
    let ext = failed("evt_2", json!({"external_id": "pi_b", "reference": "ch_c"}));
    assert_eq!(
        h.deliver(&ext).await.expect("B"),
        decided(&h, Outcome::Failed, &b).await
    );
    assert_eq!(h.payment(b.id).await.status, PaymentStatus::Failed);
    assert_eq!(h.payment(c.id).await.status, PaymentStatus::PendingExternal);

    // An unknown transaction id falls through to the next lookup.
    let fallthrough = failed(
        "evt_3",
        json!({"transaction_id": "TXN-NOBODY", "external_id": "pi_nobody", "reference": "ch_d"}),
    );
    assert_eq!(
        h.deliver(&fallthrough).await.expect("D"),
        decided(&h, Outcome::Failed, &d).await
    );
}

#[tokio::test]
async fn a_learnt_gateway_reference_finds_the_payment_later() {
    let h = harness(AmountPolicy::Warn);
    let order = h.order_for("o").await;
    let payment = h.pending_payment(&order, "pi_1").await;
    h.deliver(&failed(
        "evt_1",
        json!({"external_id": "pi_1", "reference": "cap_9"}),
    ))
    .await
    .expect("failed");
    let by_reference = succeeded("evt_2", json!({"reference": "cap_9"}));
    assert_eq!(
        h.deliver(&by_reference).await.expect("confirmed"),
        decided(&h, Outcome::Confirmed, &payment).await
    );
}

#[tokio::test]
async fn an_external_id_prefers_the_payment_of_the_same_gateway() {
    let h = harness(AmountPolicy::Warn);
    let order = h.order_for("o").await;
    let elsewhere = h
        .payments
        .create_payment(order.id, "other".into(), money(15000, "USD"))
        .await
        .expect("payment");
    h.payments
        .mark_pending(elsewhere.id, "shared_1".into())
        .await
        .expect("other gateway");
    let ours = h.pending_payment(&order, "shared_1").await;
    let outcome = h
        .deliver(&succeeded("evt_1", json!({"external_id": "shared_1"})))
        .await
        .expect("ours");
    assert_eq!(outcome, decided(&h, Outcome::Confirmed, &ours).await);
    assert_eq!(
        h.payment(elsewhere.id).await.status,
        PaymentStatus::PendingExternal
    );
}

#[tokio::test]
async fn an_event_finds_no_payment_of_another_gateway() {
    let h = harness(AmountPolicy::Warn);
    let order = h.order_for("o").await;
    let theirs = h
        .payments
        .create_payment(order.id, "other".into(), money(15000, "USD"))
        .await
        .expect("payment");
    h.payments
        .mark_pending(theirs.id, "other_1".into())
        .await
        .expect("pending");
    for (n, references) in [
        json!({"transaction_id": theirs.transaction_id}),
        json!({"external_id": "other_1"}),
        json!({"reference": "other_1"}),
    ]
    .into_iter()
    .enumerate()
    {
        let event_id = format!("evt_cross_{n}");
        let outcome = h
            .deliver(&succeeded(&event_id, references))
            .await
            .expect("kept");
        assert_eq!(outcome, WebhookOutcome::Unmatched { event_id });
    }
    assert_eq!(
        h.payment(theirs.id).await.status,
        PaymentStatus::PendingExternal
    );
}

#[tokio::test]
async fn an_early_event_of_another_gateway_is_not_applied_on_mark_pending() {
    let h = harness(AmountPolicy::Warn);
    let order = h.order_for("o").await;
    let early = h
        .deliver(&succeeded("evt_early", json!({"external_id": "shared_2"})))
        .await
        .expect("kept");
    assert!(matches!(early, WebhookOutcome::Unmatched { .. }));
    let theirs = h
        .payments
        .create_payment(order.id, "other".into(), money(15000, "USD"))
        .await
        .expect("payment");
    let pending = h
        .payments
        .mark_pending(theirs.id, "shared_2".into())
        .await
        .expect("pending");
    assert_eq!(pending.status, PaymentStatus::PendingExternal);
}

#[tokio::test]
async fn a_payment_method_must_name_a_known_gateway() {
    let h = harness(AmountPolicy::Warn);
    let order = h.order_for("o").await;
    let result = h
        .payments
        .create_payment(order.id, "card".into(), money(100, "USD"))
        .await;
    let Err(error @ PaymentError::UnknownGateway { .. }) = result else {
        panic!("{result:?}");
    };
    assert_eq!(
        error.to_string(),
        "invalid payment_method: not a known gateway; expected one of: test, other"
    );
    assert_eq!(h.payments.gateways(), ["test", "other"]);
}

#[tokio::test]
async fn texts_with_nul_are_refused_naming_the_field() {
    let h = harness(AmountPolicy::Warn);
    let result = h
        .payments
        .create_order("a\0b".into(), money(100, "USD"))
        .await;
    assert!(
        matches!(
            result,
            Err(PaymentError::InvalidInput {
                field: "client_id",
                ..
            })
        ),
        "{result:?}"
    );
    let order = h.order_for("o").await;
    let result = h
        .payments
        .create_payment(order.id, "test\0".into(), money(100, "USD"))
        .await;
    assert!(
        matches!(
            result,
            Err(PaymentError::InvalidInput {
                field: "payment_method",
                ..
            })
        ),
        "{result:?}"
    );
    let payment = h
        .payments
        .create_payment(order.id, "test".into(), money(100, "USD"))
        .await
        .expect("payment");
    let result = h.payments.mark_pending(payment.id, "x\0".into()).await;
    assert!(
        matches!(
            result,
            Err(PaymentError::InvalidInput {
                field: "external_id",
                ..
            })
        ),
        "{result:?}"
    );
    let result = h
        .deliver(&succeeded("evt_\u{0}", json!({"external_id": "x"})))
        .await;
    assert!(
        matches!(
            result,
            Err(WebhookError::Parse(ParseError::InvalidField {
                field: "event_id",
                ..
            }))
        ),
        "{result:?}"
    );
    assert!(h.store.events().is_empty());
}

#[tokio::test]
async fn invalid_orders_are_refused_and_not_stored() {
    let h = harness(AmountPolicy::Warn);
    let long = "x".repeat(256);
    for client_id in ["", "   ", long.as_str()] {
        let result = h
            .payments
            .create_order(client_id.into(), money(100, "USD"))
            .await;
        assert!(
            matches!(
                result,
                Err(PaymentError::InvalidInput {
                    field: "client_id",
                    ..
                })
            ),
            "{client_id:?}: {result:?}"
        );
    }
    assert!(h
        .payments
        .create_order("x".repeat(255), money(100, "USD"))
        .await
        .is_ok());
    for total in [money(0, "USD"), money(-1, "USD"), money(-15000, "JPY")] {
        let result = h.payments.create_order("shop".into(), total).await;
        assert!(
            matches!(
                result,
                Err(PaymentError::InvalidInput { field: "total", .. })
            ),
            "{total}: {result:?}"
        );
    }
    // Only the one valid order exists.
    assert!(h.payments.order(OrderId(1)).await.is_ok());
    assert!(matches!(
        h.payments.order(OrderId(2)).await,
        Err(PaymentError::Store(StoreError::OrderNotFound(OrderId(2))))
    ));
}

#[tokio::test]
async fn invalid_payments_are_refused_and_not_stored() {
    let h = harness(AmountPolicy::Warn);
    let order = h.order_for("o").await;
    let long = "m".repeat(256);
    for method in ["", " \t", long.as_str()] {
        let result = h
            .payments
            .create_payment(order.id, method.to_owned(), money(100, "USD"))
            .await;
        assert!(
            matches!(
                result,
                Err(PaymentError::InvalidInput {
                    field: "payment_method",
                    ..
                })
            ),
            "{method:?}: {result:?}"
        );
    }
    for amount in [money(0, "USD"), money(-500, "USD")] {
        let result = h
            .payments
            .create_payment(order.id, "test".into(), amount)
            .await;
        assert!(
            matches!(
                result,
                Err(PaymentError::InvalidInput {
                    field: "amount",
                    ..
                })
            ),
            "{amount}: {result:?}"
        );
    }
    let unknown = h
        .payments
        .create_payment(OrderId(404), "test".into(), money(100, "USD"))
        .await;
    assert!(
        matches!(unknown, Err(PaymentError::UnknownOrder(OrderId(404)))),
        "{unknown:?}"
    );
    assert!(matches!(
        h.payments.payment(PaymentId(1)).await,
        Err(PaymentError::Store(StoreError::PaymentNotFound(PaymentId(
            1
        ))))
    ));
    // Nothing was stored: the first valid payment gets the first id.
    let first = h
        .payments
        .create_payment(order.id, "test".into(), money(100, "USD"))
        .await
        .expect("valid");
    assert_eq!(first.id, PaymentId(1));
    assert_eq!(first.status, PaymentStatus::Created);
}

#[tokio::test]
async fn invalid_mark_pending_requests_are_refused() {
    let h = harness(AmountPolicy::Warn);
    let order = h.order_for("o").await;
    let payment = h.pending_payment(&order, "pi_1").await;
    let long = "e".repeat(256);
    for external_id in ["", "  ", long.as_str()] {
        let result = h
            .payments
            .mark_pending(payment.id, external_id.to_owned())
            .await;
        assert!(
            matches!(
                result,
                Err(PaymentError::InvalidInput {
                    field: "external_id",
                    ..
                })
            ),
            "{external_id:?}: {result:?}"
        );
    }
    let unknown = h.payments.mark_pending(PaymentId(99), "pi_9".into()).await;
    assert!(
        matches!(
            unknown,
            Err(PaymentError::Store(StoreError::PaymentNotFound(PaymentId(
                99
            ))))
        ),
        "{unknown:?}"
    );
    assert_eq!(h.payment(payment.id).await, payment);
}

#[tokio::test]
async fn an_external_id_is_unique_per_gateway() {
    let h = harness(AmountPolicy::Warn);
    let order = h.order_for("o").await;
    let first = h.pending_payment(&order, "pi_1").await;
    let second = h
        .payments
        .create_payment(order.id, "test".into(), money(15000, "USD"))
        .await
        .expect("payment");
    let taken = h.payments.mark_pending(second.id, "pi_1".into()).await;
    assert!(
        matches!(
            taken,
            Err(PaymentError::Store(StoreError::ExternalIdTaken(id))) if id == first.id
        ),
        "{taken:?}"
    );
    assert_eq!(h.payment(second.id).await.status, PaymentStatus::Created);

    // Marking the same payment pending again with its own id is fine.
    assert_eq!(
        h.payments
            .mark_pending(first.id, "pi_1".into())
            .await
            .expect("again"),
        first
    );
}

#[tokio::test]
async fn mark_pending_on_a_completed_payment_is_refused() {
    let h = harness(AmountPolicy::Warn);
    let order = h.order_for("o").await;
    let payment = h.pending_payment(&order, "pi_1").await;
    h.deliver(&succeeded("evt_1", json!({"external_id": "pi_1"})))
        .await
        .expect("confirmed");
    let completed = h.payment(payment.id).await;
    let result = h.payments.mark_pending(payment.id, "pi_2".into()).await;
    assert!(
        matches!(
            result,
            Err(PaymentError::Store(StoreError::Transition(
                TransitionError::AlreadyCompleted
            )))
        ),
        "{result:?}"
    );
    assert_eq!(h.payment(payment.id).await, completed);
}

#[tokio::test]
async fn marking_pending_applies_an_event_that_arrived_first() {
    let h = harness(AmountPolicy::Warn);
    let early = succeeded(
        "evt_early",
        json!({"external_id": "pi_late", "amount": "150.00", "currency": "USD"}),
    );
    let unrelated = succeeded("evt_other", json!({"external_id": "pi_other"}));
    for body in [&early, &unrelated] {
        assert!(matches!(
            h.deliver(body).await,
            Ok(WebhookOutcome::Unmatched { .. })
        ));
    }
    let order = h.order_for("o").await;
    let created = h
        .payments
        .create_payment(order.id, "test".into(), money(15000, "USD"))
        .await
        .expect("payment");

    h.clock.set(at(30));
    let marked = h
        .payments
        .mark_pending(created.id, "pi_late".into())
        .await
        .expect("pending");

    // The shop's call comes back with the payment as the early event left it.
    assert_eq!(marked.status, PaymentStatus::Completed);
    assert_eq!(marked.external_id.as_deref(), Some("pi_late"));
    assert_eq!(marked.updated_at, at(30));
    assert_eq!(h.payment(created.id).await, marked);
    assert_eq!(h.order_status(order.id).await, OrderStatus::Paid);
    assert_eq!(h.outbox_kinds(), [NotificationKind::OrderPaid]);
    assert_eq!(
        h.events(),
        [
            (
                "evt_early".to_owned(),
                "confirmed".to_owned(),
                Some(created.id)
            ),
            ("evt_other".to_owned(), "unmatched".to_owned(), None),
        ]
    );
    let applied = &h.store.events()[0];
    assert_eq!((applied.attempts, applied.processed_at), (1, at(30)));

    // Applied once: the gateway's retry is a duplicate.
    assert_eq!(
        h.deliver(&early).await.expect("retry"),
        WebhookOutcome::Duplicate {
            payment: Some(PaymentRef::from(&marked))
        }
    );
    assert_eq!(h.outbox_kinds(), [NotificationKind::OrderPaid]);
}

#[tokio::test]
async fn early_events_are_held_to_the_payment_services_amount_policy() {
    let h = harness(AmountPolicy::Warn);
    // Not told the policy, the payment service refuses a mismatch rather
    // than confirm it.
    assert_eq!(h.payments.amount_policy(), AmountPolicy::Reject);
    let mismatched = |event_id: &str, external_id: &str| {
        succeeded(
            event_id,
            json!({"external_id": external_id, "amount": "140.00", "currency": "USD"}),
        )
    };
    for (event_id, external_id) in [("evt_strict", "pi_strict"), ("evt_lenient", "pi_lenient")] {
        let body = mismatched(event_id, external_id);
        assert!(matches!(
            h.deliver(&body).await,
            Ok(WebhookOutcome::Unmatched { .. })
        ));
    }
    let order = h.order_for("o").await;
    let strict = h
        .payments
        .create_payment(order.id, "test".into(), money(15000, "USD"))
        .await
        .expect("payment");
    let lenient = h
        .payments
        .create_payment(order.id, "test".into(), money(15000, "USD"))
        .await
        .expect("payment");

    let refused = h
        .payments
        .mark_pending(strict.id, "pi_strict".into())
        .await
        .expect("pending");
    assert_eq!(refused.status, PaymentStatus::PendingExternal);
    assert!(h.events().contains(&(
        "evt_strict".to_owned(),
        "amount_rejected".to_owned(),
        Some(strict.id)
    )));

    let confirmed = h
        .payments
        .clone()
        .with_amount_policy(AmountPolicy::Warn)
        .mark_pending(lenient.id, "pi_lenient".into())
        .await
        .expect("pending");
    assert_eq!(confirmed.status, PaymentStatus::Completed);
    assert_eq!(
        confirmed.amount_mismatch.map(|m| m.received),
        Some(money(14000, "USD"))
    );

    // The refused one stays open: a replay under the webhook policy confirms it.
    let stored = h
        .store
        .events()
        .into_iter()
        .find(|e| e.event.event_id == "evt_strict")
        .expect("recorded");
    assert!(matches!(
        h.webhooks.replay(stored.id).await,
        Ok(WebhookOutcome::Decided {
            outcome: Outcome::Confirmed,
            ..
        })
    ));
}

#[tokio::test]
async fn replay_runs_a_recorded_event_through_the_delivery_path() {
    let h = harness(AmountPolicy::Warn);
    // Names the transaction id the first payment will get, before it exists.
    let body = succeeded(
        "evt_replayed",
        json!({"transaction_id": "TXN-TEST-1", "amount": "150.00", "currency": "USD"}),
    );
    assert!(matches!(
        h.deliver(&body).await,
        Ok(WebhookOutcome::Unmatched { .. })
    ));
    let id = h.store.events()[0].id;
    let detail = h.webhooks.event(id).await.expect("recorded");
    assert_eq!(detail.payload, body.to_string().into_bytes());
    assert_eq!(detail.record.event.event_id, "evt_replayed");

    assert_eq!(
        h.webhooks.replay(id).await.expect("replay"),
        WebhookOutcome::Unmatched {
            event_id: "evt_replayed".into()
        },
        "nobody yet: still unmatched"
    );

    let order = h.order_for("o").await;
    let payment = h
        .payments
        .create_payment(order.id, "test".into(), money(15000, "USD"))
        .await
        .expect("payment");
    h.clock.set(at(40));
    assert_eq!(
        h.webhooks.replay(id).await.expect("replay"),
        decided(&h, Outcome::Confirmed, &payment).await
    );
    assert_eq!(h.payment(payment.id).await.updated_at, at(40));
    assert_eq!(h.order_status(order.id).await, OrderStatus::Paid);
    assert_eq!(h.outbox_kinds(), [NotificationKind::OrderPaid]);

    // Processed now: replaying it again changes nothing.
    let completed = h.payment(payment.id).await;
    assert_eq!(
        h.webhooks.replay(id).await.expect("replay"),
        WebhookOutcome::Duplicate {
            payment: Some(PaymentRef::from(&completed))
        }
    );
    assert_eq!(h.outbox_kinds(), [NotificationKind::OrderPaid]);

    assert!(matches!(
        h.webhooks.replay(id + 100).await,
        Err(WebhookError::EventNotFound(missing)) if missing == id + 100
    ));
}

#[tokio::test]
async fn recorded_events_are_listed_by_page() {
    let h = harness(AmountPolicy::Warn);
    let order = h.order_for("o").await;
    let payment = h.pending_payment(&order, "pi_1").await;
    for n in 0..5 {
        h.clock.set(at(n * 10));
        let body = succeeded(&format!("evt_{n}"), json!({"external_id": "pi_1"}));
        h.deliver(&body).await.expect("delivered");
    }
    h.deliver_via(
        &h.webhooks,
        &TestAdapter { name: "other" },
        succeeded("evt_x", json!({"external_id": "pi_nobody"}))
            .to_string()
            .as_bytes(),
        Some("ok"),
    )
    .await
    .expect("delivered");

    let first = h
        .webhooks
        .events(EventFilter {
            gateway: Some("test".into()),
            limit: 2,
            ..EventFilter::default()
        })
        .await
        .expect("page");
    let names = |page: &EventPage| -> Vec<String> {
        page.items
            .iter()
            .map(|e| e.event.event_id.clone())
            .collect()
    };
    assert_eq!(names(&first), ["evt_0", "evt_1"]);
    assert_eq!(first.next_after_id, Some(first.items[1].id));
    let rest = h
        .webhooks
        .events(EventFilter {
            gateway: Some("test".into()),
            after_id: first.next_after_id,
            limit: 10,
            ..EventFilter::default()
        })
        .await
        .expect("page");
    assert_eq!(names(&rest), ["evt_2", "evt_3", "evt_4"]);
    assert_eq!(rest.next_after_id, None);

    let filtered =
        |filter: EventFilter| async { names(&h.webhooks.events(filter).await.expect("page")) };
    assert_eq!(
        filtered(EventFilter {
            outcome: Some(EventOutcome::Unmatched),
            ..EventFilter::default()
        })
        .await,
        ["evt_x"]
    );
    assert_eq!(
        filtered(EventFilter {
            outcome: Some(EventOutcome::Decided(Outcome::AlreadyCompleted)),
            payment_id: Some(payment.id),
            received_after: Some(at(20)),
            received_before: Some(at(40)),
            ..EventFilter::default()
        })
        .await,
        ["evt_2", "evt_3"]
    );
    // A page size out of range is held between 1 and the maximum.
    assert_eq!(
        filtered(EventFilter {
            limit: 0,
            ..EventFilter::default()
        })
        .await,
        ["evt_0"]
    );
}

#[tokio::test]
async fn a_payment_in_another_currency_than_its_order_is_refused_and_not_stored() {
    let h = harness(AmountPolicy::Warn);
    let order = h.order_for("o").await;
    for amount in [
        money(15000, "EUR"),
        money(150, "JPY"),
        money(150_000, "KWD"),
    ] {
        let result = h
            .payments
            .create_payment(order.id, "test".into(), amount)
            .await;
        let Err(error @ PaymentError::CurrencyMismatch { order: "USD", .. }) = &result else {
            panic!("{amount}: {result:?}");
        };
        assert_eq!(
            error.to_string(),
            format!(
                "invalid currency: the order is in USD, the payment in {}",
                amount.currency().code()
            )
        );
    }
    assert!(matches!(
        h.payments.payment(PaymentId(1)).await,
        Err(PaymentError::Store(StoreError::PaymentNotFound(_)))
    ));
    assert_eq!(
        h.order_paid(order.id).await,
        (OrderStatus::Pending, money(0, "USD"))
    );
    // Nothing was stored and no transaction id spent: the first valid
    // payment gets the first of each.
    let valid = h
        .payments
        .create_payment(order.id, "test".into(), money(15000, "USD"))
        .await
        .expect("same currency");
    assert_eq!(valid.id, PaymentId(1));
    assert_eq!(valid.transaction_id, "TXN-TEST-1");
}

#[tokio::test]
async fn a_paid_order_takes_no_new_payment() {
    let h = harness(AmountPolicy::Warn);
    let order = h.order_for("o").await;
    let first = h.pending_payment(&order, "pi_1").await;
    h.deliver(&succeeded("evt_1", json!({"external_id": "pi_1"})))
        .await
        .expect("confirmed");
    assert_eq!(h.order_status(order.id).await, OrderStatus::Paid);

    let result = h
        .payments
        .create_payment(order.id, "test".into(), money(15000, "USD"))
        .await;
    let Err(error @ PaymentError::OrderClosed { .. }) = &result else {
        panic!("{result:?}");
    };
    assert!(
        matches!(error, PaymentError::OrderClosed { order: id, status: OrderStatus::Paid } if *id == order.id),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!("order {} is already paid", order.id)
    );

    // Nothing was written: the next payment, of another order, follows the first.
    assert!(matches!(
        h.payments.payment(PaymentId(first.id.0 + 1)).await,
        Err(PaymentError::Store(StoreError::PaymentNotFound(_)))
    ));
    assert_eq!(
        h.order_paid(order.id).await,
        (OrderStatus::Paid, money(15000, "USD"))
    );
    assert_eq!(h.outbox_kinds(), [NotificationKind::OrderPaid]);
    let other = h.order_for("o-2").await;
    let next = h
        .payments
        .create_payment(other.id, "test".into(), money(15000, "USD"))
        .await
        .expect("the other order is pending");
    assert_eq!(next.id, PaymentId(first.id.0 + 1));
}

#[tokio::test]
async fn a_split_order_is_paid_when_both_halves_complete() {
    let h = harness(AmountPolicy::Warn);
    let order = h.order_for("o").await;
    let mut halves = Vec::new();
    for external_id in ["pi_half_1", "pi_half_2"] {
        let created = h
            .payments
            .create_payment(order.id, "test".into(), money(7500, "USD"))
            .await
            .expect("a payment for part of the total");
        halves.push(
            h.payments
                .mark_pending(created.id, external_id.into())
                .await
                .expect("pending"),
        );
    }

    let first = succeeded(
        "evt_1",
        json!({"external_id": "pi_half_1", "amount": "75.00", "currency": "USD"}),
    );
    assert_eq!(
        h.deliver(&first).await.expect("first half"),
        decided(&h, Outcome::Confirmed, &halves[0]).await
    );
    assert_eq!(
        h.order_paid(order.id).await,
        (OrderStatus::Pending, money(7500, "USD"))
    );
    assert!(h.store.outbox().is_empty(), "{:?}", h.outbox_kinds());
    // The order still takes a payment while it is not covered.
    assert_eq!(
        h.payments.order(order.id).await.expect("order").status,
        OrderStatus::Pending
    );

    // A retry of the first half counts once.
    let again = succeeded("evt_1b", json!({"external_id": "pi_half_1"}));
    assert_eq!(
        h.deliver(&again).await.expect("retry"),
        decided(&h, Outcome::AlreadyCompleted, &halves[0]).await
    );
    assert_eq!(
        h.order_paid(order.id).await,
        (OrderStatus::Pending, money(7500, "USD"))
    );

    h.clock.set(at(30));
    let second = succeeded(
        "evt_2",
        json!({"external_id": "pi_half_2", "amount": "75.00", "currency": "USD"}),
    );
    assert_eq!(
        h.deliver(&second).await.expect("second half"),
        decided(&h, Outcome::Confirmed, &halves[1]).await
    );
    let paid = h.payments.order(order.id).await.expect("order");
    assert_eq!(paid.status, OrderStatus::Paid);
    assert_eq!(paid.paid_amount, money(15000, "USD"));
    assert_eq!(paid.paid_amount.amount_string(), "150.00");
    assert_eq!(paid.updated_at, at(30));
    assert_eq!(h.outbox_kinds(), [NotificationKind::OrderPaid]);
    let body = outbox_payload(&h, 0);
    assert_eq!(body["payment_id"], json!(halves[1].id.0));
    assert_eq!(body["amount"], "75.00");

    assert!(matches!(
        h.payments
            .create_payment(order.id, "test".into(), money(7500, "USD"))
            .await,
        Err(PaymentError::OrderClosed { .. })
    ));
}

#[tokio::test]
async fn a_canceled_checkout_still_completes_when_the_money_arrives() {
    let h = harness(AmountPolicy::Warn);
    let order = h.order_for("o").await;
    let created = h
        .payments
        .create_payment(order.id, "test".into(), money(15000, "USD"))
        .await
        .expect("payment");

    // The gateway names the payment by our transaction id before the shop
    // recorded its own id for it: `pending` moves it on.
    let pending = with_type(
        "evt_1",
        "payment.pending",
        json!({"transaction_id": created.transaction_id}),
    );
    assert_eq!(
        h.deliver(&pending).await.expect("pending"),
        decided(&h, Outcome::Pending, &created).await
    );
    assert_eq!(
        h.payment(created.id).await.status,
        PaymentStatus::PendingExternal
    );

    let canceled = with_type(
        "evt_2",
        "payment.canceled",
        json!({"transaction_id": created.transaction_id}),
    );
    assert_eq!(
        h.deliver(&canceled).await.expect("canceled"),
        decided(&h, Outcome::Canceled, &created).await
    );
    assert_eq!(h.payment(created.id).await.status, PaymentStatus::Canceled);
    let failed_late = failed("evt_3", json!({"transaction_id": created.transaction_id}));
    assert_eq!(
        h.deliver(&failed_late).await.expect("recorded"),
        decided(&h, Outcome::AlreadyCanceled, &created).await
    );

    let success = succeeded("evt_4", json!({"transaction_id": created.transaction_id}));
    assert_eq!(
        h.deliver(&success).await.expect("confirmed"),
        decided(&h, Outcome::Confirmed, &created).await
    );
    let late_cancel = with_type(
        "evt_5",
        "payment.canceled",
        json!({"transaction_id": created.transaction_id}),
    );
    assert_eq!(
        h.deliver(&late_cancel).await.expect("recorded"),
        decided(&h, Outcome::LateCancelIgnored, &created).await
    );
    assert_eq!(h.payment(created.id).await.status, PaymentStatus::Completed);
    assert_eq!(
        h.order_paid(order.id).await,
        (OrderStatus::Paid, money(15000, "USD"))
    );
    assert_eq!(
        h.outbox_kinds(),
        [
            NotificationKind::PaymentCanceled,
            NotificationKind::OrderPaid
        ]
    );
    let outcomes: Vec<String> = h
        .events()
        .into_iter()
        .map(|(_, outcome, _)| outcome)
        .collect();
    assert_eq!(
        outcomes,
        [
            "pending",
            "canceled",
            "already_canceled",
            "confirmed",
            "late_cancel_ignored"
        ]
    );
}
