//! The services a shop and the webhook endpoints call: thin sequences of
//! validation, a port call and an outcome. The rules themselves live in
//! [`crate::payment`] and [`crate::decision`].
//!
//! [`WebhookService`] also answers for the recorded events: listing them
//! for audit and replaying one through the same path as a delivery.

use std::sync::Arc;

use crate::decision::{AmountPolicy, Outcome};
use crate::dispute::DisputeStatus;
use crate::event::{EventKind, GatewayEvent};
use crate::money::Money;
use crate::payment::{
    NewOrder, NewPayment, Order, OrderId, OrderStatus, Payment, PaymentId, PaymentStatus,
};
use crate::ports::{
    Applied, Clock, EventDetail, EventFilter, EventSource, EventToApply, GatewayAdapter,
    ParseError, Store, StoreError, StoredEvent, TransactionIds, VerifyError, WebhookRequest,
};
use crate::refund::Refund;

/// Longest accepted text for ids and names the shop supplies.
const MAX_TEXT: usize = 255;

/// Why a shop request was refused.
#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    /// A field of the request is unusable; nothing was written.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The field's name in the API.
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// `payment_method` names no gateway this service knows; nothing was
    /// written. `known` lists the gateways' names, for the message.
    #[error("invalid payment_method: not a known gateway; expected one of: {}", .known.join(", "))]
    UnknownGateway {
        /// The names a payment method may take.
        known: Vec<String>,
    },
    /// The request names an order that does not exist (a payment for it);
    /// nothing was written. An order looked up by its own id is
    /// `Store(OrderNotFound)` instead: there the id is the resource.
    #[error("invalid order_id: order {0} not found")]
    UnknownOrder(OrderId),
    /// A payment in another currency than its order's; nothing was written.
    #[error("invalid currency: the order is in {order}, the payment in {payment}")]
    CurrencyMismatch {
        /// The order's currency code.
        order: &'static str,
        /// The payment's currency code.
        payment: &'static str,
    },
    /// A new payment for an order that takes none: it is already `paid`
    /// (its completed payments cover it) or `refunded`. Nothing was written.
    #[error("order {order} is already {status}")]
    OrderClosed {
        /// The order.
        order: OrderId,
        /// Its status.
        status: OrderStatus,
    },
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Orders and payments, as the shop manages them.
#[derive(Clone)]
pub struct PaymentService {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn TransactionIds>,
    gateways: Arc<[String]>,
    amount_policy: AmountPolicy,
}

fn check_text(field: &'static str, value: &str) -> Result<(), PaymentError> {
    // PostgreSQL's text cannot hold NUL and SQLite's can: refused here, the
    // answer is the same 400 on both backends.
    if value.contains('\0') {
        return Err(PaymentError::InvalidInput {
            field,
            reason: "must not contain NUL (U+0000)",
        });
    }
    if value.trim().is_empty() {
        return Err(PaymentError::InvalidInput {
            field,
            reason: "must not be empty",
        });
    }
    if value.len() > MAX_TEXT {
        return Err(PaymentError::InvalidInput {
            field,
            reason: "is longer than 255 bytes",
        });
    }
    Ok(())
}

fn check_positive(field: &'static str, amount: &Money) -> Result<(), PaymentError> {
    if amount.is_positive() {
        Ok(())
    } else {
        Err(PaymentError::InvalidInput {
            field,
            reason: "must be greater than zero",
        })
    }
}

impl PaymentService {
    /// A service over `store`, taking time from `clock` and transaction ids
    /// from `ids`, for payments through the gateways named in `gateways`
    /// (their [`GatewayAdapter::name`]s, e.g. `stripe`).
    ///
    /// A payment belongs to one gateway: [`PaymentService::create_payment`]
    /// refuses a `payment_method` that is not one of `gateways`, and the
    /// store lets only that gateway's events find the payment. Give every
    /// gateway the embedding application can receive events from.
    ///
    /// Events that arrived before their payment was marked pending are
    /// applied by [`PaymentService::mark_pending`] under
    /// [`AmountPolicy::Reject`] until [`PaymentService::with_amount_policy`]
    /// says otherwise: without being told the policy in force, a mismatched
    /// amount is left open (a re-delivery or a replay through
    /// [`WebhookService`] evaluates it again) rather than confirmed.
    pub fn new<I>(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn TransactionIds>,
        gateways: I,
    ) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        Self {
            store,
            clock,
            ids,
            gateways: gateways.into_iter().map(Into::into).collect(),
            amount_policy: AmountPolicy::Reject,
        }
    }

    /// The same service, applying early events under `policy` when a
    /// payment is marked pending. Give it the [`WebhookService`]'s policy.
    #[must_use]
    pub fn with_amount_policy(mut self, policy: AmountPolicy) -> Self {
        self.amount_policy = policy;
        self
    }

    /// The amount policy for events applied when a payment is marked pending.
    pub fn amount_policy(&self) -> AmountPolicy {
        self.amount_policy
    }

    /// Records a pending order for the shop's `client_id`.
    pub async fn create_order(
        &self,
        client_id: String,
        total: Money,
    ) -> Result<Order, PaymentError> {
        check_text("client_id", &client_id)?;
        check_positive("total", &total)?;
        let order = NewOrder { client_id, total };
        Ok(self.store.create_order(order, self.clock.now()).await?)
    }

    /// The order with this id.
    pub async fn order(&self, id: OrderId) -> Result<Order, PaymentError> {
        Ok(self.store.order(id).await?)
    }

    /// The gateways a payment may name as its `payment_method`, as given to
    /// [`PaymentService::new`].
    pub fn gateways(&self) -> &[String] {
        &self.gateways
    }

    /// Creates a payment of `amount` for the order through `payment_method`,
    /// with a fresh `TXN-...` transaction id; `UnknownGateway` when
    /// `payment_method` is not one of the service's gateways, `UnknownOrder`
    /// when no order has `order_id`, `CurrencyMismatch` when `amount` is not
    /// in the order's currency and `OrderClosed` when the order is already
    /// paid or refunded.
    ///
    /// The order's status is read before the payment is written, not under
    /// one lock: a payment created while another completes may still
    /// complete too, and then `decide` keeps the order paid and tells the
    /// shop (`order.overpaid`). Refusing here keeps that to the race.
    pub async fn create_payment(
        &self,
        order_id: OrderId,
        payment_method: String,
        amount: Money,
    ) -> Result<Payment, PaymentError> {
        check_text("payment_method", &payment_method)?;
        if !self.gateways.contains(&payment_method) {
            return Err(PaymentError::UnknownGateway {
                known: self.gateways.to_vec(),
            });
        }
        check_positive("amount", &amount)?;
        let order = match self.store.order(order_id).await {
            Err(StoreError::OrderNotFound(id)) => return Err(PaymentError::UnknownOrder(id)),
            result => result?,
        };
        if order.total.currency() != amount.currency() {
            return Err(PaymentError::CurrencyMismatch {
                order: order.total.currency().code(),
                payment: amount.currency().code(),
            });
        }
        if order.status != OrderStatus::Pending {
            return Err(PaymentError::OrderClosed {
                order: order_id,
                status: order.status,
            });
        }
        let payment = NewPayment {
            order_id,
            transaction_id: self.ids.next_id(),
            payment_method,
            amount,
        };
        match self.store.create_payment(payment, self.clock.now()).await {
            Err(StoreError::OrderNotFound(id)) => Err(PaymentError::UnknownOrder(id)),
            result => Ok(result?),
        }
    }

    /// The payment with this id.
    pub async fn payment(&self, id: PaymentId) -> Result<Payment, PaymentError> {
        Ok(self.store.payment(id).await?)
    }

    /// The refunds recorded for the payment, in the order they were first
    /// reported, each with its latest status (failed ones included): empty
    /// when none, and when no payment has this id, so read the payment
    /// first to tell a missing one.
    ///
    /// A read of its own, not in the payment's transaction: a refund applied
    /// between the two reads may show here and not yet in the payment's
    /// `refunded_amount`, or the reverse; reading again settles it.
    pub async fn refunds(&self, id: PaymentId) -> Result<Vec<Refund>, PaymentError> {
        Ok(self.store.refunds(id).await?)
    }

    /// Records that the customer was sent to the gateway, which knows the
    /// payment as `external_id`, and applies in the same transaction the
    /// gateway events that arrived before and name that id (see
    /// [`Store::mark_pending`]): the payment returned may already be
    /// completed or failed.
    pub async fn mark_pending(
        &self,
        id: PaymentId,
        external_id: String,
    ) -> Result<Payment, PaymentError> {
        check_text("external_id", &external_id)?;
        Ok(self
            .store
            .mark_pending(id, external_id, self.amount_policy, self.clock.now())
            .await?)
    }
}

/// Why a webhook was not applied. Nothing was written in any case.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The signature check failed.
    #[error("invalid signature: {0}")]
    Verify(#[from] VerifyError),
    /// The verified body is not a usable event.
    #[error("invalid payload: {0}")]
    Parse(#[from] ParseError),
    /// The store failed; the payment is as it was and a retry can succeed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No recorded event has this id (audit and replay).
    #[error("webhook event {0} not found")]
    EventNotFound(i64),
}

/// A payment as webhook answers name it: its ids, and where it stands
/// after the event (a refund's answer shows the status and the refunded
/// amount, a dispute's the dispute's status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRef {
    /// payhook's id.
    pub id: PaymentId,
    /// payhook's transaction id.
    pub transaction_id: String,
    /// True when the payment carries a recorded amount mismatch.
    pub amount_mismatch: bool,
    /// The payment's status after the event.
    pub status: PaymentStatus,
    /// What went back to the customer so far, in the payment's currency.
    pub refunded_amount: Money,
    /// The status of the payment's current dispute, if it has one.
    pub dispute_status: Option<DisputeStatus>,
}

impl From<&Payment> for PaymentRef {
    fn from(payment: &Payment) -> Self {
        Self {
            id: payment.id,
            transaction_id: payment.transaction_id.clone(),
            amount_mismatch: payment.amount_mismatch.is_some(),
            status: payment.status,
            refunded_amount: payment.refunded_amount,
            dispute_status: payment.dispute.as_ref().map(|dispute| dispute.status),
        }
    }
}

/// What a webhook call came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// The event was applied (or deliberately not, see [`Outcome`]).
    Decided {
        /// What the decision was.
        outcome: Outcome,
        /// The payment it concerned.
        payment: PaymentRef,
    },
    /// This event id was processed before; nothing changed.
    Duplicate {
        /// The payment the first delivery matched.
        payment: Option<PaymentRef>,
    },
    /// A type of event payhook does not act on; not stored.
    Ignored {
        /// The gateway's type name.
        event_type: String,
    },
    /// No payment matches; the event is kept for a later delivery.
    Unmatched {
        /// The gateway's event id.
        event_id: String,
    },
}

impl WebhookOutcome {
    /// True when this call met an amount other than the payment's: a
    /// confirmation that recorded the difference (policy `warn`) or a
    /// success refused for it ([`Outcome::AmountRejected`], policy
    /// `reject`). A duplicate, or a success for a payment completed
    /// earlier, is not this call's mismatch and answers false.
    pub fn amount_mismatch(&self) -> bool {
        match self {
            Self::Decided {
                outcome: Outcome::AmountRejected,
                ..
            } => true,
            // The payment completed in this call, so a mismatch it carries
            // is the one this event brought.
            Self::Decided {
                outcome: Outcome::Confirmed,
                payment,
            } => payment.amount_mismatch,
            Self::Decided { .. }
            | Self::Duplicate { .. }
            | Self::Ignored { .. }
            | Self::Unmatched { .. } => false,
        }
    }
}

/// One page of recorded events, as [`WebhookService::events`] lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventPage {
    /// The events, by ascending id.
    pub items: Vec<StoredEvent>,
    /// The cursor of the next page (`after_id`), when more events pass the
    /// filter; `None` on the last page.
    pub next_after_id: Option<i64>,
}

/// Handles webhook calls: verify, parse, apply, answer.
#[derive(Clone)]
pub struct WebhookService {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    policy: AmountPolicy,
}

impl WebhookService {
    /// A service applying events to `store` under the amount `policy`.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, policy: AmountPolicy) -> Self {
        Self {
            store,
            clock,
            policy,
        }
    }

    /// The amount policy in force.
    pub fn policy(&self) -> AmountPolicy {
        self.policy
    }

    /// Verifies `request` with `adapter` on its raw bytes, parses it, and
    /// applies it in one store transaction. A request that fails
    /// verification or parsing writes nothing.
    pub async fn handle(
        &self,
        adapter: &dyn GatewayAdapter,
        request: &WebhookRequest<'_>,
    ) -> Result<WebhookOutcome, WebhookError> {
        let event = self.verify_and_parse(adapter, request)?;
        self.apply(event, request.body.to_vec()).await
    }

    /// The first half of [`WebhookService::handle`]: the signature check on
    /// the raw bytes, then parsing. Pure and synchronous; callers that log
    /// the event id between the two halves use it directly.
    ///
    /// An event with U+0000 (NUL) in any of its texts is refused as
    /// `Parse(InvalidField)` naming the field, whichever adapter parsed it:
    /// the store keeps every text, and not every backend can hold NUL.
    pub fn verify_and_parse(
        &self,
        adapter: &dyn GatewayAdapter,
        request: &WebhookRequest<'_>,
    ) -> Result<GatewayEvent, WebhookError> {
        adapter.verify(request, self.clock.now())?;
        let event = adapter.parse(request)?;
        if let Some(field) = event.field_with_nul() {
            return Err(ParseError::InvalidField {
                field,
                reason: "contains NUL (U+0000)".into(),
            }
            .into());
        }
        Ok(event)
    }

    /// The second half of [`WebhookService::handle`]: applies a verified
    /// event whose raw body is `payload`. Event types payhook does not act on
    /// are answered `Ignored` without touching the store.
    pub async fn apply(
        &self,
        event: GatewayEvent,
        payload: Vec<u8>,
    ) -> Result<WebhookOutcome, WebhookError> {
        if event.kind == EventKind::NotHandled {
            return Ok(WebhookOutcome::Ignored {
                event_type: event.event_type,
            });
        }
        let event_id = event.event_id.clone();
        let applied = self
            .store
            .apply_event(EventToApply {
                event,
                payload,
                policy: self.policy,
                received_at: self.clock.now(),
                source: EventSource::Webhook,
            })
            .await?;
        Ok(match applied {
            Applied::Decided { outcome, payment } => WebhookOutcome::Decided {
                outcome,
                payment: PaymentRef::from(&payment),
            },
            Applied::Duplicate { payment } => WebhookOutcome::Duplicate {
                payment: payment.as_ref().map(PaymentRef::from),
            },
            Applied::Unmatched => WebhookOutcome::Unmatched { event_id },
        })
    }
    /// The recorded events that pass `filter`, one page of them by
    /// ascending id. The page size is `filter.limit` held between 1 and
    /// [`EventFilter::MAX_LIMIT`].
    pub async fn events(&self, filter: EventFilter) -> Result<EventPage, WebhookError> {
        let limit = filter.limit.clamp(1, EventFilter::MAX_LIMIT);
        // One more than asked tells whether another page exists.
        let mut items = self
            .store
            .webhook_events(EventFilter {
                limit: limit + 1,
                ..filter
            })
            .await?;
        let page = usize::try_from(limit).unwrap_or(usize::MAX);
        let next_after_id = if items.len() > page {
            items.truncate(page);
            items.last().map(|event| event.id)
        } else {
            None
        };
        Ok(EventPage {
            items,
            next_after_id,
        })
    }

    /// The recorded event with this id and its raw body, or `EventNotFound`.
    pub async fn event(&self, id: i64) -> Result<EventDetail, WebhookError> {
        self.store
            .webhook_event(id)
            .await?
            .ok_or(WebhookError::EventNotFound(id))
    }

    /// Applies the recorded event with this id again, through the same
    /// path as a delivery ([`WebhookService::apply`]) under the policy in
    /// force now: an event already processed answers `Duplicate` and
    /// changes nothing, an unmatched one tries the lookup again, an amount
    /// refused under `reject` is evaluated again. The stored event was
    /// verified when it arrived, so no signature is checked. Returns
    /// `EventNotFound` when no event has this id.
    pub async fn replay(&self, id: i64) -> Result<WebhookOutcome, WebhookError> {
        // A pruned event's body is empty; that is harmless: only final
        // events are pruned, and a recorded final event is answered as a
        // duplicate without the body being evaluated or stored again.
        let EventDetail {
            record, payload, ..
        } = self.event(id).await?;
        self.apply(record.event, payload).await
    }
}
