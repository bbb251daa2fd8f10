//! `POST /api/v1/order-payments/webhooks/{gateway}/`: read the raw body
//! within the size limit, hand it to the gateway's adapter and the webhook
//! service, answer with the contract's JSON.

use std::time::Instant;

use actix_web::http::header::{HeaderMap, CONTENT_LENGTH};
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use payhook_domain::ports::{Headers, WebhookRequest};
use payhook_domain::{Outcome, PaymentRef, WebhookError, WebhookOutcome};
use serde_json::json;

use crate::error::ApiError;
use crate::startup::AppState;

/// actix's header map behind the domain's [`Headers`] port.
struct ActixHeaders<'a>(&'a HeaderMap);

impl Headers for ActixHeaders<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(|value| value.to_str().ok())
    }
}

/// Reads the body, refusing it as soon as it passes `limit` bytes (and at
/// once when `Content-Length` already says so).
async fn read_body(
    request: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::Bytes, ApiError> {
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(ApiError::PayloadTooLarge(limit));
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(0).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("cannot read body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

fn answer(status: &str, message: &str, payment: Option<&PaymentRef>) -> HttpResponse {
    let mut body = json!({"status": status, "message": message});
    if let Some(payment) = payment {
        body["payment_id"] = json!(payment.id);
        body["transaction_id"] = json!(payment.transaction_id);
    }
    HttpResponse::Ok().json(body)
}

/// The outcome's name in logs, and the HTTP answer.
fn respond(outcome: &WebhookOutcome) -> (&'static str, Result<HttpResponse, ApiError>) {
    match outcome {
        WebhookOutcome::Decided { outcome, payment } => {
            let message = match outcome {
                Outcome::Confirmed => "Payment confirmed",
                Outcome::Failed => "Payment failed",
                Outcome::AlreadyCompleted => "Payment already completed",
                Outcome::AlreadyFailed => "Payment already failed",
                Outcome::LateFailureIgnored => {
                    "Payment already completed; the failure event was recorded, not applied"
                }
                Outcome::AmountRejected => {
                    let refusal = ApiError::BadRequest(
                        "amount mismatch: the event's amount differs from the payment's; \
                         payment not confirmed"
                            .into(),
                    );
                    return (outcome.as_str(), Err(refusal));
                }
                _ => "Event recorded",
            };
            (
                outcome.as_str(),
                Ok(answer("success", message, Some(payment))),
            )
        }
        WebhookOutcome::Duplicate { payment } => (
            "duplicate",
            Ok(answer(
                "success",
                "Webhook already processed",
                payment.as_ref(),
            )),
        ),
        WebhookOutcome::Ignored { event_type } => (
            "ignored",
            Ok(answer(
                "ignored",
                &format!("Event type {event_type} is not handled"),
                None,
            )),
        ),
        WebhookOutcome::Unmatched { .. } => (
            "not_found",
            Err(ApiError::NotFound("Payment not found".into())),
        ),
        _ => (
            "error",
            Err(ApiError::BadRequest("unexpected outcome".into())),
        ),
    }
}

/// Handles one gateway call. Logs one line per attempt, rejected ones
/// included, with the gateway, event id when known, outcome and latency;
/// never the body, a secret or a signature.
pub async fn receive(
    segment: web::Path<String>,
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let Some(gateway) = state.gateways.by_segment(&segment) else {
        return Err(ApiError::NotFound("no such webhook endpoint".into()));
    };
    let client = request
        .connection_info()
        .peer_addr()
        .unwrap_or("unknown")
        .to_owned();
    let log = |event_id: &str, outcome: &str| {
        tracing::info!(
            gateway = gateway.name,
            event_id,
            outcome,
            latency_ms = started.elapsed().as_secs_f64() * 1000.0,
            client = client.as_str(),
            "webhook"
        );
    };
    let Some(adapter) = gateway.adapter.as_deref() else {
        log("", "not_configured");
        return Err(ApiError::Unavailable(format!(
            "the {} gateway is not configured",
            gateway.name
        )));
    };
    let body = match read_body(&request, payload, state.max_body_bytes).await {
        Ok(body) => body,
        Err(error) => {
            log("", "too_large");
            return Err(error);
        }
    };
    let headers = ActixHeaders(request.headers());
    let webhook = WebhookRequest {
        headers: &headers,
        body: &body,
    };
    let event = match state.webhooks.verify_and_parse(adapter, &webhook) {
        Ok(event) => event,
        Err(error) => {
            let outcome = match error {
                WebhookError::Verify(_) => "bad_signature",
                _ => "malformed",
            };
            log("", outcome);
            return Err(error.into());
        }
    };
    let event_id = event.event_id.clone();
    match state.webhooks.apply(event, body.to_vec()).await {
        Ok(outcome) => {
            let (name, response) = respond(&outcome);
            log(&event_id, name);
            response
        }
        Err(error) => {
            log(&event_id, "error");
            Err(error.into())
        }
    }
}
