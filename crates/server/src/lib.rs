//! payhook's HTTP server: the webhook endpoints and the management API over
//! actix-web, configuration from the environment, and telemetry.
//!
//! **Invariant:** this is the only crate that reads environment variables or
//! knows HTTP. Handlers stay thin: extract, call an adapter and a domain
//! service, map the outcome with the table in [`error`].

pub mod api_types;
pub mod auth;
pub mod check;
pub mod config;
pub mod console;
pub mod dispatcher;
pub mod error;
pub mod gateways;
pub mod headers;
pub mod limits;
pub mod metrics;
pub mod notify;
pub mod openapi;
pub mod pruner;
pub mod reconciler;
pub mod routes;
pub mod runtime;
pub mod startup;
pub mod state;
pub mod telemetry;

pub use config::{Config, ConfigError};
pub use startup::{open_store, Application};
