//! Reconciliation with the real `payhook` binary: `payhook reconcile` (a
//! dry run writes nothing; a run applies; a run whose every check fails
//! exits non-zero), refused credentials logged once per pass, secrets in no
//! log line, answer or `check-config` output, and two server processes on
//! one database asking about each payment once.
//!
//! The stand-in APIs run in the test process; the servers and the command
//! are child processes pointed at them with `PAYHOOK_*_API_BASE`.

use std::collections::HashMap;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use payhook_domain::ports::Store;
use payhook_domain::{PaymentId, ReconcileStore};
use payhook_store_diesel::{DieselStore, StoreOptions};
use serde_json::{json, Value};

use crate::helpers::API_TOKEN;
use crate::processes::{client, pending_payments, PostgresDb, Server};
use crate::reconcile_standin::{
    paypal_object, stripe_object, Reply, StandIn, PAYPAL_CLIENT_ID, PAYPAL_CLIENT_SECRET,
    PAYPAL_TOKEN_PREFIX, STRIPE_KEY,
};

/// Runs `payhook <args>` with exactly `env` (and a quiet log), off the
/// test's thread so the stand-ins keep answering.
async fn payhook(args: &[&str], env: &[(&str, &str)]) -> Output {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    actix_web::rt::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_payhook"))
            .args(&args)
            .env_clear()
            .env("RUST_LOG", "warn")
            .envs(env)
            .stdin(Stdio::null())
            .output()
            .expect("run the payhook binary")
    })
    .await
    .expect("the command's thread")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Everything the command may change: each payment with its last check,
/// the events and the outbox rows, as text.
async fn snapshot(database_url: &str, payments: &[i64]) -> Vec<String> {
    let store =
        DieselStore::open(database_url, &StoreOptions::default()).expect("open the database");
    let mut state = Vec::new();
    for id in payments {
        let payment = store.payment(PaymentId(*id)).await.expect("a payment");
        let check = store.last_check(PaymentId(*id)).await.expect("its check");
        state.push(format!("{payment:?} {check:?}"));
    }
    for event in store.events().await.expect("the events") {
        state.push(format!("{event:?}"));
    }
    for row in store.outbox().await.expect("the outbox") {
        state.push(format!("{row:?}"));
    }
    state
}

#[actix_rt::test]
async fn payhook_reconcile_dry_run_changes_nothing_and_a_run_applies() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let database_url = format!("sqlite://{}", directory.path().join("cli.db").display());
    // The payments, made by a server without API credentials.
    let payments = {
        let server = Server::start(&database_url, &[]);
        pending_payments(&server.address, "cli", 3).await
    };
    let stripe = StandIn::stripe(&[STRIPE_KEY]);
    stripe.reply(
        "pi_cli_0",
        Reply::Object(stripe_object("payment_intent.succeeded", "pi_cli_0")),
    );
    stripe.reply(
        "pi_cli_1",
        Reply::Object(stripe_object("payment_intent.canceled", "pi_cli_1")),
    );
    // pi_cli_2 is unknown to Stripe: 404.
    let env = [
        ("DATABASE_URL", database_url.as_str()),
        ("STRIPE_API_KEY", STRIPE_KEY),
        ("PAYHOOK_STRIPE_API_BASE", stripe.base.as_str()),
    ];
    let before = snapshot(&database_url, &payments).await;

    let dry = payhook(&["reconcile", "--dry-run", "--older-than", "0s"], &env).await;
    let table = text(&dry.stdout);
    assert!(dry.status.success(), "{table}\n{}", text(&dry.stderr));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 5, "{table}");
    assert!(
        lines[0].starts_with("PAYMENT") && lines[0].contains("GATEWAY STATE"),
        "{table}"
    );
    let row = |external: &str| {
        let n = external
            .trim_start_matches("pi_cli_")
            .parse::<usize>()
            .expect("an index");
        lines
            .iter()
            .find(|line| line.starts_with(&format!("{} ", payments[n])))
            .unwrap_or_else(|| panic!("no row for {external} in {table}"))
            .to_string()
    };
    let succeeded = row("pi_cli_0");
    assert!(
        succeeded.contains("stripe")
            && succeeded.contains("pending_external → completed")
            && succeeded.contains("payment_intent succeeded")
            && succeeded.ends_with("would apply: confirmed"),
        "{table}"
    );
    let canceled = row("pi_cli_1");
    assert!(
        canceled.contains("pending_external → canceled")
            && canceled.ends_with("would apply: canceled"),
        "{table}"
    );
    let unknown = row("pi_cli_2");
    assert!(
        unknown.contains("pending_external → pending_external")
            && unknown.contains("error: not_found"),
        "{table}"
    );
    assert_eq!(
        lines[4],
        "checked 3 payment(s): 2 would change, 0 unchanged, 1 failed, 0 skipped \
         (dry run: nothing was written)"
    );
    assert_eq!(snapshot(&database_url, &payments).await, before);
    assert_eq!(stripe.seen().len(), 3);

    // A dry run twice: still nothing written, the same table.
    let again = payhook(&["reconcile", "--dry-run", "--older-than", "0s"], &env).await;
    assert_eq!(text(&again.stdout), table);
    assert_eq!(snapshot(&database_url, &payments).await, before);

    // Without --dry-run it applies, once.
    let run = payhook(&["reconcile", "--older-than", "0s"], &env).await;
    let applied = text(&run.stdout);
    assert!(run.status.success(), "{applied}\n{}", text(&run.stderr));
    assert!(
        applied.ends_with("checked 3 payment(s): 2 changed, 0 unchanged, 1 failed, 0 skipped\n"),
        "{applied}"
    );
    assert!(applied.contains("applied: confirmed"), "{applied}");
    let store =
        DieselStore::open(&database_url, &StoreOptions::default()).expect("open the database");
    let status = |n: usize| {
        let store = store.clone();
        let id = PaymentId(payments[n]);
        async move { store.payment(id).await.expect("a payment").status.as_str() }
    };
    assert_eq!(status(0).await, "completed");
    assert_eq!(status(1).await, "canceled");
    assert_eq!(status(2).await, "pending_external");
    let mut kinds: Vec<String> = store
        .outbox()
        .await
        .expect("the outbox")
        .into_iter()
        .map(|row| row.kind)
        .collect();
    kinds.sort_unstable();
    assert_eq!(kinds, ["order.paid", "payment.canceled"]);

    // Every check failing (a refused key) exits non-zero, changing nothing.
    let refused = payhook(
        &["reconcile", "--payment", &payments[2].to_string()],
        &[
            ("DATABASE_URL", database_url.as_str()),
            ("STRIPE_API_KEY", "sk_test_revoked_key_0000"),
            ("PAYHOOK_STRIPE_API_BASE", stripe.base.as_str()),
        ],
    )
    .await;
    let output = text(&refused.stdout);
    assert!(!refused.status.success(), "{output}");
    assert!(output.contains("error: unauthorized"), "{output}");
    assert!(text(&refused.stderr).contains("every check failed"));
    assert!(!output.contains("sk_test_revoked_key_0000"));
    assert!(!text(&refused.stderr).contains("sk_test_revoked_key_0000"));
    assert_eq!(status(2).await, "pending_external");

    // No credentials at all: an error naming the variables.
    let off = payhook(&["reconcile"], &[("DATABASE_URL", database_url.as_str())]).await;
    assert!(!off.status.success());
    assert!(
        text(&off.stderr).contains("set STRIPE_API_KEY"),
        "{}",
        text(&off.stderr)
    );
    stripe.assert_no_unexpected_request();
}

/// Creates a pending 150.00 USD payment by `method` under `external_id`
/// through `address`'s API; returns its id.
async fn pending(address: &str, method: &str, external_id: &str) -> i64 {
    let client = client();
    let post = |path: String, body: Value| {
        let client = client.clone();
        async move {
            let mut response = client
                .post(format!("{address}{path}"))
                .bearer_auth(API_TOKEN)
                .send_json(&body)
                .await
                .expect("the API answers");
            assert!(response.status().is_success(), "{path}");
            response.json::<Value>().await.expect("JSON")
        }
    };
    let order = post(
        "/api/v1/orders/".into(),
        json!({"client_id": "c-1", "total": "150.00", "currency": "USD"}),
    )
    .await;
    let payment = post(
        "/api/v1/order-payments/".into(),
        json!({"order_id": order["id"], "payment_method": method, "amount": "150.00", "currency": "USD"}),
    )
    .await;
    let id = payment["id"].as_i64().expect("an id");
    post(
        format!("/api/v1/order-payments/{id}/external-pending/"),
        json!({ "external_id": external_id }),
    )
    .await;
    id
}

/// The log lines of `server` whose message is `message`.
fn logged(server: &Server, message: &str) -> Vec<Value> {
    server
        .log
        .lock()
        .expect("the log")
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|entry| entry["fields"]["message"] == message)
        .collect()
}

const REFUSED: &str = "the gateway refused the API credentials: its payments are not \
                       reconciled until they are fixed";

#[actix_rt::test]
async fn refused_credentials_are_logged_once_per_pass_and_no_secret_is_ever_shown() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let database_url = format!("sqlite://{}", directory.path().join("secrets.db").display());
    let wrong_key = "sk_test_wrong_key_9f8e7d6c5b4a";
    // Stripe refuses the key; PayPal accepts its credentials and issues a
    // token, which must not show either.
    let stripe = StandIn::stripe(&[STRIPE_KEY]);
    let paypal = StandIn::paypal();
    let server = Server::start(
        &database_url,
        &[
            ("STRIPE_API_KEY", wrong_key),
            ("PAYHOOK_STRIPE_API_BASE", stripe.base.as_str()),
            ("PAYPAL_CLIENT_ID", PAYPAL_CLIENT_ID),
            ("PAYPAL_CLIENT_SECRET", PAYPAL_CLIENT_SECRET),
            ("PAYHOOK_PAYPAL_API_BASE", paypal.base.as_str()),
            ("PAYHOOK_RECONCILE_AFTER", "0s"),
            ("PAYHOOK_RECONCILE_INTERVAL", "300ms"),
            // Every crate's debug lines too: none may carry a secret.
            ("RUST_LOG", "debug"),
        ],
    );
    let stripe_payments = pending_payments(&server.address, "refused", 3).await;
    let order_id = "5O190127TN364715T";
    paypal.reply(
        order_id,
        Reply::Object(paypal_object("order-completed", order_id)),
    );
    let paypal_payment = pending(&server.address, "paypal", order_id).await;

    // Several passes.
    let deadline = Instant::now() + Duration::from_secs(20);
    while logged(&server, "reconciliation pass finished").len() < 5 {
        assert!(Instant::now() < deadline, "too few passes");
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    // Calls first: every call seen is of a pass that has finished, or of
    // the one in flight.
    let calls = stripe.seen().len();
    let passes = logged(&server, "reconciliation pass finished");
    let warnings = logged(&server, REFUSED);
    // One warning per pass (not one per payment), each naming the gateway
    // and the error, never the key.
    let passes_with_stripe = passes.len();
    assert!(
        (passes_with_stripe.saturating_sub(1)..=passes_with_stripe + 1).contains(&warnings.len()),
        "{} warnings for {} passes",
        warnings.len(),
        passes.len()
    );
    for warning in &warnings {
        assert_eq!(warning["level"], "WARN");
        assert_eq!(warning["fields"]["gateway"], "stripe");
        assert_eq!(warning["fields"]["error"], "unauthorized");
    }
    // Stripe was asked once per pass, not once per payment; its payments
    // unchanged.
    assert!(
        calls <= passes.len() + 1,
        "{calls} calls in {} passes",
        passes.len()
    );
    // The oldest is asked each pass, the others skipped: none changes.
    let mut refused_checks = 0;
    for id in &stripe_payments {
        let payment: Value = client()
            .get(format!("{}/api/v1/order-payments/{id}/", server.address))
            .bearer_auth(API_TOKEN)
            .send()
            .await
            .expect("the API answers")
            .json()
            .await
            .expect("JSON");
        assert_eq!(payment["status"], "pending_external", "{payment}");
        if payment["last_reconciliation"]["result"]
            .as_str()
            .is_some_and(|r| r.starts_with("error: unauthorized"))
        {
            refused_checks += 1;
        }
    }
    assert!(refused_checks >= 1);
    // PayPal's payment completed meanwhile, with one token.
    assert_eq!(paypal.token_calls(), 1);
    let tokens = paypal.issued_tokens();
    assert!(tokens[0].starts_with(PAYPAL_TOKEN_PREFIX));

    // The error answer of the route names the status, not the key.
    let mut answer = client()
        .post(format!(
            "{}/api/v1/order-payments/{}/reconcile/",
            server.address, stripe_payments[1]
        ))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .expect("the API answers");
    assert_eq!(answer.status().as_u16(), 502);
    let body = text(&answer.body().await.expect("a body"));
    assert_eq!(
        body,
        r#"{"message":"the gateway refused the credentials (401)","status":"error"}"#
    );
    let metrics = text(
        &client()
            .get(format!("{}/metrics", server.address))
            .send()
            .await
            .expect("metrics")
            .body()
            .limit(4 << 20)
            .await
            .expect("a body"),
    );
    assert!(
        metrics
            .contains("payhook_reconcile_errors_total{gateway=\"stripe\",error=\"unauthorized\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("payhook_reconcile_changes_total{gateway=\"paypal\"} 1"));

    let check = payhook(
        &["check-config"],
        &[
            ("DATABASE_URL", database_url.as_str()),
            ("STRIPE_API_KEY", wrong_key),
            ("PAYPAL_CLIENT_ID", PAYPAL_CLIENT_ID),
            ("PAYPAL_CLIENT_SECRET", PAYPAL_CLIENT_SECRET),
        ],
    )
    .await;
    let config = text(&check.stdout);
    assert!(config.contains("reconciled gateways"), "{config}");

    let log = server.log.lock().expect("the log").join("\n");
    assert!(
        log.contains("reconciliation is on for stripe, paypal"),
        "{log}"
    );
    let mut secrets = vec![wrong_key, PAYPAL_CLIENT_SECRET, "9f8e7d6c5b4a"];
    secrets.extend(tokens.iter().map(String::as_str));
    // The tail Stripe's 401 body repeats, masked.
    secrets.push("****5b4a");
    for secret in secrets {
        for (what, haystack) in [
            ("the log", &log),
            ("check-config", &config),
            ("the error body", &body),
            ("the metrics", &metrics),
        ] {
            assert!(!haystack.contains(secret), "{what} shows {secret}");
        }
    }
    let mut completed = client()
        .get(format!(
            "{}/api/v1/order-payments/{paypal_payment}/",
            server.address
        ))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .expect("the API answers");
    let completed: Value = completed.json().await.expect("JSON");
    assert_eq!(completed["status"], "completed", "{completed}");
}

#[actix_rt::test]
async fn two_processes_ask_about_each_payment_once_per_pass() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let mut databases = vec![(
        "sqlite",
        format!("sqlite://{}", directory.path().join("two.db").display()),
        None,
    )];
    if let Some(database) = PostgresDb::create("reconcile_two_processes") {
        databases.push(("postgres", database.url.clone(), Some(database)));
    }
    for (backend, database_url, _database) in &databases {
        let payments = {
            let server = Server::start(database_url, &[]);
            pending_payments(&server.address, "twice", 20).await
        };
        let (key_a, key_b) = ("sk_test_process_a_0001", "sk_test_process_b_0002");
        let stripe = StandIn::stripe(&[key_a, key_b]);
        for n in 0..payments.len() {
            let intent = format!("pi_twice_{n}");
            stripe.reply(
                &intent,
                Reply::Object(stripe_object("payment_intent.processing", &intent)),
            );
        }
        // Each process's first request waits until the other's arrives, so
        // their passes run at the same time.
        stripe.gate(2, Duration::from_secs(8));
        let common = [
            ("PAYHOOK_STRIPE_API_BASE", stripe.base.as_str()),
            ("PAYHOOK_RECONCILE_AFTER", "0s"),
            // One pass each in this test.
            ("PAYHOOK_RECONCILE_INTERVAL", "1h"),
            ("PAYHOOK_RECONCILE_BATCH", "5"),
        ];
        let with_key = |key: &'static str| {
            let mut env = common.to_vec();
            env.push(("STRIPE_API_KEY", key));
            env
        };
        let (a, b) = std::thread::scope(|scope| {
            let a = scope.spawn(|| Server::start(database_url, &with_key(key_a)));
            let b = scope.spawn(|| Server::start(database_url, &with_key(key_b)));
            (a.join().expect("start a"), b.join().expect("start b"))
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        while stripe.seen().len() < 10 {
            assert!(Instant::now() < deadline, "{backend}: {:?}", stripe.seen());
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
        // Time for a second, wrong, check to arrive.
        actix_rt::time::sleep(Duration::from_millis(1500)).await;
        let seen = stripe.seen();
        let mut per_payment: HashMap<&str, usize> = HashMap::new();
        let mut per_process: HashMap<&str, usize> = HashMap::new();
        for request in &seen {
            *per_payment.entry(request.object.as_str()).or_default() += 1;
            *per_process.entry(request.credential.as_str()).or_default() += 1;
        }
        assert_eq!(seen.len(), 10, "{backend}: {seen:?}");
        assert!(
            per_payment.values().all(|checks| *checks == 1),
            "{backend}: a payment asked twice: {per_payment:?}"
        );
        // Each took a batch of its own, five payments.
        assert_eq!(
            per_process.get(key_a),
            Some(&5),
            "{backend}: {per_process:?}"
        );
        assert_eq!(
            per_process.get(key_b),
            Some(&5),
            "{backend}: {per_process:?}"
        );
        stripe.assert_no_unexpected_request();
        drop((a, b));
        stripe.stop().await;
    }
}

#[actix_rt::test]
async fn sigterm_stops_the_reconciler_in_the_middle_of_a_pass() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let database_url = format!("sqlite://{}", directory.path().join("term.db").display());
    // The stand-in holds every answer for a minute: the pass stays in flight.
    let stripe = StandIn::stripe(&[STRIPE_KEY]);
    stripe.gate(2, Duration::from_secs(60));
    let mut server = Server::start(
        &database_url,
        &[
            ("STRIPE_API_KEY", STRIPE_KEY),
            ("PAYHOOK_STRIPE_API_BASE", stripe.base.as_str()),
            ("PAYHOOK_RECONCILE_AFTER", "0s"),
            ("PAYHOOK_RECONCILE_INTERVAL", "200ms"),
        ],
    );
    let payments = pending_payments(&server.address, "term_reconcile", 1).await;
    stripe
        .wait_checks("pi_term_reconcile_0", 1, Duration::from_secs(10))
        .await;
    let signal = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(signal.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = server.child.try_wait().expect("poll the server") {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "the server exits without waiting for the gateway"
        );
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "{exit:?}");
    let log = server.log.lock().expect("the log").join("\n");
    assert!(log.contains("reconciler stopped"), "{log}");
    assert!(log.contains("closing the database pool"), "{log}");
    // Nothing was applied; the claim runs out and the payment is due again.
    let store =
        DieselStore::open(&database_url, &StoreOptions::default()).expect("open the database");
    let payment = store
        .payment(PaymentId(payments[0]))
        .await
        .expect("a payment");
    assert_eq!(payment.status.as_str(), "pending_external");
    assert!(store.events().await.expect("the events").is_empty());
}
