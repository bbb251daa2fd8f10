//! A group-commit batch ends as the same events applied one after the
//! other. On PostgreSQL a batch is applied in a few set-based statements
//! (every event recorded at once, the payments found and locked at once,
//! the decisions written at once) with each event that could see an
//! earlier one's work applied alone; this script mixes both kinds in one
//! batch: two payments of one order, a re-delivery of an event of the
//! batch and of events recorded before, a second event for a payment the
//! batch already decided, an unmatched event, a confirmation that applies
//! a refund which came first, an amount mismatch, a refund after its
//! success, lookups by transaction id, external id and gateway reference,
//! between confirmations a refund and a dispute of payments the batch has
//! not touched (decisions with more writes than the batch's array
//! statement holds: refund rows, a second notification), and re-deliveries
//! of events recorded final before the batch, of a payment the batch has
//! just decided on and of one it leaves alone, and refund reports decided
//! on rows the batch reads besides the payment and its order: a second
//! refund of a payment (its first refund's row, its running total), and a
//! refund in full of one of an order's two paid payments (the other's
//! status).
//! The same script runs twice on one database, on payments of its own each
//! time: once as one batch, once event by event, and both must agree on
//! every answer, payment, order, outbox row and event record.

use payhook_domain::ports::{Applied, EventToApply, Store};
use payhook_domain::{
    AmountPolicy, Dispute, DisputeStatus, EventKind, GatewayEvent, OrderId, Outcome, Payment,
    PaymentStatus, References, Refund, RefundReport, RefundStatus, Report,
};
use payhook_store_diesel::{DieselStore, StoreOptions};

use crate::support::{
    at, by_external_id, by_gateway_reference, by_transaction_id, created_payment, failed,
    for_each_backend, fresh_id, order, outbox_of, payment_for, pending_payment, succeeded, usd,
    Backend,
};

/// `event` arriving at second `second`.
fn arriving(event: GatewayEvent, second: i64) -> EventToApply {
    EventToApply {
        payload: format!(r#"{{"id":"{}"}}"#, event.event_id).into_bytes(),
        event,
        policy: AmountPolicy::Warn,
        received_at: at(second),
        source: payhook_domain::ports::EventSource::Webhook,
    }
}

/// `charge.refunded`: one succeeded refund of `minor` cents, and that as
/// the running total.
fn refunded(event_id: &str, references: References, refund_id: &str, minor: i64) -> GatewayEvent {
    GatewayEvent {
        gateway: "stripe".into(),
        event_id: event_id.into(),
        event_type: "charge.refunded".into(),
        kind: EventKind::Refund,
        references,
        amount: None,
        report: Some(Report::Refund(RefundReport {
            refunds: vec![Refund {
                refund_id: refund_id.into(),
                amount: usd(minor),
                status: RefundStatus::Succeeded,
            }],
            running_total: Some(usd(minor)),
            reported_at: at(30),
        })),
    }
}

/// `refund.created`: one succeeded refund of `minor` cents, without a
/// running total (a report of one refund, not of the charge).
fn refund_created(
    event_id: &str,
    references: References,
    refund_id: &str,
    minor: i64,
) -> GatewayEvent {
    let mut event = refunded(event_id, references, refund_id, minor);
    event.event_type = "refund.created".into();
    if let Some(Report::Refund(report)) = &mut event.report {
        report.running_total = None;
    }
    event
}

/// `charge.dispute.created`: a dispute of the whole 150.00 opened.
fn dispute_opened(event_id: &str, references: References, dispute_id: &str) -> GatewayEvent {
    GatewayEvent {
        gateway: "stripe".into(),
        event_id: event_id.into(),
        event_type: "charge.dispute.created".into(),
        kind: EventKind::Dispute,
        references,
        amount: None,
        report: Some(Report::Dispute(Dispute {
            dispute_id: dispute_id.into(),
            status: DisputeStatus::Open,
            amount: usd(15000),
            reason: Some("fraudulent".into()),
        })),
    }
}

/// What one run of the script left, by position in the script (never by
/// row id, which differs between runs).
#[derive(Debug, PartialEq)]
struct Ending {
    answers: Vec<String>,
    payments: Vec<String>,
    orders: Vec<String>,
    outbox: Vec<Vec<String>>,
    refunds: Vec<Vec<String>>,
    events: Vec<String>,
}

/// A payment as compared: everything but ids and times.
fn describe(payment: &Payment) -> String {
    format!(
        "{:?} refunded {:?} mismatch {:?} dispute {:?}",
        payment.status,
        payment.refunded_amount,
        payment
            .amount_mismatch
            .as_ref()
            .map(|m| (m.expected, m.received)),
        payment.dispute.as_ref().map(|d| d.status),
    )
}

fn answer(applied: &Applied) -> String {
    match applied {
        Applied::Decided { outcome, payment } => format!("{outcome:?}: {}", describe(payment)),
        Applied::Duplicate { payment } => {
            format!("duplicate: {:?}", payment.as_ref().map(describe))
        }
        other => format!("{other:?}"),
    }
}

/// Sets up the script's payments, delivers its early events one by one,
/// then its batch as one batch (`batched`) or event by event.
async fn run(store: &DieselStore, batched: bool) -> Ending {
    let p0 = created_payment(store, "stripe", usd(15000)).await;
    let split = order(store, usd(30000)).await;
    let p1a = payment_for(store, split.id, usd(15000)).await;
    let p1b = payment_for(store, split.id, usd(15000)).await;
    let x2 = fresh_id("pi");
    let p2 = pending_payment(store, "stripe", &x2, usd(15000)).await;
    let x3 = fresh_id("pi");
    let p3 = pending_payment(store, "stripe", &x3, usd(15000)).await;
    let p4 = created_payment(store, "stripe", usd(15000)).await;
    let x5 = fresh_id("pi");
    let p5 = pending_payment(store, "stripe", &x5, usd(15000)).await;
    let p6 = created_payment(store, "stripe", usd(15000)).await;
    let x7 = fresh_id("pi");
    let p7 = pending_payment(store, "stripe", &x7, usd(15000)).await;
    let x8 = fresh_id("pi");
    let p8 = pending_payment(store, "stripe", &x8, usd(15000)).await;
    let x9 = fresh_id("pi");
    let p9 = pending_payment(store, "stripe", &x9, usd(15000)).await;
    let x10 = fresh_id("pi");
    let p10 = pending_payment(store, "stripe", &x10, usd(15000)).await;
    let split_paid = order(store, usd(30000)).await;
    let p11a = payment_for(store, split_paid.id, usd(15000)).await;
    let p11b = payment_for(store, split_paid.id, usd(15000)).await;
    let payments = [
        &p0, &p1a, &p1b, &p2, &p3, &p4, &p5, &p6, &p7, &p8, &p9, &p10, &p11a, &p11b,
    ];
    let orders: Vec<OrderId> = payments.iter().map(|p| p.order_id).collect();

    // Before the batch: a refund of P3 that comes before its success
    // (kept, awaiting it), and an event nothing matches yet.
    let early_refund = refunded(&fresh_id("evt"), by_external_id(&x3), &fresh_id("re"), 5000);
    let unknown = succeeded(
        &fresh_id("evt"),
        by_external_id(&fresh_id("pi")),
        Some(usd(100)),
    );
    // P7, P8 and P9 are paid before the batch; the batch refunds P7,
    // opens a dispute on P8, and delivers P8's and P9's successes again.
    let paid_p7 = succeeded(&fresh_id("evt"), by_external_id(&x7), Some(usd(15000)));
    let paid_p8 = succeeded(&fresh_id("evt"), by_external_id(&x8), Some(usd(15000)));
    let paid_p9 = succeeded(&fresh_id("evt"), by_external_id(&x9), Some(usd(15000)));
    let mut answers = Vec::new();
    let early = [
        early_refund.clone(),
        unknown.clone(),
        paid_p7,
        paid_p8.clone(),
        paid_p9.clone(),
    ];
    for early in early {
        let applied = store.apply_event(arriving(early, 10)).await.expect("apply");
        answers.push(answer(&applied));
    }
    // Also before the batch (their answers are not compared): P10 paid and
    // refunded 30.00, and both payments of the second split order paid.
    let before = [
        succeeded(&fresh_id("evt"), by_external_id(&x10), Some(usd(15000))),
        refunded(
            &fresh_id("evt"),
            by_external_id(&x10),
            &fresh_id("re"),
            3000,
        ),
        succeeded(
            &fresh_id("evt"),
            by_transaction_id(&p11a.transaction_id),
            Some(usd(15000)),
        ),
        succeeded(
            &fresh_id("evt"),
            by_transaction_id(&p11b.transaction_id),
            Some(usd(15000)),
        ),
    ];
    for event in before {
        let applied = store.apply_event(arriving(event, 10)).await.expect("apply");
        assert!(matches!(applied, Applied::Decided { .. }), "{applied:?}");
    }

    let success_p0 = succeeded(
        &fresh_id("evt"),
        by_transaction_id(&p0.transaction_id),
        Some(usd(15000)),
    );
    let success_p6 = succeeded(
        &fresh_id("evt"),
        by_transaction_id(&p6.transaction_id),
        Some(usd(15000)),
    );
    let batch = vec![
        success_p0.clone(),
        // Written with the refund rows it adds, between two confirmations.
        refunded(&fresh_id("evt"), by_external_id(&x7), &fresh_id("re"), 4000),
        succeeded(
            &fresh_id("evt"),
            by_transaction_id(&p1a.transaction_id),
            Some(usd(15000)),
        ),
        // A dispute opened on a payment paid before the batch.
        dispute_opened(&fresh_id("evt"), by_external_id(&x8), &fresh_id("dp")),
        // A re-delivery of a final event whose payment the batch has just
        // decided on: answered with the dispute.
        paid_p8,
        // Confirms P3, which applies the refund that came first.
        succeeded(&fresh_id("evt"), by_external_id(&x3), Some(usd(15000))),
        // A re-delivery of a final event whose payment the batch leaves
        // alone.
        paid_p9,
        // The same order as the one before: decided on what it wrote.
        succeeded(
            &fresh_id("evt"),
            by_transaction_id(&p1b.transaction_id),
            Some(usd(15000)),
        ),
        // A re-delivery of an event earlier in the batch.
        success_p0,
        succeeded(&fresh_id("evt"), by_external_id(&x2), Some(usd(15000))),
        // A second event for a payment the batch already decided.
        failed(&fresh_id("evt"), by_transaction_id(&p0.transaction_id)),
        succeeded(
            &fresh_id("evt"),
            by_external_id(&fresh_id("pi")),
            Some(usd(100)),
        ),
        // Less than expected: confirmed with the mismatch recorded (warn).
        succeeded(
            &fresh_id("evt"),
            by_transaction_id(&p4.transaction_id),
            Some(usd(10000)),
        ),
        // A refund of P2 after its success in the same batch.
        refunded(&fresh_id("evt"), by_external_id(&x2), &fresh_id("re"), 2000),
        // Re-deliveries of events recorded before the batch: one applied by
        // now (final), one still unmatched (evaluated again).
        early_refund,
        unknown,
        // Found by the gateway's reference (the PaymentIntent id here).
        succeeded(
            &fresh_id("evt"),
            by_gateway_reference(&x5),
            Some(usd(15000)),
        ),
        success_p6.clone(),
        // Two deliveries of one new event in the batch.
        success_p6,
        // A second refund of P10, 40.00, decided on its first one's row.
        refund_created(
            &fresh_id("evt"),
            by_external_id(&x10),
            &fresh_id("re"),
            4000,
        ),
        // P11a refunded in full: its order stays paid by P11b.
        refunded(
            &fresh_id("evt"),
            by_transaction_id(&p11a.transaction_id),
            &fresh_id("re"),
            15000,
        ),
    ];
    let batch: Vec<EventToApply> = batch.into_iter().map(|e| arriving(e, 20)).collect();
    let event_ids: Vec<String> = batch.iter().map(|e| e.event.event_id.clone()).collect();
    if batched {
        for applied in store.apply_batch(batch).await.expect("apply batch") {
            answers.push(answer(&applied.expect("applied")));
        }
    } else {
        for to_apply in batch {
            let applied = store.apply_event(to_apply).await.expect("apply");
            answers.push(answer(&applied));
        }
    }

    let mut ending = Ending {
        answers,
        payments: Vec::new(),
        orders: Vec::new(),
        outbox: Vec::new(),
        refunds: Vec::new(),
        events: Vec::new(),
    };
    for payment in payments {
        let now = store.payment(payment.id).await.expect("read payment");
        ending.payments.push(describe(&now));
        let rows = outbox_of(store, payment).await;
        ending
            .outbox
            .push(rows.into_iter().map(|row| row.kind).collect());
        let refunds = store.refunds(payment.id).await.expect("read refunds");
        ending.refunds.push(
            refunds
                .iter()
                .map(|refund| format!("{:?} {:?}", refund.amount, refund.status))
                .collect(),
        );
    }
    for order_id in orders {
        let now = store.order(order_id).await.expect("read order");
        ending
            .orders
            .push(format!("{:?} paid {:?}", now.status, now.paid_amount));
    }
    let records = store.events().await.expect("events");
    for event_id in event_ids {
        let record = records
            .iter()
            .find(|record| record.event_id == event_id)
            .unwrap_or_else(|| panic!("no record of {event_id}"));
        ending.events.push(format!(
            "{} {} attempts {}",
            record.outcome,
            record.payment_id.is_some(),
            record.attempts
        ));
    }
    ending
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_ends_as_its_events_applied_one_by_one() {
    let options = StoreOptions {
        group_commit: false,
        ..StoreOptions::default()
    };
    for_each_backend(options, |Backend { name, store, .. }| async move {
        let one_by_one = run(&store, false).await;
        let batched = run(&store, true).await;
        assert_eq!(batched, one_by_one, "{name}");

        // And what both say is what the script means (answers 0 to 4 come
        // before the batch, answer 5 + n is the batch's event n).
        let answers = &one_by_one.answers;
        let outcome = |index: usize| answers[index].split(':').next().unwrap_or("").to_owned();
        assert_eq!(
            outcome(0),
            format!("{:?}", Outcome::AwaitingCompletion),
            "{name}"
        );
        assert_eq!(answers[1], "Unmatched", "{name}");
        for index in 2..=5 {
            assert_eq!(outcome(index), "Confirmed", "{name}: {index}");
        }
        assert!(
            answers[6].contains(&format!("{:?}", PaymentStatus::PartiallyRefunded)),
            "{name}: {}",
            answers[6]
        );
        assert!(
            answers[8].contains("dispute Some"),
            "{name}: {}",
            answers[8]
        );
        assert!(
            answers[9].starts_with("duplicate") && answers[9].contains("dispute Some"),
            "{name}: {}",
            answers[9]
        );
        assert!(
            answers[10].starts_with(&format!(
                "Confirmed: {:?}",
                PaymentStatus::PartiallyRefunded
            )),
            "{name}: {}",
            answers[10]
        );
        assert!(
            answers[11].starts_with(&format!("duplicate: Some(\"{:?}", PaymentStatus::Completed)),
            "{name}: {}",
            answers[11]
        );
        assert!(
            answers[13].starts_with("duplicate"),
            "{name}: {}",
            answers[13]
        );
        assert_eq!(answers[16], "Unmatched", "{name}");
        assert!(
            answers[19].starts_with("duplicate"),
            "{name}: {}",
            answers[19]
        );
        assert_eq!(answers[20], "Unmatched", "{name}");
        assert!(
            answers[23].starts_with("duplicate"),
            "{name}: {}",
            answers[23]
        );
        // The split order is paid once, by its two payments.
        assert!(one_by_one.outbox[1].is_empty(), "{name}");
        assert_eq!(one_by_one.outbox[2], ["order.paid"], "{name}");
        assert!(one_by_one.orders[1].starts_with("Paid"), "{name}");
        // P7's refund is in its ledger, P8's dispute notified, and P4's
        // mismatch (two notifications) too.
        assert_eq!(one_by_one.refunds[8].len(), 1, "{name}");
        assert_eq!(
            one_by_one.outbox[9],
            ["order.paid", "payment.disputed"],
            "{name}"
        );
        assert_eq!(
            one_by_one.outbox[5],
            ["order.paid", "payment.amount_mismatch"],
            "{name}"
        );
        // P10's ledger holds both refunds; P11a's full refund leaves its
        // order paid, since P11b still pays it.
        assert!(
            one_by_one.payments[11].starts_with(&format!(
                "{:?} refunded {:?}",
                PaymentStatus::PartiallyRefunded,
                usd(7000)
            )),
            "{name}: {}",
            one_by_one.payments[11]
        );
        assert_eq!(one_by_one.refunds[11].len(), 2, "{name}");
        assert!(
            one_by_one.payments[12].starts_with(&format!("{:?}", PaymentStatus::Refunded)),
            "{name}: {}",
            one_by_one.payments[12]
        );
        assert!(one_by_one.orders[12].starts_with("Paid"), "{name}");
        assert!(!one_by_one.outbox[12].contains(&"order.refunded".to_owned()));
        // The re-delivered unmatched event was counted twice.
        assert_eq!(
            one_by_one.events[15], "unmatched false attempts 2",
            "{name}"
        );
    })
    .await;
}

/// Batches on a fresh PostgreSQL database, whose tables grow from nothing
/// while each connection keeps the plans of its prepared statements: none
/// of them may scan a table the batches grow. A plan kept from the first
/// batches, made while the tables were a page or two, scanned
/// `webhook_events` whole in every later batch (1 289 times in a run of
/// 20 000 events) until write transactions were planned without
/// sequential scans.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_on_a_growing_database_never_scan_its_tables() {
    use diesel::sql_types::BigInt;
    use diesel::{Connection, PgConnection, QueryableByName, RunQueryDsl};

    #[derive(QueryableByName)]
    struct Scans {
        #[diesel(sql_type = BigInt)]
        inserted: i64,
        #[diesel(sql_type = BigInt)]
        scanned: i64,
    }

    let Some(db) = crate::support::postgres_db() else {
        return;
    };
    const BATCHES: usize = 60;
    const SIZE: usize = 25;
    {
        let store = db.open_migrated(&StoreOptions::default());
        let mut payments = Vec::new();
        for _ in 0..BATCHES * SIZE {
            let external_id = fresh_id("pi");
            pending_payment(&store, "stripe", &external_id, usd(1000)).await;
            payments.push(external_id);
        }
        for chunk in payments.chunks(SIZE) {
            let batch = chunk
                .iter()
                .map(|x| {
                    arriving(
                        succeeded(&fresh_id("evt"), by_external_id(x), Some(usd(1000))),
                        20,
                    )
                })
                .collect();
            for applied in store.apply_batch(batch).await.expect("apply batch") {
                assert!(
                    matches!(applied, Ok(Applied::Decided { .. })),
                    "{applied:?}"
                );
            }
        }
        // Dropping the store closes its connections; their backends report
        // their statistics as they exit.
    }
    let mut conn = PgConnection::establish(&db.url).expect("connect");
    let mut scans = Vec::new();
    for _ in 0..100 {
        scans = diesel::sql_query(
            "SELECT n_tup_ins AS inserted, seq_tup_read AS scanned \
             FROM pg_stat_user_tables \
             WHERE relname IN ('webhook_events', 'payments', 'orders', 'outbox') \
             ORDER BY relname",
        )
        .load::<Scans>(&mut conn)
        .expect("read statistics");
        if scans.iter().all(|s| s.inserted >= (BATCHES * SIZE) as i64) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(scans.len(), 4);
    for (table, s) in ["orders", "outbox", "payments", "webhook_events"]
        .iter()
        .zip(&scans)
    {
        assert!(
            s.inserted >= (BATCHES * SIZE) as i64,
            "{table}: statistics not reported ({} rows inserted)",
            s.inserted
        );
        // A scan of a grown table in every batch reads about half of it
        // each time: tens of thousands of rows. The setup's own
        // statements read a few.
        assert!(
            s.scanned < (BATCHES * SIZE) as i64,
            "{table}: {} rows read by sequential scans",
            s.scanned
        );
    }
}
