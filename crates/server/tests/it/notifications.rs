//! Delivery of the outbox to the shop, against a real HTTP receiver on
//! 127.0.0.1 that verifies every Standard Webhooks signature itself (ring
//! HMAC and base64, not the server's code) and records what it received:
//! delivery after a confirmation, retries after 500s, dead rows listed and
//! re-queued, order kept within an order (the lifecycle's `payment.canceled`
//! and `order.overpaid` too, and a refund's `payment.refunded` and
//! `order.refunded` with their refund fields), no loss across `kill -9` (before
//! delivery, and after the shop took a callback whose answer the server
//! never heard), and two processes on one PostgreSQL delivering each row
//! once.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use awc::http::StatusCode;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ring::hmac;
use serde_json::{json, Value};

use crate::helpers::{
    generic_body, intent_failed, intent_succeeded, spawn_app_with, spawn_apps_with, TestApp,
    API_TOKEN, GENERIC_SECRET,
};
use crate::processes::{client, deliver, event_body, pending_payments, PostgresDb, Server};

/// The shop's secret in the tests.
const SECRET: &str = "whsec_c2hvcC1zZWNyZXQtZm9yLXRlc3RzLW9ubHk=";

/// One verified callback the receiver got.
#[derive(Debug, Clone)]
struct Receipt {
    webhook_id: String,
    body: Value,
    /// The status the receiver answered.
    answered: u16,
}

#[derive(Default)]
struct Inbox {
    receipts: Mutex<Vec<Receipt>>,
    /// Answer 500 to this many more verified calls.
    failures_left: AtomicUsize,
    /// Take this many more verified calls and never answer them (recorded
    /// as answered 0): the shop has the notification, the server never
    /// hears so.
    hangs_left: AtomicUsize,
    bad_signatures: AtomicUsize,
}

/// A shop's webhook endpoint on 127.0.0.1.
struct Receiver {
    url: String,
    inbox: Arc<Inbox>,
    handle: actix_web::dev::ServerHandle,
}

/// Checks a Standard Webhooks call, independently of the server's code.
fn verify(request: &HttpRequest, body: &[u8]) -> Option<String> {
    let header = |name: &str| request.headers().get(name)?.to_str().ok();
    let id = header("webhook-id")?;
    let timestamp: i64 = header("webhook-timestamp")?.parse().ok()?;
    if (crate::helpers::now() - timestamp).abs() > 300 {
        return None;
    }
    let key = BASE64.decode(SECRET.strip_prefix("whsec_")?).ok()?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, &key);
    let mut signed = format!("{id}.{timestamp}.").into_bytes();
    signed.extend_from_slice(body);
    let valid = header("webhook-signature")?.split(' ').any(|candidate| {
        candidate
            .strip_prefix("v1,")
            .and_then(|b64| BASE64.decode(b64).ok())
            .is_some_and(|tag| hmac::verify(&key, &signed, &tag).is_ok())
    });
    valid.then(|| id.to_owned())
}

async fn receive(request: HttpRequest, body: web::Bytes, inbox: web::Data<Inbox>) -> HttpResponse {
    let Some(webhook_id) = verify(&request, &body) else {
        inbox.bad_signatures.fetch_add(1, Ordering::SeqCst);
        return HttpResponse::BadRequest().finish();
    };
    let take_one = |counter: &AtomicUsize| {
        counter
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    };
    let answered = if take_one(&inbox.hangs_left) {
        0
    } else if take_one(&inbox.failures_left) {
        500
    } else {
        200
    };
    inbox.receipts.lock().expect("inbox").push(Receipt {
        webhook_id,
        body: serde_json::from_slice(&body).expect("a JSON body"),
        answered,
    });
    match answered {
        0 => {
            actix_rt::time::sleep(Duration::from_secs(120)).await;
            HttpResponse::Ok().finish()
        }
        500 => HttpResponse::InternalServerError().finish(),
        _ => HttpResponse::Ok().finish(),
    }
}

impl Receiver {
    /// Listens on `listener`, answering 500 to the first `failures` calls.
    fn start_on(listener: TcpListener, failures: usize) -> Self {
        let port = listener.local_addr().expect("an address").port();
        let inbox = Arc::new(Inbox::default());
        inbox.failures_left.store(failures, Ordering::SeqCst);
        let data = web::Data::from(inbox.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/hook", web::post().to(receive))
        })
        .workers(1)
        .listen(listener)
        .expect("the receiver listens")
        .run();
        let handle = server.handle();
        actix_rt::spawn(server);
        Self {
            url: format!("http://127.0.0.1:{port}/hook"),
            inbox,
            handle,
        }
    }

    fn start(failures: usize) -> Self {
        Self::start_on(TcpListener::bind("127.0.0.1:0").expect("bind"), failures)
    }

    fn receipts(&self) -> Vec<Receipt> {
        self.inbox.receipts.lock().expect("inbox").clone()
    }

    /// The bodies answered 200, in arrival order.
    fn delivered(&self) -> Vec<Receipt> {
        self.receipts()
            .into_iter()
            .filter(|r| r.answered == 200)
            .collect()
    }

    /// Waits until `count` calls were answered 200.
    async fn wait_delivered(&self, count: usize, within: Duration) -> Vec<Receipt> {
        let deadline = Instant::now() + within;
        loop {
            let delivered = self.delivered();
            if delivered.len() >= count {
                return delivered;
            }
            assert!(
                Instant::now() < deadline,
                "{count} deliveries expected, got {:?}",
                self.receipts()
            );
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(self) {
        self.handle.stop(false).await;
    }
}

/// Fast retries for tests: 50 ms doubling to 200 ms, polled every 50 ms.
fn fast(url: &str, max_attempts: &str) -> Vec<(String, String)> {
    [
        ("PAYHOOK_NOTIFY_URL", url),
        ("PAYHOOK_NOTIFY_SECRET", SECRET),
        ("PAYHOOK_NOTIFY_POLL_MS", "50"),
        ("PAYHOOK_NOTIFY_BACKOFF_BASE_MS", "50"),
        ("PAYHOOK_NOTIFY_BACKOFF_MAX_MS", "200"),
        ("PAYHOOK_NOTIFY_TIMEOUT_MS", "2000"),
        ("PAYHOOK_NOTIFY_MAX_ATTEMPTS", max_attempts),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn app_notifying(url: &str, max_attempts: &str) -> TestApp {
    let vars = fast(url, max_attempts);
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    spawn_app_with(&vars)
}

/// A confirmed 150.00 USD Stripe payment under `intent`.
async fn confirmed_payment(app: &TestApp, intent: &str) -> Value {
    let payment = app.pending_payment(intent).await;
    let answer = app
        .send_stripe_event(&intent_succeeded(&format!("evt_{intent}"), intent))
        .await;
    answer.assert_status(StatusCode::OK);
    payment
}

async fn api(app: &TestApp, method: &str, path: &str) -> (StatusCode, Value) {
    let client = awc::Client::default();
    let url = format!("{}{path}", app.address);
    let request = match method {
        "GET" => client.get(url),
        _ => client.post(url),
    };
    let mut response = request
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .expect("the API answers");
    let body = response.json().await.unwrap_or(Value::Null);
    (response.status(), body)
}

/// Waits until the outbox holds `count` rows, all delivered: the receiver
/// answers before the dispatcher records the delivery, so a test that saw
/// the receipt must still wait for the row.
async fn all_delivered(app: &TestApp, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rows = app.store.outbox().await.expect("outbox");
        if rows.len() == count && rows.iter().all(|r| r.status == "delivered") {
            return;
        }
        assert!(Instant::now() < deadline, "{rows:?}");
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn metrics_text(app: &TestApp) -> String {
    let mut response = awc::Client::default()
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .expect("metrics answer");
    let body = response.body().await.expect("a metrics body");
    String::from_utf8_lossy(&body).into_owned()
}

#[actix_rt::test]
async fn a_confirmation_is_delivered_signed_with_its_ids() {
    let receiver = Receiver::start(0);
    let app = app_notifying(&receiver.url, "12");
    let payment = confirmed_payment(&app, "pi_notify_1").await;

    let delivered = receiver.wait_delivered(1, Duration::from_secs(10)).await;
    all_delivered(&app, 1).await;
    let body = &delivered[0].body;
    assert_eq!(body["type"], "order.paid");
    assert_eq!(body["order_id"], payment["order_id"]);
    assert_eq!(body["payment_id"], payment["id"]);
    assert_eq!(body["transaction_id"], payment["transaction_id"]);
    assert_eq!(body["amount"], "150.00");
    assert_eq!(body["currency"], "USD");
    assert!(body["occurred_at"].is_string());
    let id = body["notification_id"].as_i64().expect("a notification id");
    assert_eq!(delivered[0].webhook_id, format!("msg_payhook_{id}"));
    assert_eq!(receiver.inbox.bad_signatures.load(Ordering::SeqCst), 0);

    let (status, list) = api(&app, "GET", "/api/v1/notifications/?status=delivered").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["notifications"][0]["id"], id);
    assert_eq!(list["notifications"][0]["status"], "delivered");
    // The counter moves just after the row is marked: poll it too.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = metrics_text(&app).await;
        if metrics.contains("payhook_notifications_total{outcome=\"delivered\"} 1") {
            break;
        }
        assert!(Instant::now() < deadline, "{metrics}");
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    receiver.stop().await;
}

#[actix_rt::test]
async fn two_500s_are_retried_under_the_same_webhook_id() {
    let receiver = Receiver::start(2);
    let app = app_notifying(&receiver.url, "12");
    confirmed_payment(&app, "pi_notify_retry").await;

    receiver.wait_delivered(1, Duration::from_secs(10)).await;
    all_delivered(&app, 1).await;
    let receipts = receiver.receipts();
    let answers: Vec<u16> = receipts.iter().map(|r| r.answered).collect();
    assert_eq!(answers, [500, 500, 200]);
    assert!(receipts
        .iter()
        .all(|r| r.webhook_id == receipts[0].webhook_id));
    let rows = app.store.outbox().await.expect("outbox");
    assert_eq!(rows[0].status, "delivered");
    assert_eq!(rows[0].attempts, 2, "two failed attempts recorded");
    let metrics = metrics_text(&app).await;
    assert!(
        metrics.contains("payhook_notifications_total{outcome=\"retried\"} 2"),
        "{metrics}"
    );
    receiver.stop().await;
}

#[actix_rt::test]
async fn after_the_last_attempt_the_row_is_dead_listed_and_can_be_requeued() {
    let receiver = Receiver::start(3);
    let app = app_notifying(&receiver.url, "3");
    confirmed_payment(&app, "pi_notify_dead").await;

    let deadline = Instant::now() + Duration::from_secs(10);
    let dead = loop {
        let (status, list) = api(&app, "GET", "/api/v1/notifications/?status=dead").await;
        assert_eq!(status, StatusCode::OK);
        if let Some(row) = list["notifications"].as_array().and_then(|l| l.first()) {
            break row.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the row dies: {:?}",
            receiver.receipts()
        );
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(dead["attempts"], 3);
    assert_eq!(dead["last_error"], "the shop answered 500");
    assert_eq!(receiver.receipts().len(), 3);
    let metrics = metrics_text(&app).await;
    assert!(
        metrics.contains("payhook_notifications_total{outcome=\"dead\"} 1"),
        "{metrics}"
    );

    // Not dead: 409; unknown: 404; dead: re-queued and then delivered.
    let id = dead["id"].as_i64().expect("an id");
    let (status, _) = api(&app, "POST", "/api/v1/notifications/999999/requeue/").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, requeued) = api(
        &app,
        "POST",
        &format!("/api/v1/notifications/{id}/requeue/"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{requeued}");
    assert_eq!(requeued["attempts"], 0);
    let delivered = receiver.wait_delivered(1, Duration::from_secs(10)).await;
    assert_eq!(delivered[0].webhook_id, format!("msg_payhook_{id}"));
    let (status, _) = api(
        &app,
        "POST",
        &format!("/api/v1/notifications/{id}/requeue/"),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = api(&app, "GET", "/api/v1/notifications/?status=sent").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    receiver.stop().await;
}

#[actix_rt::test]
async fn the_notifications_of_one_order_arrive_in_order_even_with_retries() {
    let receiver = Receiver::start(0);
    // Nothing is delivered until the three rows exist: the receiver answers
    // 500 to the first calls, which come before the later rows are written.
    receiver.inbox.failures_left.store(2, Ordering::SeqCst);
    let app = app_notifying(&receiver.url, "12");
    let payment = app.pending_payment("pi_notify_order").await;
    // failed, then completed with another amount: payment.failed, order.paid,
    // payment.amount_mismatch, all for one order.
    app.send_stripe_event(&intent_failed("evt_order_1", "pi_notify_order"))
        .await
        .assert_status(StatusCode::OK);
    let mut success = intent_succeeded("evt_order_2", "pi_notify_order");
    success["data"]["object"]["amount_received"] = json!(14000);
    success["data"]["object"]["amount"] = json!(14000);
    app.send_stripe_event(&success)
        .await
        .assert_status(StatusCode::OK);

    let delivered = receiver.wait_delivered(3, Duration::from_secs(10)).await;
    let kinds: Vec<&str> = delivered
        .iter()
        .map(|r| r.body["type"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        kinds,
        ["payment.failed", "order.paid", "payment.amount_mismatch"]
    );
    let ids: Vec<i64> = delivered
        .iter()
        .map(|r| r.body["notification_id"].as_i64().unwrap_or_default())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert!(delivered
        .iter()
        .all(|r| r.body["order_id"] == payment["order_id"]));
    // Every receipt, failed ones included, is in id order: no later row was
    // ever sent while an earlier one was pending.
    let all: Vec<i64> = receiver
        .receipts()
        .iter()
        .map(|r| r.body["notification_id"].as_i64().unwrap_or_default())
        .collect();
    assert!(all.windows(2).all(|w| w[0] <= w[1]), "{all:?}");
    receiver.stop().await;
}

/// Creates a generic payment of 150.00 USD for `order_id`, marked pending
/// under `external_id`.
async fn generic_payment(app: &TestApp, order_id: &Value, external_id: &str) -> Value {
    let created = app
        .create_payment(&json!({
            "order_id": order_id,
            "payment_method": "generic",
            "amount": "150.00",
            "currency": "USD",
        }))
        .await;
    let payment = created.assert_status(StatusCode::CREATED);
    let pending = app.external_pending(&payment["id"], external_id).await;
    pending.assert_status(StatusCode::OK).clone()
}

/// The generic gateway reports `status` for `external_id`; asserts `message`.
async fn generic_reports(app: &TestApp, external_id: &str, status: &str, message: &str) {
    let body = generic_body(Some(external_id), None, status, "\"150.00\"");
    let answer = app
        .send_generic(&body, &format!("msg_{status}_{external_id}"))
        .await;
    let answer = answer.assert_status(StatusCode::OK);
    assert_eq!(answer["message"], message, "{}: {answer}", app.backend);
}

#[actix_rt::test]
async fn a_cancel_and_an_overpaid_order_reach_the_shop_signed_and_in_order() {
    let receiver = Receiver::start(0);
    let mut vars = fast(&receiver.url, "12");
    vars.push(("WEBHOOK_SECRET".into(), GENERIC_SECRET.into()));
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    // One receiver for both backends, one after the other: an app writes
    // no row until this test sends its events.
    for app in spawn_apps_with("notify_lifecycle", &vars) {
        let backend = app.backend;
        let before = receiver.receipts().len();
        // Nothing is delivered until the three rows exist: the first calls
        // are answered 500, and come before the later rows are written.
        receiver.inbox.failures_left.store(2, Ordering::SeqCst);
        let order = app
            .create_order(&json!({"client_id": "c-1", "total": "150.00", "currency": "USD"}))
            .await;
        let order_id = order.assert_status(StatusCode::CREATED)["id"].clone();
        let canceled = generic_payment(&app, &order_id, "ext_notify_cancel").await;
        let first = generic_payment(&app, &order_id, "ext_notify_first").await;
        let second = generic_payment(&app, &order_id, "ext_notify_second").await;

        generic_reports(&app, "ext_notify_cancel", "canceled", "Payment canceled").await;
        generic_reports(&app, "ext_notify_first", "completed", "Payment confirmed").await;
        generic_reports(&app, "ext_notify_second", "completed", "Payment confirmed").await;

        let deadline = Instant::now() + Duration::from_secs(10);
        let receipts = loop {
            let receipts = receiver.receipts().split_off(before);
            if receipts.iter().filter(|r| r.answered == 200).count() >= 3 {
                break receipts;
            }
            assert!(Instant::now() < deadline, "{backend}: {receipts:?}");
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        };
        all_delivered(&app, 3).await;
        let delivered: Vec<&Receipt> = receipts.iter().filter(|r| r.answered == 200).collect();
        let kinds: Vec<&str> = delivered
            .iter()
            .map(|r| r.body["type"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(
            kinds,
            ["payment.canceled", "order.paid", "order.overpaid"],
            "{backend}"
        );
        assert!(
            delivered.iter().all(|r| r.body["order_id"] == order_id),
            "{backend}"
        );
        for receipt in &delivered {
            let id = receipt.body["notification_id"].as_i64().expect("an id");
            assert_eq!(receipt.webhook_id, format!("msg_payhook_{id}"), "{backend}");
        }

        let cancel = &delivered[0].body;
        assert_eq!(cancel["payment_id"], canceled["id"], "{backend}");
        assert_eq!(
            cancel["transaction_id"], canceled["transaction_id"],
            "{backend}"
        );
        assert_eq!(cancel["payment_status"], "canceled", "{backend}");
        assert_eq!(cancel["amount"], "150.00", "{backend}");
        assert_eq!(cancel["currency"], "USD", "{backend}");
        assert!(cancel["occurred_at"].is_string(), "{backend}");

        assert_eq!(delivered[1].body["payment_id"], first["id"], "{backend}");
        let overpaid = &delivered[2].body;
        assert_eq!(overpaid["payment_id"], second["id"], "{backend}");
        assert_eq!(overpaid["payment_status"], "completed", "{backend}");
        assert_eq!(
            overpaid["payment_ids"],
            json!([first["id"], second["id"]]),
            "{backend}"
        );
        assert_eq!(overpaid["order_status"], "paid", "{backend}");
        assert_eq!(overpaid["order_total"], "150.00", "{backend}");
        assert_eq!(overpaid["paid_amount"], "300.00", "{backend}");

        // Every receipt of this order, the refused ones included, in id
        // order: no later row went out while an earlier one was pending.
        let ids: Vec<i64> = receipts
            .iter()
            .map(|r| r.body["notification_id"].as_i64().unwrap_or_default())
            .collect();
        assert!(ids.windows(2).all(|w| w[0] <= w[1]), "{backend}: {ids:?}");
        let answers: Vec<u16> = receipts.iter().map(|r| r.answered).collect();
        assert_eq!(answers, [500, 500, 200, 200, 200], "{backend}");
        assert_eq!(receiver.inbox.bad_signatures.load(Ordering::SeqCst), 0);
    }
    receiver.stop().await;
}

#[actix_rt::test]
async fn without_a_url_notifications_are_logged_and_marked_delivered() {
    let app = spawn_app_with(&[]);
    confirmed_payment(&app, "pi_notify_log").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rows = app.store.outbox().await.expect("outbox");
        if rows.iter().all(|r| r.status == "delivered") && !rows.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "{rows:?}");
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A port nothing listens on (yet).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn process_env(url: &str) -> Vec<(String, String)> {
    fast(url, "1000")
}

#[actix_rt::test]
async fn a_notification_committed_before_kill_9_is_delivered_after_restart() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let database = format!("sqlite://{}", dir.path().join("payhook.db").display());
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/hook");
    let env = process_env(&url);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();

    // The shop is down: the row is committed, tried, and stays pending.
    let mut server = Server::start(&database, &env);
    let payments = pending_payments(&server.address, "kill_notify", 1).await;
    let status = deliver(&client(), &server.address, event_body("kill_notify", 0)).await;
    assert_eq!(status, Some(StatusCode::OK));
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    server.kill();

    // The shop comes up and the server restarts: the row is delivered.
    let receiver = Receiver::start_on(
        TcpListener::bind(("127.0.0.1", port)).expect("bind the shop's port"),
        0,
    );
    let server = Server::start(&database, &env);
    let delivered = receiver.wait_delivered(1, Duration::from_secs(20)).await;
    assert_eq!(delivered[0].body["payment_id"], payments[0]);
    assert_eq!(delivered[0].body["type"], "order.paid");
    drop(server);
    receiver.stop().await;
}

#[actix_rt::test]
async fn a_notification_the_shop_took_before_kill_9_goes_again_under_its_webhook_id() {
    // At least once: the shop has the callback, but the server is killed
    // before it hears the answer. After its lease the row goes out again,
    // with the same webhook-id and body, so the shop can tell it is the same.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let database = format!("sqlite://{}", dir.path().join("payhook.db").display());
    let receiver = Receiver::start(0);
    receiver.inbox.hangs_left.store(1, Ordering::SeqCst);
    let env = process_env(&receiver.url);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();

    let mut server = Server::start(&database, &env);
    let payments = pending_payments(&server.address, "kill_taken", 1).await;
    let status = deliver(&client(), &server.address, event_body("kill_taken", 0)).await;
    assert_eq!(status, Some(StatusCode::OK));
    // Killed while the callback is still waiting for its answer (the
    // server gives up on a callback after 2 s: this is well within).
    let deadline = Instant::now() + Duration::from_secs(10);
    while receiver.receipts().is_empty() {
        assert!(Instant::now() < deadline, "the shop got no callback");
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
    server.kill();

    let server = Server::start(&database, &env);
    let delivered = receiver
        .wait_delivered(1, dispatcher_lease() + Duration::from_secs(20))
        .await;
    let receipts = receiver.receipts();
    assert_eq!(receipts.len(), 2, "{receipts:?}");
    assert_eq!(receipts[0].answered, 0);
    assert_eq!(receipts[1].webhook_id, receipts[0].webhook_id);
    assert_eq!(receipts[1].body, receipts[0].body);
    assert_eq!(delivered[0].body["payment_id"], payments[0]);
    assert_eq!(delivered[0].body["type"], "order.paid");
    drop(server);
    receiver.stop().await;
}

/// How long a claimed row stays with the dispatcher that claimed it.
fn dispatcher_lease() -> Duration {
    payhook_server::dispatcher::LEASE
}

#[actix_rt::test]
async fn two_processes_on_one_postgres_deliver_each_row_once() {
    let Some(db) = PostgresDb::create("two_notify") else {
        return;
    };
    let receiver = Receiver::start(0);
    let mut env = process_env(&receiver.url);
    // Normal-case timings: a lease far longer than any delivery.
    env.push(("PAYHOOK_NOTIFY_POLL_MS".into(), "20".into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (a, b) = std::thread::scope(|scope| {
        let a = scope.spawn(|| Server::start(&db.url, &env));
        let b = scope.spawn(|| Server::start(&db.url, &env));
        (a.join().expect("start a"), b.join().expect("start b"))
    });
    const PAYMENTS: usize = 60;
    pending_payments(&a.address, "two_notify", PAYMENTS).await;
    let client = client();
    for i in 0..PAYMENTS {
        let address = if i % 2 == 0 { &a.address } else { &b.address };
        let status = deliver(&client, address, event_body("two_notify", i)).await;
        assert_eq!(status, Some(StatusCode::OK));
    }
    receiver
        .wait_delivered(PAYMENTS, Duration::from_secs(30))
        .await;
    // Let any duplicate arrive before counting.
    actix_rt::time::sleep(Duration::from_millis(500)).await;
    let mut counts: HashMap<String, usize> = HashMap::new();
    for receipt in receiver.receipts() {
        *counts.entry(receipt.webhook_id).or_default() += 1;
    }
    assert_eq!(counts.len(), PAYMENTS);
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    drop((a, b));
    receiver.stop().await;
}

#[actix_rt::test]
async fn an_https_callback_goes_through_tls_and_a_failed_handshake_is_retried() {
    // The receiver speaks plain HTTP: a TLS client must fail its handshake
    // (and say so in last_error) rather than send the body in clear.
    let receiver = Receiver::start(0);
    let https = receiver.url.replacen("http://", "https://", 1);
    let app = app_notifying(&https, "12");
    confirmed_payment(&app, "pi_notify_tls").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let error = loop {
        let (status, list) = api(&app, "GET", "/api/v1/notifications/?status=pending").await;
        assert_eq!(status, StatusCode::OK);
        if let Some(error) = list["notifications"][0]["last_error"].as_str() {
            break error.to_owned();
        }
        assert!(Instant::now() < deadline, "{list}");
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(error.contains("unreachable"), "{error}");
    assert!(
        receiver.delivered().is_empty(),
        "nothing delivered in clear"
    );
    receiver.stop().await;
}

#[actix_rt::test]
async fn payment_refunded_and_order_refunded_reach_the_shop_signed_and_in_order() {
    let receiver = Receiver::start(0);
    let mut vars = fast(&receiver.url, "12");
    vars.push(("WEBHOOK_SECRET".into(), GENERIC_SECRET.into()));
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    for app in spawn_apps_with("notify_refunds", &vars) {
        let backend = app.backend;
        let before = receiver.receipts().len();
        // The first call is answered 500: the order must hold through a
        // retry too.
        receiver.inbox.failures_left.store(1, Ordering::SeqCst);
        let order = app
            .create_order(&json!({"client_id": "c-1", "total": "150.00", "currency": "USD"}))
            .await;
        let order_id = order.assert_status(StatusCode::CREATED)["id"].clone();
        let payment = generic_payment(&app, &order_id, "ext_notify_refund").await;
        generic_reports(&app, "ext_notify_refund", "completed", "Payment confirmed").await;
        for (refund_id, amount) in [("rf_notify_1", "50.00"), ("rf_notify_2", "100.00")] {
            let body = format!(
                r#"{{"payment_id": "ext_notify_refund", "status": "refunded", "refund_id": "{refund_id}", "amount": "{amount}", "currency": "USD"}}"#
            );
            let answer = app
                .send_generic(body.as_bytes(), &format!("msg_{refund_id}"))
                .await;
            let answer = answer.assert_status(StatusCode::OK);
            assert_eq!(answer["message"], "Refund recorded", "{backend}: {answer}");
        }

        let deadline = Instant::now() + Duration::from_secs(10);
        let receipts = loop {
            let receipts = receiver.receipts().split_off(before);
            if receipts.iter().filter(|r| r.answered == 200).count() >= 4 {
                break receipts;
            }
            assert!(Instant::now() < deadline, "{backend}: {receipts:?}");
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        };
        all_delivered(&app, 4).await;
        let delivered: Vec<&Receipt> = receipts.iter().filter(|r| r.answered == 200).collect();
        let kinds: Vec<&str> = delivered
            .iter()
            .map(|r| r.body["type"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(
            kinds,
            [
                "order.paid",
                "payment.refunded",
                "payment.refunded",
                "order.refunded"
            ],
            "{backend}"
        );
        for receipt in &delivered {
            let id = receipt.body["notification_id"].as_i64().expect("an id");
            assert_eq!(receipt.webhook_id, format!("msg_payhook_{id}"), "{backend}");
            assert_eq!(receipt.body["order_id"], order_id, "{backend}");
            assert_eq!(receipt.body["payment_id"], payment["id"], "{backend}");
            assert_eq!(
                receipt.body["transaction_id"], payment["transaction_id"],
                "{backend}"
            );
            assert_eq!(receipt.body["amount"], "150.00", "{backend}");
            assert_eq!(receipt.body["currency"], "USD", "{backend}");
            assert!(receipt.body["occurred_at"].is_string(), "{backend}");
        }

        let first = &delivered[1].body;
        assert_eq!(first["refund_id"], "rf_notify_1", "{backend}: {first}");
        assert_eq!(first["refund_amount"], "50.00", "{backend}: {first}");
        assert_eq!(first["refunded_amount"], "50.00", "{backend}: {first}");
        assert_eq!(
            first["payment_status"], "partially_refunded",
            "{backend}: {first}"
        );
        let second = &delivered[2].body;
        assert_eq!(second["refund_id"], "rf_notify_2", "{backend}: {second}");
        assert_eq!(second["refund_amount"], "100.00", "{backend}: {second}");
        assert_eq!(second["refunded_amount"], "150.00", "{backend}: {second}");
        assert_eq!(second["payment_status"], "refunded", "{backend}: {second}");
        let order_refunded = &delivered[3].body;
        assert_eq!(order_refunded["refunded_amount"], "150.00", "{backend}");
        assert_eq!(order_refunded["payment_status"], "refunded", "{backend}");

        // Every receipt, the refused one included, in id order.
        let ids: Vec<i64> = receipts
            .iter()
            .map(|r| r.body["notification_id"].as_i64().unwrap_or_default())
            .collect();
        assert!(ids.windows(2).all(|w| w[0] <= w[1]), "{backend}: {ids:?}");
        assert_eq!(receiver.inbox.bad_signatures.load(Ordering::SeqCst), 0);
    }
    receiver.stop().await;
}
