//! What every handler shares, built once at start-up by [`crate::startup`].
//!
//! Plain data: it holds the services, the gateways and the counters, and
//! decides nothing. Routes depend on it, never on start-up.

use std::sync::Arc;

use payhook_domain::{PaymentService, WebhookService};
use payhook_store_diesel::DieselStore;

use crate::gateways::Gateways;
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::runtime::ApiToken;

/// What every handler shares.
pub struct AppState {
    /// Orders and payments for the management API.
    pub payments: PaymentService,
    /// Verify, parse and apply webhooks.
    pub webhooks: WebhookService,
    /// The registered gateways.
    pub gateways: Gateways,
    /// The store, for readiness, metrics and the outbox routes.
    pub store: Arc<DieselStore>,
    /// `None` disables the management API.
    pub api_token: Option<ApiToken>,
    /// Largest accepted webhook body.
    pub max_body_bytes: usize,
    /// How long a webhook's whole body may take to arrive.
    pub body_timeout: std::time::Duration,
    /// The Prometheus metrics.
    pub metrics: Metrics,
    /// Rate limits and the in-flight bound.
    pub limits: Limits,
    /// The OpenAPI document as served, serialized once at start-up (it
    /// never changes while the process runs).
    pub openapi_json: String,
    /// The operator console's sessions (this process's only).
    pub console: crate::console::Sessions,
}
