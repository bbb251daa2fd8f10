//! `/metrics`: the text format each client asks for, and every path of a
//! webhook call, rejections included, counted under its outcome.

use std::collections::HashMap;
use std::time::Duration;

use awc::http::StatusCode;
use diesel::connection::SimpleConnection;
use diesel::{Connection, SqliteConnection};

use crate::helpers::{
    intent_succeeded, now, spawn_app, spawn_app_with, stripe_signature, TestApp, STRIPE_SECRET,
};
use crate::processes::client;

/// `GET /metrics` with `accept`; the content type and the text.
async fn scrape(app: &TestApp, accept: Option<&str>) -> (String, String) {
    let mut request = client().get(format!("{}/metrics", app.address));
    if let Some(accept) = accept {
        request = request.insert_header(("Accept", accept));
    }
    let mut response = request.send().await.expect("metrics answer");
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = response.body().await.expect("a metrics body");
    (
        content_type,
        String::from_utf8(body.to_vec()).expect("UTF-8"),
    )
}

/// The samples of the text, `name{labels}` -> value.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (series, value) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("sample line {line:?}"));
            let value = value
                .parse()
                .unwrap_or_else(|_| panic!("numeric value in {line:?}"));
            (series.to_owned(), value)
        })
        .collect()
}

#[actix_rt::test]
async fn scrapers_asking_for_openmetrics_get_it_and_every_other_client_gets_0_0_4() {
    let app = spawn_app();
    app.send_stripe_event(&intent_succeeded("evt_format", "pi_format"))
        .await
        .assert_error(StatusCode::NOT_FOUND);
    let counted = r#"payhook_webhooks_total{gateway="stripe",outcome="not_found"}"#;

    // What Prometheus sends.
    let prometheus = "application/openmetrics-text;version=1.0.0,\
                      application/openmetrics-text;version=0.0.1;q=0.75,\
                      text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let (content_type, openmetrics) = scrape(&app, Some(prometheus)).await;
    assert_eq!(
        content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(openmetrics.ends_with("# EOF\n"), "{openmetrics}");
    assert!(openmetrics.contains("# TYPE payhook_webhooks counter\n"));
    assert_eq!(samples(&openmetrics).get(counted), Some(&1.0));

    for accept in [None, Some("*/*"), Some("text/plain")] {
        let (content_type, text) = scrape(&app, accept).await;
        assert_eq!(
            content_type, "text/plain; version=0.0.4; charset=utf-8",
            "{accept:?}"
        );
        assert!(!text.contains("# EOF"), "{text}");
        assert!(
            text.contains("# TYPE payhook_webhooks_total counter\n"),
            "{text}"
        );
        assert!(text.contains("# HELP payhook_webhooks_total "), "{text}");
        assert!(
            text.contains("# TYPE payhook_webhook_duration_seconds histogram\n"),
            "{text}"
        );
        assert_eq!(samples(&text).get(counted), Some(&1.0), "{text}");
    }
}

/// An app whose SQLite file the test can reach, with one failed
/// verification allowed per second, one webhook in flight, and small bodies.
fn app_on_a_known_file() -> (TestApp, tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("payhook.db").display().to_string();
    let app = spawn_app_with(&[
        ("DATABASE_URL", &format!("sqlite://{path}")),
        ("PAYHOOK_MAX_BODY_BYTES", "4096"),
        ("PAYHOOK_FAILED_ATTEMPTS_PER_SECOND", "1"),
        ("PAYHOOK_FAILED_ATTEMPTS_BURST", "1"),
        ("PAYHOOK_MAX_IN_FLIGHT", "1"),
    ]);
    (app, dir, path)
}

fn signed(body: &[u8]) -> String {
    stripe_signature(body, STRIPE_SECRET, now())
}

#[actix_rt::test]
async fn every_path_of_a_webhook_call_is_counted_under_its_outcome() {
    let (app, _dir, path) = app_on_a_known_file();
    let count = |text: &str, gateway: &str, outcome: &str| {
        samples(text)
            .get(&format!(
                r#"payhook_webhooks_total{{gateway="{gateway}",outcome="{outcome}"}}"#
            ))
            .copied()
            .unwrap_or(0.0)
    };
    let event = serde_json::to_vec(&intent_succeeded("evt_paths", "pi_unknown")).unwrap();
    let mut expected: Vec<(&str, &str, f64)> = Vec::new();

    // The generic gateway has no secret in the test configuration.
    app.post_webhook("payment", &event, &[])
        .await
        .assert_error(StatusCode::SERVICE_UNAVAILABLE);
    expected.push(("generic", "not_configured", 1.0));

    // Not declared as JSON.
    let response = client()
        .post(format!(
            "{}/api/v1/order-payments/webhooks/stripe/",
            app.address
        ))
        .insert_header(("Stripe-Signature", signed(&event)))
        .insert_header(("Content-Type", "text/plain"))
        .send_body(event.clone())
        .await
        .expect("an answer");
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let large = vec![b' '; 5000];
    app.post_stripe(&large, &[("Stripe-Signature", signed(&large).as_str())])
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE);
    expected.push(("stripe", "too_large", 1.0));

    // Signed, but not an event: a parse error, not a failed verification.
    let garbage = b"{\"not\": \"an event\"".to_vec();
    app.post_stripe(&garbage, &[("Stripe-Signature", signed(&garbage).as_str())])
        .await
        .assert_error(StatusCode::BAD_REQUEST);
    // 415 and the parse error are both `malformed`.
    expected.push(("stripe", "malformed", 2.0));

    let forged = stripe_signature(&event, "whsec_someone_else", now());
    app.post_stripe(&event, &[("Stripe-Signature", forged.as_str())])
        .await
        .assert_error(StatusCode::BAD_REQUEST);
    expected.push(("stripe", "bad_signature", 1.0));
    // The burst of one failure is spent: the next one is throttled.
    let throttled = app
        .post_stripe(&event, &[("Stripe-Signature", forged.as_str())])
        .await;
    throttled.assert_error(StatusCode::TOO_MANY_REQUESTS);
    assert!(throttled.headers.contains_key("retry-after"));
    expected.push(("stripe", "rate_limited", 1.0));

    // Verified, but no payment has this intent.
    app.post_stripe(&event, &[("Stripe-Signature", signed(&event).as_str())])
        .await
        .assert_error(StatusCode::NOT_FOUND);

    // One call holds the only in-flight slot, waiting on a write lock the
    // test holds; the next verified call is turned away.
    let mut lock = SqliteConnection::establish(&path).expect("open the database");
    // The server's own background writers (the dispatcher, the retention
    // pruner) may hold the write lock for a moment: wait for them, as the
    // server's connections do, instead of failing at once.
    lock.batch_execute("PRAGMA busy_timeout = 10000")
        .expect("a busy timeout");
    lock.batch_execute("BEGIN IMMEDIATE")
        .expect("take the write lock");
    let waiting = {
        let app_address = app.address.clone();
        let body = serde_json::to_vec(&intent_succeeded("evt_waiting", "pi_unknown")).unwrap();
        actix_rt::spawn(async move {
            client()
                .post(format!(
                    "{app_address}/api/v1/order-payments/webhooks/stripe/"
                ))
                .insert_header(("Stripe-Signature", signed(&body)))
                .insert_header(("Content-Type", "application/json"))
                .send_body(body)
                .await
                .expect("an answer")
                .status()
        })
    };
    actix_rt::time::sleep(Duration::from_millis(500)).await;
    let busy = serde_json::to_vec(&intent_succeeded("evt_busy", "pi_unknown")).unwrap();
    let overloaded = app
        .post_stripe(&busy, &[("Stripe-Signature", signed(&busy).as_str())])
        .await;
    overloaded.assert_error(StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(overloaded.headers.get("retry-after").unwrap(), "1");
    expected.push(("stripe", "overloaded", 1.0));
    lock.batch_execute("ROLLBACK")
        .expect("release the write lock");
    assert_eq!(
        waiting.await.expect("the waiting call"),
        StatusCode::NOT_FOUND
    );
    expected.push(("stripe", "not_found", 2.0));

    // The store fails under the call: its table is gone.
    lock.batch_execute("ALTER TABLE webhook_events RENAME TO webhook_events_gone")
        .expect("rename the events table");
    let failing = serde_json::to_vec(&intent_succeeded("evt_failing", "pi_unknown")).unwrap();
    let failed = app
        .post_stripe(&failing, &[("Stripe-Signature", signed(&failing).as_str())])
        .await;
    assert!(failed.status.is_server_error(), "{failed:?}");
    assert_eq!(failed.body["status"], "error", "{failed:?}");
    expected.push(("stripe", "error", 1.0));

    let (_, text) = scrape(&app, None).await;
    for (gateway, outcome, value) in &expected {
        assert_eq!(
            count(&text, gateway, outcome),
            *value,
            "{gateway}/{outcome} in {text}"
        );
    }
    // Nothing else was counted, and every counted call was timed once.
    let counted: f64 = samples(&text)
        .iter()
        .filter(|(series, _)| series.starts_with("payhook_webhooks_total{"))
        .map(|(_, value)| value)
        .sum();
    assert_eq!(counted, 10.0, "{text}");
    let timed: f64 = samples(&text)
        .iter()
        .filter(|(series, _)| series.starts_with("payhook_webhook_duration_seconds_count{"))
        .map(|(_, value)| value)
        .sum();
    assert_eq!(timed, 10.0, "{text}");
}
