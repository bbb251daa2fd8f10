//! `POST /api/v1/order-payments/{id}/reconcile/`: asks the payment's
//! gateway where it stands now and applies the answer, as the background
//! reconciler would, behind the management token.
//!
//! It decides nothing: the worker's [`crate::reconciler::RouteReconciler`]
//! checks, this maps its report to the answer.

use actix_web::{web, HttpResponse};
use payhook_domain::reconcile::Mode;
use payhook_domain::{CheckResult, GatewayApiError, PaymentId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api_types::{ManagementErrors, Unauthorized};
use crate::auth::Authorized;
use crate::error::ApiError;
use crate::reconciler::{record_manual, RouteReconciler};
use crate::routes::api::PaymentBody;
use crate::state::AppState;

/// The query of the reconcile route.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconcileQuery {
    /// Ask the gateway and say what would change, writing nothing.
    dry_run: Option<bool>,
}

/// What came of a check the gateway answered.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReconcileResultName {
    /// The gateway's state was applied; `outcome` says what it decided.
    Applied,
    /// The same state was applied before: nothing changed.
    AlreadyKnown,
    /// Dry run: applying the state would decide `outcome`.
    WouldApply,
    /// The state says nothing to act on (e.g. an intent still waiting for
    /// its payment method).
    NoChange,
}

/// The answer of `POST /api/v1/order-payments/{id}/reconcile/`.
#[derive(Serialize, ToSchema)]
struct ReconcileAnswer {
    #[schema(value_type = i64)]
    payment_id: PaymentId,
    transaction_id: String,
    /// The payment's gateway.
    gateway: String,
    /// The payment's status before the check.
    #[schema(value_type = crate::api_types::PaymentStatusName)]
    status_before: &'static str,
    /// Its status after the check; for a dry run, the status it would have.
    #[schema(value_type = crate::api_types::PaymentStatusName)]
    status: &'static str,
    /// What the gateway says, e.g. `payment_intent succeeded`.
    gateway_state: Option<String>,
    #[schema(value_type = ReconcileResultName)]
    result: &'static str,
    /// The decision, for `applied` and `would_apply`; else `null`.
    #[schema(value_type = Option<crate::api_types::EventOutcomeName>, required = true)]
    outcome: Option<&'static str>,
    /// The payment as stored after the check.
    payment: PaymentBody,
}

/// The answer of a gateway's API that gave no usable one.
fn gateway_failure(error: &GatewayApiError) -> ApiError {
    let retry_after = match error {
        GatewayApiError::RateLimited { retry_after } => {
            // The gateway's own wait, or a minute when it gave none.
            Some(retry_after.map_or(60, |wait| wait.as_secs().max(1)))
        }
        _ => None,
    };
    ApiError::BadGateway {
        message: error.to_string(),
        retry_after,
    }
}

/// `POST /api/v1/order-payments/{id}/reconcile/`: asks the payment's
/// gateway where it stands and applies the answer through the same atomic
/// apply as a webhook (recorded with source `reconcile`); with
/// `?dry_run=true` only says what would change. Whatever the payment's
/// status, and whether or not it is due.
#[utoipa::path(
    post,
    path = "/api/v1/order-payments/{id}/reconcile/",
    tag = "payments",
    security(("bearer" = [])),
    params(
        ("id" = i64, Path, description = "payhook's payment id"),
        ("dry_run" = Option<bool>, Query, description = "Ask the gateway and say what would change; write nothing"),
    ),
    responses(
        (status = 200, description = "The gateway answered: what it said and what came of it, with the payment", body = ReconcileAnswer),
        (status = 400, description = "An invalid or unknown query parameter", body = crate::api_types::ErrorBody),
        (status = 404, description = "No payment has this id", body = crate::api_types::ErrorBody),
        (status = 502, description = "The gateway's API gave no usable answer (refused credentials, unknown object, rate limiting, failure, malformed answer); nothing was changed",
         body = crate::api_types::ErrorBody,
         headers(("Retry-After" = String, description = "Seconds to wait, when the gateway was rate limiting"))),
        Unauthorized,
        ManagementErrors,
    ),
)]
pub async fn reconcile_payment(
    _: Authorized,
    state: web::Data<AppState>,
    worker: web::Data<RouteReconciler>,
    id: web::Path<i64>,
    query: web::Query<ReconcileQuery>,
) -> Result<HttpResponse, ApiError> {
    let mode = if query.dry_run.unwrap_or(false) {
        Mode::DryRun
    } else {
        Mode::Apply
    };
    let report = worker
        .reconciler()
        .check(PaymentId(id.into_inner()), mode)
        .await?;
    record_manual(&report, &state.metrics.reconcile());
    let outcome = match &report.result {
        CheckResult::Applied(outcome) | CheckResult::WouldApply(outcome) => Some(outcome.as_str()),
        CheckResult::Error(error) => return Err(gateway_failure(error)),
        _ => None,
    };
    let payment = state.payments.payment(report.payment_id).await?;
    Ok(HttpResponse::Ok().json(ReconcileAnswer {
        payment_id: report.payment_id,
        status_before: report.status_before.as_str(),
        status: report.status_after.as_str(),
        result: report.result.as_str(),
        outcome,
        payment: PaymentBody::read(&state, payment).await?,
        transaction_id: report.transaction_id,
        gateway: report.gateway,
        gateway_state: report.gateway_state,
    }))
}
