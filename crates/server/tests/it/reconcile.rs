//! Reconciliation end to end, in process: the server asks a stand-in
//! Stripe or PayPal API (real HTTP servers on 127.0.0.1, see
//! [`crate::reconcile_standin`]) about payments whose webhook never came,
//! in the background and through `POST /api/v1/order-payments/{id}/reconcile/`.

use std::time::{Duration, Instant};

use awc::http::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    intent_succeeded, paypal_completed, paypal_fixture_path, spawn_app_with, success, TestApp,
    PAYPAL_WEBHOOK_ID,
};
use crate::reconcile_standin::{
    paypal_object, stripe_object, Reply, StandIn, PAYPAL_CLIENT_ID, PAYPAL_CLIENT_SECRET,
    STRIPE_KEY,
};

/// A server reconciling Stripe payments with `stand_in`: every payment
/// pending at once, a pass every 300 ms; `extra` applied last.
fn stripe_app(stand_in: &StandIn, extra: &[(&str, &str)]) -> TestApp {
    let mut variables = vec![
        ("STRIPE_API_KEY", STRIPE_KEY),
        ("PAYHOOK_STRIPE_API_BASE", stand_in.base.as_str()),
        ("PAYHOOK_RECONCILE_AFTER", "0s"),
        ("PAYHOOK_RECONCILE_INTERVAL", "300ms"),
    ];
    variables.extend_from_slice(extra);
    spawn_app_with(&variables)
}

/// A server reconciling PayPal payments with `stand_in`, as
/// [`stripe_app`] does Stripe's.
fn paypal_app(stand_in: &StandIn, extra: &[(&str, &str)]) -> TestApp {
    // PayPal's webhooks too, to show one arriving after reconciliation.
    let cert = paypal_fixture_path("test-only-cert.pem");
    let cert = cert.to_str().expect("a UTF-8 path").to_owned();
    let mut variables = vec![
        ("PAYPAL_WEBHOOK_ID", PAYPAL_WEBHOOK_ID),
        ("PAYPAL_CERT_FILE", cert.as_str()),
        ("PAYPAL_CLIENT_ID", PAYPAL_CLIENT_ID),
        ("PAYPAL_CLIENT_SECRET", PAYPAL_CLIENT_SECRET),
        ("PAYHOOK_PAYPAL_API_BASE", stand_in.base.as_str()),
        ("PAYHOOK_RECONCILE_AFTER", "0s"),
        ("PAYHOOK_RECONCILE_INTERVAL", "300ms"),
    ];
    variables.extend_from_slice(extra);
    spawn_app_with(&variables)
}

/// Waits until the reconciler has moved `payment` to `status` and recorded
/// that check, and returns it.
async fn wait_status(app: &TestApp, payment: &Value, status: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let now = app.payment(payment).await;
        // The reconciler records its check after applying what it found, in
        // a transaction of its own: wait for both, or a loaded machine reads
        // the new status beside an earlier pass's check.
        let applied = now["last_reconciliation"]["result"]
            .as_str()
            .is_some_and(|result| result.starts_with("applied"));
        if now["status"] == status && applied {
            return now;
        }
        assert!(Instant::now() < deadline, "never {status}: {now}");
        actix_rt::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The value of the metric sample `line` (name and labels), 0 when absent.
fn sample(metrics: &str, series: &str) -> u64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0)
}

/// The recorded events of `query` (`source=reconcile`, ...), as listed.
async fn events(app: &TestApp, query: &str) -> Vec<Value> {
    let answer = app.list_events(query).await;
    answer.assert_status(StatusCode::OK)["items"]
        .as_array()
        .expect("items")
        .clone()
}

#[actix_rt::test]
async fn a_payment_whose_webhook_never_came_is_completed_in_the_background_and_notified_once() {
    let stripe = StandIn::stripe(&[STRIPE_KEY]);
    let app = stripe_app(&stripe, &[]);
    let payment = app.pending_payment("pi_reconcile_lost").await;
    stripe.reply(
        "pi_reconcile_lost",
        Reply::Object(stripe_object(
            "payment_intent.succeeded",
            "pi_reconcile_lost",
        )),
    );

    let completed = wait_status(&app, &payment, "completed").await;
    assert_eq!(app.order_status(&payment).await, "paid");
    assert_eq!(app.outbox_kinds().await, ["order.paid"]);
    let last = &completed["last_reconciliation"];
    assert_eq!(last["result"], "applied: confirmed", "{completed}");
    assert_eq!(last["gateway_state"], "payment_intent succeeded");
    assert!(last["checked_at"].as_str().is_some(), "{completed}");

    // The operator console shows the same check on the payment's page.
    let session = crate::console::sign_in(&app).await;
    let page = crate::console::get(
        &app,
        &format!("/console/payments/{}/", payment["id"]),
        Some(&session),
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains("Last reconciliation")
            && page
                .body
                .contains("<code>payment_intent succeeded</code>, applied: confirmed"),
        "{}",
        page.body
    );

    // The audit shows the event with its source, found by the filter.
    let reconciled = events(&app, "source=reconcile").await;
    assert_eq!(reconciled.len(), 1, "{reconciled:?}");
    assert_eq!(
        reconciled[0]["event_id"],
        "reconcile:pi_reconcile_lost:succeeded"
    );
    assert_eq!(reconciled[0]["event_type"], "payment_intent.succeeded");
    assert_eq!(reconciled[0]["source"], "reconcile");
    assert_eq!(reconciled[0]["outcome"], "confirmed");
    assert!(events(&app, "source=webhook").await.is_empty());
    // So does the console's list, with the same filter, and the event page.
    let listed =
        crate::console::get(&app, "/console/events/?source=reconcile", Some(&session)).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    assert!(
        listed.body.contains("<td>reconcile</td>")
            && listed.body.contains("payment_intent.succeeded"),
        "{}",
        listed.body
    );
    let none = crate::console::get(&app, "/console/events/?source=webhook", Some(&session)).await;
    assert!(
        none.body.contains("No event passes these filters."),
        "{}",
        none.body
    );
    let event = crate::console::get(
        &app,
        &format!("/console/events/{}/", reconciled[0]["id"]),
        Some(&session),
    )
    .await;
    assert!(
        event
            .body
            .contains("reconcile (payhook asked the gateway&#39;s API)")
            || event
                .body
                .contains("reconcile (payhook asked the gateway's API)"),
        "{}",
        event.body
    );

    // Passes go on: a completed payment is not due, never asked again.
    actix_rt::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        stripe.checks_of("pi_reconcile_lost"),
        1,
        "{:?}",
        stripe.seen()
    );
    let seen = stripe.seen();
    assert_eq!(seen[0].path, "/v1/payment_intents/pi_reconcile_lost");
    assert_eq!(seen[0].credential, STRIPE_KEY);
    stripe.assert_no_unexpected_request();

    // The webhook arriving after all changes nothing and says so.
    let late = app
        .send_stripe_event(&intent_succeeded("evt_late_1", "pi_reconcile_lost"))
        .await;
    assert_eq!(
        late.assert_status(StatusCode::OK),
        &success(&payment, "Payment already completed")
    );
    assert_eq!(app.outbox_kinds().await, ["order.paid"]);
    let webhooks = events(&app, "source=webhook").await;
    assert_eq!(webhooks.len(), 1, "{webhooks:?}");
    assert_eq!(webhooks[0]["outcome"], "already_completed");

    let metrics = app.metrics_text().await;
    assert_eq!(
        sample(
            &metrics,
            "payhook_reconcile_checks_total{gateway=\"stripe\",result=\"applied\"}"
        ),
        1,
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "payhook_reconcile_changes_total{gateway=\"stripe\"}"
        ),
        1
    );
    assert!(sample(&metrics, "payhook_reconcile_last_pass_timestamp_seconds") > 1_700_000_000);
}

#[actix_rt::test]
async fn a_canceled_intent_cancels_the_payment() {
    let stripe = StandIn::stripe(&[STRIPE_KEY]);
    let app = stripe_app(&stripe, &[]);
    let payment = app.pending_payment("pi_reconcile_canceled").await;
    stripe.reply(
        "pi_reconcile_canceled",
        Reply::Object(stripe_object(
            "payment_intent.canceled",
            "pi_reconcile_canceled",
        )),
    );
    let canceled = wait_status(&app, &payment, "canceled").await;
    assert_eq!(
        canceled["last_reconciliation"]["result"],
        "applied: canceled"
    );
    assert_eq!(app.order_status(&payment).await, "pending");
    assert_eq!(app.outbox_kinds().await, ["payment.canceled"]);
    let reconciled = events(&app, "source=reconcile").await;
    assert_eq!(reconciled.len(), 1, "{reconciled:?}");
    assert_eq!(
        reconciled[0]["event_id"],
        "reconcile:pi_reconcile_canceled:canceled"
    );
}

#[actix_rt::test]
async fn rate_limiting_and_failures_change_nothing_and_are_retried_later() {
    let stripe = StandIn::stripe(&[STRIPE_KEY]);
    let app = stripe_app(&stripe, &[]);
    let payment = app.pending_payment("pi_reconcile_busy").await;
    stripe.reply("pi_reconcile_busy", Reply::Status(429, Some(2)));

    stripe
        .wait_checks("pi_reconcile_busy", 1, Duration::from_secs(10))
        .await;
    // Not asked again before the gateway's Retry-After, though passes run
    // every 300 ms.
    actix_rt::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(stripe.checks_of("pi_reconcile_busy"), 1);
    let unchanged = app.payment(&payment).await;
    assert_eq!(unchanged["status"], "pending_external");
    assert!(
        unchanged["last_reconciliation"]["result"]
            .as_str()
            .is_some_and(|r| r.starts_with("error: rate_limited")),
        "{unchanged}"
    );
    assert_eq!(
        unchanged["last_reconciliation"]["gateway_state"],
        Value::Null
    );

    // Asked again later: still rate limited, then failing, nothing changes.
    stripe
        .wait_checks("pi_reconcile_busy", 2, Duration::from_secs(10))
        .await;
    stripe.reply("pi_reconcile_busy", Reply::Status(500, None));
    let before_failure = stripe.checks_of("pi_reconcile_busy");
    stripe
        .wait_checks(
            "pi_reconcile_busy",
            before_failure + 1,
            Duration::from_secs(10),
        )
        .await;
    let failed = app.payment(&payment).await;
    assert_eq!(failed["status"], "pending_external");
    assert!(events(&app, "").await.is_empty());
    assert!(app.outbox_kinds().await.is_empty());

    // Once the gateway answers, the payment completes.
    stripe.reply(
        "pi_reconcile_busy",
        Reply::Object(stripe_object(
            "payment_intent.succeeded",
            "pi_reconcile_busy",
        )),
    );
    wait_status(&app, &payment, "completed").await;
    assert_eq!(app.outbox_kinds().await, ["order.paid"]);

    let metrics = app.metrics_text().await;
    assert!(
        sample(
            &metrics,
            "payhook_reconcile_errors_total{gateway=\"stripe\",error=\"rate_limited\"}"
        ) >= 2,
        "{metrics}"
    );
    assert!(
        sample(
            &metrics,
            "payhook_reconcile_errors_total{gateway=\"stripe\",error=\"unavailable\"}"
        ) >= 1,
        "{metrics}"
    );
}

#[actix_rt::test]
async fn refused_credentials_are_counted_once_per_pass_and_change_nothing() {
    // The stand-in knows another key: every call is answered 401.
    let stripe = StandIn::stripe(&["sk_test_the_right_one"]);
    let app = stripe_app(&stripe, &[("PAYHOOK_RECONCILE_INTERVAL", "200ms")]);
    let mut payments = Vec::new();
    for n in 0..3 {
        payments.push(
            app.pending_payment(&format!("pi_reconcile_refused_{n}"))
                .await,
        );
    }
    // Several passes, each asking once: after the first 401 the gateway is
    // paused for the rest of the pass, and its other payments skipped.
    let deadline = Instant::now() + Duration::from_secs(15);
    let (calls_before, refused, metrics, calls_after) = loop {
        let calls_before = stripe.seen().len();
        let metrics = app.metrics_text().await;
        let calls_after = stripe.seen().len();
        let refused = sample(
            &metrics,
            "payhook_reconcile_errors_total{gateway=\"stripe\",error=\"unauthorized\"}",
        );
        if refused >= 5 {
            break (calls_before, refused, metrics, calls_after);
        }
        assert!(Instant::now() < deadline, "{metrics}");
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    };
    let seen = stripe.seen();
    assert!(seen.iter().all(|s| s.credential == "refused"), "{seen:?}");
    // Each refusal counted is one call; the pass in flight may have made
    // its call and not counted it yet.
    let (calls_before, calls_after) = (
        u64::try_from(calls_before).expect("a count"),
        u64::try_from(calls_after).expect("a count"),
    );
    assert!(
        calls_before <= refused + 1 && refused <= calls_after,
        "{calls_before}..{calls_after} calls for {refused} refusals: {seen:?}"
    );
    // Once the three payments exist (within the first two passes), each
    // pass skips the two it did not ask about.
    let skipped = sample(
        &metrics,
        "payhook_reconcile_checks_total{gateway=\"stripe\",result=\"skipped\"}",
    );
    assert!(skipped >= 2 * (refused - 2), "{metrics}");
    for payment in &payments {
        let now = app.payment(payment).await;
        assert_eq!(now["status"], "pending_external");
    }
    assert!(events(&app, "").await.is_empty());
    assert!(app.outbox_kinds().await.is_empty());
}

#[actix_rt::test]
async fn a_paypal_order_completed_without_its_webhook_completes_with_its_capture() {
    let paypal = StandIn::paypal();
    let app = paypal_app(&paypal, &[("PAYHOOK_RECONCILE_AFTER", "1d")]);
    let order_ids = [
        "5O190127TN364715T",
        "8MC585209K746392H",
        "9LE62613G5442011J",
    ];
    let mut payments = Vec::new();
    for order_id in order_ids {
        payments.push(app.pending_payment_for("paypal", order_id).await);
        paypal.reply(
            order_id,
            Reply::Object(paypal_object("order-completed", order_id)),
        );
    }
    // One through the API, on a worker thread...
    let answer = app.reconcile(&payments[0]["id"], "").await;
    let body = answer.assert_status(StatusCode::OK);
    assert_eq!(body["result"], "applied", "{body}");
    assert_eq!(body["outcome"], "confirmed");
    assert_eq!(body["gateway"], "paypal");
    assert_eq!(body["payment"]["status"], "completed");
    let capture = paypal_object("order-completed", order_ids[0])["purchase_units"][0]["payments"]
        ["captures"][0]["id"]
        .clone();
    assert_eq!(body["payment"]["gateway_reference"], capture, "{body}");
    // ... and the others too, each request on whichever worker takes it.
    for payment in &payments[1..] {
        let answer = app.reconcile(&payment["id"], "").await;
        assert_eq!(answer.assert_status(StatusCode::OK)["result"], "applied");
    }
    // One token for every call, whichever thread made it.
    assert_eq!(paypal.token_calls(), 1);
    for order_id in order_ids {
        assert_eq!(paypal.checks_of(order_id), 1);
    }
    assert!(paypal
        .seen()
        .iter()
        .all(|seen| seen.path.starts_with("/v2/checkout/orders/")
            && seen.credential == "paypal-token"));
    paypal.assert_no_unexpected_request();

    // PayPal's webhook after it: already completed.
    let late = app
        .send_paypal_event(&paypal_completed("WH-late-1", order_ids[0]))
        .await;
    assert_eq!(late.status, StatusCode::OK, "{late:?}");
    assert_eq!(late.body["message"], "Payment already completed");
    assert_eq!(
        app.outbox_kinds().await,
        ["order.paid", "order.paid", "order.paid"]
    );
}

#[actix_rt::test]
async fn the_reconcile_route_checks_one_payment_on_demand() {
    let stripe = StandIn::stripe(&[STRIPE_KEY]);
    // Nothing is due in the background for a day: only the route asks.
    let app = stripe_app(&stripe, &[("PAYHOOK_RECONCILE_AFTER", "1d")]);
    let payment = app.pending_payment("pi_reconcile_route").await;
    let id = payment["id"].clone();
    stripe.reply(
        "pi_reconcile_route",
        Reply::Object(stripe_object(
            "payment_intent.succeeded",
            "pi_reconcile_route",
        )),
    );

    // A dry run says what would change and writes nothing.
    let dry = app.reconcile(&id, "dry_run=true").await;
    let dry = dry.assert_status(StatusCode::OK);
    assert_eq!(dry["payment_id"], id);
    assert_eq!(dry["transaction_id"], payment["transaction_id"]);
    assert_eq!(dry["gateway"], "stripe");
    assert_eq!(dry["status_before"], "pending_external");
    assert_eq!(dry["status"], "completed");
    assert_eq!(dry["gateway_state"], "payment_intent succeeded");
    assert_eq!(dry["result"], "would_apply");
    assert_eq!(dry["outcome"], "confirmed");
    assert_eq!(dry["payment"]["status"], "pending_external");
    assert_eq!(dry["payment"]["last_reconciliation"], Value::Null);
    assert!(events(&app, "").await.is_empty());
    assert!(app.outbox_kinds().await.is_empty());

    let applied = app.reconcile(&id, "dry_run=false").await;
    let applied = applied.assert_status(StatusCode::OK);
    assert_eq!(applied["result"], "applied");
    assert_eq!(applied["outcome"], "confirmed");
    assert_eq!(applied["status"], "completed");
    assert_eq!(applied["payment"]["status"], "completed");
    assert_eq!(
        applied["payment"]["last_reconciliation"]["result"],
        "applied: confirmed"
    );
    assert_eq!(app.outbox_kinds().await, ["order.paid"]);

    // Asked again: the same state is already known.
    let again = app.reconcile(&id, "").await;
    let again = again.assert_status(StatusCode::OK);
    assert_eq!(again["result"], "already_known");
    assert_eq!(again["outcome"], Value::Null);
    assert_eq!(again["status_before"], "completed");
    assert_eq!(app.outbox_kinds().await, ["order.paid"]);
    assert_eq!(stripe.checks_of("pi_reconcile_route"), 3);

    // The gateway rate limiting: 502 with its Retry-After, nothing changed.
    let other = app.pending_payment("pi_reconcile_route_busy").await;
    stripe.reply("pi_reconcile_route_busy", Reply::Status(429, Some(7)));
    let busy = app.reconcile(&other["id"], "").await;
    assert_eq!(
        busy.assert_error(StatusCode::BAD_GATEWAY),
        "the gateway is rate limiting (429)"
    );
    assert_eq!(
        busy.headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("7")
    );
    stripe.reply("pi_reconcile_route_busy", Reply::Status(503, None));
    let down = app.reconcile(&other["id"], "").await;
    assert_eq!(
        down.assert_error(StatusCode::BAD_GATEWAY),
        "the gateway is unavailable (503)"
    );
    assert!(down.headers.get("retry-after").is_none());
    // Unknown to the gateway.
    let unknown = app.pending_payment("pi_reconcile_route_unknown").await;
    let missing = app.reconcile(&unknown["id"], "").await;
    assert_eq!(
        missing.assert_error(StatusCode::BAD_GATEWAY),
        "the gateway does not know the object (404)"
    );
    let still = app.payment(&other).await;
    assert_eq!(still["status"], "pending_external");
    assert!(still["last_reconciliation"]["result"]
        .as_str()
        .is_some_and(|r| r.starts_with("error: unavailable")));

    // No such payment; a bad query; no token.
    app.reconcile(999_999, "")
        .await
        .assert_error(StatusCode::NOT_FOUND);
    app.reconcile(&id, "dry_run=maybe")
        .await
        .assert_error(StatusCode::BAD_REQUEST);
    app.reconcile(&id, "bogus=1")
        .await
        .assert_error(StatusCode::BAD_REQUEST);
    let anonymous = awc::Client::default()
        .post(format!(
            "{}/api/v1/order-payments/{id}/reconcile/",
            app.address
        ))
        .send()
        .await
        .expect("the server answers");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    let metrics = app.metrics_text().await;
    assert_eq!(
        sample(
            &metrics,
            "payhook_reconcile_checks_total{gateway=\"stripe\",result=\"would_apply\"}"
        ),
        1,
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "payhook_reconcile_errors_total{gateway=\"stripe\",error=\"not_found\"}"
        ),
        1,
        "{metrics}"
    );
}

#[actix_rt::test]
async fn the_route_answers_503_for_a_gateway_without_credentials() {
    let app = spawn_app_with(&[]);
    let payment = app.pending_payment("pi_reconcile_off").await;
    let answer = app.reconcile(&payment["id"], "").await;
    assert_eq!(
        answer.assert_error(StatusCode::SERVICE_UNAVAILABLE),
        "reconciliation is not configured for gateway stripe (set STRIPE_API_KEY)"
    );
    let paypal = app.pending_payment_for("paypal", "5O190127TN364715T").await;
    let answer = app.reconcile(&paypal["id"], "").await;
    assert_eq!(
        answer.assert_error(StatusCode::SERVICE_UNAVAILABLE),
        "reconciliation is not configured for gateway paypal \
         (set PAYPAL_CLIENT_ID and PAYPAL_CLIENT_SECRET)"
    );
    // The payment JSON says it was never checked.
    assert_eq!(
        app.payment(&payment).await["last_reconciliation"],
        Value::Null
    );
}

#[actix_rt::test]
async fn the_event_list_filters_by_source() {
    let app = spawn_app_with(&[]);
    app.pending_payment("pi_reconcile_source").await;
    app.send_stripe_event(&intent_succeeded("evt_source_1", "pi_reconcile_source"))
        .await
        .assert_status(StatusCode::OK);
    let webhooks = events(&app, "source=webhook").await;
    assert_eq!(webhooks.len(), 1);
    assert_eq!(webhooks[0]["source"], "webhook");
    assert!(events(&app, "source=reconcile").await.is_empty());
    let message = app
        .list_events("source=gateway")
        .await
        .assert_error(StatusCode::BAD_REQUEST)
        .to_owned();
    assert_eq!(
        message,
        "invalid source: expected one of webhook, reconcile"
    );
    assert_eq!(json!(events(&app, "").await.len()), json!(1));
}
