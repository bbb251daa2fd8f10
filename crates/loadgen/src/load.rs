//! The three phases of a load run against a payhook server, over awc on
//! the current actix runtime: create the payments through the management
//! API, deliver the signed Stripe events, and check the result through the
//! API and, when given the database, in the database itself, each payment
//! against its [`PaymentPlan`].
//!
//! Each phase runs at most `concurrency` requests at a time and visits
//! every item once. The measured delivery phase never retries a failure,
//! so it shows in the counts; the one answer it sends again is a 409 for a
//! refund or dispute report re-delivered before its payment's success
//! (payhook keeps such an event and answers it so), counted apart. Setup
//! repeats a call answered 5xx a few times and counts the repeats. A soak
//! delivers the same way, a chunk of payments at a time, each request
//! started by its [`Pace`].

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use awc::http::header::{AUTHORIZATION, CONTENT_TYPE};
use awc::Client;
use serde_json::{json, Value};

use crate::db::{literal, Database};
use crate::mix::{Kind, Mix};
use crate::pace::Pace;
use crate::plan::{self, EventType, OutboxRule, PaymentPlan, StoredPayment};
use crate::rng::SplitMix64;
use crate::stats::Tally;
use crate::stripe::Signer;
use crate::target::LoopbackUrl;

/// The Stripe webhook endpoint.
pub const STRIPE_WEBHOOK_PATH: &str = "/api/v1/order-payments/webhooks/stripe/";

/// The answer to the first delivery of an event that confirms its payment.
pub const CONFIRMED: &str = "Payment confirmed";

/// The outcome payhook records for a refund report it applied.
pub const REFUND_RECORDED_OUTCOME: &str = "refund_recorded";

/// The outcome payhook records for a dispute report it applied.
pub const DISPUTE_RECORDED_OUTCOME: &str = "dispute_recorded";

/// The outcome payhook records for a dispute report that changed nothing:
/// the opening report of a dispute whose closing one came first (a
/// re-delivery overtook it).
pub const DISPUTE_UNCHANGED_OUTCOME: &str = "dispute_unchanged";

/// The `status` of payhook's answer to an event type it does not handle.
pub const IGNORED: &str = "ignored";

/// The largest answer body read; payhook's are a few hundred bytes.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// How many more times a setup call is tried after a 5xx or no answer.
/// Setup is not what is measured; the delivery phase never retries.
const SETUP_RETRIES: u32 = 3;

/// How many times a refund event answered 409 is sent again once its
/// payment's success was answered. Once should do (payhook completed the
/// payment before it answered); more would hide a server that keeps
/// refusing.
const EARLY_RETRIES: u32 = 2;

/// How one run talks to the server.
#[derive(Clone)]
pub struct LoadConfig {
    /// The server.
    pub url: LoopbackUrl,
    /// Bearer token of the management API.
    pub token: String,
    /// Stripe endpoint secret the server was given.
    pub stripe_secret: String,
    /// Payments, each confirmed by one event (and refunded by two more
    /// when the mix makes it a refund).
    pub events: usize,
    /// What kinds of payment the run is made of.
    pub mix: Mix,
    /// Extra deliveries of already-chosen events, of any type.
    pub duplicates: usize,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Seed of the kinds, the duplicate choice and the shuffle.
    pub seed: u64,
    /// Makes this run's ids unique: `pi_load_<run>_<i>`, `evt_load_<run>_<i>`.
    pub run_id: String,
}

impl std::fmt::Debug for LoadConfig {
    // The token and the endpoint secret stay out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadConfig")
            .field("url", &self.url)
            .field("token", &"[redacted]")
            .field("stripe_secret", &"[redacted]")
            .field("events", &self.events)
            .field("mix", &self.mix)
            .field("duplicates", &self.duplicates)
            .field("concurrency", &self.concurrency)
            .field("seed", &self.seed)
            .field("run_id", &self.run_id)
            .finish()
    }
}

/// One payment created for the run, with what the run will do to it.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// payhook's order id.
    pub order_id: i64,
    /// payhook's payment id.
    pub payment_id: i64,
    /// payhook's `TXN-...` of the payment, which a checkout session names.
    pub transaction_id: String,
    /// Its kind, amount, ids, events, refund and dispute.
    pub plan: PaymentPlan,
}

/// The distinct events the run sends for `prepared`, re-deliveries aside.
pub fn planned_events(prepared: &[Prepared]) -> usize {
    prepared.iter().map(|p| p.plan.events.len()).sum()
}

/// How many of `prepared` are of `kind`.
pub fn count_of(prepared: &[Prepared], kind: Kind) -> usize {
    prepared.iter().filter(|p| p.plan.kind == kind).count()
}

/// What a run's checks expect, summed over its payments: all that
/// [`failures`] needs of the plans, so a soak can add it up chunk by chunk
/// without keeping every plan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expected {
    /// Payments, each confirmed once.
    pub payments: usize,
    /// Outbox rows ([`PaymentPlan::expected_outbox`]).
    pub outbox_rows: usize,
    /// Events payhook records ([`PaymentPlan::stored_events`]).
    pub stored_events: usize,
    /// `refund` payments.
    pub refunds: usize,
    /// `dispute` payments.
    pub disputes: usize,
    /// `not_handled` payments.
    pub not_handled: usize,
    /// The refunds' amounts, in cents.
    pub refunded_minor: i64,
}

impl Expected {
    /// What `prepared` expect.
    pub fn of(prepared: &[Prepared]) -> Self {
        let mut expected = Self::default();
        for plan in prepared.iter().map(|p| &p.plan) {
            expected.payments += 1;
            expected.outbox_rows += plan.expected_outbox().len();
            expected.stored_events += plan.stored_events();
            expected.refunds += usize::from(plan.kind == Kind::Refund);
            expected.disputes += usize::from(plan.kind == Kind::Dispute);
            expected.not_handled += usize::from(plan.kind == Kind::NotHandled);
            expected.refunded_minor += plan.refunded_minor();
        }
        expected
    }

    /// Adds what `other` expects.
    pub fn add(&mut self, other: &Self) {
        self.payments += other.payments;
        self.outbox_rows += other.outbox_rows;
        self.stored_events += other.stored_events;
        self.refunds += other.refunds;
        self.disputes += other.disputes;
        self.not_handled += other.not_handled;
        self.refunded_minor += other.refunded_minor;
    }
}

/// Problems kept per check when checks are added up: enough to say what
/// went wrong, bounded however long a soak ran.
const KEPT_PROBLEMS: usize = 100;

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
    /// Requests made: events, duplicates, and the refunds sent again after
    /// an early 409.
    pub deliveries: usize,
    /// One latency per request that got an answer, in no order.
    pub latencies: Vec<Duration>,
    /// Final answers by status and message: an early 409 that was sent
    /// again is not one (its second answer is).
    pub tally: Tally,
    /// The same, by event type.
    pub by_type: BTreeMap<EventType, Tally>,
    /// Refund and dispute events answered 409 because they overtook their
    /// payment's success, and so sent again after it.
    pub early: usize,
    /// Final answers whose `status` was `ignored`, by event type.
    pub ignored: BTreeMap<EventType, usize>,
    /// The first transport error, if any.
    pub first_error: Option<String>,
}

impl SendOutcome {
    /// Adds `other`'s answers to these (not its latencies, which a soak
    /// counts by window instead).
    pub fn merge(&mut self, other: SendOutcome) {
        self.elapsed += other.elapsed;
        self.deliveries += other.deliveries;
        self.tally.merge(&other.tally);
        for (event_type, tally) in &other.by_type {
            self.by_type.entry(*event_type).or_default().merge(tally);
        }
        self.early += other.early;
        for (event_type, count) in other.ignored {
            *self.ignored.entry(event_type).or_default() += count;
        }
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// What the API check found.
#[derive(Debug, Clone, Default)]
pub struct ApiCheck {
    /// Payments that read back as their plan says.
    pub as_planned: usize,
    /// Payments by the status they read back with.
    pub statuses: BTreeMap<String, usize>,
    /// Payments that did not, or were unreadable, with what was found.
    pub problems: Vec<(i64, String)>,
    /// Problems found beyond those kept in `problems` (added-up checks
    /// keep a bounded number).
    pub more_problems: usize,
}

impl ApiCheck {
    /// Adds `other`'s findings to these.
    pub fn merge(&mut self, other: ApiCheck) {
        self.as_planned += other.as_planned;
        for (status, count) in other.statuses {
            *self.statuses.entry(status).or_default() += count;
        }
        self.more_problems += other.more_problems;
        keep_problems(&mut self.problems, &mut self.more_problems, other.problems);
    }

    /// Every problem found, kept or not.
    pub fn problem_count(&self) -> usize {
        self.problems.len() + self.more_problems
    }
}

/// Appends `more` to `kept` up to [`KEPT_PROBLEMS`], counting the rest.
fn keep_problems(kept: &mut Vec<(i64, String)>, beyond: &mut usize, more: Vec<(i64, String)>) {
    for problem in more {
        if kept.len() < KEPT_PROBLEMS {
            kept.push(problem);
        } else {
            *beyond += 1;
        }
    }
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
    /// Of those, how many of each (event type, outcome).
    pub outcomes: BTreeMap<(String, String), usize>,
    /// `payments.refunded_minor` summed over this run's payments, when the
    /// ledger was read.
    pub refunded_total: Option<i64>,
    /// Payments whose rows are as their plan says.
    pub as_planned: usize,
    /// Payments whose rows are not, with what was found.
    pub problems: Vec<(i64, String)>,
    /// Problems found beyond those kept in `problems`.
    pub more_problems: usize,
    /// Outbox rows the server says its retention deleted during the run
    /// (`payhook_pruned_total{what="outbox_rows"}`), when it deleted any:
    /// the payments' rows were then judged by
    /// [`OutboxRule::AtMostPlanned`], and the rows found plus these must
    /// make the planned total exactly.
    pub pruned_outbox: Option<usize>,
}

impl DatabaseCheck {
    /// Adds `other`'s findings to these; the table's total is `other`'s
    /// when it counted one (the later count).
    pub fn merge(&mut self, other: DatabaseCheck) {
        self.outbox_rows += other.outbox_rows;
        self.payments_with_rows += other.payments_with_rows;
        self.outbox_total = self.outbox_total.max(other.outbox_total);
        for (kind, count) in other.kinds {
            *self.kinds.entry(kind).or_default() += count;
        }
        self.events_recorded += other.events_recorded;
        self.events_confirmed += other.events_confirmed;
        for (key, count) in other.outcomes {
            *self.outcomes.entry(key).or_default() += count;
        }
        self.refunded_total = match (self.refunded_total, other.refunded_total) {
            (None, None) => None,
            (mine, theirs) => Some(mine.unwrap_or(0) + theirs.unwrap_or(0)),
        };
        self.as_planned += other.as_planned;
        self.more_problems += other.more_problems;
        keep_problems(&mut self.problems, &mut self.more_problems, other.problems);
    }

    /// Every problem found, kept or not.
    pub fn problem_count(&self) -> usize {
        self.problems.len() + self.more_problems
    }

    /// Recorded events of `event_type` with `outcome`.
    pub fn outcome_count(&self, event_type: EventType, outcome: &str) -> usize {
        self.outcomes
            .get(&(event_type.as_str().to_owned(), outcome.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    /// Recorded events of `event_type`, whatever their outcome.
    pub fn type_count(&self, event_type: EventType) -> usize {
        self.outcomes
            .iter()
            .filter(|((recorded, _), _)| recorded == event_type.as_str())
            .map(|(_, count)| count)
            .sum()
    }
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

/// Creates one order, its payment, and marks it pending at Stripe with
/// its external id (its PaymentIntent, or its Checkout Session).
async fn prepare_one(
    client: &Client,
    config: &LoadConfig,
    retries: &Retries,
    plan: PaymentPlan,
) -> anyhow::Result<Prepared> {
    let amount = decimal(plan.amount_minor);
    let run = &config.run_id;
    let index = plan.index;
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
    let transaction_id = payment.1["transaction_id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("POST /api/v1/order-payments/ answered without a transaction_id"))?;
    let payment_id = id_of("POST /api/v1/order-payments/", 201, payment)?;
    let pending_path = format!("/api/v1/order-payments/{payment_id}/external-pending/");
    let (status, answer) = setup_call(
        client,
        config,
        retries,
        &pending_path,
        json!({"external_id": plan.external_id}),
    )
    .await?;
    if status != 200 || answer["status"] != "pending_external" {
        bail!("POST {pending_path} answered {status}: {answer}");
    }
    Ok(Prepared {
        order_id,
        payment_id,
        transaction_id,
        plan,
    })
}

/// Phase 1: plans `config.events` payments as `config.mix` shares them,
/// and creates their orders and payments, each pending at Stripe with its
/// own PaymentIntent id. A call answered 5xx is repeated a few times; one
/// still refused after that, or answered 4xx, fails the phase (after every
/// item was tried), naming the first failure.
pub async fn prepare(client: &Client, config: &LoadConfig) -> anyhow::Result<Setup> {
    let plans = plan::plans(&config.mix, config.events, &config.run_id, config.seed);
    let shared = Rc::new((client.clone(), config.clone(), Retries::default()));
    let work = {
        let shared = shared.clone();
        move |plan| {
            let shared = shared.clone();
            async move { prepare_one(&shared.0, &shared.1, &shared.2, plan).await }
        }
    };
    let results = for_each_concurrent(plans, config.concurrency, work).await;
    let prepared = results.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    let retried = shared.2.count.get();
    let first_retry_reason = shared.2.first_reason.borrow().clone();
    Ok(Setup {
        prepared,
        retried,
        first_retry_reason,
    })
}

/// One item of the send phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Every event of this payment, in its plan's order, each sent when
    /// the one before was answered: the success, then its refund reports.
    Payment(usize),
    /// Event number `n` of the run (counting the payments' events in
    /// order) once more, on its own: a gateway's re-delivery.
    Again(usize),
}

/// The send phase's items: every payment once (with its `events[i]`
/// events), plus `duplicates` events chosen uniformly among all of them
/// again, shuffled together. With one event per payment this is the
/// schedule of the runs before `--mix`, draw for draw.
pub fn schedule(events: &[usize], duplicates: usize, rng: &mut SplitMix64) -> Vec<Delivery> {
    let total: usize = events.iter().sum();
    let mut order: Vec<Delivery> = (0..events.len()).map(Delivery::Payment).collect();
    if total > 0 {
        order.extend((0..duplicates).map(|_| Delivery::Again(rng.below(total))));
    }
    rng.shuffle(&mut order);
    order
}

/// One event of the run, built before the send phase.
struct Event {
    /// Its payment's place in `prepared`.
    payment: usize,
    event_type: EventType,
    body: Vec<u8>,
}

/// One request's answer.
struct Answered {
    event_type: EventType,
    status: u16,
    message: Option<String>,
    /// The answer's `status` was `ignored`.
    ignored: bool,
    latency: Duration,
    error: Option<String>,
    /// A 409 that is sent again after the payment's success.
    early: bool,
}

/// Where a payment's success stands in the send phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Success {
    /// No delivery of it has been answered yet.
    Unanswered,
    /// A delivery of it was answered 2xx: the payment has completed.
    Applied,
    /// Its payment's own delivery of it was not answered 2xx.
    Refused,
}

/// The send phase's shared state, on the one thread of the runtime.
struct Sender {
    client: Client,
    signer: Signer,
    /// The webhook URL of each server, taken in turn (`next_url`).
    urls: Vec<String>,
    next_url: Cell<usize>,
    events: Vec<Event>,
    /// The events of each payment, as indexes into `events`.
    chains: Vec<std::ops::Range<usize>>,
    success: Vec<Cell<Success>>,
    /// Per payment, refund events answered 409 before its success was
    /// answered, to send again when it is.
    waiting: Vec<RefCell<Vec<usize>>>,
    answers: RefCell<Vec<Answered>>,
    /// A soak's pace: when to start each request, and where to count it.
    pace: Option<Rc<Pace>>,
}

impl Sender {
    /// Sends event `event` once, freshly signed with the current time as
    /// Stripe does on every attempt.
    async fn post(&self, event: usize) -> Answered {
        let Event {
            event_type, body, ..
        } = &self.events[event];
        let _permit = match &self.pace {
            Some(pace) => Some(pace.start().await),
            None => None,
        };
        let signature = self.signer.header(chrono::Utc::now().timestamp(), body);
        let turn = self.next_url.get();
        self.next_url.set(turn.wrapping_add(1));
        let url = &self.urls[turn % self.urls.len()];
        let sent_at = Instant::now();
        let result = async {
            let mut response = self
                .client
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
            Ok((status, answer)) => {
                let answer = serde_json::from_slice::<Value>(&answer).unwrap_or(Value::Null);
                Answered {
                    event_type: *event_type,
                    status,
                    message: answer["message"].as_str().map(str::to_owned),
                    ignored: answer["status"] == IGNORED,
                    latency,
                    error: None,
                    early: false,
                }
            }
            Err(error) => Answered {
                event_type: *event_type,
                status: 0,
                message: None,
                ignored: false,
                latency,
                error: Some(error),
                early: false,
            },
        }
    }

    /// Keeps `answered`, and counts it into the soak's window.
    fn keep(&self, answered: Answered) {
        if let Some(pace) = &self.pace {
            let latency = answered.error.is_none().then_some(answered.latency);
            let error = !answered.early && !(200..300).contains(&answered.status);
            pace.record(latency, error);
        }
        self.answers.borrow_mut().push(answered);
    }

    /// Sends event `event` until it has a final answer, and returns that
    /// answer's status; `None` when the event was put aside. A refund or
    /// dispute event answered 409 is an early one, not a failure: put aside while its
    /// payment's success is unanswered, sent again at once (up to
    /// [`EARLY_RETRIES`] times) when the success has been applied. Under a
    /// refused success, the 409 is final.
    async fn send(&self, event: usize) -> Option<u16> {
        let (payment, event_type) = (self.events[event].payment, self.events[event].event_type);
        let mut retries = 0;
        loop {
            let mut answered = self.post(event).await;
            let status = answered.status;
            if status == 409 && event_type.needs_completion() && retries < EARLY_RETRIES {
                let success = self.success[payment].get();
                if success != Success::Refused {
                    answered.early = true;
                    self.keep(answered);
                    if success == Success::Unanswered {
                        self.waiting[payment].borrow_mut().push(event);
                        return None;
                    }
                    retries += 1;
                    continue;
                }
            }
            self.keep(answered);
            return Some(status);
        }
    }

    /// Delivers event `event`; when it is a success with a final answer,
    /// records where the payment stands and sends the refund and dispute
    /// events that waited for it.
    async fn deliver(&self, event: usize) {
        let status = self.send(event).await;
        let (payment, event_type) = (self.events[event].payment, self.events[event].event_type);
        let Some(status) = status else { return };
        if !event_type.is_success() {
            return;
        }
        let success = &self.success[payment];
        if (200..300).contains(&status) {
            success.set(Success::Applied);
        } else if success.get() == Success::Unanswered {
            success.set(Success::Refused);
        }
        self.release(payment).await;
    }

    /// Sends again the events of `payment` that waited for its success.
    async fn release(&self, payment: usize) {
        // Taken out first: the borrow must not live across an await.
        let waiting = std::mem::take(&mut *self.waiting[payment].borrow_mut());
        for event in waiting {
            self.send(event).await;
        }
    }

    /// Delivers one item of the schedule.
    async fn run(&self, item: Delivery) {
        match item {
            Delivery::Payment(payment) => {
                for event in self.chains[payment].clone() {
                    self.deliver(event).await;
                }
            }
            Delivery::Again(event) => self.deliver(event).await,
        }
    }
}

/// Phase 2: delivers every payment's events, in order within the payment,
/// plus the duplicates, interleaved, each freshly signed with the current
/// time as Stripe does on every attempt.
pub async fn deliver(client: &Client, config: &LoadConfig, prepared: &[Prepared]) -> SendOutcome {
    deliver_with(
        client,
        config,
        prepared,
        std::slice::from_ref(&config.url),
        None,
    )
    .await
}

/// [`deliver`], each request started by `pace` when one is given (a
/// soak's chunk) and counted into its window.
pub async fn deliver_paced(
    client: &Client,
    config: &LoadConfig,
    prepared: &[Prepared],
    pace: Option<Rc<Pace>>,
) -> SendOutcome {
    deliver_with(
        client,
        config,
        prepared,
        std::slice::from_ref(&config.url),
        pace,
    )
    .await
}

/// [`deliver`] over several servers sharing one database: each delivery
/// (re-deliveries included) goes to the next of `servers` in turn, so one
/// event's deliveries may reach different servers. `servers` must not be
/// empty.
pub async fn deliver_to(
    client: &Client,
    config: &LoadConfig,
    prepared: &[Prepared],
    servers: &[LoopbackUrl],
) -> SendOutcome {
    deliver_with(client, config, prepared, servers, None).await
}

/// What [`deliver`], [`deliver_paced`] and [`deliver_to`] share: the
/// servers to take turns over, and the pace, if any.
async fn deliver_with(
    client: &Client,
    config: &LoadConfig,
    prepared: &[Prepared],
    servers: &[LoopbackUrl],
    pace: Option<Rc<Pace>>,
) -> SendOutcome {
    assert!(!servers.is_empty(), "deliver_to needs a server");
    let created = chrono::Utc::now().timestamp();
    let mut events = Vec::with_capacity(planned_events(prepared));
    let mut chains = Vec::with_capacity(prepared.len());
    for (payment, item) in prepared.iter().enumerate() {
        let start = events.len();
        let bodies = item
            .plan
            .bodies(item.order_id, &item.transaction_id, created);
        for ((event_type, _), body) in item.plan.events.iter().zip(bodies) {
            events.push(Event {
                payment,
                event_type: *event_type,
                body,
            });
        }
        chains.push(start..events.len());
    }
    let mut rng = SplitMix64::new(config.seed);
    let lengths: Vec<usize> = chains.iter().map(ExactSizeIterator::len).collect();
    let order = schedule(&lengths, config.duplicates, &mut rng);
    let sender = Rc::new(Sender {
        client: client.clone(),
        signer: Signer::new(&config.stripe_secret),
        urls: servers
            .iter()
            .map(|server| server.join(STRIPE_WEBHOOK_PATH))
            .collect(),
        next_url: Cell::new(0),
        events,
        chains,
        success: (0..prepared.len())
            .map(|_| Cell::new(Success::Unanswered))
            .collect(),
        waiting: (0..prepared.len()).map(|_| RefCell::default()).collect(),
        answers: RefCell::default(),
        pace,
    });
    let started = Instant::now();
    let work = {
        let sender = sender.clone();
        move |item| {
            let sender = sender.clone();
            async move { sender.run(item).await }
        }
    };
    for_each_concurrent(order, config.concurrency, work).await;
    // Every payment's own task sent its success, so nothing should wait;
    // whatever does is sent once more and its answer counted as final.
    for payment in 0..prepared.len() {
        if sender.success[payment].get() == Success::Unanswered {
            sender.success[payment].set(Success::Refused);
        }
        sender.release(payment).await;
    }
    let elapsed = started.elapsed();
    let answers = std::mem::take(&mut *sender.answers.borrow_mut());
    let mut outcome = SendOutcome {
        elapsed,
        deliveries: answers.len(),
        latencies: Vec::with_capacity(answers.len()),
        ..SendOutcome::default()
    };
    for answer in answers {
        if answer.early {
            outcome.early += 1;
        } else {
            if answer.ignored {
                *outcome.ignored.entry(answer.event_type).or_default() += 1;
            }
            outcome.tally.add(answer.status, answer.message.as_deref());
            outcome
                .by_type
                .entry(answer.event_type)
                .or_default()
                .add(answer.status, answer.message.as_deref());
        }
        match answer.error {
            None => outcome.latencies.push(answer.latency),
            Some(error) => {
                outcome.first_error.get_or_insert(error);
            }
        }
    }
    outcome
}

/// Phase 3a: reads every payment back through the API and checks it
/// against its plan ([`PaymentPlan::check_api`]).
pub async fn check_api(client: &Client, config: &LoadConfig, prepared: &[Prepared]) -> ApiCheck {
    let shared = Rc::new((client.clone(), config.clone()));
    let items: Vec<(i64, PaymentPlan)> = prepared
        .iter()
        .map(|p| (p.payment_id, p.plan.clone()))
        .collect();
    let answers = for_each_concurrent(items, config.concurrency, move |(id, plan)| {
        let shared = shared.clone();
        async move {
            let path = format!("/api/v1/order-payments/{id}/");
            let found =
                match api_call(&shared.0, &shared.1, awc::http::Method::GET, &path, None).await {
                    Ok((200, answer)) => (
                        answer["status"].as_str().map(str::to_owned),
                        plan.check_api(&answer),
                    ),
                    Ok((status, answer)) => (None, Err(format!("HTTP {status}: {answer}"))),
                    Err(error) => (None, Err(error.to_string())),
                };
            (id, found)
        }
    })
    .await;
    let mut check = ApiCheck::default();
    for (id, (status, verdict)) in answers {
        if let Some(status) = status {
            *check.statuses.entry(status).or_default() += 1;
        }
        match verdict {
            Ok(()) => check.as_planned += 1,
            Err(problem) => check.problems.push((id, problem)),
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

/// A payment's status, its order's and its gateway reference, as the
/// database check reads them.
#[derive(diesel::QueryableByName)]
struct PaymentRow {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    payment_id: i64,
    #[diesel(sql_type = diesel::sql_types::Text)]
    status: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    order_status: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    gateway_reference: Option<String>,
}

/// A payment's refunded amount and dispute, as the database check reads
/// them.
#[derive(diesel::QueryableByName)]
struct LedgerRow {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    payment_id: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    refunded_minor: i64,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    dispute_id: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    dispute_status: Option<String>,
}

/// A row of `refunds`, as the database check reads it.
#[derive(diesel::QueryableByName)]
struct RefundRow {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    payment_id: i64,
    #[diesel(sql_type = diesel::sql_types::Text)]
    refund_id: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    amount_minor: i64,
    #[diesel(sql_type = diesel::sql_types::Text)]
    status: String,
}

/// A recorded event's type and outcome, as the database check reads them.
#[derive(diesel::QueryableByName)]
struct EventOutcome {
    #[diesel(sql_type = diesel::sql_types::Text)]
    event_type: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    outcome: String,
}

/// A payment's ledger as read: its id, `refunded_minor`, `dispute_id`
/// and `dispute_status`.
pub type LedgerRead = (i64, i64, Option<String>, Option<String>);

/// The rows of a run that the database check reads, before they are
/// judged ([`RunRows::judge`]): apart, so that the judging can be tested
/// on rows made up for it.
#[derive(Debug, Clone, Default)]
pub struct RunRows {
    /// Rows in the whole outbox table.
    pub outbox_total: usize,
    /// Outbox rows of the run's payment id range: payment id, kind.
    pub outbox: Vec<(i64, String)>,
    /// Payments of that range: id, status, order status, gateway reference.
    pub payments: Vec<(i64, String, String, Option<String>)>,
    /// When read (runs with refunds or disputes): id, `refunded_minor`,
    /// `dispute_id`, `dispute_status` of the same payments.
    pub ledger: Option<Vec<LedgerRead>>,
    /// `refunds` rows of the range: payment id, refund id, cents, status.
    pub refunds: Vec<(i64, String, i64, String)>,
    /// The type and outcome of every recorded event with the run's prefix.
    pub events: Vec<(String, String)>,
}

impl RunRows {
    /// Judges the rows against `plans` (by payment id): each of the plans'
    /// payments by [`PaymentPlan::check_stored`], rows of other payments
    /// of the range (another run's) left out.
    pub fn judge(self, plans: &HashMap<i64, PaymentPlan>) -> DatabaseCheck {
        self.judge_under(plans, OutboxRule::Exact)
    }

    /// [`Self::judge`], judging each payment's outbox rows by `rule`.
    pub fn judge_under(self, plans: &HashMap<i64, PaymentPlan>, rule: OutboxRule) -> DatabaseCheck {
        let mut check = DatabaseCheck {
            outbox_total: self.outbox_total,
            ..DatabaseCheck::default()
        };
        let mut stored: HashMap<i64, StoredPayment> = HashMap::new();
        for (payment_id, kind) in self.outbox {
            if !plans.contains_key(&payment_id) {
                continue;
            }
            check.outbox_rows += 1;
            *check.kinds.entry(kind.clone()).or_default() += 1;
            stored.entry(payment_id).or_default().outbox.push(kind);
        }
        check.payments_with_rows = stored.len();
        for (payment_id, status, order_status, gateway_reference) in self.payments {
            let payment = stored.entry(payment_id).or_default();
            payment.status = status;
            payment.order_status = order_status;
            payment.gateway_reference = gateway_reference;
        }
        if let Some(ledger) = self.ledger {
            let mut total = 0;
            for (payment_id, refunded_minor, dispute_id, dispute_status) in ledger {
                if !plans.contains_key(&payment_id) {
                    continue;
                }
                total += refunded_minor;
                let payment = stored.entry(payment_id).or_default();
                payment.refunded_minor = Some(refunded_minor);
                payment.dispute = match (dispute_id, dispute_status) {
                    (None, None) => None,
                    (id, status) => Some((id.unwrap_or_default(), status.unwrap_or_default())),
                };
            }
            check.refunded_total = Some(total);
        }
        for (payment_id, refund_id, amount_minor, status) in self.refunds {
            stored
                .entry(payment_id)
                .or_default()
                .refunds
                .push((refund_id, amount_minor, status));
        }
        let mut ids: Vec<&i64> = plans.keys().collect();
        ids.sort_unstable();
        let mut problems = Vec::new();
        for id in ids {
            let found = stored.remove(id).unwrap_or_default();
            match plans[id].check_stored_under(&found, rule) {
                Ok(()) => check.as_planned += 1,
                Err(problem) => problems.push((*id, problem)),
            }
        }
        keep_problems(&mut check.problems, &mut check.more_problems, problems);
        check.events_recorded = self.events.len();
        check.events_confirmed = self
            .events
            .iter()
            .filter(|(_, outcome)| outcome == "confirmed")
            .count();
        for (event_type, outcome) in self.events {
            *check.outcomes.entry((event_type, outcome)).or_default() += 1;
        }
        check
    }
}

/// Phase 3b: reads this run's rows in the database itself and checks each
/// payment's against its plan ([`PaymentPlan::check_stored`]): statuses,
/// gateway reference, outbox rows, and, in a run with refunds or disputes,
/// `payments.refunded_minor`, the dispute and the `refunds` rows (so a
/// run without them still works against a database from before them). Its
/// queries select only this run's rows (its payment id range, the events
/// with its event id prefix), so other runs' rows and preloaded ones are
/// neither read nor counted. Runs on a blocking thread of the runtime.
pub async fn check_database(
    database_url: &str,
    config: &LoadConfig,
    prepared: &[Prepared],
) -> anyhow::Result<DatabaseCheck> {
    let url = database_url.to_owned();
    let plans: HashMap<i64, PaymentPlan> = prepared
        .iter()
        .map(|p| (p.payment_id, p.plan.clone()))
        .collect();
    let prefix = format!("evt_load_{}_", config.run_id);
    let with_ledger = config.mix.share(Kind::Refund) > 0 || config.mix.share(Kind::Dispute) > 0;
    let (low, high) = (
        prepared.iter().map(|p| p.payment_id).min(),
        prepared.iter().map(|p| p.payment_id).max(),
    );
    actix_rt::task::spawn_blocking(move || {
        let mut db = Database::connect(&url)
            .context("cannot open the database named by --verify-database-url")?;
        let reading = Reading {
            range: low.zip(high),
            ledger: with_ledger,
            events_prefix: Some(prefix),
        };
        Ok(read_run(&mut db, &reading)?.judge(&plans))
    })
    .await
    .context("the database check panicked")?
}

/// What [`read_run`] reads.
#[derive(Debug, Clone, Default)]
pub struct Reading {
    /// The rows of the payments with ids in this range, if any.
    pub range: Option<(i64, i64)>,
    /// Their refunded amounts, disputes and `refunds` rows too (a
    /// database migrated for refunds and disputes).
    pub ledger: bool,
    /// The events whose id starts with this, and the outbox's total, if
    /// given: a scan of the events table, done once per check.
    pub events_prefix: Option<String>,
}

/// The reading of [`check_database`] (and of a soak's checks), on one
/// direct connection: what `reading` names.
pub fn read_run(db: &mut Database, reading: &Reading) -> anyhow::Result<RunRows> {
    let mut rows = RunRows::default();
    if reading.events_prefix.is_some() {
        let outbox_total = db
            .count("SELECT COUNT(*) AS n FROM outbox")
            .context("cannot count the outbox")?;
        rows.outbox_total = usize::try_from(outbox_total).context("outbox count")?;
    }
    if let Some((low, high)) = reading.range {
        let outbox: Vec<OutboxRef> = db
            .load(&format!(
                "SELECT payment_id, kind FROM outbox WHERE payment_id BETWEEN {low} AND {high}"
            ))
            .context("cannot read the outbox")?;
        rows.outbox = outbox.into_iter().map(|r| (r.payment_id, r.kind)).collect();
        let payments: Vec<PaymentRow> = db
            .load(&format!(
                "SELECT p.id AS payment_id, p.status, o.status AS order_status, \
                 p.gateway_reference \
                 FROM payments p JOIN orders o ON o.id = p.order_id \
                 WHERE p.id BETWEEN {low} AND {high}"
            ))
            .context("cannot read the payments")?;
        rows.payments = payments
            .into_iter()
            .map(|r| (r.payment_id, r.status, r.order_status, r.gateway_reference))
            .collect();
        if reading.ledger {
            let ledger: Vec<LedgerRow> = db
                .load(&format!(
                    "SELECT id AS payment_id, refunded_minor, dispute_id, dispute_status \
                     FROM payments WHERE id BETWEEN {low} AND {high}"
                ))
                .context("cannot read payments.refunded_minor and the disputes")?;
            rows.ledger = Some(
                ledger
                    .into_iter()
                    .map(|r| {
                        (
                            r.payment_id,
                            r.refunded_minor,
                            r.dispute_id,
                            r.dispute_status,
                        )
                    })
                    .collect(),
            );
            let refunds: Vec<RefundRow> = db
                .load(&format!(
                    "SELECT payment_id, refund_id, amount_minor, status FROM refunds \
                     WHERE payment_id BETWEEN {low} AND {high}"
                ))
                .context("cannot read the refunds")?;
            rows.refunds = refunds
                .into_iter()
                .map(|r| (r.payment_id, r.refund_id, r.amount_minor, r.status))
                .collect();
        }
    }
    if let Some(prefix) = &reading.events_prefix {
        let events: Vec<EventOutcome> = db
            .load(&format!(
                "SELECT event_type, outcome FROM webhook_events \
                 WHERE gateway = 'stripe' AND substr(event_id, 1, {}) = {}",
                prefix.chars().count(),
                literal(prefix)
            ))
            .context("cannot read the events")?;
        rows.events = events
            .into_iter()
            .map(|e| (e.event_type, e.outcome))
            .collect();
    }
    Ok(rows)
}

/// The checks of a run, each failed one as a sentence saying what was
/// expected and what was found; empty when the run passed. `database` is
/// the database check, when the run had a database to read.
///
/// Exactly once, by kind: every payment confirmed by exactly one answer
/// and one recorded event; every one of its events of a handled type
/// recorded once (a refund report as `refund_recorded`, a dispute's
/// closing report as `dispute_recorded`); every event of a type payhook
/// does not handle answered 200 `ignored` and none stored; each payment's
/// outbox rows, statuses, gateway reference, refunded amount and dispute
/// as its plan says (no notification twice, none missing), through the
/// API and in the database; the refunded amounts adding up to the sums
/// sent.
pub fn failures(
    expected: &Expected,
    sent: &SendOutcome,
    api: &ApiCheck,
    database: Option<&DatabaseCheck>,
) -> Vec<String> {
    let mut failed = Vec::new();
    let payments = expected.payments;
    if sent.tally.failures() > 0 {
        failed.push(format!(
            "{} deliveries were not answered 2xx ({})",
            sent.tally.failures(),
            sent.tally.statuses_line()
        ));
    }
    let confirmed = sent.tally.message_count(CONFIRMED);
    if confirmed != payments {
        failed.push(format!(
            "{confirmed} answers said {CONFIRMED:?}, expected exactly {payments}"
        ));
    }
    let not_handled = expected.not_handled;
    let answered_customer = sent
        .by_type
        .get(&EventType::CustomerCreated)
        .map_or(0, |tally| tally.statuses.values().sum());
    let ignored_customer = sent
        .ignored
        .get(&EventType::CustomerCreated)
        .copied()
        .unwrap_or(0);
    let ignored_total: usize = sent.ignored.values().sum();
    if answered_customer < not_handled
        || ignored_customer != answered_customer
        || ignored_total != ignored_customer
    {
        failed.push(format!(
            "expected every customer.created answered 200 {IGNORED:?} (at least {not_handled}) \
             and nothing else ignored, found {answered_customer} answered, {ignored_customer} \
             of them ignored, {ignored_total} ignored in all"
        ));
    }
    for (id, problem) in api.problems.iter().take(5) {
        failed.push(format!("API: payment {id}: {problem}"));
    }
    if api.problem_count() > 5 {
        failed.push(format!(
            "API: {} more payments not as planned",
            api.problem_count() - 5
        ));
    }
    let Some(db) = database else {
        return failed;
    };
    let rows = expected.outbox_rows;
    if let Some(pruned) = db.pruned_outbox {
        if db.outbox_rows + pruned != rows || db.payments_with_rows > payments {
            failed.push(format!(
                "expected {rows} outbox rows over {payments} payments, of which the server \
                 pruned {pruned} after their delivery, so {} left; found {} over {}",
                rows.saturating_sub(pruned),
                db.outbox_rows,
                db.payments_with_rows
            ));
        }
    } else if db.outbox_rows != rows || db.payments_with_rows != payments {
        failed.push(format!(
            "expected exactly {rows} outbox rows over {payments} payments (one order.paid \
             each, one payment.refunded per refund, one order.refunded per refund in full, \
             one payment.disputed and one payment.dispute_closed per dispute), found {} over {}",
            db.outbox_rows, db.payments_with_rows
        ));
    }
    let events = expected.stored_events;
    if db.events_recorded != events || db.events_confirmed != payments {
        failed.push(format!(
            "expected {events} events recorded once each and {payments} of them confirmed, \
             found {} recorded and {} confirmed",
            db.events_recorded, db.events_confirmed
        ));
    }
    let refunds = expected.refunds;
    let refund_events: usize = [EventType::RefundCreated, EventType::ChargeRefunded]
        .into_iter()
        .map(|event_type| db.outcome_count(event_type, REFUND_RECORDED_OUTCOME))
        .sum();
    if refund_events != 2 * refunds {
        failed.push(format!(
            "expected the {} refund events recorded as {REFUND_RECORDED_OUTCOME}, found {refund_events}",
            2 * refunds
        ));
    }
    let disputes = expected.disputes;
    let closed = db.outcome_count(EventType::ChargeDisputeClosed, DISPUTE_RECORDED_OUTCOME);
    let opened = db.outcome_count(EventType::ChargeDisputeCreated, DISPUTE_RECORDED_OUTCOME)
        + db.outcome_count(EventType::ChargeDisputeCreated, DISPUTE_UNCHANGED_OUTCOME);
    if closed != disputes || opened != disputes {
        failed.push(format!(
            "expected the {disputes} charge.dispute.closed recorded as \
             {DISPUTE_RECORDED_OUTCOME} and the {disputes} charge.dispute.created as \
             {DISPUTE_RECORDED_OUTCOME} (or {DISPUTE_UNCHANGED_OUTCOME} after a closing \
             report that overtook it), found {closed} and {opened}"
        ));
    }
    let stored_customers = db.type_count(EventType::CustomerCreated);
    if stored_customers != 0 {
        failed.push(format!(
            "expected no customer.created stored (payhook does not handle it), found \
             {stored_customers}"
        ));
    }
    if let Some(total) = db.refunded_total {
        let sent_total = expected.refunded_minor;
        if total != sent_total {
            failed.push(format!(
                "refunded amounts add up to {}, expected the {} refunded",
                decimal(total),
                decimal(sent_total)
            ));
        }
    }
    for (id, problem) in db.problems.iter().take(5) {
        failed.push(format!("database: payment {id}: {problem}"));
    }
    if db.problem_count() > 5 {
        failed.push(format!(
            "database: {} more payments not as planned",
            db.problem_count() - 5
        ));
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_sends_every_payment_and_the_duplicates() {
        let mut rng = SplitMix64::new(1);
        let order = schedule(&[1; 1000], 100, &mut rng);
        assert_eq!(order.len(), 1100);
        let mut seen = vec![0usize; 1000];
        for item in &order {
            match *item {
                Delivery::Payment(index) | Delivery::Again(index) => seen[index] += 1,
            }
        }
        assert!(seen.iter().all(|&count| count >= 1));
        assert_eq!(seen.iter().sum::<usize>(), 1100);
        assert!(schedule(&[], 10, &mut rng).is_empty());
    }

    #[test]
    fn one_event_per_payment_schedules_as_before_the_mix() {
        // The schedule of the runs before --mix, for the same seed.
        let mut before = SplitMix64::new(99);
        let mut old: Vec<usize> = (0..500).collect();
        old.extend((0..50).map(|_| before.below(500)));
        before.shuffle(&mut old);
        let new = schedule(&[1; 500], 50, &mut SplitMix64::new(99));
        let again: Vec<usize> = new
            .iter()
            .map(|item| match *item {
                Delivery::Payment(index) | Delivery::Again(index) => index,
            })
            .collect();
        assert_eq!(again, old);
    }

    #[test]
    fn re_deliveries_choose_among_every_event() {
        // Two payments of three events and one of one: seven events.
        let order = schedule(&[3, 1, 3], 7_000, &mut SplitMix64::new(5));
        let mut payments = vec![0usize; 3];
        let mut again = vec![0usize; 7];
        for item in order {
            match item {
                Delivery::Payment(payment) => payments[payment] += 1,
                Delivery::Again(event) => again[event] += 1,
            }
        }
        assert_eq!(payments, [1, 1, 1]);
        assert_eq!(again.iter().sum::<usize>(), 7_000);
        assert!(
            again.iter().all(|&count| (800..1_200).contains(&count)),
            "{again:?}"
        );
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

    /// A run of one payment of each kind, as it should end: its plans,
    /// the answers, and the rows the database should hold.
    fn synthetic() -> (Vec<Prepared>, SendOutcome, ApiCheck, RunRows) {
        let mix: Mix = "succeeded=20,checkout=20,refund=20,dispute=20,not_handled=20"
            .parse()
            .unwrap();
        let prepared: Vec<Prepared> = plan::plans(&mix, 5, "syn", 1)
            .into_iter()
            .enumerate()
            .map(|(i, plan)| Prepared {
                order_id: 100 + i as i64,
                payment_id: 200 + i as i64,
                transaction_id: format!("TXN-{i}"),
                plan,
            })
            .collect();
        let mut sent = SendOutcome::default();
        let mut rows = RunRows::default();
        for p in &prepared {
            for kind in p.plan.expected_outbox() {
                rows.outbox.push((p.payment_id, kind.to_owned()));
            }
            rows.payments.push((
                p.payment_id,
                p.plan.expected_status().to_owned(),
                p.plan.expected_order_status().to_owned(),
                Some(p.plan.payment_intent.clone()),
            ));
            let dispute = p.plan.dispute.as_ref();
            rows.ledger.get_or_insert_with(Vec::new).push((
                p.payment_id,
                p.plan.refunded_minor(),
                dispute.map(|d| d.dispute_id.clone()),
                dispute.map(|d| d.final_status().to_owned()),
            ));
            if let Some(refund) = &p.plan.refund {
                rows.refunds.push((
                    p.payment_id,
                    refund.refund_id.clone(),
                    refund.amount_minor,
                    "succeeded".into(),
                ));
            }
            for (event_type, _) in &p.plan.events {
                let (message, outcome) = match event_type {
                    t if t.is_success() => (CONFIRMED, "confirmed"),
                    EventType::RefundCreated | EventType::ChargeRefunded => {
                        ("Refund recorded", REFUND_RECORDED_OUTCOME)
                    }
                    EventType::ChargeDisputeCreated | EventType::ChargeDisputeClosed => {
                        ("Dispute recorded", DISPUTE_RECORDED_OUTCOME)
                    }
                    _ => ("Event type customer.created is not handled", ""),
                };
                sent.tally.add(200, Some(message));
                sent.by_type
                    .entry(*event_type)
                    .or_default()
                    .add(200, Some(message));
                if event_type.is_stored() {
                    rows.events
                        .push((event_type.as_str().to_owned(), outcome.to_owned()));
                } else {
                    *sent.ignored.entry(*event_type).or_default() += 1;
                }
            }
        }
        let api = ApiCheck {
            as_planned: prepared.len(),
            ..ApiCheck::default()
        };
        (prepared, sent, api, rows)
    }

    fn judged(prepared: &[Prepared], rows: RunRows) -> DatabaseCheck {
        let plans = prepared
            .iter()
            .map(|p| (p.payment_id, p.plan.clone()))
            .collect();
        rows.judge(&plans)
    }

    #[test]
    fn the_checks_pass_a_run_as_planned() {
        let (prepared, sent, api, rows) = synthetic();
        let expected = Expected::of(&prepared);
        assert_eq!(expected.payments, 5);
        assert_eq!(expected.disputes, 1);
        // order.paid x5, payment.refunded (+ order.refunded: the first refund
        // is in full), payment.disputed, payment.dispute_closed.
        assert_eq!(expected.outbox_rows, 9);
        assert_eq!(expected.stored_events, 1 + 1 + 3 + 3 + 1);
        let db = judged(&prepared, rows);
        assert_eq!(db.as_planned, 5, "{:?}", db.problems);
        assert_eq!(
            failures(&expected, &sent, &api, Some(&db)),
            Vec::<String>::new()
        );
    }

    #[test]
    fn the_checks_fail_a_notification_twice_or_missing() {
        let (prepared, sent, api, rows) = synthetic();
        let expected = Expected::of(&prepared);
        let disputed = prepared
            .iter()
            .find(|p| p.plan.kind == Kind::Dispute)
            .unwrap()
            .payment_id;
        for (spoil, says) in [
            ("payment.disputed twice", "outbox rows"),
            ("payment.dispute_closed missing", "outbox rows"),
            ("order.paid twice", "outbox rows"),
            ("refund counted twice", "refunded amounts add up"),
            ("customer.created stored", "customer.created stored"),
            ("dispute never closed", "dispute"),
        ] {
            let mut rows = rows.clone();
            match spoil {
                "payment.disputed twice" => {
                    rows.outbox.push((disputed, "payment.disputed".into()));
                }
                "payment.dispute_closed missing" => rows
                    .outbox
                    .retain(|(id, kind)| !(*id == disputed && kind == "payment.dispute_closed")),
                "order.paid twice" => rows.outbox.push((200, "order.paid".into())),
                "refund counted twice" => {
                    for row in rows.ledger.as_mut().unwrap() {
                        row.1 *= 2;
                    }
                }
                "customer.created stored" => rows
                    .events
                    .push(("customer.created".into(), "ignored".into())),
                _ => {
                    for row in rows.ledger.as_mut().unwrap() {
                        if row.0 == disputed {
                            row.3 = Some("open".into());
                        }
                    }
                    rows.events.retain(|(t, _)| t != "charge.dispute.closed");
                }
            }
            let db = judged(&prepared, rows);
            let failed = failures(&expected, &sent, &api, Some(&db));
            assert!(
                failed.iter().any(|f| f.contains(says)),
                "{spoil}: {failed:#?}"
            );
        }
    }

    #[test]
    fn pruned_notifications_are_accounted_for_by_the_servers_count() {
        let (prepared, sent, api, rows) = synthetic();
        let expected = Expected::of(&prepared);
        let plans = prepared
            .iter()
            .map(|p| (p.payment_id, p.plan.clone()))
            .collect();
        let mut pruned_rows = rows.clone();
        let before = pruned_rows.outbox.len();
        pruned_rows.outbox.retain(|(_, kind)| kind != "order.paid");
        let pruned = before - pruned_rows.outbox.len();
        assert_eq!(pruned, 5);

        let judge = |rows: RunRows, server_says: Option<usize>| {
            let mut db = rows.judge_under(&plans, OutboxRule::AtMostPlanned);
            db.pruned_outbox = server_says;
            failures(&expected, &sent, &api, Some(&db))
        };
        assert_eq!(
            judge(pruned_rows.clone(), Some(pruned)),
            Vec::<String>::new()
        );
        // The server pruned fewer than are missing: one was never written.
        let failed = judge(pruned_rows.clone(), Some(pruned - 1));
        assert!(failed.iter().any(|f| f.contains("pruned 4")), "{failed:#?}");
        // A notification twice is seen even where others were pruned.
        let mut twice = pruned_rows.clone();
        let disputed = prepared
            .iter()
            .find(|p| p.plan.kind == Kind::Dispute)
            .unwrap()
            .payment_id;
        twice.outbox.push((disputed, "payment.disputed".into()));
        let failed = judge(twice, Some(pruned));
        assert!(
            failed.iter().any(|f| f.contains("outbox rows")),
            "{failed:#?}"
        );
        // Without the server's count, missing rows fail as before.
        let failed = judge(pruned_rows, None);
        assert!(
            failed.iter().any(|f| f.contains("outbox rows")),
            "{failed:#?}"
        );
    }

    #[test]
    fn the_checks_fail_an_ignored_event_answered_otherwise() {
        let (prepared, mut sent, api, rows) = synthetic();
        sent.ignored.clear();
        let db = judged(&prepared, rows.clone());
        let failed = failures(&Expected::of(&prepared), &sent, &api, Some(&db));
        assert!(failed.iter().any(|f| f.contains("ignored")), "{failed:#?}");
        // And a confirmation missing is seen without the database.
        let (prepared, mut sent, api, _) = synthetic();
        sent.tally.messages.insert(CONFIRMED.into(), 4);
        let failed = failures(&Expected::of(&prepared), &sent, &api, None);
        assert!(
            failed.iter().any(|f| f.contains("expected exactly 5")),
            "{failed:#?}"
        );
    }

    #[test]
    fn added_up_checks_keep_a_bounded_number_of_problems() {
        let mut api = ApiCheck::default();
        for round in 0..3 {
            api.merge(ApiCheck {
                as_planned: 1,
                problems: (0..60).map(|i| (round * 100 + i, "bad".into())).collect(),
                ..ApiCheck::default()
            });
        }
        assert_eq!(api.as_planned, 3);
        assert_eq!(api.problems.len(), KEPT_PROBLEMS);
        assert_eq!(api.problem_count(), 180);
        let mut expected = Expected::default();
        let (prepared, ..) = synthetic();
        expected.add(&Expected::of(&prepared));
        expected.add(&Expected::of(&prepared));
        assert_eq!(expected.payments, 10);
    }
}
