//! Webhook bodies that arrive slowly, never, or only in part: a deadline
//! for the whole body (408, connection closed), a byte budget shared by all
//! bodies being received (503 with `Retry-After`), an upload the client
//! abandons counted as `aborted`, and real gateway calls answered promptly
//! all the while.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use awc::http::StatusCode;

use crate::helpers::{confirmed, intent_succeeded, TestApp};
use crate::helpers::{now, spawn_app_with, stripe_signature, STRIPE_SECRET};
use crate::processes::client;

const STRIPE_PATH: &str = "/api/v1/order-payments/webhooks/stripe/";

fn connect(app: &TestApp) -> TcpStream {
    let address = app.address.trim_start_matches("http://");
    TcpStream::connect(address).expect("connect to the server")
}

/// Sends the head of a Stripe webhook call declaring `length` bytes, then
/// `sent` of them.
fn start_upload(app: &TestApp, length: usize, sent: &[u8]) -> TcpStream {
    let mut stream = connect(app);
    let head = format!(
        "POST {STRIPE_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Content-Type: application/json\r\nStripe-Signature: t=1,v1=00\r\n\
         Content-Length: {length}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).expect("send the head");
    stream.write_all(sent).expect("send part of the body");
    stream
}

/// Everything the server writes until it closes the connection (or 10 s
/// pass), and whether it closed it.
fn read_to_close(stream: &mut TcpStream) -> (String, bool) {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("a read timeout");
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    let closed = loop {
        match stream.read(&mut buffer) {
            Ok(0) => break true,
            Ok(n) => answer.extend_from_slice(&buffer[..n]),
            Err(_) => break false,
        }
    };
    (String::from_utf8_lossy(&answer).into_owned(), closed)
}

/// Whether the server has written anything on `stream` (or closed it),
/// without waiting.
fn was_answered(stream: &TcpStream) -> bool {
    stream.set_nonblocking(true).expect("a non-blocking socket");
    let mut first = [0u8; 1];
    let answered = match stream.peek(&mut first) {
        Ok(_) => true,
        Err(error) => error.kind() != std::io::ErrorKind::WouldBlock,
    };
    stream.set_nonblocking(false).expect("a blocking socket");
    answered
}

/// The value of the sample `series` in `/metrics`, 0 when absent.
async fn sample(app: &TestApp, series: &str) -> f64 {
    let mut response = client()
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .expect("metrics answer");
    let text = response.body().await.expect("a metrics body");
    String::from_utf8_lossy(&text)
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[actix_rt::test]
async fn stalled_uploads_are_cut_off_with_408_while_a_gateway_is_answered_promptly() {
    let app = spawn_app_with(&[("PAYHOOK_BODY_TIMEOUT_MS", "1500")]);
    let payment = app.pending_payment("pi_stalled").await;

    // 20 clients declare 1 MiB, send a few bytes and stall.
    const STALLED: usize = 20;
    let started = Arc::new(Barrier::new(STALLED + 1));
    let mut stalled = Vec::new();
    for _ in 0..STALLED {
        let mut stream = start_upload(&app, 1024 * 1024, b"{\"id\": ");
        let started = started.clone();
        stalled.push(std::thread::spawn(move || {
            let opened = Instant::now();
            started.wait();
            let (answer, closed) = read_to_close(&mut stream);
            (answer, closed, opened.elapsed())
        }));
    }
    started.wait();

    let sent = Instant::now();
    let answer = app
        .send_stripe_event(&intent_succeeded("evt_stalled", "pi_stalled"))
        .await;
    let latency = sent.elapsed();
    assert_eq!(answer.assert_status(StatusCode::OK), &confirmed(&payment));
    assert!(latency < Duration::from_secs(1), "{latency:?}");

    for client in stalled {
        let (answer, closed, elapsed) = client.join().expect("a stalled client");
        assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
        let (_, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
        let body: serde_json::Value = serde_json::from_str(body).expect("a JSON body");
        assert_eq!(
            body,
            serde_json::json!({
                "status": "error",
                "message": "request body not received within 1500 ms",
            })
        );
        assert!(
            answer.to_ascii_lowercase().contains("connection: close"),
            "{answer}"
        );
        assert!(closed, "the server keeps the connection open: {answer}");
        assert!(
            elapsed >= Duration::from_millis(1400) && elapsed < Duration::from_secs(6),
            "{elapsed:?}"
        );
    }
    let timeouts = r#"payhook_webhooks_total{gateway="stripe",outcome="timeout"}"#;
    assert_eq!(sample(&app, timeouts).await, STALLED as f64);
}

#[actix_rt::test]
async fn bodies_beyond_the_receiving_budget_get_503_until_it_is_returned() {
    let app = spawn_app_with(&[
        ("PAYHOOK_MAX_BODY_BYTES", "65536"),
        ("PAYHOOK_MAX_RECEIVING_BYTES", "65536"),
        ("PAYHOOK_BODY_TIMEOUT_MS", "30000"),
    ]);
    let payment = app.pending_payment("pi_budget").await;

    // One upload of 60,000 declared bytes, 40,000 of them sent: its buffer
    // covers at least the 40,000 received, so a whole body of 30,000 more
    // no longer fits in the 65,536 of the budget.
    let mut holder = start_upload(&app, 60_000, &[b' '; 40_000]);

    let body = [b' '; 30_000];
    let headers = [("Stripe-Signature", "t=1,v1=00")];
    let mut refused = None;
    // Up to 60 s: on a loaded machine (the whole suite in parallel on two
    // cores, the browser test's Chromium among it) the server may take many
    // seconds to read the holder's bytes. Only a broken budget waits it out.
    for _ in 0..600 {
        let answer = app.post_stripe(&body, &headers).await;
        if answer.status == StatusCode::SERVICE_UNAVAILABLE {
            refused = Some(answer);
            break;
        }
        // The server reads the holder in more than one chunk. When a probe
        // is being received between two of them, it is the holder that no
        // longer fits and is refused (on a loaded machine, where the reads
        // are far apart), or the holder waits past the body deadline. A
        // holder that was answered holds nothing: start another.
        if was_answered(&holder) {
            holder = start_upload(&app, 60_000, &[b' '; 40_000]);
        }
        // The holder's bytes are not all read yet: try again shortly.
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    let refused = refused.expect("a 503 while the budget is held");
    refused.assert_error(StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        refused
            .headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );

    // The holder gives up: its share returns, and a gateway gets in.
    holder
        .shutdown(std::net::Shutdown::Both)
        .expect("close the holder");
    drop(holder);
    let aborted = r#"payhook_webhooks_total{gateway="stripe",outcome="aborted"}"#;
    for _ in 0..600 {
        if sample(&app, aborted).await >= 1.0 {
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(sample(&app, aborted).await, 1.0);
    let event = serde_json::to_vec(&intent_succeeded("evt_budget", "pi_budget")).unwrap();
    let signature = stripe_signature(&event, STRIPE_SECRET, now());
    let answer = app
        .post_stripe(&event, &[("Stripe-Signature", signature.as_str())])
        .await;
    assert_eq!(answer.assert_status(StatusCode::OK), &confirmed(&payment));

    let overloaded = r#"payhook_webhooks_total{gateway="stripe",outcome="overloaded"}"#;
    assert!(sample(&app, overloaded).await >= 1.0);
    let limited = r#"payhook_rate_limited_total{reason="receiving_bytes"}"#;
    assert!(sample(&app, limited).await >= 1.0);
    let too_large = r#"payhook_webhooks_total{gateway="stripe",outcome="too_large"}"#;
    assert_eq!(sample(&app, too_large).await, 0.0);
}
