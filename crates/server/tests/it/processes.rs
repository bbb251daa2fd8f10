//! The real `payhook` binary as separate processes: two servers on one
//! PostgreSQL database, `kill -9` in the middle of a stream and a restart,
//! and a database that goes away and comes back. These are the guarantees
//! of exactly-once confirmation that no in-process test can show.
//!
//! PostgreSQL cases need `PAYHOOK_TEST_POSTGRES_URL` (an admin URL: each test
//! creates its own database beside it); without it they say loudly that they
//! were skipped, and under `PAYHOOK_REQUIRE_POSTGRES` they fail.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use awc::http::StatusCode;
use diesel::connection::SimpleConnection;
use diesel::Connection;
use futures_util::StreamExt;
use payhook_store_diesel::{DieselStore, StoreOptions};
use serde_json::{json, Value};

use crate::helpers::{intent_succeeded, now, stripe_signature, API_TOKEN, STRIPE_SECRET};

const POSTGRES_ENV: &str = "PAYHOOK_TEST_POSTGRES_URL";

/// A fresh PostgreSQL database for one test, dropped at the end.
pub(crate) struct PostgresDb {
    admin_url: String,
    name: String,
    pub(crate) url: String,
}

impl PostgresDb {
    /// `None`, said loudly, when no PostgreSQL is configured.
    pub(crate) fn create(test: &str) -> Option<Self> {
        let Ok(admin_url) = std::env::var(POSTGRES_ENV) else {
            assert!(
                std::env::var_os("PAYHOOK_REQUIRE_POSTGRES").is_none(),
                "PAYHOOK_REQUIRE_POSTGRES is set but {POSTGRES_ENV} is not"
            );
            // Straight to the process's stderr: libtest captures eprintln!
            // of passing tests, and a skip must be seen.
            let _ = writeln!(
                std::io::stderr(),
                "PostgreSQL test {test} SKIPPED: {POSTGRES_ENV} is not set"
            );
            return None;
        };
        // The process id and a count within the process make the name
        // unique among concurrent tests (time and the test name's length
        // alone collide for two same-length names in one second); the time
        // keeps a re-run from meeting a database a killed run left behind.
        static CREATED: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "payhook_p_{}_{}_{}",
            std::process::id(),
            CREATED.fetch_add(1, Ordering::Relaxed),
            now().unsigned_abs()
        );
        let mut admin = diesel::PgConnection::establish(&admin_url).expect("connect to PostgreSQL");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create a test database");
        let base = admin_url
            .rsplit_once('/')
            .map(|(base, _)| base)
            .expect("a URL with a database name");
        let url = format!("{base}/{name}");
        Some(Self {
            admin_url,
            name,
            url,
        })
    }
}

impl Drop for PostgresDb {
    fn drop(&mut self) {
        if let Ok(mut admin) = diesel::PgConnection::establish(&self.admin_url) {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// A `payhook` server process; killed when dropped.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) address: String,
    /// Every line the server wrote to stdout (its log), for inspection.
    pub(crate) log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts the binary on `database_url` with a free port, and waits for
    /// its "payhook listening" log line.
    pub(crate) fn start(database_url: &str, extra: &[(&str, &str)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_payhook"));
        command
            .env_clear()
            .env("DATABASE_URL", database_url)
            .env("PAYHOOK_ADDR", "127.0.0.1:0")
            .env("PAYHOOK_API_TOKEN", API_TOKEN)
            .env("STRIPE_WEBHOOK_SECRET", STRIPE_SECRET)
            .env("PAYHOOK_LOG_FORMAT", "json")
            .env("RUST_LOG", "warn,payhook_server=info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (name, value) in extra {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("start the payhook binary");
        let stdout = child.stdout.take().expect("piped stdout");
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let kept = log.clone();
        // Keep draining the log after start-up so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut port_tx = Some(port_tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                kept.lock().expect("log lock").push(line.clone());
                if let Ok(entry) = serde_json::from_str::<Value>(&line) {
                    if entry["fields"]["message"] == "payhook listening" {
                        if let Some(tx) = port_tx.take() {
                            let _ = tx.send(entry["fields"]["port"].as_u64());
                        }
                    }
                }
            }
        });
        let port = port_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the server logs its port within a minute")
            .expect("a numeric port");
        Self {
            child,
            address: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    /// `kill -9`: no graceful shutdown, no flush.
    pub(crate) fn kill(&mut self) {
        self.child.kill().expect("SIGKILL the server");
        self.child.wait().expect("reap the server");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn client() -> awc::Client {
    awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish()
}

async fn api_post(client: &awc::Client, address: &str, path: &str, body: &Value) -> Value {
    let mut response = client
        .post(format!("{address}{path}"))
        .bearer_auth(API_TOKEN)
        .send_json(body)
        .await
        .expect("the management API answers");
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    response.json().limit(1 << 20).await.expect("a JSON answer")
}

/// Creates `count` pending 150.00 USD payments with external ids
/// `pi_<tag>_<i>`; returns their ids in order.
pub(crate) async fn pending_payments(address: &str, tag: &str, count: usize) -> Vec<i64> {
    let client = client();
    futures_util::stream::iter(0..count)
        .map(|i| {
            let client = client.clone();
            async move {
                let order = api_post(
                    &client,
                    address,
                    "/api/v1/orders/",
                    &json!({"client_id": format!("c-{i}"), "total": "150.00", "currency": "USD"}),
                )
                .await;
                let payment = api_post(
                    &client,
                    address,
                    "/api/v1/order-payments/",
                    &json!({"order_id": order["id"], "payment_method": "stripe", "amount": "150.00", "currency": "USD"}),
                )
                .await;
                let id = payment["id"].as_i64().expect("a payment id");
                api_post(
                    &client,
                    address,
                    &format!("/api/v1/order-payments/{id}/external-pending/"),
                    &json!({"external_id": format!("pi_{tag}_{i}")}),
                )
                .await;
                id
            }
        })
        .buffered(8)
        .collect()
        .await
}

/// The signed body of event `evt_<tag>_<i>` confirming `pi_<tag>_<i>`.
pub(crate) fn event_body(tag: &str, i: usize) -> Vec<u8> {
    serde_json::to_vec(&intent_succeeded(
        &format!("evt_{tag}_{i}"),
        &format!("pi_{tag}_{i}"),
    ))
    .expect("JSON")
}

/// Delivers a signed event; `None` when the connection failed.
pub(crate) async fn deliver(
    client: &awc::Client,
    address: &str,
    body: Vec<u8>,
) -> Option<StatusCode> {
    let signature = stripe_signature(&body, STRIPE_SECRET, now());
    let mut response = client
        .post(format!("{address}/api/v1/order-payments/webhooks/stripe/"))
        .insert_header(("Stripe-Signature", signature))
        .insert_header(("Content-Type", "application/json"))
        .send_body(body)
        .await
        .ok()?;
    // Read the whole answer: a 2xx only counts once its body arrived.
    response.body().await.ok()?;
    Some(response.status())
}

async fn payment_status(address: &str, id: i64) -> String {
    let mut response = client()
        .get(format!("{address}/api/v1/order-payments/{id}/"))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .expect("the API answers");
    let payment: Value = response.json().await.expect("a JSON payment");
    payment["status"].as_str().unwrap_or_default().to_owned()
}

/// What the database holds after a run: event ids with a final outcome,
/// and outbox rows per payment.
async fn database_state(database_url: &str) -> (HashSet<String>, HashMap<i64, usize>) {
    let store =
        DieselStore::open(database_url, &StoreOptions::default()).expect("open the database");
    let processed = store
        .events()
        .await
        .expect("read events")
        .into_iter()
        .filter(|e| e.outcome != "unmatched")
        .map(|e| e.event_id)
        .collect();
    let mut outbox = HashMap::new();
    for row in store.outbox().await.expect("read the outbox") {
        assert_eq!(row.kind, "order.paid");
        *outbox.entry(row.payment_id).or_insert(0) += 1;
    }
    (processed, outbox)
}

async fn assert_all_completed_once(address: &str, database_url: &str, payments: &[i64]) {
    for id in payments {
        assert_eq!(
            payment_status(address, *id).await,
            "completed",
            "payment {id}"
        );
    }
    let (_, outbox) = database_state(database_url).await;
    assert_eq!(outbox.len(), payments.len(), "one outbox row per payment");
    assert!(
        outbox.values().all(|rows| *rows == 1),
        "no payment notified twice"
    );
}

#[actix_rt::test]
async fn two_processes_on_one_postgres_confirm_each_payment_exactly_once() {
    let Some(db) = PostgresDb::create("two_processes") else {
        return;
    };
    // Both start at once: the migration lock lets one migrate, the other wait.
    let (a, b) = std::thread::scope(|scope| {
        let a = scope.spawn(|| Server::start(&db.url, &[]));
        let b = scope.spawn(|| Server::start(&db.url, &[]));
        (a.join().expect("start a"), b.join().expect("start b"))
    });
    const EVENTS: usize = 1000;
    let payments = pending_payments(&a.address, "two", EVENTS).await;

    // Every event twice, one copy to each process, in an interleaved order.
    let mut deliveries: Vec<(usize, &str)> = (0..EVENTS)
        .flat_map(|i| [(i, a.address.as_str()), (i, b.address.as_str())])
        .collect();
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    for i in (1..deliveries.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let j = usize::try_from(state % (i as u64 + 1)).expect("below the length");
        deliveries.swap(i, j);
    }
    let client = client();
    let answers: Vec<(usize, Option<StatusCode>)> = futures_util::stream::iter(deliveries)
        .map(|(i, address)| {
            let client = client.clone();
            async move { (i, deliver(&client, address, event_body("two", i)).await) }
        })
        .buffer_unordered(32)
        .collect()
        .await;

    assert!(
        answers
            .iter()
            .all(|(_, status)| *status == Some(StatusCode::OK)),
        "every delivery answered 200: {:?}",
        answers
            .iter()
            .filter(|(_, s)| *s != Some(StatusCode::OK))
            .take(5)
            .collect::<Vec<_>>()
    );
    let (processed, _) = database_state(&db.url).await;
    for (i, _) in &answers {
        assert!(
            processed.contains(&format!("evt_two_{i}")),
            "2xx for evt_two_{i} is stored"
        );
    }
    assert_eq!(processed.len(), EVENTS);
    assert_all_completed_once(&b.address, &db.url, &payments).await;
}

/// Streams events to a server, kills it with SIGKILL after `kill_after`
/// answers, restarts it, re-sends every event that did not get a 2xx, and
/// checks that nothing acknowledged was lost and nothing applied twice.
async fn kill_and_restart(database_url: &str, tag: &str) {
    const EVENTS: usize = 300;
    let mut server = Server::start(database_url, &[]);
    let payments = pending_payments(&server.address, tag, EVENTS).await;

    let answered = Arc::new(AtomicUsize::new(0));
    let client = client();
    let address = server.address.clone();
    let sending = {
        let answered = answered.clone();
        let tag = tag.to_owned();
        actix_rt::spawn(async move {
            futures_util::stream::iter(0..EVENTS)
                .map(|i| {
                    let client = client.clone();
                    let address = address.clone();
                    let answered = answered.clone();
                    let body = event_body(&tag, i);
                    async move {
                        let status = deliver(&client, &address, body).await;
                        answered.fetch_add(1, Ordering::SeqCst);
                        (i, status)
                    }
                })
                .buffer_unordered(8)
                .collect::<Vec<_>>()
                .await
        })
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while answered.load(Ordering::SeqCst) < EVENTS / 3 {
        assert!(Instant::now() < deadline, "the stream makes progress");
        actix_rt::time::sleep(Duration::from_millis(2)).await;
    }
    server.kill();
    let first = sending.await.expect("the sender finishes");
    let acknowledged: Vec<usize> = first
        .iter()
        .filter(|(_, status)| status.is_some_and(|s| s.is_success()))
        .map(|(i, _)| *i)
        .collect();
    assert!(
        !acknowledged.is_empty() && acknowledged.len() < EVENTS,
        "the kill landed mid-stream"
    );

    // Every acknowledged event survived the kill.
    let (processed, _) = database_state(database_url).await;
    for i in &acknowledged {
        assert!(
            processed.contains(&format!("evt_{tag}_{i}")),
            "acknowledged evt_{tag}_{i} is stored"
        );
    }

    let server = Server::start(database_url, &[]);
    let client = self::client();
    let acknowledged: HashSet<usize> = acknowledged.into_iter().collect();
    for i in (0..EVENTS).filter(|i| !acknowledged.contains(i)) {
        let status = deliver(&client, &server.address, event_body(tag, i)).await;
        assert_eq!(status, Some(StatusCode::OK), "re-sent evt_{tag}_{i}");
    }
    assert_all_completed_once(&server.address, database_url, &payments).await;
}

#[actix_rt::test]
async fn kill_9_mid_stream_on_sqlite_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite://{}", dir.path().join("payhook.db").display());
    kill_and_restart(&url, "ksqlite").await;
}

#[actix_rt::test]
async fn kill_9_mid_stream_on_postgres_loses_nothing_acknowledged() {
    let Some(db) = PostgresDb::create("kill_9") else {
        return;
    };
    kill_and_restart(&db.url, "kpg").await;
}

/// A TCP relay to PostgreSQL that a test can cut and restore, standing in
/// for a database host that goes away.
struct Relay {
    port: u16,
    up: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the relay");
        let port = listener.local_addr().expect("an address").port();
        let up = Arc::new(AtomicBool::new(true));
        let open = Arc::new(Mutex::new(Vec::new()));
        let (accept_up, accept_open) = (up.clone(), open.clone());
        std::thread::spawn(move || {
            for incoming in listener.incoming() {
                let Ok(client) = incoming else { continue };
                if !accept_up.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                let mut sockets = accept_open.lock().expect("relay lock");
                for socket in [&client, &server] {
                    if let Ok(clone) = socket.try_clone() {
                        sockets.push(clone);
                    }
                }
                drop(sockets);
                for (mut from, mut to) in [
                    (client.try_clone(), server.try_clone()),
                    (server.try_clone(), client.try_clone()),
                ]
                .into_iter()
                .filter_map(|(a, b)| Some((a.ok()?, b.ok()?)))
                {
                    std::thread::spawn(move || {
                        let mut buffer = [0u8; 16 * 1024];
                        while let Ok(n) = from.read(&mut buffer) {
                            if n == 0 || to.write_all(&buffer[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        Self { port, up, open }
    }

    /// Refuses new connections and breaks every open one.
    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for socket in self.open.lock().expect("relay lock").drain(..) {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

#[actix_rt::test]
async fn postgres_outage_answers_fast_writes_nothing_and_recovers() {
    let Some(db) = PostgresDb::create("outage") else {
        return;
    };
    let target = db
        .url
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .and_then(|(_, rest)| rest.split_once('/'))
        .map(|(host, _)| host.to_owned())
        .expect("host:port in the URL");
    let relay = Relay::start(target.clone());
    let relayed_url = db
        .url
        .replace(&target, &format!("127.0.0.1:{}", relay.port));
    let server = Server::start(&relayed_url, &[("PAYHOOK_DB_TIMEOUT_MS", "1000")]);
    let payments = pending_payments(&server.address, "out", 1).await;
    let client = client();

    relay.cut();
    let started = Instant::now();
    let status = deliver(&client, &server.address, event_body("out", 0)).await;
    let took = started.elapsed();
    assert!(
        matches!(
            status,
            Some(StatusCode::SERVICE_UNAVAILABLE | StatusCode::INTERNAL_SERVER_ERROR)
        ),
        "{status:?}"
    );
    assert!(
        took < Duration::from_secs(5),
        "answered within the pool timeout, took {took:?}"
    );
    let ready = client
        .get(format!("{}/readyz", server.address))
        .send()
        .await
        .expect("readyz answers")
        .status();
    assert_eq!(ready, StatusCode::SERVICE_UNAVAILABLE);
    // Nothing half-written: read the database directly, not through the relay.
    let (processed, outbox) = database_state(&db.url).await;
    assert!(
        processed.is_empty() && outbox.is_empty(),
        "nothing written during the outage"
    );

    relay.restore();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = deliver(&client, &server.address, event_body("out", 0)).await;
        if status == Some(StatusCode::OK) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "processing resumes, last answer {status:?}"
        );
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    }
    let ready = client
        .get(format!("{}/readyz", server.address))
        .send()
        .await
        .expect("readyz answers")
        .status();
    assert_eq!(ready, StatusCode::OK);
    assert_all_completed_once(&server.address, &db.url, &payments).await;
}
