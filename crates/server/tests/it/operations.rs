//! What an on-call engineer relies on: metrics, request ids, logs that never
//! carry secrets, throttling of failed attempts, graceful shutdown and the
//! command line.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use awc::http::StatusCode;
use futures_util::StreamExt;
use serde_json::json;

use crate::helpers::{
    intent_succeeded, now, spawn_app_with, stripe_signature, API_TOKEN, STRIPE_SECRET,
};
use crate::processes::{client, deliver, event_body, pending_payments, Server};

/// Parses OpenMetrics text into `name{labels}` -> value, checking the
/// format as Prometheus would read it.
fn parse_metrics(text: &str) -> HashMap<String, f64> {
    assert!(
        text.ends_with("# EOF\n"),
        "OpenMetrics text ends with # EOF"
    );
    let mut samples = HashMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("sample line {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("numeric value in {line:?}"));
        assert!(series.starts_with("payhook_"), "{series}");
        samples.insert(series.to_owned(), value);
    }
    samples
}

async fn scrape(address: &str) -> HashMap<String, f64> {
    let mut response = client()
        .get(format!("{address}/metrics"))
        .insert_header(("Accept", "application/openmetrics-text"))
        .send()
        .await
        .expect("metrics answer");
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let body = response.body().await.expect("a body");
    parse_metrics(std::str::from_utf8(&body).expect("UTF-8"))
}

#[actix_rt::test]
async fn metrics_count_webhooks_by_gateway_and_outcome() {
    let app = spawn_app_with(&[]);
    let payment = app.pending_payment("pi_metrics").await;
    let event = intent_succeeded("evt_metrics", "pi_metrics");
    app.send_stripe_event(&event)
        .await
        .assert_status(StatusCode::OK);
    app.send_stripe_event(&event)
        .await
        .assert_status(StatusCode::OK);
    let body = serde_json::to_vec(&event).unwrap();
    app.post_stripe(&body, &[("Stripe-Signature", "t=1,v1=00")])
        .await;
    let mut mismatch = intent_succeeded("evt_metrics_2", "pi_metrics_2");
    mismatch["data"]["object"]["amount_received"] = json!(14999);
    app.pending_payment("pi_metrics_2").await;
    app.send_stripe_event(&mismatch)
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(app.payment(&payment).await["status"], "completed");

    let samples = scrape(&app.address).await;
    let get = |series: &str| {
        samples
            .get(series)
            .copied()
            .unwrap_or_else(|| panic!("{series} in {samples:?}"))
    };
    assert_eq!(
        get(r#"payhook_webhooks_total{gateway="stripe",outcome="confirmed"}"#),
        2.0
    );
    assert_eq!(
        get(r#"payhook_webhooks_total{gateway="stripe",outcome="duplicate"}"#),
        1.0
    );
    assert_eq!(
        get(r#"payhook_webhooks_total{gateway="stripe",outcome="bad_signature"}"#),
        1.0
    );
    assert_eq!(
        get(r#"payhook_amount_mismatches_total{gateway="stripe"}"#),
        1.0
    );
    assert_eq!(
        get(r#"payhook_webhook_duration_seconds_count{gateway="stripe"}"#),
        4.0
    );
    assert_eq!(
        get(r#"payhook_webhook_duration_seconds_bucket{le="+Inf",gateway="stripe"}"#),
        4.0
    );
    assert_eq!(
        get("payhook_outbox_backlog"),
        3.0,
        "two order.paid and one amount_mismatch rows pending"
    );
    assert!(get("payhook_db_pool_max_connections") >= 1.0);
    assert!(samples.contains_key(r#"payhook_db_pool_connections{state="idle"}"#));
}

#[actix_rt::test]
async fn every_answer_carries_a_request_id_and_a_given_one_is_echoed() {
    let app = spawn_app_with(&[]);
    let client = client();
    let given = client
        .get(format!("{}/healthz", app.address))
        .insert_header(("X-Request-Id", "req-from-the-gateway-42"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(
        given.headers().get("x-request-id").unwrap(),
        "req-from-the-gateway-42"
    );
    let made = client
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .expect("healthz");
    let made_id = made
        .headers()
        .get("x-request-id")
        .expect("an id")
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(made_id.len(), 24, "{made_id}");
    let again = client
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .expect("healthz");
    assert_ne!(
        again
            .headers()
            .get("x-request-id")
            .unwrap()
            .to_str()
            .unwrap(),
        made_id
    );
    // A hostile id (control characters) is replaced, not logged.
    let hostile = client
        .get(format!("{}/healthz", app.address))
        .insert_header(("X-Request-Id", "a\tb"))
        .send()
        .await
        .expect("healthz");
    assert_ne!(hostile.headers().get("x-request-id").unwrap(), "a\tb");
}

#[actix_rt::test]
async fn a_non_json_webhook_is_refused_with_415() {
    let app = spawn_app_with(&[]);
    let body = serde_json::to_vec(&intent_succeeded("evt_form", "pi_form")).unwrap();
    let signature = stripe_signature(&body, STRIPE_SECRET, now());
    let response = client()
        .post(format!(
            "{}/api/v1/order-payments/webhooks/stripe/",
            app.address
        ))
        .insert_header(("Stripe-Signature", signature))
        .insert_header(("Content-Type", "application/x-www-form-urlencoded"))
        .send_body(body)
        .await
        .expect("an answer");
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(app.store.events().await.unwrap().is_empty());
}

#[actix_rt::test]
async fn a_flood_of_bad_signatures_is_throttled_while_valid_events_all_pass() {
    const BAD: usize = 10_000;
    const GOOD: usize = 200;
    let app = spawn_app_with(&[
        ("PAYHOOK_FAILED_ATTEMPTS_PER_SECOND", "50"),
        ("PAYHOOK_FAILED_ATTEMPTS_BURST", "100"),
    ]);
    let address = app.address.clone();
    let tag = "flood";
    let payments = pending_payments(&address, tag, GOOD).await;
    let client = client();
    let started = Instant::now();
    let bad = {
        let client = client.clone();
        let address = address.clone();
        actix_rt::spawn(async move {
            let body = event_body("flood_bad", 0);
            futures_util::stream::iter(0..BAD)
                .map(|_| {
                    let client = client.clone();
                    let url = format!("{address}/api/v1/order-payments/webhooks/stripe/");
                    let body = body.clone();
                    async move {
                        client
                            .post(url)
                            .insert_header((
                                "Stripe-Signature",
                                format!("t={},v1={}", now(), "0".repeat(64)),
                            ))
                            .insert_header(("Content-Type", "application/json"))
                            .send_body(body)
                            .await
                            .map(|r| r.status())
                            .ok()
                    }
                })
                .buffer_unordered(16)
                .collect::<Vec<_>>()
                .await
        })
    };
    let good: Vec<Option<StatusCode>> = futures_util::stream::iter(0..GOOD)
        .map(|i| {
            let client = client.clone();
            let address = address.clone();
            async move { deliver(&client, &address, event_body(tag, i)).await }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let bad = bad.await.expect("the flood finishes");
    let elapsed = started.elapsed().as_secs_f64();
    let refused = bad
        .iter()
        .filter(|s| **s == Some(StatusCode::BAD_REQUEST))
        .count();
    let throttled = bad
        .iter()
        .filter(|s| **s == Some(StatusCode::TOO_MANY_REQUESTS))
        .count();
    let accepted = good.iter().filter(|s| **s == Some(StatusCode::OK)).count();
    // Straight to stderr so the counts show even when the test passes.
    let _ = writeln!(
        std::io::stderr(),
        "flood: {BAD} bad requests in {elapsed:.1} s -> {refused} answered 400, {throttled} throttled 429; \
         valid events: {accepted}/{GOOD} answered 200"
    );
    assert_eq!(accepted, GOOD, "every valid event processed");
    assert_eq!(
        refused + throttled,
        BAD,
        "every bad request refused one way or the other"
    );
    // The budget: the burst plus the sustained rate over the flood's duration.
    let budget = 100.0 + 50.0 * elapsed;
    assert!(
        (refused as f64) <= budget + 1.0,
        "{refused} exceeds the budget {budget:.0}"
    );
    assert!(throttled > BAD / 2, "most of the flood throttled");
    for id in payments {
        let mut response = client
            .get(format!("{address}/api/v1/order-payments/{id}/"))
            .bearer_auth(API_TOKEN)
            .send()
            .await
            .expect("payment");
        let payment: serde_json::Value = response.json().await.expect("JSON");
        assert_eq!(payment["status"], "completed");
    }
}

#[actix_rt::test]
async fn throttled_answers_say_when_to_retry_and_failed_tokens_are_throttled_too() {
    let app = spawn_app_with(&[
        ("PAYHOOK_FAILED_ATTEMPTS_PER_SECOND", "1"),
        ("PAYHOOK_FAILED_ATTEMPTS_BURST", "2"),
    ]);
    let client = client();
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let response = client
            .get(format!("{}/api/v1/orders/1/", app.address))
            .bearer_auth("wrong-token")
            .send()
            .await
            .expect("an answer");
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            let retry_after: u64 = response
                .headers()
                .get("retry-after")
                .expect("Retry-After")
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=2).contains(&retry_after), "{retry_after}");
        }
        statuses.push(response.status());
    }
    assert_eq!(
        statuses,
        [
            StatusCode::UNAUTHORIZED,
            StatusCode::UNAUTHORIZED,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    // The right token is never throttled.
    let ok = client
        .get(format!("{}/api/v1/orders/1/", app.address))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .expect("an answer");
    assert_eq!(ok.status(), StatusCode::NOT_FOUND);
    let samples = scrape(&app.address).await;
    assert_eq!(
        samples[r#"payhook_rate_limited_total{reason="failed_authentication"}"#],
        2.0
    );
}

#[actix_rt::test]
async fn logs_carry_one_line_per_webhook_and_never_a_secret_signature_or_payload() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("payhook.db").display());
    let server = Server::start(
        &url,
        &[("WEBHOOK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")],
    );
    pending_payments(&server.address, "logs", 1).await;
    let client = client();
    let mut event = intent_succeeded("evt_logs_0", "pi_logs_0");
    event["data"]["object"]["description"] = json!("PAYLOAD-MARKER-7f3a");
    let body = serde_json::to_vec(&event).unwrap();
    let signature = stripe_signature(&body, STRIPE_SECRET, now());
    let sent_signature = signature.split("v1=").nth(1).unwrap().to_owned();
    for sig in [signature.as_str(), "t=1,v1=deadbeef"] {
        client
            .post(format!(
                "{}/api/v1/order-payments/webhooks/stripe/",
                server.address
            ))
            .insert_header(("Stripe-Signature", sig))
            .insert_header(("Content-Type", "application/json"))
            .insert_header(("X-Request-Id", "req-log-test"))
            .send_body(body.clone())
            .await
            .expect("an answer");
    }
    client
        .get(format!("{}/api/v1/orders/1/", server.address))
        .bearer_auth("not-the-token-9c1e")
        .send()
        .await
        .expect("an answer");
    actix_rt::time::sleep(Duration::from_millis(200)).await;
    let log = server.log.lock().unwrap().join("\n");
    for secret in [
        STRIPE_SECRET,
        API_TOKEN,
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        sent_signature.as_str(),
        "PAYLOAD-MARKER-7f3a",
        "not-the-token-9c1e",
    ] {
        assert!(!log.contains(secret), "the log contains {secret:?}");
    }
    let webhook_lines: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["fields"]["message"] == "webhook")
        .collect();
    assert_eq!(webhook_lines.len(), 2, "{log}");
    let outcomes: Vec<&str> = webhook_lines
        .iter()
        .map(|l| l["fields"]["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["confirmed", "bad_signature"]);
    for line in &webhook_lines {
        assert_eq!(line["fields"]["gateway"], "stripe");
        assert_eq!(line["span"]["request_id"], "req-log-test", "{line}");
        assert!(line["fields"]["latency_ms"].is_number());
        assert_eq!(line["fields"]["client"], "127.0.0.1");
    }
    assert_eq!(webhook_lines[0]["fields"]["event_id"], "evt_logs_0");
}

#[actix_rt::test]
async fn sigterm_lets_a_request_in_flight_finish() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("payhook.db").display());
    let mut server = Server::start(&url, &[]);
    pending_payments(&server.address, "term", 1).await;
    let body = event_body("term", 0);
    let signature = stripe_signature(&body, STRIPE_SECRET, now());
    let authority = server.address.trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&authority).expect("connect");
    let head = format!(
        "POST /api/v1/order-payments/webhooks/stripe/ HTTP/1.1\r\nHost: {authority}\r\n\
         Content-Type: application/json\r\nStripe-Signature: {signature}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&body[..body.len() / 2]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    std::thread::sleep(Duration::from_millis(300));
    stream.write_all(&body[body.len() / 2..]).unwrap();
    let mut answer = String::new();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.read_to_string(&mut answer).expect("read the answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("Payment confirmed"), "{answer}");
    let deadline = Instant::now() + Duration::from_secs(15);
    let exit = loop {
        if let Some(exit) = server.child.try_wait().expect("poll the server") {
            break exit;
        }
        assert!(Instant::now() < deadline, "the server exits after draining");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit:?}");
    let log = server.log.lock().unwrap().join("\n");
    assert!(log.contains("closing the database pool"), "{log}");
}

fn payhook(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_payhook"));
    command.env_clear().args(args);
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("run payhook")
}

#[test]
fn help_lists_the_commands() {
    let output = payhook(&["--help"], &[]);
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    for command in ["serve", "migrate", "check-config", "reconcile"] {
        assert!(text.contains(command), "{text}");
    }
}

#[test]
fn check_config_masks_secrets_and_fails_on_a_problem() {
    let ok = payhook(
        &["check-config"],
        &[
            ("STRIPE_WEBHOOK_SECRET", "whsec_cli_topsecret"),
            ("PAYHOOK_API_TOKEN", "token-cli-topsecret"),
            ("DATABASE_URL", "postgres://u:pw-cli-topsecret@127.0.0.1/db"),
        ],
    );
    let text = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{text}");
    assert!(!text.contains("topsecret"), "{text}");
    assert!(
        text.contains("STRIPE_WEBHOOK_SECRET") && text.contains("[1 secret(s), redacted]"),
        "{text}"
    );
    assert!(
        text.contains("PAYHOOK_AMOUNT_MISMATCH") && text.contains("warn"),
        "{text}"
    );
    // The writers the store will start: the default on PostgreSQL with the
    // default pool of 8.
    let writers = text
        .lines()
        .find(|line| line.starts_with("PAYHOOK_DB_WRITERS"))
        .unwrap_or_else(|| panic!("no writers line: {text}"));
    assert!(
        writers.ends_with("= 4 (default: half the pool, at most 4)"),
        "{writers}"
    );
    let one = payhook(
        &["check-config"],
        &[
            ("DATABASE_URL", "postgres://u@127.0.0.1/db"),
            ("PAYHOOK_DB_WRITERS", "1"),
        ],
    );
    assert!(
        String::from_utf8_lossy(&one.stdout)
            .lines()
            .any(|line| line.starts_with("PAYHOOK_DB_WRITERS") && line.ends_with("= 1")),
        "{one:?}"
    );
    let off = payhook(&["check-config"], &[("PAYHOOK_GROUP_COMMIT", "false")]);
    assert!(
        String::from_utf8_lossy(&off.stdout).contains("none (PAYHOOK_GROUP_COMMIT=false)"),
        "{off:?}"
    );

    let bad_value = payhook(
        &["check-config"],
        &[("PAYHOOK_AMOUNT_MISMATCH", "sometimes")],
    );
    assert!(!bad_value.status.success());
    assert!(String::from_utf8_lossy(&bad_value.stderr).contains("PAYHOOK_AMOUNT_MISMATCH"));

    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    std::fs::write(&cert, "not a certificate").unwrap();
    let bad_cert = payhook(
        &["check-config"],
        &[
            ("PAYPAL_WEBHOOK_ID", "WH-1"),
            ("PAYPAL_CERT_FILE", cert.to_str().unwrap()),
        ],
    );
    assert!(!bad_cert.status.success());
    assert!(
        String::from_utf8_lossy(&bad_cert.stderr).contains("PAYPAL"),
        "{:?}",
        bad_cert
    );
}

#[test]
fn migrate_applies_the_schema_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("m.db").display());
    let output = payhook(&["migrate"], &[("DATABASE_URL", &url)]);
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("migrations applied"));
    assert!(dir.path().join("m.db").exists());
}
