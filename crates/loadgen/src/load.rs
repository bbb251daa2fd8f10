//! The three phases of a load run against a payhook server, over awc on
//! the current actix runtime: create the payments through the management
//! API, deliver the signed Stripe events, and check the result through the
//! API and, when given the database, in the outbox itself.
//!
//! Each phase runs at most `concurrency` requests at a time and visits
//! every item once. The measured delivery phase never retries, so a failure
//! shows in the counts; setup repeats a call answered 5xx a few times and
//! counts the repeats.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use awc::http::header::{AUTHORIZATION, CONTENT_TYPE};
use awc::Client;
use serde_json::{json, Value};

use crate::db::{literal, Database};
use crate::rng::SplitMix64;
use crate::stats::Tally;
use crate::stripe::{self, EventSpec, Signer};
use crate::target::LoopbackUrl;

/// The Stripe webhook endpoint.
pub const STRIPE_WEBHOOK_PATH: &str = "/api/v1/order-payments/webhooks/stripe/";

/// The answer to the first delivery of an event that confirms its payment.
pub const CONFIRMED: &str = "Payment confirmed";

/// The largest answer body read; payhook's are a few hundred bytes.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// How many more times a setup call is tried after a 5xx or no answer.
/// Setup is not what is measured; the delivery phase never retries.
const SETUP_RETRIES: u32 = 3;

/// How one run talks to the server.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// The server.
    pub url: LoopbackUrl,
    /// Bearer token of the management API.
    pub token: String,
    /// Stripe endpoint secret the server was given.
    pub stripe_secret: String,
    /// Distinct events, one per payment.
    pub events: usize,
    /// Extra deliveries of already-chosen events.
    pub duplicates: usize,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Seed of the duplicate choice and the shuffle.
    pub seed: u64,
    /// Makes this run's ids unique: `pi_load_<run>_<i>`, `evt_load_<run>_<i>`.
    pub run_id: String,
}

/// One payment created for the run, with the event that will confirm it.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// payhook's order id.
    pub order_id: i64,
    /// payhook's payment id.
    pub payment_id: i64,
    /// The amount, in cents.
    pub amount_minor: i64,
    /// The Stripe event id.
    pub event_id: String,
    /// The PaymentIntent id, stored as the payment's external id.
    pub payment_intent: String,
}

/// The payments of a run, and what it took to create them.
#[derive(Debug, Clone, Default)]
pub struct Setup {
    /// One per event, in event order.
    pub prepared: Vec<Prepared>,
    /// Setup calls repeated after a 5xx or a transport error.
    pub retried: usize,
    /// Why the first of them was repeated.
    pub first_retry_reason: Option<String>,
}

/// Repeated setup calls, counted across the workers of the phase.
#[derive(Debug, Default)]
struct Retries {
    count: Cell<usize>,
    first_reason: RefCell<Option<String>>,
}

/// What the delivery phase measured.
#[derive(Debug, Clone, Default)]
pub struct SendOutcome {
    /// From the first request to the last answer.
    pub elapsed: Duration,
    /// Deliveries made (events plus duplicates).
    pub deliveries: usize,
    /// One latency per delivery that got an answer, in no order.
    pub latencies: Vec<Duration>,
    /// Answers by status and message.
    pub tally: Tally,
    /// The first transport error, if any.
    pub first_error: Option<String>,
}

/// What the API check found.
#[derive(Debug, Clone, Default)]
pub struct ApiCheck {
    /// Payments read back as `completed`.
    pub completed: usize,
    /// Payments in another state or unreadable, with what was found.
    pub not_completed: Vec<(i64, String)>,
}

/// What the database check found.
#[derive(Debug, Clone, Default)]
pub struct DatabaseCheck {
    /// Outbox rows of this run's payments.
    pub outbox_rows: usize,
    /// This run's payments that have at least one outbox row.
    pub payments_with_rows: usize,
    /// Outbox rows in the whole table (other runs' included).
    pub outbox_total: usize,
    /// This run's outbox rows by kind.
    pub kinds: BTreeMap<String, usize>,
    /// Recorded events with this run's event ids.
    pub events_recorded: usize,
    /// Of those, the ones whose outcome is `confirmed`.
    pub events_confirmed: usize,
}

/// Runs `work` on every item with at most `concurrency` of them in flight,
/// on the current (single-threaded) actix runtime, and returns the results
/// in the items' order.
pub async fn for_each_concurrent<T, R, F, Fut>(items: Vec<T>, concurrency: usize, work: F) -> Vec<R>
where
    T: 'static,
    R: 'static,
    F: Fn(T) -> Fut + 'static,
    Fut: Future<Output = R> + 'static,
{
    let count = items.len();
    let queue = Rc::new(RefCell::new(items.into_iter().enumerate()));
    let work = Rc::new(work);
    let workers: Vec<_> = (0..concurrency.clamp(1, count.max(1)))
        .map(|_| {
            let (queue, work) = (queue.clone(), work.clone());
            actix_rt::spawn(async move {
                let mut done = Vec::new();
                loop {
                    // The borrow ends before the await: workers share the queue.
                    let next = queue.borrow_mut().next();
                    let Some((index, item)) = next else { break };
                    done.push((index, work(item).await));
                }
                done
            })
        })
        .collect();
    let mut results: Vec<Option<R>> = std::iter::repeat_with(|| None).take(count).collect();
    for worker in workers {
        let done = worker.await.expect("a load worker panicked");
        for (index, result) in done {
            results[index] = Some(result);
        }
    }
    results
        .into_iter()
        .map(|result| result.expect("every item was visited"))
        .collect()
}

/// An awc client sized for `concurrency` connections.
pub fn client(concurrency: usize, request_timeout: Duration) -> Client {
    Client::builder()
        .timeout(request_timeout)
        .connector(awc::Connector::new().limit(concurrency))
        .finish()
}

/// The amount of payment `index`, in cents: varied between 10.00 and
/// 1000.00 so that rows differ as real ones do.
pub fn amount_minor(index: usize) -> i64 {
    let cents = 1_000 + (index as u64 * 7_919) % 99_000;
    i64::try_from(cents).expect("below 100 000")
}

/// `12345` cents as `"123.45"`.
pub fn decimal(minor: i64) -> String {
    format!("{}.{:02}", minor / 100, minor % 100)
}

/// Waits until `GET /readyz` answers 200, polling every 100 ms, or fails
/// after `within`. `alive` is asked between polls whether to go on.
pub async fn wait_ready(
    client: &Client,
    url: &LoopbackUrl,
    within: Duration,
    mut alive: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        alive()?;
        if let Ok(response) = client.get(url.join("/readyz")).send().await {
            if response.status().as_u16() == 200 {
                return Ok(());
            }
        }
        if Instant::now() >= deadline {
            bail!("the server was not ready within {within:?}");
        }
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends `body` as JSON with the bearer token and returns the status and
/// the JSON answer.
async fn api_call(
    client: &Client,
    config: &LoadConfig,
    method: awc::http::Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<(u16, Value)> {
    let request = client
        .request(method, config.url.join(path))
        .insert_header((AUTHORIZATION, format!("Bearer {}", config.token)));
    let sent = match body {
        Some(body) => request.send_json(&body).await,
        None => request.send().await,
    };
    let mut response = sent.map_err(|e| anyhow!("{path}: {e}"))?;
    let status = response.status().as_u16();
    let bytes = response
        .body()
        .limit(MAX_ANSWER_BYTES)
        .await
        .map_err(|e| anyhow!("{path}: reading the answer: {e}"))?;
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok((status, value))
}

/// Reads `"id"` from an answer that must have `expected` status.
fn id_of(path: &str, expected: u16, (status, answer): (u16, Value)) -> anyhow::Result<i64> {
    if status != expected {
        bail!("{path} answered {status}: {answer}");
    }
    answer["id"]
        .as_i64()
        .ok_or_else(|| anyhow!("{path} answered without an id: {answer}"))
}

/// A management API call of the setup, repeated up to [`SETUP_RETRIES`]
/// times when it got a 5xx or no answer (each repetition counted).
async fn setup_call(
    client: &Client,
    config: &LoadConfig,
    retries: &Retries,
    path: &str,
    body: Value,
) -> anyhow::Result<(u16, Value)> {
    let mut attempt = 0;
    loop {
        let result = api_call(
            client,
            config,
            awc::http::Method::POST,
            path,
            Some(body.clone()),
        )
        .await;
        let problem = match &result {
            Ok((status, answer)) if *status >= 500 => format!("{path} answered {status}: {answer}"),
            Ok(_) => return result,
            Err(error) => format!("{error:#}"),
        };
        if attempt == SETUP_RETRIES {
            return result;
        }
        attempt += 1;
        retries.count.set(retries.count.get() + 1);
        retries.first_reason.borrow_mut().get_or_insert(problem);
        actix_rt::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
    }
}

/// Creates one order, its payment, and marks it pending at Stripe.
async fn prepare_one(
    client: &Client,
    config: &LoadConfig,
    retries: &Retries,
    index: usize,
) -> anyhow::Result<Prepared> {
    let amount_minor = amount_minor(index);
    let amount = decimal(amount_minor);
    let run = &config.run_id;
    let order = setup_call(
        client,
        config,
        retries,
        "/api/v1/orders/",
        json!({"client_id": format!("load-{run}-{index}"), "total": amount, "currency": "USD"}),
    )
    .await?;
    let order_id = id_of("POST /api/v1/orders/", 201, order)?;
    let payment = setup_call(
        client,
        config,
        retries,
        "/api/v1/order-payments/",
        json!({"order_id": order_id, "payment_method": "stripe",
               "amount": amount, "currency": "USD"}),
    )
    .await?;
    let payment_id = id_of("POST /api/v1/order-payments/", 201, payment)?;
    let payment_intent = format!("pi_load_{run}_{index}");
    let pending_path = format!("/api/v1/order-payments/{payment_id}/external-pending/");
    let (status, answer) = setup_call(
        client,
        config,
        retries,
        &pending_path,
        json!({"external_id": payment_intent}),
    )
    .await?;
    if status != 200 || answer["status"] != "pending_external" {
        bail!("POST {pending_path} answered {status}: {answer}");
    }
    Ok(Prepared {
        order_id,
        payment_id,
        amount_minor,
        event_id: format!("evt_load_{run}_{index}"),
        payment_intent,
    })
}

/// Phase 1: creates `config.events` orders and payments, each pending at
/// Stripe with its own PaymentIntent id. A call answered 5xx is repeated a
/// few times; one still refused after that, or answered 4xx, fails the phase
/// (after every item was tried), naming the first failure.
pub async fn prepare(client: &Client, config: &LoadConfig) -> anyhow::Result<Setup> {
    let shared = Rc::new((client.clone(), config.clone(), Retries::default()));
    let work = {
        let shared = shared.clone();
        move |index| {
            let shared = shared.clone();
            async move { prepare_one(&shared.0, &shared.1, &shared.2, index).await }
        }
    };
    let results = for_each_concurrent((0..config.events).collect(), config.concurrency, work).await;
    let prepared = results.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    let retried = shared.2.count.get();
    let first_retry_reason = shared.2.first_reason.borrow().clone();
    Ok(Setup {
        prepared,
        retried,
        first_retry_reason,
    })
}

/// Which event each delivery carries: every event once plus `duplicates`
/// uniformly chosen ones again, shuffled together.
pub fn schedule(events: usize, duplicates: usize, rng: &mut SplitMix64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..events).collect();
    if events > 0 {
        order.extend((0..duplicates).map(|_| rng.below(events)));
    }
    rng.shuffle(&mut order);
    order
}

/// One delivery's answer.
struct Delivered {
    status: u16,
    message: Option<String>,
    latency: Duration,
    error: Option<String>,
}

/// Phase 2: delivers every event, plus the duplicates, interleaved, each
/// freshly signed with the current time as Stripe does on every attempt.
pub async fn deliver(client: &Client, config: &LoadConfig, prepared: &[Prepared]) -> SendOutcome {
    let created = chrono::Utc::now().timestamp();
    let bodies: Rc<Vec<Vec<u8>>> = Rc::new(
        prepared
            .iter()
            .map(|payment| {
                stripe::payment_intent_succeeded(&EventSpec {
                    event_id: &payment.event_id,
                    payment_intent: &payment.payment_intent,
                    amount_minor: payment.amount_minor,
                    order_id: payment.order_id,
                    created,
                })
            })
            .collect(),
    );
    let mut rng = SplitMix64::new(config.seed);
    let order = schedule(prepared.len(), config.duplicates, &mut rng);
    let deliveries = order.len();
    let shared = Rc::new((
        client.clone(),
        Signer::new(&config.stripe_secret),
        config.url.join(STRIPE_WEBHOOK_PATH),
    ));
    let started = Instant::now();
    let answers = for_each_concurrent(order, config.concurrency, move |index| {
        let (shared, bodies) = (shared.clone(), bodies.clone());
        async move {
            let (client, signer, url) = &*shared;
            let body = &bodies[index];
            let signature = signer.header(chrono::Utc::now().timestamp(), body);
            let sent_at = Instant::now();
            let result = async {
                let mut response = client
                    .post(url.as_str())
                    .insert_header((CONTENT_TYPE, "application/json"))
                    .insert_header(("Stripe-Signature", signature))
                    .send_body(body.clone())
                    .await
                    .map_err(|e| e.to_string())?;
                let status = response.status().as_u16();
                let answer = response
                    .body()
                    .limit(MAX_ANSWER_BYTES)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<_, String>((status, answer))
            }
            .await;
            let latency = sent_at.elapsed();
            match result {
                Ok((status, answer)) => Delivered {
                    status,
                    message: serde_json::from_slice::<Value>(&answer)
                        .ok()
                        .and_then(|v| v["message"].as_str().map(str::to_owned)),
                    latency,
                    error: None,
                },
                Err(error) => Delivered {
                    status: 0,
                    message: None,
                    latency,
                    error: Some(error),
                },
            }
        }
    })
    .await;
    let elapsed = started.elapsed();
    let mut outcome = SendOutcome {
        elapsed,
        deliveries,
        latencies: Vec::with_capacity(deliveries),
        ..SendOutcome::default()
    };
    for answer in answers {
        outcome.tally.add(answer.status, answer.message.as_deref());
        match answer.error {
            None => outcome.latencies.push(answer.latency),
            Some(error) => {
                outcome.first_error.get_or_insert(error);
            }
        }
    }
    outcome
}

/// Phase 3a: reads every payment back through the API.
pub async fn check_api(client: &Client, config: &LoadConfig, prepared: &[Prepared]) -> ApiCheck {
    let shared = Rc::new((client.clone(), config.clone()));
    let ids: Vec<i64> = prepared.iter().map(|p| p.payment_id).collect();
    let answers = for_each_concurrent(ids, config.concurrency, move |id| {
        let shared = shared.clone();
        async move {
            let path = format!("/api/v1/order-payments/{id}/");
            let found =
                match api_call(&shared.0, &shared.1, awc::http::Method::GET, &path, None).await {
                    Ok((200, answer)) if answer["status"] == "completed" => None,
                    Ok((200, answer)) => Some(format!("status {}", answer["status"])),
                    Ok((status, answer)) => Some(format!("HTTP {status}: {answer}")),
                    Err(error) => Some(error.to_string()),
                };
            (id, found)
        }
    })
    .await;
    let mut check = ApiCheck::default();
    for (id, problem) in answers {
        match problem {
            None => check.completed += 1,
            Some(problem) => check.not_completed.push((id, problem)),
        }
    }
    check
}

/// An outbox row's payment and kind, as the database check reads them.
#[derive(diesel::QueryableByName)]
struct OutboxRef {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    payment_id: i64,
    #[diesel(sql_type = diesel::sql_types::Text)]
    kind: String,
}

/// A recorded event's outcome, as the database check reads it.
#[derive(diesel::QueryableByName)]
struct EventOutcome {
    #[diesel(sql_type = diesel::sql_types::Text)]
    outcome: String,
}

/// Phase 3b: counts this run's outbox rows and recorded events in the
/// database itself, with queries that select only this run's rows (the
/// outbox rows of its payment id range, the events with its event id
/// prefix), so other runs' rows and preloaded ones are neither read nor
/// counted. Runs on a blocking thread of the runtime.
pub async fn check_database(
    database_url: &str,
    config: &LoadConfig,
    prepared: &[Prepared],
) -> anyhow::Result<DatabaseCheck> {
    let url = database_url.to_owned();
    let ours: HashSet<i64> = prepared.iter().map(|p| p.payment_id).collect();
    let prefix = format!("evt_load_{}_", config.run_id);
    actix_rt::task::spawn_blocking(move || count_run(&url, &ours, &prefix))
        .await
        .context("the database check panicked")?
}

/// The counting of [`check_database`], on one direct connection.
fn count_run(url: &str, ours: &HashSet<i64>, prefix: &str) -> anyhow::Result<DatabaseCheck> {
    let mut db = Database::connect(url)
        .context("cannot open the database named by --verify-database-url")?;
    let outbox_total = db
        .count("SELECT COUNT(*) AS n FROM outbox")
        .context("cannot count the outbox")?;
    let mut check = DatabaseCheck {
        outbox_total: usize::try_from(outbox_total).context("outbox count")?,
        ..DatabaseCheck::default()
    };
    if let (Some(low), Some(high)) = (ours.iter().min(), ours.iter().max()) {
        let rows: Vec<OutboxRef> = db
            .load(&format!(
                "SELECT payment_id, kind FROM outbox WHERE payment_id BETWEEN {low} AND {high}"
            ))
            .context("cannot read the outbox")?;
        let mut with_rows = HashSet::new();
        for row in rows.iter().filter(|row| ours.contains(&row.payment_id)) {
            check.outbox_rows += 1;
            with_rows.insert(row.payment_id);
            *check.kinds.entry(row.kind.clone()).or_default() += 1;
        }
        check.payments_with_rows = with_rows.len();
    }
    let events: Vec<EventOutcome> = db
        .load(&format!(
            "SELECT outcome FROM webhook_events \
             WHERE gateway = 'stripe' AND substr(event_id, 1, {}) = {}",
            prefix.chars().count(),
            literal(prefix)
        ))
        .context("cannot read the events")?;
    check.events_recorded = events.len();
    check.events_confirmed = events.iter().filter(|e| e.outcome == "confirmed").count();
    Ok(check)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_sends_every_event_and_the_duplicates() {
        let mut rng = SplitMix64::new(1);
        let order = schedule(1000, 100, &mut rng);
        assert_eq!(order.len(), 1100);
        let mut seen = vec![0usize; 1000];
        for &index in &order {
            seen[index] += 1;
        }
        assert!(seen.iter().all(|&count| count >= 1));
        assert_eq!(seen.iter().sum::<usize>(), 1100);
        assert!(schedule(0, 10, &mut rng).is_empty());
    }

    #[test]
    fn amounts_are_exact_decimals_in_range() {
        assert_eq!(decimal(15_000), "150.00");
        assert_eq!(decimal(1_005), "10.05");
        for index in 0..10_000 {
            let minor = amount_minor(index);
            assert!((1_000..100_000).contains(&minor));
        }
    }

    #[test]
    fn concurrent_visits_keep_the_order() {
        let results = actix_rt::System::new().block_on(for_each_concurrent(
            (0..100).collect(),
            7,
            |n: u32| async move {
                actix_rt::time::sleep(Duration::from_micros(u64::from(100 - n))).await;
                n * 2
            },
        ));
        assert_eq!(results, (0..100).map(|n| n * 2).collect::<Vec<_>>());
    }
}
