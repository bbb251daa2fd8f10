//! `POST /api/v1/order-payments/webhooks/{gateway}/`: read the raw body
//! within the size limit, hand it to the gateway's adapter and the webhook
//! service, answer with the contract's JSON.

use std::time::{Duration, Instant};

use actix_web::error::PayloadError;
use actix_web::http::header::{HeaderMap, CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use payhook_domain::ports::{Headers, WebhookRequest};
use payhook_domain::{GatewayEvent, Outcome, PaymentRef, WebhookError, WebhookOutcome};
use serde_json::json;
use tokio::sync::OwnedSemaphorePermit;

use crate::error::ApiError;
use crate::gateways::Gateway;
use crate::limits::Limits;
use crate::state::AppState;

/// actix's header map behind the domain's [`Headers`] port.
struct ActixHeaders<'a>(&'a HeaderMap);

impl Headers for ActixHeaders<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(|value| value.to_str().ok())
    }
}

/// Why a body was not read whole.
#[derive(Debug)]
enum BodyError {
    /// Over `PAYHOOK_MAX_BODY_BYTES`, declared or sent.
    TooLarge,
    /// Not whole within `PAYHOOK_BODY_TIMEOUT_MS`.
    TimedOut,
    /// The bodies being received hold the whole receiving budget.
    Busy,
    /// The client closed the connection, or it broke, before the end.
    Aborted(PayloadError),
    /// The transfer or content encoding was corrupt.
    Malformed(PayloadError),
}

/// The first buffer of a body, grown by doubling: most gateway events fit.
const FIRST_CAPACITY: usize = 8 * 1024;

/// Reads the body within `limit` bytes and `deadline`, refusing it at once
/// when `Content-Length` already says it is too large. Returns it with the
/// share of the receiving budget that covers its buffer, to be held while
/// the body is verified.
async fn read_body(
    request: &HttpRequest,
    payload: web::Payload,
    limits: &Limits,
    limit: usize,
    deadline: Duration,
) -> Result<(web::Bytes, Option<OwnedSemaphorePermit>), BodyError> {
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(BodyError::TooLarge);
    }
    // One deadline for the whole body, however the client paces its bytes:
    // a byte every few seconds must not keep a connection forever.
    actix_web::rt::time::timeout(deadline, collect(payload, limits, limit, declared))
        .await
        .unwrap_or(Err(BodyError::TimedOut))
}

/// Collects the chunks in a buffer whose capacity is always covered by
/// permits of the receiving budget, so that all bodies in reception
/// together never hold more bytes than the budget. The buffer grows with
/// the bytes that arrive, never ahead of them to the declared length: a
/// client that declares 1 MiB and sends one byte holds 8 KiB.
async fn collect(
    mut payload: web::Payload,
    limits: &Limits,
    limit: usize,
    declared: Option<usize>,
) -> Result<(web::Bytes, Option<OwnedSemaphorePermit>), BodyError> {
    let ceiling = declared.unwrap_or(limit).min(limit);
    let mut body: Vec<u8> = Vec::new();
    let mut covered = 0;
    let mut budget: Option<OwnedSemaphorePermit> = None;
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|error| match error {
            PayloadError::Incomplete(_) | PayloadError::Io(_) => BodyError::Aborted(error),
            other => BodyError::Malformed(other),
        })?;
        let needed = body.len() + chunk.len();
        if needed > limit {
            return Err(BodyError::TooLarge);
        }
        if needed > covered {
            let grown = needed.max((covered * 2).max(FIRST_CAPACITY).min(ceiling));
            let more = limits.receiving(grown - covered).ok_or(BodyError::Busy)?;
            match &mut budget {
                Some(held) => held.merge(more),
                None => budget = Some(more),
            }
            body.reserve_exact(grown - body.len());
            covered = grown;
        }
        body.extend_from_slice(&chunk);
    }
    Ok((web::Bytes::from(body), budget))
}

/// What a 200 answer shows of the payment beyond its ids: a refund's
/// answer its status and refunded amount, a dispute's its status and the
/// dispute's. Every other answer keeps the first wave's shape.
#[derive(Clone, Copy)]
enum Shows {
    Ids,
    Refunds,
    Dispute,
}

fn answer(status: &str, message: &str, payment: Option<&PaymentRef>, shows: Shows) -> HttpResponse {
    let mut body = json!({"status": status, "message": message});
    if let Some(payment) = payment {
        body["payment_id"] = json!(payment.id);
        body["transaction_id"] = json!(payment.transaction_id);
        match shows {
            Shows::Ids => {}
            Shows::Refunds => {
                body["payment_status"] = json!(payment.status.as_str());
                body["refunded_amount"] = json!(payment.refunded_amount.amount_string());
            }
            Shows::Dispute => {
                body["payment_status"] = json!(payment.status.as_str());
                // A dispute's outcome always leaves the payment with one.
                if let Some(status) = payment.dispute_status {
                    body["dispute_status"] = json!(status.as_str());
                }
            }
        }
    }
    HttpResponse::Ok().json(body)
}

/// The outcome's name in logs, and the HTTP answer.
pub(crate) fn respond(outcome: &WebhookOutcome) -> (&'static str, Result<HttpResponse, ApiError>) {
    match outcome {
        WebhookOutcome::Decided { outcome, payment } => {
            let (message, shows) = match outcome {
                Outcome::Confirmed => ("Payment confirmed", Shows::Ids),
                Outcome::Failed => ("Payment failed", Shows::Ids),
                Outcome::Canceled => ("Payment canceled", Shows::Ids),
                Outcome::Pending => ("Payment pending", Shows::Ids),
                Outcome::AlreadyCompleted => ("Payment already completed", Shows::Ids),
                Outcome::AlreadyFailed => ("Payment already failed", Shows::Ids),
                Outcome::AlreadyCanceled => ("Payment already canceled", Shows::Ids),
                Outcome::LateFailureIgnored => (
                    "Payment already completed; the failure event was recorded, not applied",
                    Shows::Ids,
                ),
                Outcome::LateCancelIgnored => (
                    "Payment already completed; the cancel event was recorded, not applied",
                    Shows::Ids,
                ),
                Outcome::AmountRejected => {
                    let refusal = ApiError::BadRequest(
                        "amount mismatch: the event's amount differs from the payment's; \
                         payment not confirmed"
                            .into(),
                    );
                    return (outcome.as_str(), Err(refusal));
                }
                Outcome::RefundRecorded => ("Refund recorded", Shows::Refunds),
                Outcome::DisputeRecorded => ("Dispute recorded", Shows::Dispute),
                Outcome::DisputeUnchanged => (
                    "Dispute already decided or unchanged; the event was recorded, not applied",
                    Shows::Dispute,
                ),
                Outcome::RefundRejected => {
                    let refusal = ApiError::BadRequest(
                        "refund refused: its currency differs from the payment's, or it would \
                         take the refunded amount above the amount received; nothing changed"
                            .into(),
                    );
                    return (outcome.as_str(), Err(refusal));
                }
                Outcome::AwaitingCompletion => {
                    let early = ApiError::Conflict(
                        "the payment has not completed yet; the event is kept and applied \
                         when it completes"
                            .into(),
                    );
                    return (outcome.as_str(), Err(early));
                }
                // The service answers an unhandled event type as
                // `WebhookOutcome::Ignored` before any decision; a decision
                // that ignores one is recorded and acknowledged alike.
                Outcome::Ignored => ("Event recorded", Shows::Ids),
            };
            (
                outcome.as_str(),
                Ok(answer("success", message, Some(payment), shows)),
            )
        }
        WebhookOutcome::Duplicate { payment } => (
            "duplicate",
            Ok(answer(
                "success",
                "Webhook already processed",
                payment.as_ref(),
                Shows::Ids,
            )),
        ),
        WebhookOutcome::Ignored { event_type } => (
            "ignored",
            Ok(answer(
                "ignored",
                &format!("Event type {event_type} is not handled"),
                None,
                Shows::Ids,
            )),
        ),
        WebhookOutcome::Unmatched { .. } => (
            "not_found",
            Err(ApiError::NotFound("Payment not found".into())),
        ),
    }
}

/// True for `application/json` and `application/*+json`, with any parameters.
fn is_json(request: &HttpRequest) -> bool {
    let Some(value) = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Handles one gateway call. Logs one line per attempt, rejected ones
/// included, with the gateway, event id when known, outcome, latency and
/// client address (the request id comes from the request's span); never the
/// body, a secret or a signature.
#[utoipa::path(
    post,
    path = "/api/v1/order-payments/webhooks/{gateway}/",
    tag = "webhooks",
    params(
        ("gateway" = inline(crate::api_types::GatewaySegment), Path,
         description = "`payment` (generic), `stripe` or `paypal`"),
        ("Stripe-Signature" = Option<String>, Header,
         description = "Stripe: `t=<unix seconds>,v1=<hex>[,v1=<hex>...]`"),
        ("PAYPAL-TRANSMISSION-ID" = Option<String>, Header, description = "PayPal"),
        ("PAYPAL-TRANSMISSION-TIME" = Option<String>, Header, description = "PayPal"),
        ("PAYPAL-TRANSMISSION-SIG" = Option<String>, Header, description = "PayPal"),
        ("PAYPAL-CERT-URL" = Option<String>, Header, description = "PayPal"),
        ("PAYPAL-AUTH-ALGO" = Option<String>, Header, description = "PayPal: `SHA256withRSA`"),
        ("webhook-id" = Option<String>, Header, description = "Generic, Standard Webhooks"),
        ("webhook-timestamp" = Option<String>, Header, description = "Generic, Standard Webhooks: unix seconds"),
        ("webhook-signature" = Option<String>, Header,
         description = "Generic, Standard Webhooks: `v1,<base64 HMAC-SHA256>`"),
        ("X-Webhook-Signature" = Option<String>, Header,
         description = "Generic, simple scheme: `sha256=<hex HMAC-SHA256 of the body>`"),
    ),
    request_body(
        content = Object,
        content_type = "application/json",
        description = "The gateway's event, verified on its raw bytes before any parsing",
    ),
    responses(
        (status = 200, description = "Applied, already processed, or an event type that is not handled (`ignored`). \
                                      A refund's answer adds `payment_status` and `refunded_amount`, a dispute's \
                                      `payment_status` and `dispute_status`",
         body = crate::api_types::WebhookAnswer),
        (status = 400, description = "Missing or invalid signature, stale timestamp, malformed JSON, \
                                      a payload lacking what the event needs, an amount refused, or a refund refused \
                                      (another currency than the payment's, or above the amount received; nothing changed)",
         body = crate::api_types::ErrorBody),
        (status = 404, description = "No such gateway, or no payment matches (the event is kept)", body = crate::api_types::ErrorBody),
        (status = 409, description = "A refund or dispute for a payment that has not completed yet: the event is kept \
                                      and applied when the payment completes (a re-delivery tries again)",
         body = crate::api_types::ErrorBody),
        (status = 408, description = "The whole body did not arrive within PAYHOOK_BODY_TIMEOUT_MS; the connection is closed",
         body = crate::api_types::ErrorBody),
        (status = 413, description = "The body is over PAYHOOK_MAX_BODY_BYTES", body = crate::api_types::ErrorBody),
        (status = 415, description = "The body is not declared as JSON", body = crate::api_types::ErrorBody),
        (status = 429, description = "Too many failed verifications from this client", body = crate::api_types::ErrorBody,
         headers(("Retry-After" = String, description = "Seconds to wait"))),
        (status = 500, description = "Processing error; nothing was changed, a retry can succeed", body = crate::api_types::ErrorBody),
        (status = 503, description = "The gateway is not configured, the server is busy (receiving other bodies, \
                                      or processing PAYHOOK_MAX_IN_FLIGHT calls) or the database is unavailable",
         body = crate::api_types::ErrorBody),
    ),
)]
pub async fn receive(
    segment: web::Path<String>,
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let Some(gateway) = state.gateways.by_segment(&segment) else {
        // No gateway, so no label to count it under: the one answer of this
        // route that is neither logged as a webhook nor counted.
        return Err(ApiError::NotFound("no such webhook endpoint".into()));
    };
    let (event_id, handled) = match admit(&state, gateway, &request, payload).await {
        Ok((event, body)) => {
            let event_id = event.event_id.clone();
            (event_id, apply(&state, gateway, event, body).await)
        }
        Err(rejection) => (String::new(), Err(rejection)),
    };
    let (outcome, answer) = match handled {
        Ok((outcome, response)) => (outcome, Ok(response)),
        Err(Rejection { outcome, error }) => (outcome, Err(error)),
    };
    // The one place every call is logged and counted, whatever its path.
    let elapsed = started.elapsed();
    state
        .metrics
        .webhook(gateway.name, outcome, elapsed.as_secs_f64());
    let peer = request.peer_addr().map(|addr| addr.ip());
    tracing::info!(
        gateway = gateway.name,
        event_id = event_id.as_str(),
        outcome,
        latency_ms = elapsed.as_secs_f64() * 1000.0,
        client = %peer.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string()),
        "webhook"
    );
    answer
}

/// A call answered with an error, and the outcome it is logged and counted
/// under (`bad_signature`, `too_large`, ...).
struct Rejection {
    outcome: &'static str,
    error: ApiError,
}

impl Rejection {
    fn new(outcome: &'static str, error: impl Into<ApiError>) -> Self {
        Self {
            outcome,
            error: error.into(),
        }
    }
}

/// An answered call and its outcome, or its rejection.
type Handled = Result<(&'static str, HttpResponse), Rejection>;

/// Everything before the store: the gateway is configured, the body is
/// JSON within the size limit, the signature holds and the event parses.
/// Failed verifications count against the client's budget.
async fn admit(
    state: &AppState,
    gateway: &Gateway,
    request: &HttpRequest,
    payload: web::Payload,
) -> Result<(GatewayEvent, web::Bytes), Rejection> {
    let Some(adapter) = gateway.adapter.as_deref() else {
        let message = format!("the {} gateway is not configured", gateway.name);
        return Err(Rejection::new(
            "not_configured",
            ApiError::Unavailable(message),
        ));
    };
    if !is_json(request) {
        return Err(Rejection::new("malformed", ApiError::UnsupportedMediaType));
    }
    // The share of the receiving budget is held until the body is verified;
    // after that the body is bounded by the in-flight limit.
    let (body, _receiving) = read_body(
        request,
        payload,
        &state.limits,
        state.max_body_bytes,
        state.body_timeout,
    )
    .await
    .map_err(|error| match error {
        BodyError::TooLarge => {
            Rejection::new("too_large", ApiError::PayloadTooLarge(state.max_body_bytes))
        }
        BodyError::TimedOut => Rejection::new(
            "timeout",
            ApiError::BodyTimeout(state.body_timeout.as_millis()),
        ),
        BodyError::Busy => {
            state.metrics.rate_limited("receiving_bytes");
            Rejection::new("overloaded", ApiError::ReceivingBusy)
        }
        BodyError::Aborted(error) => Rejection::new(
            "aborted",
            ApiError::BadRequest(format!("cannot read body: {error}")),
        ),
        BodyError::Malformed(error) => Rejection::new(
            "malformed",
            ApiError::BadRequest(format!("cannot read body: {error}")),
        ),
    })?;
    let headers = ActixHeaders(request.headers());
    let webhook = WebhookRequest {
        headers: &headers,
        body: &body,
    };
    match state.webhooks.verify_and_parse(adapter, &webhook) {
        Ok(event) => Ok((event, body)),
        Err(error @ WebhookError::Verify(_)) => {
            // Only failures count against the client: a gateway's burst of
            // valid events is never throttled here.
            let peer = request.peer_addr().map(|addr| addr.ip());
            if let Err(retry_after) = state.limits.failed_verification(peer) {
                state.metrics.rate_limited("failed_verification");
                return Err(Rejection::new(
                    "rate_limited",
                    ApiError::TooManyRequests(retry_after),
                ));
            }
            Err(Rejection::new("bad_signature", error))
        }
        Err(error) => Err(Rejection::new("malformed", error)),
    }
}

/// Applies a verified event within the in-flight bound and maps what the
/// domain decided to the answer; counts an amount mismatch the outcome
/// reports.
async fn apply(
    state: &AppState,
    gateway: &Gateway,
    event: GatewayEvent,
    body: web::Bytes,
) -> Handled {
    let Some(_permit) = state.limits.in_flight() else {
        state.metrics.rate_limited("in_flight");
        return Err(Rejection::new("overloaded", ApiError::Overloaded));
    };
    let event_id = event.event_id.clone();
    let outcome = state
        .webhooks
        .apply(event, body.to_vec())
        .await
        .map_err(|error| Rejection::new("error", error))?;
    let (name, answer) = respond(&outcome);
    if let WebhookOutcome::Decided { payment, .. } = &outcome {
        if outcome.amount_mismatch() {
            state.metrics.amount_mismatch(gateway.name);
            tracing::warn!(
                gateway = gateway.name,
                event_id = event_id.as_str(),
                payment_id = payment.id.0,
                outcome = name,
                "amount mismatch"
            );
        }
    }
    match answer {
        Ok(response) => Ok((name, response)),
        Err(error) => Err(Rejection::new(name, error)),
    }
}

#[cfg(test)]
mod tests {
    use actix_web::body::to_bytes;
    use actix_web::http::StatusCode;
    use actix_web::ResponseError;
    use payhook_domain::{Currency, DisputeStatus, Money, PaymentId, PaymentStatus};
    use serde_json::{json, Value};

    use super::*;

    fn usd(minor: i64) -> Money {
        Money::from_minor(minor, Currency::parse("USD").expect("USD"))
    }

    fn payment(status: PaymentStatus, refunded: i64, dispute: Option<DisputeStatus>) -> PaymentRef {
        PaymentRef {
            id: PaymentId(7),
            transaction_id: "TXN-7".into(),
            amount_mismatch: false,
            status,
            refunded_amount: usd(refunded),
            dispute_status: dispute,
        }
    }

    /// The status and JSON body `respond` answers `outcome` with, and the
    /// name it logs.
    async fn answered(outcome: Outcome, payment: PaymentRef) -> (&'static str, StatusCode, Value) {
        let (name, answer) = respond(&WebhookOutcome::Decided { outcome, payment });
        let response = match answer {
            Ok(response) => response,
            Err(error) => error.error_response(),
        };
        let status = response.status();
        let bytes = to_bytes(response.into_body()).await.expect("a body");
        (name, status, serde_json::from_slice(&bytes).expect("JSON"))
    }

    #[actix_web::test]
    async fn a_refund_answer_shows_the_status_and_the_refunded_amount() {
        let (name, status, body) = answered(
            Outcome::RefundRecorded,
            payment(PaymentStatus::PartiallyRefunded, 5000, None),
        )
        .await;
        assert_eq!((name, status), ("refund_recorded", StatusCode::OK));
        assert_eq!(
            body,
            json!({
                "status": "success",
                "message": "Refund recorded",
                "payment_id": 7,
                "transaction_id": "TXN-7",
                "payment_status": "partially_refunded",
                "refunded_amount": "50.00",
            })
        );
    }

    #[actix_web::test]
    async fn a_dispute_answer_shows_the_dispute_status() {
        let disputed = payment(PaymentStatus::Completed, 0, Some(DisputeStatus::Open));
        let (name, status, body) = answered(Outcome::DisputeRecorded, disputed).await;
        assert_eq!((name, status), ("dispute_recorded", StatusCode::OK));
        assert_eq!(
            body,
            json!({
                "status": "success",
                "message": "Dispute recorded",
                "payment_id": 7,
                "transaction_id": "TXN-7",
                "payment_status": "completed",
                "dispute_status": "open",
            })
        );

        let decided = payment(PaymentStatus::Refunded, 15000, Some(DisputeStatus::Won));
        let (name, status, body) = answered(Outcome::DisputeUnchanged, decided).await;
        assert_eq!((name, status), ("dispute_unchanged", StatusCode::OK));
        assert_eq!(body["status"], "success");
        let message = body["message"].as_str().expect("a message");
        assert!(message.contains("not applied"), "{message}");
        assert_eq!(body["dispute_status"], "won");
        assert_eq!(body["payment_status"], "refunded");
        assert!(body.get("refunded_amount").is_none(), "{body}");
    }

    #[actix_web::test]
    async fn an_early_refund_is_a_conflict_and_a_refused_one_a_bad_request() {
        let pending = payment(PaymentStatus::PendingExternal, 0, None);
        let (name, status, body) = answered(Outcome::AwaitingCompletion, pending.clone()).await;
        assert_eq!(
            (name, status),
            ("awaiting_completion", StatusCode::CONFLICT)
        );
        assert_eq!(body["status"], "error");
        let message = body["message"].as_str().expect("a message");
        assert!(message.contains("not completed"), "{message}");
        assert!(body.get("payment_id").is_none(), "{body}");

        let completed = payment(PaymentStatus::Completed, 0, None);
        let (name, status, body) = answered(Outcome::RefundRejected, completed).await;
        assert_eq!((name, status), ("refund_rejected", StatusCode::BAD_REQUEST));
        assert_eq!(body["status"], "error");
        let message = body["message"].as_str().expect("a message");
        assert!(message.contains("nothing changed"), "{message}");
    }

    #[actix_web::test]
    async fn other_answers_keep_the_first_wave_shape() {
        // A confirmation of a payment that carries a dispute and refunds
        // still answers its ids alone.
        let refunded = payment(PaymentStatus::Completed, 100, Some(DisputeStatus::Open));
        for outcome in [
            Outcome::Confirmed,
            Outcome::AlreadyCompleted,
            Outcome::LateFailureIgnored,
        ] {
            let (_, status, body) = answered(outcome, refunded.clone()).await;
            assert_eq!(status, StatusCode::OK);
            let mut fields: Vec<&str> = body
                .as_object()
                .expect("an object")
                .keys()
                .map(String::as_str)
                .collect();
            fields.sort_unstable();
            assert_eq!(
                fields,
                ["message", "payment_id", "status", "transaction_id"],
                "{outcome:?}"
            );
        }
    }
}
