//! Audit and replay, behind the management token: the recorded gateway
//! events listed with filters and a cursor, one read back with the raw body
//! it arrived with, and one applied again through the same path as a
//! delivery.
//!
//! It never verifies a signature: only events whose signature was verified
//! are ever stored, and a replay re-applies what was stored.

use actix_web::{web, HttpRequest, HttpResponse};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use payhook_domain::ports::{EventDetail, EventFilter, EventOutcome, EventSource, StoredEvent};
use payhook_domain::{EventKind, PaymentId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api_types::{stored_outcome_names, ManagementErrors, Unauthorized, STORED_KIND_NAMES};
use crate::auth::Authorized;
use crate::error::ApiError;
use crate::routes::webhooks::respond;
use crate::state::AppState;

/// Longest accepted `gateway` filter, as for the other names the API takes.
const MAX_GATEWAY: usize = 255;

/// Times to the microsecond, as stored, so that a listed `received_at` can
/// be passed back as a filter bound exactly.
fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// One event in a listing: no body, no references.
#[derive(Serialize, ToSchema)]
struct EventItem {
    id: i64,
    gateway: String,
    event_id: String,
    event_type: String,
    #[schema(value_type = crate::api_types::EventKindName)]
    kind: &'static str,
    #[schema(value_type = crate::api_types::EventOutcomeName)]
    outcome: &'static str,
    /// Where the event came from: a `webhook` the gateway sent, or the
    /// gateway's API asked by reconciliation (`reconcile`).
    #[schema(value_type = crate::api_types::EventSourceName)]
    source: &'static str,
    #[schema(value_type = Option<i64>)]
    payment_id: Option<PaymentId>,
    attempts: u32,
    received_at: String,
    processed_at: String,
}

impl From<StoredEvent> for EventItem {
    fn from(stored: StoredEvent) -> Self {
        Self {
            id: stored.id,
            kind: stored.event.kind.as_str(),
            outcome: stored.outcome.as_str(),
            source: stored.source.as_str(),
            payment_id: stored.payment_id,
            attempts: stored.attempts,
            received_at: timestamp(stored.received_at),
            processed_at: timestamp(stored.processed_at),
            gateway: stored.event.gateway,
            event_id: stored.event.event_id,
            event_type: stored.event.event_type,
        }
    }
}

/// One event read alone: the listing's fields, the references and amount it
/// was looked up by, and the raw body: `payload` when it is UTF-8 text,
/// else `payload_base64`; neither once retention has pruned the body
/// (`pruned_at` is then set).
#[derive(Serialize, ToSchema)]
struct EventDetailBody {
    #[serde(flatten)]
    item: EventItem,
    ref_transaction_id: Option<String>,
    ref_external_id: Option<String>,
    ref_gateway_reference: Option<String>,
    amount: Option<String>,
    #[schema(value_type = Option<String>)]
    currency: Option<&'static str>,
    /// When retention removed the raw body (`PAYHOOK_RETENTION_DAYS`);
    /// `null` while the body is kept. The event itself stays, so a late
    /// re-delivery is still answered as already processed.
    #[schema(format = DateTime)]
    pruned_at: Option<String>,
    /// The raw body as UTF-8 text; absent when it is not text, or pruned.
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<String>,
    /// The raw body in base64 when it is not UTF-8 text; absent otherwise,
    /// or pruned.
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_base64: Option<String>,
}

impl From<EventDetail> for EventDetailBody {
    fn from(detail: EventDetail) -> Self {
        let EventDetail {
            record,
            payload,
            pruned_at,
        } = detail;
        let references = record.event.references.clone();
        let amount = record.event.amount;
        // A pruned body reads as empty: showing it as `""` would pass it
        // off as what the gateway sent.
        let (payload, payload_base64) = match pruned_at {
            Some(_) => (None, None),
            None => match String::from_utf8(payload) {
                Ok(text) => (Some(text), None),
                Err(bytes) => (None, Some(BASE64.encode(bytes.into_bytes()))),
            },
        };
        Self {
            item: EventItem::from(record),
            ref_transaction_id: references.transaction_id,
            ref_external_id: references.external_id,
            ref_gateway_reference: references.gateway_reference,
            amount: amount.map(|money| money.amount_string()),
            currency: amount.map(|money| money.currency().code()),
            pruned_at: pruned_at.map(timestamp),
            payload,
            payload_base64,
        }
    }
}

/// One page of `GET /api/v1/webhook-events/`.
#[derive(Serialize, ToSchema)]
struct EventPage {
    items: Vec<EventItem>,
    /// The `after_id` of the next page; `null` on the last one.
    next_after_id: Option<i64>,
}

/// The query of `GET /api/v1/webhook-events/`, as text: each value is read
/// below so that a refusal names its parameter.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    gateway: Option<String>,
    outcome: Option<String>,
    kind: Option<String>,
    source: Option<String>,
    payment_id: Option<String>,
    received_after: Option<String>,
    received_before: Option<String>,
    after_id: Option<String>,
    limit: Option<String>,
}

fn invalid(parameter: &str, expected: &str) -> ApiError {
    ApiError::BadRequest(format!("invalid {parameter}: expected {expected}"))
}

fn time(parameter: &str, value: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(value)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|_| {
            invalid(
                parameter,
                "an RFC 3339 time such as 2026-11-27T10:00:00Z (send a + offset as %2B)",
            )
        })
}

fn id(parameter: &str, value: &str) -> Result<i64, ApiError> {
    value
        .parse::<i64>()
        .ok()
        .filter(|id| *id >= 0)
        .ok_or_else(|| invalid(parameter, "a non-negative integer id"))
}

impl ListQuery {
    fn into_filter(self) -> Result<EventFilter, ApiError> {
        let gateway = match self.gateway {
            // NUL too: PostgreSQL's text cannot hold it (a 500 there), SQLite's
            // can, and no gateway's name has one.
            Some(name) if name.is_empty() || name.len() > MAX_GATEWAY || name.contains('\0') => {
                return Err(invalid(
                    "gateway",
                    "a gateway name such as stripe, without NUL (U+0000)",
                ));
            }
            other => other,
        };
        let outcome = self
            .outcome
            .map(|name| {
                EventOutcome::parse(&name).ok_or_else(|| {
                    let names: Vec<&str> = stored_outcome_names().collect();
                    invalid("outcome", &format!("one of {}", names.join(", ")))
                })
            })
            .transpose()?;
        let kind = self
            .kind
            .map(|name| {
                STORED_KIND_NAMES
                    .contains(&name.as_str())
                    .then(|| EventKind::parse(&name))
                    .flatten()
                    .ok_or_else(|| {
                        invalid("kind", &format!("one of {}", STORED_KIND_NAMES.join(", ")))
                    })
            })
            .transpose()?;
        let limit = match self.limit {
            None => EventFilter::DEFAULT_LIMIT,
            Some(text) => text
                .parse::<u32>()
                .ok()
                .filter(|limit| (1..=EventFilter::MAX_LIMIT).contains(limit))
                .ok_or_else(|| {
                    invalid(
                        "limit",
                        &format!("an integer from 1 to {}", EventFilter::MAX_LIMIT),
                    )
                })?,
        };
        Ok(EventFilter {
            gateway,
            outcome,
            kind,
            payment_id: self
                .payment_id
                .map(|text| id("payment_id", &text).map(PaymentId))
                .transpose()?,
            source: self
                .source
                .map(|name| {
                    EventSource::parse(&name)
                        .ok_or_else(|| invalid("source", "one of webhook, reconcile"))
                })
                .transpose()?,
            received_after: self
                .received_after
                .map(|text| time("received_after", &text))
                .transpose()?,
            received_before: self
                .received_before
                .map(|text| time("received_before", &text))
                .transpose()?,
            after_id: self
                .after_id
                .map(|text| id("after_id", &text))
                .transpose()?,
            limit,
        })
    }
}

/// `GET /api/v1/webhook-events/`: one page of recorded events by ascending
/// id, `{"items": [...], "next_after_id": <id or null>}`. Filters:
/// `gateway`, `outcome`, `kind`, `source`, `payment_id`, `received_after` (inclusive) and
/// `received_before` (exclusive) as RFC 3339; pages: `limit` (default 50,
/// at most 500) and the cursor `after_id`. 400 names a bad parameter.
#[utoipa::path(
    get,
    path = "/api/v1/webhook-events/",
    tag = "webhook events",
    security(("bearer" = [])),
    params(
        ("gateway" = Option<String>, Query, min_length = 1, max_length = 255, description = "Only this gateway's events, e.g. `stripe`"),
        ("outcome" = inline(Option<crate::api_types::EventOutcomeName>), Query, description = "Only events with this outcome"),
        ("kind" = inline(Option<crate::api_types::EventKindName>), Query, description = "Only events of this kind, e.g. `refund` or `dispute`"),
        ("source" = inline(Option<crate::api_types::EventSourceName>), Query, description = "Only events from this source: `webhook` calls or `reconcile` (the gateway's API)"),
        ("payment_id" = Option<i64>, Query, minimum = 0, description = "Only events applied to this payment"),
        ("received_after" = Option<String>, Query, format = DateTime, description = "Received at or after this RFC 3339 time"),
        ("received_before" = Option<String>, Query, format = DateTime, description = "Received before this RFC 3339 time"),
        ("after_id" = Option<i64>, Query, minimum = 0, description = "The cursor: events with a larger id"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Page size, default 50"),
    ),
    responses(
        (status = 200, description = "One page of events by ascending id", body = EventPage),
        (status = 400, description = "A query parameter is invalid or unknown", body = crate::api_types::ErrorBody),
        Unauthorized,
        ManagementErrors,
    ),
)]
pub async fn list_events(
    _: Authorized,
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let query = web::Query::<ListQuery>::from_query(request.query_string())
        .map_err(|error| ApiError::BadRequest(format!("invalid query: {error}")))?;
    let filter = query.into_inner().into_filter()?;
    let page = state.webhooks.events(filter).await?;
    let items: Vec<EventItem> = page.items.into_iter().map(EventItem::from).collect();
    Ok(HttpResponse::Ok().json(EventPage {
        items,
        next_after_id: page.next_after_id,
    }))
}

/// `GET /api/v1/webhook-events/{id}/`: the event with its references,
/// amount and raw body (or, once retention pruned it, `pruned_at` and no
/// body); 404 when no event has this id.
#[utoipa::path(
    get,
    path = "/api/v1/webhook-events/{id}/",
    tag = "webhook events",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "the event's id")),
    responses(
        (status = 200, description = "The event with its references, amount and raw body; \
                                      no body but `pruned_at` once retention removed it", body = EventDetailBody),
        (status = 404, description = "No event has this id", body = crate::api_types::ErrorBody),
        Unauthorized,
        ManagementErrors,
    ),
)]
pub async fn get_event(
    _: Authorized,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let detail = state.webhooks.event(id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(EventDetailBody::from(detail)))
}

/// `POST /api/v1/webhook-events/{id}/replay/`: applies the stored event
/// again through the delivery path, idempotent like a delivery, and answers
/// as the webhook endpoint would (200 success or already processed, 404
/// while no payment matches, 400 for an amount refused under `reject` or a
/// refund refused, 409 for a refund or dispute whose payment has not
/// completed yet). 404 too when no event has this id.
#[utoipa::path(
    post,
    path = "/api/v1/webhook-events/{id}/replay/",
    tag = "webhook events",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "the event's id")),
    responses(
        (status = 200, description = "Applied, already processed, or ignored", body = crate::api_types::WebhookAnswer),
        (status = 400, description = "The amount was refused under the `reject` policy, or the refund was refused \
                                      (another currency than the payment's, or above the amount received); nothing changed",
         body = crate::api_types::ErrorBody),
        (status = 404, description = "No event has this id, or no payment matches it yet", body = crate::api_types::ErrorBody),
        (status = 409, description = "A refund or dispute for a payment that has not completed yet: still kept, \
                                      applied when the payment completes", body = crate::api_types::ErrorBody),
        Unauthorized,
        ManagementErrors,
    ),
)]
pub async fn replay_event(
    _: Authorized,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let replayed = state.webhooks.replay(id).await;
    let (outcome, answer) = match replayed {
        Ok(outcome) => respond(&outcome),
        Err(error) => ("error", Err(error.into())),
    };
    tracing::info!(event = id, outcome, "webhook event replayed");
    answer
}
