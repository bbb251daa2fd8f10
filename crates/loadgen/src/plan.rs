//! What a run means to happen to each of its payments, decided from
//! `--mix` before anything is sent, and what payhook must show for it
//! afterwards: the events of each payment in the order its own task sends
//! them, the statuses, refunded amount and dispute the API must answer, and
//! the rows the database must hold. Exactly once is checked against this
//! plan, payment by payment.
//!
//! What it deliberately does not do: talk to the server or the database
//! ([`crate::load`] does, and hands the answers and rows in here).

use std::collections::HashSet;

use serde_json::Value;

use crate::load::{amount_minor, decimal};
use crate::mix::{Kind, Mix};
use crate::rng::SplitMix64;
use crate::stripe::{self, CheckoutSpec, DisputeSpec, DisputeState, EventSpec, RefundSpec};

/// One refund in this many (the first included) gives all of the money
/// back; the others give back part of it.
pub const FULL_REFUND_EVERY: usize = 4;

/// One dispute in this many (the first included) is lost; the others are
/// won.
pub const LOST_DISPUTE_EVERY: usize = 2;

/// Seeds the mix's shuffle apart from the delivery schedule's, so that the
/// kinds of the payments do not follow the order they are sent in.
const MIX_STREAM: u64 = 0x6d69_785f_6b69_6e64;

/// The Stripe event types a run sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventType {
    /// Confirms the payment.
    PaymentIntentSucceeded,
    /// Confirms a checkout payment (`payment_status` `paid`).
    CheckoutSessionCompleted,
    /// One refund, as it was created (and succeeded).
    RefundCreated,
    /// The charge's running total of refunds, with the refund listed.
    ChargeRefunded,
    /// A dispute opened (`needs_response`).
    ChargeDisputeCreated,
    /// The dispute decided, won or lost.
    ChargeDisputeClosed,
    /// A type payhook does not handle.
    CustomerCreated,
}

impl EventType {
    /// Every type, in the order reports list them.
    pub const ALL: [Self; 7] = [
        Self::PaymentIntentSucceeded,
        Self::CheckoutSessionCompleted,
        Self::RefundCreated,
        Self::ChargeRefunded,
        Self::ChargeDisputeCreated,
        Self::ChargeDisputeClosed,
        Self::CustomerCreated,
    ];

    /// Stripe's name of the type.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PaymentIntentSucceeded => "payment_intent.succeeded",
            Self::CheckoutSessionCompleted => "checkout.session.completed",
            Self::RefundCreated => "refund.created",
            Self::ChargeRefunded => "charge.refunded",
            Self::ChargeDisputeCreated => "charge.dispute.created",
            Self::ChargeDisputeClosed => "charge.dispute.closed",
            Self::CustomerCreated => "customer.created",
        }
    }

    /// True for the types that complete their payment: the first answer of
    /// one says `Payment confirmed`.
    pub fn is_success(self) -> bool {
        matches!(
            self,
            Self::PaymentIntentSucceeded | Self::CheckoutSessionCompleted
        )
    }

    /// True for the types payhook answers 409 (and keeps) while the
    /// payment has not completed: a re-delivery of one may overtake its
    /// payment's success, and is sent again after it.
    pub fn needs_completion(self) -> bool {
        matches!(
            self,
            Self::RefundCreated
                | Self::ChargeRefunded
                | Self::ChargeDisputeCreated
                | Self::ChargeDisputeClosed
        )
    }

    /// False for the types payhook answers `ignored` without storing
    /// them; it records every event of the others once.
    pub fn is_stored(self) -> bool {
        self != Self::CustomerCreated
    }
}

/// The refund a `refund` payment is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundPlan {
    /// `re_load_<run>_<i>`.
    pub refund_id: String,
    /// In cents: all of the payment's amount, or part of it.
    pub amount_minor: i64,
}

/// The dispute a `dispute` payment is given: opened, then decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisputePlan {
    /// `dp_load_<run>_<i>`.
    pub dispute_id: String,
    /// True when the shop loses it; otherwise it is won.
    pub lost: bool,
}

impl DisputePlan {
    /// The dispute status payhook must end with: `lost` or `won`.
    pub fn final_status(&self) -> &'static str {
        if self.lost {
            "lost"
        } else {
            "won"
        }
    }
}

/// What happens to one payment of the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentPlan {
    /// The payment's place in the run, which makes its ids and amount.
    pub index: usize,
    /// Its kind in the mix.
    pub kind: Kind,
    /// Its amount, in cents.
    pub amount_minor: i64,
    /// `pi_load_<run>_<i>`: its PaymentIntent at Stripe, which every
    /// payment ends with as its gateway reference.
    pub payment_intent: String,
    /// The external id it is marked pending with: its PaymentIntent, or
    /// for a checkout payment its session, `cs_load_<run>_<i>`.
    pub external_id: String,
    /// Its events, in the order its own task sends them: the success
    /// before any refund or dispute of it, so that none is answered 409.
    pub events: Vec<(EventType, String)>,
    /// Its refund, for a `refund` payment.
    pub refund: Option<RefundPlan>,
    /// Its dispute, for a `dispute` payment.
    pub dispute: Option<DisputePlan>,
}

/// The refund of payment `index` of `amount_minor` cents: all of it when
/// `full`, else a tenth to nine tenths of it by the index, never nothing
/// (amounts are at least 10.00) and never all.
pub fn refund_minor(index: usize, amount_minor: i64, full: bool) -> i64 {
    if full {
        return amount_minor;
    }
    let tenths = i64::try_from(1 + index % 9).expect("below 10");
    (amount_minor * tenths / 10).max(1)
}

/// The events a payment of `kind` is sent, re-deliveries aside.
pub fn events_per_payment(kind: Kind) -> usize {
    match kind {
        Kind::Succeeded | Kind::Checkout => 1,
        // The success, and the one refund reported twice; or the dispute
        // opened and closed; or the customer created, then the success.
        Kind::Refund | Kind::Dispute => 3,
        Kind::NotHandled => 2,
    }
}

/// The distinct events of a run of `payments` payments shared as `mix`
/// says: what [`plans`] gives them, counted before planning.
pub fn event_count(mix: &Mix, payments: usize) -> usize {
    mix.counts(payments)
        .into_iter()
        .map(|(kind, count)| count * events_per_payment(kind))
        .sum()
}

/// The plan of each of `payments` payments of run `run_id`: their kinds
/// shared as `mix` says and spread by `seed`; every
/// [`FULL_REFUND_EVERY`]th refund in full, every [`LOST_DISPUTE_EVERY`]th
/// dispute lost.
pub fn plans(mix: &Mix, payments: usize, run_id: &str, seed: u64) -> Vec<PaymentPlan> {
    plans_from(mix, 0, payments, run_id, seed)
}

/// [`plans`] of `payments` payments numbered from `first`: one chunk of a
/// soak, whose ids go on from the chunk before. The kinds are shared
/// within the chunk; the n-th refund and dispute count from its start.
pub fn plans_from(
    mix: &Mix,
    first: usize,
    payments: usize,
    run_id: &str,
    seed: u64,
) -> Vec<PaymentPlan> {
    let kinds = mix.assign(payments, &mut SplitMix64::new(seed ^ MIX_STREAM));
    let (mut refunds, mut disputes) = (0, 0);
    kinds
        .into_iter()
        .enumerate()
        .map(|(offset, kind)| {
            let index = first + offset;
            let amount_minor = amount_minor(index);
            let event_id = format!("evt_load_{run_id}_{index}");
            let payment_intent = format!("pi_load_{run_id}_{index}");
            let mut plan = PaymentPlan {
                index,
                kind,
                amount_minor,
                external_id: payment_intent.clone(),
                payment_intent,
                events: vec![(EventType::PaymentIntentSucceeded, event_id.clone())],
                refund: None,
                dispute: None,
            };
            match kind {
                Kind::Succeeded => {}
                Kind::Checkout => {
                    plan.external_id = format!("cs_load_{run_id}_{index}");
                    plan.events = vec![(EventType::CheckoutSessionCompleted, event_id)];
                }
                Kind::Refund => {
                    let full = refunds % FULL_REFUND_EVERY == 0;
                    refunds += 1;
                    // Stripe sends the two reports of one refund in either
                    // order: half the payments get each.
                    let mut reports = [
                        (EventType::RefundCreated, format!("{event_id}_re")),
                        (EventType::ChargeRefunded, format!("{event_id}_ch")),
                    ];
                    if index % 2 == 1 {
                        reports.reverse();
                    }
                    plan.events.extend(reports);
                    plan.refund = Some(RefundPlan {
                        refund_id: format!("re_load_{run_id}_{index}"),
                        amount_minor: refund_minor(index, amount_minor, full),
                    });
                }
                Kind::Dispute => {
                    let lost = disputes % LOST_DISPUTE_EVERY == 0;
                    disputes += 1;
                    plan.events.extend([
                        (EventType::ChargeDisputeCreated, format!("{event_id}_dc")),
                        (EventType::ChargeDisputeClosed, format!("{event_id}_dx")),
                    ]);
                    plan.dispute = Some(DisputePlan {
                        dispute_id: format!("dp_load_{run_id}_{index}"),
                        lost,
                    });
                }
                Kind::NotHandled => {
                    // Stripe creates the customer before the payment.
                    plan.events
                        .insert(0, (EventType::CustomerCreated, format!("{event_id}_cu")));
                }
            }
            plan
        })
        .collect()
}

/// A payment's state as the database holds it after the run, for
/// [`PaymentPlan::check_stored`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredPayment {
    /// `payments.status`.
    pub status: String,
    /// Its order's `status`.
    pub order_status: String,
    /// `payments.gateway_reference`.
    pub gateway_reference: Option<String>,
    /// `payments.refunded_minor`, when the check read the ledger (runs
    /// with refunds or disputes: a database from before them has no such
    /// column).
    pub refunded_minor: Option<i64>,
    /// `payments.dispute_id` and `dispute_status`, read with
    /// `refunded_minor` (the same migration added them).
    pub dispute: Option<(String, String)>,
    /// The `kind` of each of its outbox rows.
    pub outbox: Vec<String>,
    /// Its rows of `refunds`: refund id, amount in cents, status. Read
    /// with `refunded_minor`.
    pub refunds: Vec<(String, i64, String)>,
}

impl PaymentPlan {
    /// True when the refund gives all of the money back.
    pub fn refunded_in_full(&self) -> bool {
        self.refund
            .as_ref()
            .is_some_and(|refund| refund.amount_minor == self.amount_minor)
    }

    /// The refunded amount the payment must end with, in cents.
    pub fn refunded_minor(&self) -> i64 {
        self.refund.as_ref().map_or(0, |refund| refund.amount_minor)
    }

    /// The payment status it must end with: a dispute changes none.
    pub fn expected_status(&self) -> &'static str {
        match &self.refund {
            None => "completed",
            Some(_) if self.refunded_in_full() => "refunded",
            Some(_) => "partially_refunded",
        }
    }

    /// Its order's status at the end: the order has this one payment, so
    /// it is refunded exactly when the payment is, in full.
    pub fn expected_order_status(&self) -> &'static str {
        if self.refunded_in_full() {
            "refunded"
        } else {
            "paid"
        }
    }

    /// The outbox rows it must have, each once, sorted: `order.paid`;
    /// with a refund `payment.refunded` (the refund counts once however
    /// often it is reported); refunded in full, `order.refunded` too; with
    /// a dispute `payment.disputed` and `payment.dispute_closed` (however
    /// its two reports are ordered or repeated).
    pub fn expected_outbox(&self) -> Vec<&'static str> {
        let mut kinds = vec!["order.paid"];
        if self.refund.is_some() {
            kinds.push("payment.refunded");
        }
        if self.refunded_in_full() {
            kinds.push("order.refunded");
        }
        if self.dispute.is_some() {
            kinds.extend(["payment.disputed", "payment.dispute_closed"]);
        }
        kinds.sort_unstable();
        kinds
    }

    /// Its events that payhook records (all but those of types it does
    /// not handle).
    pub fn stored_events(&self) -> usize {
        self.events.iter().filter(|(t, _)| t.is_stored()).count()
    }

    /// The bodies of [`PaymentPlan::events`], in the same order, for the
    /// shop's order `order_id` and payment `transaction_id`, the success
    /// created at unix time `created`, each later report a second after
    /// the one before, and a customer a minute before.
    pub fn bodies(&self, order_id: i64, transaction_id: &str, created: i64) -> Vec<Vec<u8>> {
        self.events
            .iter()
            .map(|(event_type, event_id)| {
                self.body(*event_type, event_id, order_id, transaction_id, created)
            })
            .collect()
    }

    /// The body of one of its events.
    fn body(
        &self,
        event_type: EventType,
        event_id: &str,
        order_id: i64,
        transaction_id: &str,
        created: i64,
    ) -> Vec<u8> {
        let refund = |refund_type: EventType| {
            let refund = self
                .refund
                .as_ref()
                .expect("plans() gives refund events to refund payments only");
            let spec = RefundSpec {
                event_id,
                payment_intent: &self.payment_intent,
                refund_id: &refund.refund_id,
                amount_minor: self.amount_minor,
                refund_minor: refund.amount_minor,
                order_id,
                created: created
                    + if refund_type == EventType::RefundCreated {
                        1
                    } else {
                        2
                    },
            };
            if refund_type == EventType::RefundCreated {
                stripe::refund_created(&spec)
            } else {
                stripe::charge_refunded(&spec)
            }
        };
        let dispute = |closed: bool| {
            let dispute = self
                .dispute
                .as_ref()
                .expect("plans() gives dispute events to dispute payments only");
            let state = match (closed, dispute.lost) {
                (false, _) => DisputeState::NeedsResponse,
                (true, true) => DisputeState::Lost,
                (true, false) => DisputeState::Won,
            };
            stripe::dispute_event(&DisputeSpec {
                event_id,
                dispute_id: &dispute.dispute_id,
                payment_intent: &self.payment_intent,
                amount_minor: self.amount_minor,
                state,
                created: created + if closed { 2 } else { 1 },
            })
        };
        match event_type {
            EventType::PaymentIntentSucceeded => stripe::payment_intent_succeeded(&EventSpec {
                event_id,
                payment_intent: &self.payment_intent,
                amount_minor: self.amount_minor,
                order_id,
                created,
            }),
            EventType::CheckoutSessionCompleted => {
                stripe::checkout_session_completed(&CheckoutSpec {
                    event_id,
                    session_id: &self.external_id,
                    payment_intent: &self.payment_intent,
                    transaction_id,
                    amount_minor: self.amount_minor,
                    order_id,
                    created,
                })
            }
            EventType::RefundCreated | EventType::ChargeRefunded => refund(event_type),
            EventType::ChargeDisputeCreated => dispute(false),
            EventType::ChargeDisputeClosed => dispute(true),
            EventType::CustomerCreated => {
                let customer = self.payment_intent.replacen("pi_", "cus_", 1);
                stripe::customer_created(event_id, &customer, created - 60)
            }
        }
    }

    /// Checks the answer of `GET /api/v1/order-payments/{id}/`: the
    /// status, `refunded_amount` and `refunds` the plan leads to, its
    /// PaymentIntent as `gateway_reference` (for a checkout payment,
    /// learned from the session), and its dispute. A payment without a
    /// refund may lack the refund fields, and one without a dispute the
    /// `dispute` (a server from before them); one with either must show it.
    pub fn check_api(&self, answer: &Value) -> Result<(), String> {
        let expected = self.expected_status();
        if answer["status"] != expected {
            return Err(format!("status {}, expected {expected}", answer["status"]));
        }
        if answer["gateway_reference"] != *self.payment_intent {
            return Err(format!(
                "gateway_reference {}, expected {:?}",
                answer["gateway_reference"], self.payment_intent
            ));
        }
        let refunded = &answer["refunded_amount"];
        let refunds = &answer["refunds"];
        match &self.refund {
            None => {
                if !(refunded.is_null() || *refunded == "0.00") {
                    return Err(format!("refunded_amount {refunded}, expected \"0.00\""));
                }
                if !(refunds.is_null() || refunds.as_array().is_some_and(Vec::is_empty)) {
                    return Err(format!("refunds {refunds}, expected none"));
                }
            }
            Some(refund) => {
                let amount = decimal(refund.amount_minor);
                if *refunded != *amount {
                    return Err(format!("refunded_amount {refunded}, expected {amount:?}"));
                }
                let listed = refunds.as_array().map(Vec::as_slice).unwrap_or_default();
                let [one] = listed else {
                    return Err(format!("refunds {refunds}, expected one"));
                };
                if one["refund_id"] != *refund.refund_id
                    || one["amount"] != *amount
                    || one["status"] != "succeeded"
                {
                    return Err(format!(
                        "refunds {refunds}, expected {} of {amount} succeeded",
                        refund.refund_id
                    ));
                }
            }
        }
        let dispute = &answer["dispute"];
        match &self.dispute {
            None if dispute.is_null() => {}
            None => return Err(format!("dispute {dispute}, expected none")),
            Some(planned) => {
                let amount = decimal(self.amount_minor);
                if dispute["dispute_id"] != *planned.dispute_id
                    || dispute["status"] != planned.final_status()
                    || dispute["amount"] != *amount
                {
                    return Err(format!(
                        "dispute {dispute}, expected {} {} of {amount}",
                        planned.dispute_id,
                        planned.final_status()
                    ));
                }
            }
        }
        Ok(())
    }

    /// Checks what the database holds for the payment against the plan:
    /// its status and its order's, its gateway reference, each outbox row
    /// once (no `order.paid` twice, no notification missing), and, when
    /// they were read, `refunded_minor`, one succeeded `refunds` row of the
    /// refund sent, and the dispute decided as planned.
    pub fn check_stored(&self, stored: &StoredPayment) -> Result<(), String> {
        self.check_stored_under(stored, OutboxRule::Exact)
    }

    /// [`Self::check_stored`], judging the outbox rows by `rule`.
    pub fn check_stored_under(
        &self,
        stored: &StoredPayment,
        rule: OutboxRule,
    ) -> Result<(), String> {
        let expected = self.expected_status();
        if stored.status != expected {
            return Err(format!("status {}, expected {expected}", stored.status));
        }
        let order = self.expected_order_status();
        if stored.order_status != order {
            return Err(format!(
                "order status {}, expected {order}",
                stored.order_status
            ));
        }
        if stored.gateway_reference.as_deref() != Some(self.payment_intent.as_str()) {
            return Err(format!(
                "gateway_reference {:?}, expected {:?}",
                stored.gateway_reference, self.payment_intent
            ));
        }
        let mut outbox: Vec<&str> = stored.outbox.iter().map(String::as_str).collect();
        outbox.sort_unstable();
        let expected_outbox = self.expected_outbox();
        let as_planned = match rule {
            OutboxRule::Exact => outbox == expected_outbox,
            OutboxRule::AtMostPlanned => is_sub_multiset(&outbox, &expected_outbox),
        };
        if !as_planned {
            return Err(format!(
                "outbox rows {outbox:?}, expected {expected_outbox:?}"
            ));
        }
        if let Some(refunded) = stored.refunded_minor {
            let planned = self.refunded_minor();
            if refunded != planned {
                return Err(format!("refunded_minor {refunded}, expected {planned}"));
            }
            let rows: HashSet<(&str, i64, &str)> = stored
                .refunds
                .iter()
                .map(|(id, minor, status)| (id.as_str(), *minor, status.as_str()))
                .collect();
            let planned: HashSet<(&str, i64, &str)> = self
                .refund
                .iter()
                .map(|refund| (refund.refund_id.as_str(), refund.amount_minor, "succeeded"))
                .collect();
            if rows != planned || stored.refunds.len() != planned.len() {
                return Err(format!(
                    "refunds rows {:?}, expected {planned:?}",
                    stored.refunds
                ));
            }
            let dispute = stored
                .dispute
                .as_ref()
                .map(|(id, status)| (id.as_str(), status.as_str()));
            let planned = self
                .dispute
                .as_ref()
                .map(|dispute| (dispute.dispute_id.as_str(), dispute.final_status()));
            if dispute != planned {
                return Err(format!("dispute {dispute:?}, expected {planned:?}"));
            }
        }
        Ok(())
    }
}

/// How a payment's outbox rows are judged against its plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxRule {
    /// Every planned row once, nothing else.
    Exact,
    /// Each planned row at most once, nothing else: the server's retention
    /// deleted delivered rows during the run (a soak with a short
    /// retention), so a missing row may have been pruned; the run's total
    /// is then reconciled with the server's own count of what it pruned.
    AtMostPlanned,
}

/// Whether every item of the sorted `found` is in the sorted `planned`, as
/// often or less.
fn is_sub_multiset(found: &[&str], planned: &[&str]) -> bool {
    let mut planned = planned.iter().peekable();
    found.iter().all(|item| {
        while planned.next_if(|p| *p < item).is_some() {}
        planned.next_if(|p| *p == item).is_some()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mixed() -> Vec<PaymentPlan> {
        plans(&"succeeded=80,refund=20".parse().unwrap(), 200, "abc", 7)
    }

    #[test]
    fn partial_refunds_give_back_part_of_the_money() {
        for index in 0..10_000 {
            let minor = amount_minor(index);
            assert!((1_000..100_000).contains(&minor));
            let part = refund_minor(index, minor, false);
            assert!(0 < part && part < minor, "{part} of {minor}");
            assert_eq!(refund_minor(index, minor, true), minor);
        }
    }

    #[test]
    fn the_default_mix_plans_what_runs_did_before_it() {
        let plans = plans(&Mix::default(), 3, "abc", 7);
        assert_eq!(plans.len(), 3);
        for (index, plan) in plans.iter().enumerate() {
            assert_eq!(plan.kind, Kind::Succeeded);
            assert_eq!(plan.amount_minor, amount_minor(index));
            assert_eq!(plan.payment_intent, format!("pi_load_abc_{index}"));
            assert_eq!(
                plan.events,
                [(
                    EventType::PaymentIntentSucceeded,
                    format!("evt_load_abc_{index}")
                )]
            );
            assert_eq!(plan.expected_status(), "completed");
            assert_eq!(plan.expected_outbox(), ["order.paid"]);
        }
    }

    #[test]
    fn refund_payments_send_the_success_first_then_one_refund_twice() {
        let plans = mixed();
        let refunds: Vec<&PaymentPlan> = plans.iter().filter(|p| p.refund.is_some()).collect();
        assert_eq!(refunds.len(), 40);
        assert!(plans
            .iter()
            .all(|p| (p.kind == Kind::Refund) == p.refund.is_some()));
        // Every fourth in full, the first included.
        assert_eq!(refunds.iter().filter(|p| p.refunded_in_full()).count(), 10);
        assert!(refunds[0].refunded_in_full());
        let mut orders = HashSet::new();
        for plan in &refunds {
            let types: Vec<EventType> = plan.events.iter().map(|(t, _)| *t).collect();
            assert_eq!(types[0], EventType::PaymentIntentSucceeded);
            assert_eq!(types.len(), 3);
            assert!(types.contains(&EventType::RefundCreated));
            assert!(types.contains(&EventType::ChargeRefunded));
            orders.insert(types);
            let refund = plan.refund.as_ref().unwrap();
            assert_eq!(refund.refund_id, format!("re_load_abc_{}", plan.index));
            assert!(0 < refund.amount_minor && refund.amount_minor <= plan.amount_minor);
        }
        // Both orders of the two reports occur.
        assert_eq!(orders.len(), 2);
        assert!(plans
            .iter()
            .all(|p| p.events.len() == events_per_payment(p.kind)));
        assert_eq!(
            event_count(&"succeeded=80,refund=20".parse().unwrap(), 200),
            280
        );
        let ids: HashSet<&str> = plans
            .iter()
            .flat_map(|p| p.events.iter().map(|(_, id)| id.as_str()))
            .collect();
        assert_eq!(ids.len(), 280, "every event id once");
        assert!(ids.iter().all(|id| id.starts_with("evt_load_abc_")));
    }

    #[test]
    fn bodies_carry_the_plan() {
        let plans = mixed();
        let plan = plans.iter().find(|p| p.refund.is_some()).unwrap();
        let refund = plan.refund.as_ref().unwrap();
        let bodies = plan.bodies(42, "TXN-0A1B2C3D4E", 1_700_000_000);
        assert_eq!(bodies.len(), 3);
        for ((event_type, event_id), body) in plan.events.iter().zip(&bodies) {
            let event: Value = serde_json::from_slice(body).unwrap();
            assert_eq!(event["type"], event_type.as_str());
            assert_eq!(event["id"], *event_id);
            let object = &event["data"]["object"];
            assert_eq!(
                object["payment_intent"]
                    .as_str()
                    .unwrap_or(object["id"].as_str().unwrap()),
                plan.payment_intent
            );
            match event_type {
                EventType::PaymentIntentSucceeded => {
                    assert_eq!(object["amount_received"], plan.amount_minor);
                    assert_eq!(event["created"], 1_700_000_000);
                }
                EventType::RefundCreated => {
                    assert_eq!(object["id"], *refund.refund_id);
                    assert_eq!(object["amount"], refund.amount_minor);
                    assert_eq!(event["created"], 1_700_000_001);
                }
                EventType::ChargeRefunded => {
                    assert_eq!(object["amount"], plan.amount_minor);
                    assert_eq!(object["amount_refunded"], refund.amount_minor);
                    assert_eq!(object["refunds"]["data"][0]["id"], *refund.refund_id);
                    assert_eq!(event["created"], 1_700_000_002);
                }
                other => panic!("a refund payment is sent no {}", other.as_str()),
            }
        }
    }

    fn plan_with(refund: Option<i64>) -> PaymentPlan {
        PaymentPlan {
            index: 3,
            kind: if refund.is_some() {
                Kind::Refund
            } else {
                Kind::Succeeded
            },
            amount_minor: 15_000,
            payment_intent: "pi_load_abc_3".into(),
            external_id: "pi_load_abc_3".into(),
            events: Vec::new(),
            refund: refund.map(|amount_minor| RefundPlan {
                refund_id: "re_load_abc_3".into(),
                amount_minor,
            }),
            dispute: None,
        }
    }

    fn disputed(lost: bool) -> PaymentPlan {
        PaymentPlan {
            kind: Kind::Dispute,
            dispute: Some(DisputePlan {
                dispute_id: "dp_load_abc_3".into(),
                lost,
            }),
            ..plan_with(None)
        }
    }

    #[test]
    fn the_api_check_wants_the_status_and_the_refund_sent() {
        let plain = plan_with(None);
        let pi = "pi_load_abc_3";
        assert_eq!(
            plain.check_api(&json!({"status": "completed", "gateway_reference": pi})),
            Ok(())
        );
        assert_eq!(
            plain.check_api(&json!({"status": "completed", "gateway_reference": pi,
                                    "refunded_amount": "0.00", "refunds": [], "dispute": null})),
            Ok(())
        );
        assert!(plain
            .check_api(&json!({"status": "completed"}))
            .unwrap_err()
            .contains("gateway_reference"));
        assert!(plain
            .check_api(&json!({"status": "pending_external", "gateway_reference": pi}))
            .is_err());
        assert!(plain
            .check_api(
                &json!({"status": "completed", "gateway_reference": pi, "refunded_amount": "1.00"})
            )
            .is_err());

        let partial = plan_with(Some(4_500));
        let listed = json!([{"refund_id": "re_load_abc_3", "amount": "45.00",
                             "currency": "USD", "status": "succeeded"}]);
        let good = json!({"status": "partially_refunded", "refunded_amount": "45.00",
                          "refunds": listed, "gateway_reference": pi});
        assert_eq!(partial.check_api(&good), Ok(()));
        let mut twice = good.clone();
        twice["refunded_amount"] = "90.00".into();
        assert!(partial.check_api(&twice).unwrap_err().contains("90.00"));
        let mut completed = good.clone();
        completed["status"] = "completed".into();
        assert!(partial.check_api(&completed).is_err());
        let mut doubled = good.clone();
        doubled["refunds"] = json!([listed[0], listed[0]]);
        assert!(partial.check_api(&doubled).is_err());
        let mut pending = good.clone();
        pending["refunds"][0]["status"] = "pending".into();
        assert!(partial.check_api(&pending).is_err());
        assert!(partial
            .check_api(&json!({"status": "partially_refunded", "gateway_reference": pi}))
            .is_err());

        let full = plan_with(Some(15_000));
        assert_eq!(full.expected_status(), "refunded");
        assert!(full.check_api(&good).is_err());
    }

    #[test]
    fn the_database_check_wants_each_row_once() {
        let stored =
            |status: &str, order: &str, outbox: &[&str], refunded: Option<i64>| StoredPayment {
                status: status.into(),
                order_status: order.into(),
                gateway_reference: Some("pi_load_abc_3".into()),
                refunded_minor: refunded,
                dispute: None,
                outbox: outbox.iter().map(|kind| (*kind).to_owned()).collect(),
                refunds: Vec::new(),
            };
        let plain = plan_with(None);
        assert_eq!(
            plain.check_stored(&stored("completed", "paid", &["order.paid"], None)),
            Ok(())
        );
        assert_eq!(
            plain.check_stored(&stored("completed", "paid", &["order.paid"], Some(0))),
            Ok(())
        );
        let twice = plain.check_stored(&stored(
            "completed",
            "paid",
            &["order.paid", "order.paid"],
            None,
        ));
        assert!(twice.unwrap_err().contains("outbox"));
        assert!(plain
            .check_stored(&stored("completed", "pending", &["order.paid"], None))
            .is_err());

        let full = plan_with(Some(15_000));
        let mut good = stored(
            "refunded",
            "refunded",
            &["payment.refunded", "order.refunded", "order.paid"],
            Some(15_000),
        );
        good.refunds = vec![("re_load_abc_3".into(), 15_000, "succeeded".into())];
        assert_eq!(full.check_stored(&good), Ok(()));
        let mut counted_twice = good.clone();
        counted_twice.refunded_minor = Some(30_000);
        assert!(full.check_stored(&counted_twice).is_err());
        let mut two_rows = good.clone();
        two_rows.refunds.push(two_rows.refunds[0].clone());
        assert!(full.check_stored(&two_rows).is_err());
        let mut notified_twice = good.clone();
        notified_twice.outbox.push("payment.refunded".into());
        assert!(full.check_stored(&notified_twice).is_err());
        assert!(full
            .check_stored_under(&notified_twice, OutboxRule::AtMostPlanned)
            .is_err());
        let mut pruned = good.clone();
        pruned.outbox.retain(|kind| kind != "order.paid");
        assert!(full.check_stored(&pruned).is_err());
        assert_eq!(
            full.check_stored_under(&pruned, OutboxRule::AtMostPlanned),
            Ok(())
        );
        let mut foreign = pruned.clone();
        foreign.outbox.push("payment.failed".into());
        assert!(full
            .check_stored_under(&foreign, OutboxRule::AtMostPlanned)
            .is_err());
        let mut order_paid = good.clone();
        order_paid.order_status = "paid".into();
        assert!(full.check_stored(&order_paid).is_err());
        let mut unreferenced = good.clone();
        unreferenced.gateway_reference = None;
        assert!(full
            .check_stored(&unreferenced)
            .unwrap_err()
            .contains("gateway_reference"));
    }

    #[test]
    fn new_kinds_plan_their_events_ids_and_outcomes() {
        let mix = "succeeded=70,checkout=10,refund=10,dispute=5,not_handled=5"
            .parse()
            .unwrap();
        let plans = plans(&mix, 400, "abc", 7);
        assert_eq!(plans.len(), 400);
        let of = |kind: Kind| plans.iter().filter(move |p| p.kind == kind);
        assert_eq!(of(Kind::Checkout).count(), 40);
        assert_eq!(of(Kind::Dispute).count(), 20);
        assert_eq!(of(Kind::NotHandled).count(), 20);
        for plan in of(Kind::Checkout) {
            assert_eq!(plan.external_id, format!("cs_load_abc_{}", plan.index));
            assert_eq!(plan.payment_intent, format!("pi_load_abc_{}", plan.index));
            assert_eq!(
                plan.events,
                [(
                    EventType::CheckoutSessionCompleted,
                    format!("evt_load_abc_{}", plan.index)
                )]
            );
            assert_eq!(plan.expected_outbox(), ["order.paid"]);
            assert_eq!(plan.expected_status(), "completed");
        }
        let lost = of(Kind::Dispute)
            .filter(|p| p.dispute.as_ref().unwrap().lost)
            .count();
        assert_eq!(lost, 10, "every second dispute lost, the first included");
        for plan in of(Kind::Dispute) {
            let types: Vec<EventType> = plan.events.iter().map(|(t, _)| *t).collect();
            assert_eq!(
                types,
                [
                    EventType::PaymentIntentSucceeded,
                    EventType::ChargeDisputeCreated,
                    EventType::ChargeDisputeClosed
                ]
            );
            assert_eq!(
                plan.expected_outbox(),
                ["order.paid", "payment.dispute_closed", "payment.disputed"]
            );
            assert_eq!(plan.expected_status(), "completed");
            assert_eq!(plan.stored_events(), 3);
        }
        for plan in of(Kind::NotHandled) {
            let types: Vec<EventType> = plan.events.iter().map(|(t, _)| *t).collect();
            assert_eq!(
                types,
                [
                    EventType::CustomerCreated,
                    EventType::PaymentIntentSucceeded
                ]
            );
            assert_eq!(plan.stored_events(), 1);
            assert_eq!(plan.expected_outbox(), ["order.paid"]);
        }
        assert!(plans
            .iter()
            .all(|p| p.events.len() == events_per_payment(p.kind)));
        let events: usize = plans.iter().map(|p| p.events.len()).sum();
        assert_eq!(events, event_count(&mix, 400));
        let ids: HashSet<&str> = plans
            .iter()
            .flat_map(|p| p.events.iter().map(|(_, id)| id.as_str()))
            .collect();
        assert_eq!(ids.len(), events, "every event id once");
        // Exactly one success per payment, never after a report about it.
        for plan in &plans {
            let first_report = plan
                .events
                .iter()
                .position(|(t, _)| t.needs_completion())
                .unwrap_or(usize::MAX);
            let successes: Vec<usize> = plan
                .events
                .iter()
                .enumerate()
                .filter(|(_, (t, _))| t.is_success())
                .map(|(i, _)| i)
                .collect();
            assert_eq!(successes.len(), 1);
            assert!(successes[0] < first_report);
        }
    }

    #[test]
    fn a_chunk_goes_on_from_the_one_before() {
        let mix: Mix = "succeeded=50,dispute=50".parse().unwrap();
        let chunk = plans_from(&mix, 1_000, 10, "abc", 3);
        assert_eq!(chunk[0].index, 1_000);
        assert_eq!(chunk[9].payment_intent, "pi_load_abc_1009");
        assert_eq!(chunk[9].amount_minor, amount_minor(1_009));
        assert_eq!(chunk, plans_from(&mix, 1_000, 10, "abc", 3), "reproducible");
        assert_eq!(chunk.iter().filter(|p| p.kind == Kind::Dispute).count(), 5);
    }

    #[test]
    fn new_bodies_carry_the_plan() {
        let mix = "checkout=34,dispute=33,not_handled=33".parse().unwrap();
        let plans = plans(&mix, 6, "abc", 7);
        for plan in &plans {
            let bodies = plan.bodies(42, "TXN-0A1B2C3D4E", 1_700_000_000);
            for ((event_type, event_id), body) in plan.events.iter().zip(&bodies) {
                let event: Value = serde_json::from_slice(body).unwrap();
                assert_eq!(event["type"], event_type.as_str());
                assert_eq!(event["id"], *event_id);
                let object = &event["data"]["object"];
                match event_type {
                    EventType::CheckoutSessionCompleted => {
                        assert_eq!(object["id"], *plan.external_id);
                        assert_eq!(object["payment_intent"], *plan.payment_intent);
                        assert_eq!(object["client_reference_id"], "TXN-0A1B2C3D4E");
                        assert_eq!(object["metadata"]["transaction_id"], "TXN-0A1B2C3D4E");
                        assert_eq!(object["amount_total"], plan.amount_minor);
                    }
                    EventType::ChargeDisputeCreated | EventType::ChargeDisputeClosed => {
                        let dispute = plan.dispute.as_ref().unwrap();
                        assert_eq!(object["id"], *dispute.dispute_id);
                        assert_eq!(object["payment_intent"], *plan.payment_intent);
                        assert_eq!(object["amount"], plan.amount_minor);
                        let status = if *event_type == EventType::ChargeDisputeCreated {
                            "needs_response"
                        } else {
                            dispute.final_status()
                        };
                        assert_eq!(object["status"], status);
                    }
                    EventType::CustomerCreated => {
                        assert_eq!(object["object"], "customer");
                        assert!(event["created"].as_i64().unwrap() < 1_700_000_000);
                    }
                    EventType::PaymentIntentSucceeded => {
                        assert_eq!(object["id"], *plan.payment_intent);
                    }
                    other => panic!("no {} in this mix", other.as_str()),
                }
            }
        }
    }

    #[test]
    fn the_checks_want_the_dispute_decided_and_each_notification_once() {
        let plan = disputed(true);
        let pi = "pi_load_abc_3";
        let dispute = json!({"dispute_id": "dp_load_abc_3", "status": "lost",
                             "amount": "150.00", "currency": "USD", "reason": "fraudulent"});
        let good = json!({"status": "completed", "gateway_reference": pi,
                          "refunded_amount": "0.00", "refunds": [], "dispute": dispute});
        assert_eq!(plan.check_api(&good), Ok(()));
        let mut won = good.clone();
        won["dispute"]["status"] = "won".into();
        assert!(plan.check_api(&won).unwrap_err().contains("lost"));
        let mut open = good.clone();
        open["dispute"]["status"] = "open".into();
        assert!(plan.check_api(&open).is_err());
        let mut none = good.clone();
        none["dispute"] = Value::Null;
        assert!(plan.check_api(&none).is_err());
        // And a payment without one must show none.
        assert!(plan_with(None)
            .check_api(&good)
            .unwrap_err()
            .contains("dispute"));

        let stored = StoredPayment {
            status: "completed".into(),
            order_status: "paid".into(),
            gateway_reference: Some(pi.into()),
            refunded_minor: Some(0),
            dispute: Some(("dp_load_abc_3".into(), "lost".into())),
            outbox: ["payment.dispute_closed", "order.paid", "payment.disputed"]
                .map(String::from)
                .to_vec(),
            refunds: Vec::new(),
        };
        assert_eq!(plan.check_stored(&stored), Ok(()));
        let mut twice = stored.clone();
        twice.outbox.push("payment.disputed".into());
        assert!(plan.check_stored(&twice).unwrap_err().contains("outbox"));
        let mut missing = stored.clone();
        missing
            .outbox
            .retain(|kind| kind != "payment.dispute_closed");
        assert!(plan.check_stored(&missing).unwrap_err().contains("outbox"));
        let mut undecided = stored.clone();
        undecided.dispute = Some(("dp_load_abc_3".into(), "open".into()));
        assert!(plan
            .check_stored(&undecided)
            .unwrap_err()
            .contains("dispute"));
        let mut won = stored.clone();
        won.dispute = Some(("dp_load_abc_3".into(), "won".into()));
        assert!(plan.check_stored(&won).is_err());
        assert_eq!(disputed(false).check_stored(&won), Ok(()));
        // A plain payment must have no dispute and no dispute notification.
        let mut plain = stored.clone();
        plain.outbox = vec!["order.paid".into()];
        assert!(plan_with(None)
            .check_stored(&plain)
            .unwrap_err()
            .contains("dispute"));
        plain.dispute = None;
        assert_eq!(plan_with(None).check_stored(&plain), Ok(()));
    }
}
