//! Retention through HTTP and the command line: the background pruner
//! empties the bodies of old processed events and deletes old delivered
//! notifications, keeps the rows that dedupe re-deliveries and the
//! notifications not delivered yet; `payhook prune` does the same on
//! demand, and its dry run changes nothing.
//!
//! Rows are made old by moving their times back in the database, beside
//! the server: the pruner then runs against the real clock.

use std::collections::HashMap;
use std::net::TcpListener;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpResponse, HttpServer};
use awc::http::StatusCode;
use diesel::connection::SimpleConnection;
use diesel::Connection;
use serde_json::Value;

use crate::helpers::{intent_succeeded, spawn_app_with, spawn_apps_with, TestApp};
use crate::processes::Server;

/// Moves every event's arrival and processing times (its kept body's
/// arrival too) and every delivery time `days` back, in one transaction,
/// so the pruner sees all of it old or none. An event is never processed
/// before it arrived, and the pruner's scan starts from the bodies'
/// arrival.
fn age_rows(database_url: &str, days: u32) {
    match database_url.strip_prefix("sqlite://") {
        Some(path) => {
            let mut conn = diesel::SqliteConnection::establish(path).expect("open SQLite");
            // The format diesel writes and reads, fractions kept.
            conn.batch_execute(&format!(
                "PRAGMA busy_timeout = 10000; BEGIN IMMEDIATE;
                 UPDATE webhook_events
                    SET received_at = strftime('%Y-%m-%d %H:%M:%f', received_at, '-{days} days'),
                        processed_at = strftime('%Y-%m-%d %H:%M:%f', processed_at, '-{days} days');
                 UPDATE webhook_event_bodies
                    SET received_at = strftime('%Y-%m-%d %H:%M:%f', received_at, '-{days} days');
                 UPDATE outbox
                    SET delivered_at = strftime('%Y-%m-%d %H:%M:%f', delivered_at, '-{days} days')
                  WHERE delivered_at IS NOT NULL;
                 COMMIT;"
            ))
            .expect("age the SQLite rows");
        }
        None => {
            let mut conn = diesel::PgConnection::establish(database_url).expect("open PostgreSQL");
            conn.batch_execute(&format!(
                "BEGIN;
                 UPDATE webhook_events SET received_at = received_at - interval '{days} days',
                    processed_at = processed_at - interval '{days} days';
                 UPDATE webhook_event_bodies SET received_at = received_at - interval '{days} days';
                 UPDATE outbox SET delivered_at = delivered_at - interval '{days} days'
                  WHERE delivered_at IS NOT NULL;
                 COMMIT;"
            ))
            .expect("age the PostgreSQL rows");
        }
    }
}

/// How the shop's stand-in answers the notifications of one payment.
#[derive(Clone, Copy)]
enum Answer {
    Ok,
    Fail,
    /// Takes the call and never answers: the row stays pending.
    Hang,
}

/// A shop endpoint answering by the notification's `transaction_id`
/// (unique across databases, so one serves every backend); 200 by default.
struct Shop {
    url: String,
    answers: Arc<Mutex<HashMap<String, Answer>>>,
    received: Arc<Mutex<Vec<String>>>,
}

impl Shop {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("an address").port();
        let answers: Arc<Mutex<HashMap<String, Answer>>> = Arc::default();
        let received: Arc<Mutex<Vec<String>>> = Arc::default();
        let (answers_in, received_in) = (answers.clone(), received.clone());
        let server = HttpServer::new(move || {
            let answers = answers_in.clone();
            let received = received_in.clone();
            App::new().route(
                "/hook",
                web::post().to(move |body: web::Json<Value>| {
                    let transaction = body["transaction_id"].as_str().unwrap_or("").to_owned();
                    let answer = answers
                        .lock()
                        .expect("answers")
                        .get(&transaction)
                        .copied()
                        .unwrap_or(Answer::Ok);
                    received.lock().expect("received").push(transaction);
                    async move {
                        match answer {
                            Answer::Ok => HttpResponse::Ok().finish(),
                            Answer::Fail => HttpResponse::InternalServerError().finish(),
                            Answer::Hang => {
                                actix_rt::time::sleep(Duration::from_secs(300)).await;
                                HttpResponse::Ok().finish()
                            }
                        }
                    }
                }),
            )
        })
        .workers(1)
        .listen(listener)
        .expect("the shop listens")
        .run();
        actix_rt::spawn(server);
        Self {
            url: format!("http://127.0.0.1:{port}/hook"),
            answers,
            received,
        }
    }
}

/// Polls `check` every 50 ms for up to 20 s; panics with `what` and the
/// last value seen.
async fn eventually<T: std::fmt::Debug, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match check().await {
            Ok(value) => return value,
            Err(last) if Instant::now() > deadline => panic!("{what}: {last}"),
            Err(_) => actix_rt::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// The outbox rows as `(payment_id, status)`.
async fn outbox(app: &TestApp) -> Vec<(i64, String)> {
    app.store
        .outbox()
        .await
        .expect("outbox")
        .into_iter()
        .map(|row| (row.payment_id, row.status))
        .collect()
}

/// Confirms `payment`, pending under `intent`, by `evt_<intent>`; returns
/// the event's id in the audit and the event.
async fn confirm(app: &TestApp, payment: &Value, intent: &str) -> (i64, Value) {
    let event = intent_succeeded(&format!("evt_{intent}"), intent);
    let answer = app.send_stripe_event(&event).await;
    let body = answer.assert_status(StatusCode::OK);
    assert_eq!(
        body["message"], "Payment confirmed",
        "{}: {body}",
        app.backend
    );
    let listed = app
        .list_events(&format!("payment_id={}", payment["id"]))
        .await;
    let id = listed.assert_status(StatusCode::OK)["items"][0]["id"]
        .as_i64()
        .expect("the event is listed");
    (id, event)
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
async fn the_pruner_empties_old_bodies_and_deletes_delivered_notifications_only() {
    let shop = Shop::start();
    let apps = spawn_apps_with(
        "retention_pruner",
        &[
            ("PAYHOOK_RETENTION_DAYS", "30"),
            ("PAYHOOK_PRUNE_INTERVAL", "1s"),
            ("PAYHOOK_NOTIFY_URL", &shop.url),
            ("PAYHOOK_NOTIFY_SECRET", "whsec_c2hvcC1zZWNyZXQ="),
            ("PAYHOOK_NOTIFY_POLL_MS", "50"),
            ("PAYHOOK_NOTIFY_MAX_ATTEMPTS", "1"),
            ("PAYHOOK_NOTIFY_TIMEOUT_MS", "120000"),
        ],
    );
    for app in &apps {
        let name = app.backend;
        // Delivered, dead (refused on its only attempt), pending (the shop
        // holds the call): one after the other, since the dispatcher waits
        // for a batch before claiming the next.
        let mut payments = Vec::new();
        for (intent, answer, status) in [
            ("delivered", Answer::Ok, "delivered"),
            ("dead", Answer::Fail, "dead"),
            ("pending", Answer::Hang, "pending"),
        ] {
            let intent = format!("pi_retention_{name}_{intent}");
            let payment = app.pending_payment(&intent).await;
            let transaction = payment["transaction_id"]
                .as_str()
                .expect("a transaction id")
                .to_owned();
            shop.answers
                .lock()
                .unwrap()
                .insert(transaction.clone(), answer);
            let (event_id, event) = confirm(app, &payment, &intent).await;
            let payment_id = payment["id"].as_i64().expect("a payment id");
            eventually(&format!("{name}: {intent} {status}"), || {
                let (app, shop, transaction) = (app, &shop, transaction.clone());
                async move {
                    let rows = outbox(app).await;
                    let reached = shop.received.lock().unwrap().contains(&transaction);
                    let settled = match status {
                        // A held call leaves the row pending: wait for the call.
                        "pending" => reached,
                        _ => rows.iter().any(|(p, s)| *p == payment_id && s == status),
                    };
                    if settled {
                        Ok(())
                    } else {
                        Err(format!("{rows:?}"))
                    }
                }
            })
            .await;
            payments.push((payment_id, event_id, event));
        }
        let before = outbox(app).await;
        assert_eq!(before.len(), 3, "{name}: {before:?}");
        // Fresh rows stay: the pruner has run (every second) and found
        // nothing old enough.
        actix_rt::time::sleep(Duration::from_millis(1500)).await;
        let detail = app.get_event(payments[0].1).await;
        let detail = detail.assert_status(StatusCode::OK);
        assert_eq!(detail["pruned_at"], Value::Null, "{name}: {detail}");
        assert!(
            detail["payload"]
                .as_str()
                .is_some_and(|body| body.contains("pi_retention")),
            "{name}: {detail}"
        );
        assert_eq!(outbox(app).await, before, "{name}");

        age_rows(&app.database_url, 31);
        for (_, event_id, _) in &payments {
            let detail = eventually(&format!("{name}: event {event_id} pruned"), || async {
                let detail = app.get_event(event_id).await;
                let detail = detail.assert_status(StatusCode::OK).clone();
                if detail["pruned_at"].is_string() {
                    Ok(detail)
                } else {
                    Err(detail.to_string())
                }
            })
            .await;
            // No body at all, rather than an empty one passed off as the
            // gateway's; the rest of the record is kept.
            assert!(detail.get("payload").is_none(), "{name}: {detail}");
            assert!(detail.get("payload_base64").is_none(), "{name}: {detail}");
            assert_eq!(detail["outcome"], "confirmed", "{name}: {detail}");
            assert!(detail["ref_external_id"].is_string(), "{name}: {detail}");
        }
        let after = eventually(&format!("{name}: delivered row deleted"), || async {
            let rows = outbox(app).await;
            if rows.len() == 2 {
                Ok(rows)
            } else {
                Err(format!("{rows:?}"))
            }
        })
        .await;
        assert_eq!(
            after,
            vec![
                (payments[1].0, "dead".to_owned()),
                (payments[2].0, "pending".to_owned())
            ],
            "{name}"
        );
        let metrics = metrics_text(app).await;
        assert!(
            metrics.contains("payhook_pruned_total{what=\"event_bodies\"} 3"),
            "{name}: {metrics}"
        );
        assert!(
            metrics.contains("payhook_pruned_total{what=\"outbox_rows\"} 1"),
            "{name}: {metrics}"
        );

        // A gateway's late retry and a replay of a pruned event are still
        // recognised, and change nothing.
        let (payment_id, event_id, event) = &payments[0];
        let order_before = app.get_payment(payment_id).await;
        let again = app.send_stripe_event(event).await;
        let again = again.assert_status(StatusCode::OK);
        assert_eq!(
            again["message"], "Webhook already processed",
            "{name}: {again}"
        );
        let replayed = app.replay_event(event_id).await;
        let replayed = replayed.assert_status(StatusCode::OK);
        assert_eq!(
            replayed["message"], "Webhook already processed",
            "{name}: {replayed}"
        );
        assert_eq!(
            app.get_payment(payment_id).await.body,
            order_before.body,
            "{name}"
        );
        assert_eq!(outbox(app).await, after, "{name}: a notification was added");
        let detail = app.get_event(event_id).await;
        let detail = detail.assert_status(StatusCode::OK);
        assert!(detail["pruned_at"].is_string(), "{name}: {detail}");
        assert!(detail.get("payload").is_none(), "{name}: {detail}");
        // The console says the same, and shows no body.
        let session = crate::console::sign_in(app).await;
        let page =
            crate::console::get(app, &format!("/console/events/{event_id}/"), Some(&session)).await;
        assert!(
            page.body.contains("Removed by retention at") && !page.body.contains("id=\"raw-body\""),
            "{name}: {}",
            page.body
        );
        let listed = app.list_events("").await;
        let listed = listed.assert_status(StatusCode::OK);
        assert_eq!(
            listed["items"].as_array().map(Vec::len),
            Some(3),
            "{name}: the events stay listed: {listed}"
        );
    }
}

fn payhook(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_payhook"));
    command.env_clear().args(args);
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("run payhook")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[actix_rt::test]
async fn payhook_prune_dry_run_changes_nothing_and_prune_removes() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite://{}", dir.path().join("payhook.db").display());
    // Retention off in the server, so only the command prunes.
    let app = spawn_app_with(&[("DATABASE_URL", &url), ("PAYHOOK_RETENTION_DAYS", "off")]);
    let intent = "pi_retention_cli";
    let payment = app.pending_payment(intent).await;
    let (event_id, _) = confirm(&app, &payment, intent).await;
    eventually("delivered", || async {
        let rows = outbox(&app).await;
        if rows.len() == 1 && rows[0].1 == "delivered" {
            Ok(())
        } else {
            Err(format!("{rows:?}"))
        }
    })
    .await;
    let env = [("DATABASE_URL", url.as_str())];

    // Nothing is old yet.
    let fresh = payhook(&["prune", "--dry-run"], &env);
    assert!(fresh.status.success(), "{fresh:?}");
    assert!(
        stdout(&fresh).contains("would prune 0 event bodies and 0 delivered notifications"),
        "{fresh:?}"
    );

    age_rows(&url, 10);
    let body_before = app.get_event(event_id).await.body;
    let dry = payhook(&["prune", "--dry-run", "--older-than", "7d"], &env);
    assert!(dry.status.success(), "{dry:?}");
    let text = stdout(&dry);
    assert!(
        text.contains("would prune 1 event bodies and 1 delivered notifications older than 7d"),
        "{text}"
    );
    assert!(text.contains("dry run, nothing changed"), "{text}");
    assert_eq!(app.get_event(event_id).await.body, body_before);
    assert_eq!(outbox(&app).await.len(), 1);

    // The default age is PAYHOOK_RETENTION_DAYS (90): ten days is not old.
    let default = payhook(&["prune"], &env);
    assert!(default.status.success(), "{default:?}");
    assert!(
        stdout(&default)
            .contains("pruned 0 event bodies and 0 delivered notifications older than 90d"),
        "{default:?}"
    );
    assert_eq!(app.get_event(event_id).await.body, body_before);

    let pruned = payhook(
        &["prune"],
        &[
            ("DATABASE_URL", url.as_str()),
            ("PAYHOOK_RETENTION_DAYS", "9"),
        ],
    );
    assert!(pruned.status.success(), "{pruned:?}");
    assert!(
        stdout(&pruned)
            .contains("pruned 1 event bodies and 1 delivered notifications older than 9d"),
        "{pruned:?}"
    );
    let detail = app.get_event(event_id).await;
    let detail = detail.assert_status(StatusCode::OK);
    assert!(detail["pruned_at"].is_string(), "{detail}");
    assert!(detail.get("payload").is_none(), "{detail}");
    assert!(outbox(&app).await.is_empty());

    // Refusals: a zero or unitless age, and no age at all with retention off.
    for bad in ["0d", "90", "soon"] {
        let output = payhook(&["prune", "--older-than", bad], &env);
        assert!(!output.status.success(), "{bad}: {output:?}");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("--older-than"),
            "{bad}: {output:?}"
        );
    }
    let off = payhook(
        &["prune"],
        &[
            ("DATABASE_URL", url.as_str()),
            ("PAYHOOK_RETENTION_DAYS", "off"),
        ],
    );
    assert!(!off.status.success(), "{off:?}");
    assert!(
        String::from_utf8_lossy(&off.stderr).contains("--older-than"),
        "{off:?}"
    );
}

#[test]
fn check_config_shows_the_retention_and_a_bad_one_stops_start_up() {
    let default = payhook(&["check-config"], &[]);
    assert!(default.status.success(), "{default:?}");
    let text = stdout(&default);
    let line = |name: &str| {
        text.lines()
            .find(|line| line.starts_with(name))
            .map(|line| line.split(" = ").nth(1).unwrap_or_default().to_owned())
    };
    assert_eq!(
        line("PAYHOOK_RETENTION_DAYS").as_deref(),
        Some("90"),
        "{text}"
    );
    assert_eq!(
        line("PAYHOOK_PRUNE_INTERVAL").as_deref(),
        Some("1h"),
        "{text}"
    );
    let off = payhook(&["check-config"], &[("PAYHOOK_RETENTION_DAYS", "off")]);
    assert!(stdout(&off).contains("off (nothing is pruned)"), "{off:?}");
    let short = payhook(&["check-config"], &[("PAYHOOK_RETENTION", "30m")]);
    assert!(short.status.success(), "{short:?}");
    assert!(
        stdout(&short)
            .lines()
            .any(|line| line.starts_with("PAYHOOK_RETENTION ") && line.ends_with("= 30m")),
        "{short:?}"
    );
    let both = payhook(
        &["check-config"],
        &[
            ("PAYHOOK_RETENTION", "30m"),
            ("PAYHOOK_RETENTION_DAYS", "7"),
        ],
    );
    assert_eq!(both.status.code(), Some(2), "{both:?}");

    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite://{}", dir.path().join("payhook.db").display());
    for bad in ["0", "ninety", "-5"] {
        let output = payhook(
            &["serve"],
            &[
                ("DATABASE_URL", url.as_str()),
                ("PAYHOOK_ADDR", "127.0.0.1:0"),
                ("PAYHOOK_RETENTION_DAYS", bad),
            ],
        );
        assert_eq!(output.status.code(), Some(2), "{bad}: {output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.lines().count(), 1, "{bad}: {stderr}");
        assert!(stderr.contains("PAYHOOK_RETENTION_DAYS"), "{bad}: {stderr}");
    }
}

#[actix_rt::test]
async fn the_openapi_document_describes_pruned_at() {
    let app = spawn_app_with(&[]);
    let mut response = awc::Client::default()
        .get(format!("{}/api/openapi.json", app.address))
        .send()
        .await
        .expect("the document");
    let document: Value = response.json().limit(1024 * 1024).await.expect("JSON");
    let detail = &document["components"]["schemas"]["EventDetailBody"];
    // The listing's fields come flattened in; `pruned_at` is the detail's own.
    let owned = detail["allOf"]
        .as_array()
        .and_then(|parts| parts.iter().find(|part| part["properties"].is_object()))
        .unwrap_or(detail);
    let pruned_at = &owned["properties"]["pruned_at"];
    assert_eq!(pruned_at["format"], "date-time", "{detail}");
    assert!(
        pruned_at["type"]
            .as_array()
            .is_some_and(|types| types.contains(&Value::from("null"))),
        "nullable: {detail}"
    );
    assert!(
        !owned["required"]
            .as_array()
            .is_some_and(|required| required.contains(&Value::from("payload"))),
        "{detail}"
    );
}

/// The `fields` of the server's JSON log lines with this message.
fn logged(server: &Server, message: &str) -> Vec<Value> {
    server
        .log
        .lock()
        .expect("log lock")
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|entry| entry["fields"]["message"] == message)
        .map(|entry| entry["fields"].clone())
        .collect()
}

#[test]
fn each_run_logs_its_counts_and_the_pruner_stops_with_the_server() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite://{}", dir.path().join("payhook.db").display());
    let mut server = Server::start(&url, &[("PAYHOOK_PRUNE_INTERVAL", "200ms")]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let runs = loop {
        let runs = logged(&server, "retention pruned");
        if runs.len() >= 2 {
            break runs;
        }
        assert!(
            Instant::now() < deadline,
            "{:?}",
            server.log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    for run in &runs {
        assert_eq!(run["event_bodies"], 0, "{run}");
        assert_eq!(run["outbox_rows"], 0, "{run}");
        assert!(run["before"].is_string(), "{run}");
    }
    let started = logged(&server, "retention pruner started");
    assert_eq!(started.len(), 1);
    assert_eq!(started[0]["retention"], "90d", "{:?}", started[0]);

    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    let exit = loop {
        if let Some(exit) = server.child.try_wait().expect("poll the server") {
            break exit;
        }
        assert!(Instant::now() < deadline, "the server exits");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit:?}");
    // The log reader may still be draining the pipe.
    let deadline = Instant::now() + Duration::from_secs(5);
    while logged(&server, "retention pruner stopped").is_empty() {
        assert!(
            Instant::now() < deadline,
            "{:?}",
            server.log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
