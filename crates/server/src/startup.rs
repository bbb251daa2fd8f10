//! Building the application: open and migrate the store, register the
//! gateways, bind the listener. Tests bind port 0 through the same path.

use std::net::TcpListener;
use std::rc::Rc;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};
use anyhow::Context;
use payhook_domain::ports::{Notifier, OutboxStore, Store};
use payhook_domain::{AmountPolicy, PaymentService, ReconcileSettings, WebhookService};
use payhook_store_diesel::{DieselStore, StoreOptions};

use crate::config::{Config, NotifyConfig, ReconcileConfig};
use crate::dispatcher::{DispatchSettings, Dispatcher, BATCH, LEASE};
use crate::gateways::Gateways;
use crate::headers::security_headers;
use crate::limits::Limits;
use crate::metrics::{Metrics, NotificationCounter, ParseErrorCounter, ReconcileMetrics};
use crate::notify::{HttpNotifier, LogNotifier};
use crate::pruner::{PrunedCounter, Pruner};
use crate::reconciler::{BackgroundReconciler, GatewayApis, RouteReconciler};
use crate::routes::routes;
use crate::runtime::{ApiToken, RandomTransactionIds, SystemClock};
use crate::state::AppState;
use crate::telemetry::RequestId;

/// The store's options from the configuration.
pub(crate) fn store_options(config: &Config) -> StoreOptions {
    StoreOptions {
        pool_size: config.db_pool_size,
        writers: config.db_writers,
        connect_timeout: config.db_timeout,
        group_commit: config.group_commit,
        ..StoreOptions::default()
    }
}

/// The group-commit writers the store will start, and whether that is
/// the default, for `check-config`.
pub(crate) fn writers_description(config: &Config) -> String {
    let Ok(target) = payhook_store_diesel::Target::parse(config.database_url.expose()) else {
        return "(no database)".to_owned();
    };
    if !config.group_commit {
        return "none (PAYHOOK_GROUP_COMMIT=false)".to_owned();
    }
    let writers = store_options(config).writers_on(&target);
    match (target.is_sqlite(), config.db_writers) {
        (true, _) => format!("{writers} (SQLite: one writer)"),
        (false, Some(_)) => writers.to_string(),
        (false, None) => format!("{writers} (default: half the pool, at most 4)"),
    }
}

fn log_migrations(applied: &[String]) {
    for version in applied {
        tracing::info!(version, "applied migration");
    }
}

/// Opens the store named by the configuration and applies its migrations;
/// fails when the database cannot be reached (`payhook migrate`).
pub fn open_store(config: &Config) -> anyhow::Result<DieselStore> {
    let store = DieselStore::open(config.database_url.expose(), &store_options(config))
        .context("cannot open the database named by DATABASE_URL")?;
    log_migrations(&store.migrate().context("cannot migrate the database")?);
    Ok(store)
}

/// Opens the store for serving. A SQLite file that cannot be opened stops
/// start-up; an unreachable PostgreSQL does not: the server starts, says so,
/// answers 503 and fails `/readyz`, and migrates as soon as the database
/// answers, so a fleet restarted during a database outage comes back by itself.
fn open_store_for_serving(config: &Config) -> anyhow::Result<DieselStore> {
    let store = DieselStore::open_lazy(config.database_url.expose(), &store_options(config))
        .context("invalid DATABASE_URL")?;
    match store.migrate() {
        Ok(applied) => log_migrations(&applied),
        Err(error) if store.backend() == "postgres" => {
            tracing::error!(
                %error,
                "PostgreSQL is unreachable at start-up: serving with /readyz failing; \
                 retrying the migrations every 2 s"
            );
            let retry = store.clone();
            std::thread::spawn(move || loop {
                std::thread::sleep(std::time::Duration::from_secs(2));
                match retry.migrate() {
                    Ok(applied) => {
                        log_migrations(&applied);
                        tracing::info!("PostgreSQL reachable and migrated");
                        break;
                    }
                    Err(error) => tracing::warn!(%error, "PostgreSQL still unreachable"),
                }
            });
        }
        Err(error) => return Err(error).context("cannot open or migrate the SQLite database"),
    }
    Ok(store)
}

/// A bound, ready-to-run server.
pub struct Application {
    port: u16,
    server: Server,
    store: Arc<DieselStore>,
    notify: NotifyConfig,
    notification_counter: NotificationCounter,
    retention: Option<std::time::Duration>,
    prune_interval: std::time::Duration,
    pruned_counter: PrunedCounter,
    apis: GatewayApis,
    reconcile_settings: ReconcileSettings,
    amount_policy: AmountPolicy,
    reconcile_metrics: ReconcileMetrics,
}

/// Says once at start-up which gateways are reconciled, never with their
/// credentials.
fn log_reconciliation(apis: &GatewayApis, config: &ReconcileConfig) {
    if apis.is_empty() {
        tracing::info!(
            "reconciliation is off: no gateway API credentials \
             (STRIPE_API_KEY, PAYPAL_CLIENT_ID + PAYPAL_CLIENT_SECRET)"
        );
        return;
    }
    let gateways = apis.gateways().join(", ");
    tracing::info!(
        gateways = %gateways,
        after_ms = u64::try_from(config.after.as_millis()).unwrap_or(u64::MAX),
        interval_ms = u64::try_from(config.interval.as_millis()).unwrap_or(u64::MAX),
        batch = config.batch,
        "reconciliation is on for {gateways}: payments pending longer than \
         PAYHOOK_RECONCILE_AFTER are checked with the gateway's API every \
         PAYHOOK_RECONCILE_INTERVAL"
    );
}

impl Application {
    /// Opens the store, migrates it and binds `config.addr` (port 0 picks a
    /// free port, for tests).
    pub fn build(config: &Config) -> anyhow::Result<Self> {
        Self::build_with(config, ParseErrorCounter::default())
    }

    /// As [`Application::build`], showing in `/metrics` the malformed
    /// requests that the log layer of [`crate::telemetry::init`] counts.
    pub fn build_with(config: &Config, parse_errors: ParseErrorCounter) -> anyhow::Result<Self> {
        let store = Arc::new(open_store_for_serving(config)?);
        let gateways = Gateways::from_config(config)?;
        for gateway in gateways.iter() {
            if gateway.adapter.is_none() {
                tracing::warn!(
                    gateway = gateway.name,
                    "gateway not configured: its webhook endpoint answers 503"
                );
            }
        }
        if config.generic_secrets.is_none() && config.allow_unsigned_generic {
            tracing::warn!(
                "PAYHOOK_ALLOW_UNSIGNED_GENERIC=true: the generic endpoint accepts UNSIGNED calls; \
                 anyone who can reach it can confirm payments. For local testing only."
            );
        }
        if config.api_token.is_none() {
            tracing::warn!("PAYHOOK_API_TOKEN is not set: the management API is disabled");
        }
        let dyn_store: Arc<dyn Store> = store.clone();
        let clock = Arc::new(SystemClock);
        let state = web::Data::new(AppState {
            payments: PaymentService::new(
                dyn_store.clone(),
                clock.clone(),
                Arc::new(RandomTransactionIds::default()),
                // Every registered gateway, configured or not: a payment may
                // be created before its gateway's secret is set.
                gateways.iter().map(|gateway| gateway.name),
            )
            .with_amount_policy(config.amount_policy),
            webhooks: WebhookService::new(dyn_store, clock, config.amount_policy),
            gateways,
            store: store.clone(),
            api_token: config.api_token.as_ref().map(ApiToken::new),
            max_body_bytes: config.max_body_bytes,
            body_timeout: config.body_timeout,
            metrics: Metrics::with_parse_errors(parse_errors),
            limits: Limits::new(
                config.failed_attempts_per_second,
                config.failed_attempts_burst,
                config.max_in_flight,
                config.max_receiving_bytes,
            ),
            openapi_json: crate::openapi::document_json()
                .context("cannot serialize the OpenAPI document")?,
            console: crate::console::Sessions::default(),
        });
        let notification_counter = state.metrics.notification_counter();
        let pruned_counter = state.metrics.pruned_counter();
        let reconcile_metrics = state.metrics.reconcile();
        let apis = GatewayApis::from_config(&config.reconcile);
        log_reconciliation(&apis, &config.reconcile);
        let reconcile_settings = crate::reconciler::settings(&config.reconcile);
        let amount_policy = config.amount_policy;
        let worker_apis = apis.clone();
        let worker_store = store.clone();
        match &config.notify.callback {
            Some(callback) => tracing::info!(
                url = %callback.url,
                "notifications are POSTed to PAYHOOK_NOTIFY_URL, signed (Standard Webhooks)"
            ),
            None => tracing::warn!(
                "PAYHOOK_NOTIFY_URL is not set: notifications are logged and marked delivered"
            ),
        }
        let listener = TcpListener::bind(config.addr)
            .with_context(|| format!("cannot listen on PAYHOOK_ADDR {}", config.addr))?;
        let port = listener
            .local_addr()
            .context("listener has no address")?
            .port();
        let server = HttpServer::new(move || {
            // Each worker thread asks the gateways with clients of its own:
            // awc's client is bound to the thread that made it.
            let reconciler = worker_apis.reconciler(
                worker_store.clone(),
                worker_store.clone(),
                Arc::new(SystemClock),
                amount_policy,
                reconcile_settings,
            );
            App::new()
                .wrap(actix_web::middleware::from_fn(security_headers))
                .wrap(RequestId)
                .app_data(state.clone())
                .app_data(web::Data::new(RouteReconciler::new(reconciler)))
                .configure(routes)
        })
        // SIGTERM or SIGINT: stop accepting, let requests in flight finish
        // (up to 30 s), then return from `run_until_stopped`.
        .shutdown_timeout(30)
        .listen(listener)
        .context("cannot start the HTTP server")?
        .run();
        tracing::info!(
            address = %config.addr,
            port,
            backend = store.backend(),
            "payhook listening"
        );
        Ok(Self {
            port,
            server,
            store,
            notify: config.notify.clone(),
            notification_counter,
            retention: config.retention,
            prune_interval: config.prune_interval,
            pruned_counter,
            apis,
            reconcile_settings,
            amount_policy,
            reconcile_metrics,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The store the application writes to.
    pub fn store(&self) -> Arc<DieselStore> {
        self.store.clone()
    }

    /// Serves until the process is asked to stop (SIGINT or SIGTERM), then
    /// lets in-flight requests finish.
    ///
    /// The outbox dispatcher, the retention pruner (unless retention is
    /// off) and, when a gateway's API credentials are set, the background
    /// reconciler run beside the server on the same runtime and stop after
    /// the requests have drained (the dispatcher finishing the batch in
    /// flight, the pruner between two batches, the reconciler abandoning
    /// its pass).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let notifier: Rc<dyn Notifier> = match &self.notify.callback {
            Some(callback) => Rc::new(HttpNotifier::new(callback, self.notify.timeout)),
            None => Rc::new(LogNotifier),
        };
        let outbox: Arc<dyn OutboxStore> = self.store.clone();
        let dispatcher = Dispatcher::new(
            outbox,
            notifier,
            DispatchSettings {
                retry: self.notify.retry,
                poll: self.notify.poll,
                // Longer than any delivery can take, so a live claim never expires.
                lease: LEASE.max(self.notify.timeout * 2),
                batch: BATCH,
            },
            self.notification_counter.clone(),
        );
        let pruning = match self.retention {
            Some(retention) => {
                let pruner = Pruner::new(
                    self.store.clone(),
                    retention,
                    self.prune_interval,
                    self.pruned_counter.clone(),
                );
                Some(actix_web::rt::spawn(pruner.run(stopped.clone())))
            }
            None => {
                tracing::info!("retention is off: nothing is pruned");
                None
            }
        };
        let reconciling = (!self.apis.is_empty()).then(|| {
            let store: Arc<dyn Store> = self.store.clone();
            let reconciler = self.apis.reconciler(
                store,
                self.store.clone(),
                Arc::new(SystemClock),
                self.amount_policy,
                self.reconcile_settings,
            );
            actix_web::rt::spawn(
                BackgroundReconciler::new(reconciler, self.reconcile_metrics.clone())
                    .run(stopped.clone()),
            )
        });
        let dispatching = actix_web::rt::spawn(dispatcher.run(stopped));
        let served = self.server.await;
        let _ = stop.send(true);
        if let Some(pruning) = pruning {
            // It stops at once (a batch in flight finishes on its own thread).
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), pruning).await;
        }
        if let Some(reconciling) = reconciling {
            // It stops at once when told; a pass in flight is abandoned.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), reconciling).await;
        }
        let grace = self.notify.timeout + std::time::Duration::from_secs(2);
        if tokio::time::timeout(grace, dispatching).await.is_err() {
            tracing::warn!(
                "the outbox dispatcher did not stop in time; its claims expire by lease"
            );
        }
        served?;
        tracing::info!("requests drained; closing the database pool");
        drop(self.store);
        Ok(())
    }
}
