//! The operator console in a real headless Chromium, driven over WebDriver
//! (`fantoccini` talking to `chromedriver`, which this test starts on a
//! free port of 127.0.0.1). It walks what an operator does: sign in, find
//! a confirmed payment by its external id, read its timeline, open an event
//! and replay it, re-queue a dead notification, sign out; and shows that a
//! form posted without its CSRF token or from another origin changes
//! nothing, and that a `<script>` a gateway sent is shown as text and
//! never runs.
//!
//! Each page is saved as a PNG under `$CARGO_TARGET_DIR/console-screenshots/`
//! (the workspace's `target/` without the variable), so CI keeps them.
//!
//! Without `chromedriver` and Chromium the test says SKIPPED loudly on
//! stderr and passes, unless `PAYHOOK_REQUIRE_BROWSER=1` (CI sets it), where
//! their absence fails it.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpResponse, HttpServer};
use awc::http::StatusCode;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use crate::console::{get, post};
use crate::helpers::{intent_succeeded, spawn_app_with, TestApp, API_TOKEN};

/// The shop's notification secret in this test.
const SHOP_SECRET: &str = "whsec_c2hvcC1zZWNyZXQtZm9yLXRlc3RzLW9ubHk=";

/// What a gateway put in a metadata field: it would retitle the page and
/// add an element if it ran.
const SCRIPT: &str = "<script>document.title='pwned';document.body.append(Object.assign(document.createElement('p'),{id:'pwned'}))</script>";

/// The first of `names` found on `PATH`.
fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// chromedriver and the browser, or why the test cannot run.
fn browser() -> Result<(PathBuf, PathBuf), String> {
    let driver = on_path(&["chromedriver"]).ok_or("chromedriver is not on PATH")?;
    let chromium = on_path(&["chromium", "chromium-browser", "google-chrome"])
        .ok_or("chromium is not on PATH")?;
    Ok((driver, chromium))
}

/// chromedriver, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start(path: &Path) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The shop's notification endpoint: 500 while `failing`, then 200.
struct Shop {
    url: String,
    failing: Arc<AtomicBool>,
    delivered: Arc<AtomicUsize>,
}

impl Shop {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("an address").port();
        let failing = Arc::new(AtomicBool::new(true));
        let delivered = Arc::new(AtomicUsize::new(0));
        let (fail, count) = (failing.clone(), delivered.clone());
        let server = HttpServer::new(move || {
            let (fail, count) = (fail.clone(), count.clone());
            App::new().route(
                "/hook",
                web::post().to(move || {
                    let (fail, count) = (fail.clone(), count.clone());
                    async move {
                        if fail.load(Ordering::SeqCst) {
                            HttpResponse::InternalServerError().finish()
                        } else {
                            count.fetch_add(1, Ordering::SeqCst);
                            HttpResponse::Ok().finish()
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
            failing,
            delivered,
        }
    }
}

/// Where the screenshots go.
fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let dir = target.join("console-screenshots");
    std::fs::create_dir_all(&dir).expect("the screenshot directory");
    dir
}

async fn screenshot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "{name} is a PNG");
    std::fs::write(screenshot_dir().join(format!("{name}.png")), png).expect("saved");
}

async fn api(app: &TestApp, path: &str) -> Value {
    let mut response = awc::Client::default()
        .get(format!("{}{path}", app.address))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .expect("the API answers");
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    response.json().await.expect("JSON")
}

/// Polls `check` every 50 ms until it returns `Some`, for at most 10 s.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "waited 10 s for {what}");
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How many times the event reached the store (each replay of an
/// unmatched one counts).
async fn attempts(app: &TestApp, event: i64) -> i64 {
    api(app, &format!("/api/v1/webhook-events/{event}/")).await["attempts"]
        .as_i64()
        .expect("attempts")
}

async fn text(browser: &Client, css: &str) -> String {
    browser
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .expect("its text")
}

async fn click(browser: &Client, css: &str) {
    browser
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

async fn path_of(browser: &Client) -> String {
    let url = browser.current_url().await.expect("a URL");
    match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    }
}

async fn wait_for_path(browser: &Client, prefix: &str) -> String {
    eventually(&format!("a page under {prefix}"), || async {
        let path = path_of(browser).await;
        path.starts_with(prefix).then_some(path)
    })
    .await
}

/// Waits for exactly `path`: where the page before is under it (the
/// sign-in page is under `/console/`), [`wait_for_path`] would return at
/// once, before the browser has left it.
async fn wait_for_exact_path(browser: &Client, path: &str) {
    eventually(&format!("the page {path}"), || async {
        (path_of(browser).await == path).then_some(())
    })
    .await
}

#[actix_rt::test]
async fn an_operator_walks_the_console_in_a_real_browser() {
    let (driver_path, chromium) = match browser() {
        Ok(found) => found,
        Err(missing) => {
            if std::env::var("PAYHOOK_REQUIRE_BROWSER").as_deref() == Ok("1") {
                panic!("PAYHOOK_REQUIRE_BROWSER=1 but {missing}");
            }
            eprintln!(
                "\n*** SKIPPED console_browser: {missing}. Install Debian's chromium and \
                 chromium-driver to run the browser tests (CI does). ***\n"
            );
            return;
        }
    };
    let shop = Shop::start();
    let app = spawn_app_with(&[
        ("PAYHOOK_NOTIFY_URL", &shop.url),
        ("PAYHOOK_NOTIFY_SECRET", SHOP_SECRET),
        ("PAYHOOK_NOTIFY_POLL_MS", "50"),
        ("PAYHOOK_NOTIFY_BACKOFF_BASE_MS", "50"),
        ("PAYHOOK_NOTIFY_BACKOFF_MAX_MS", "200"),
        ("PAYHOOK_NOTIFY_TIMEOUT_MS", "2000"),
        ("PAYHOOK_NOTIFY_MAX_ATTEMPTS", "1"),
    ]);

    // A confirmed payment whose notification died (the shop answered 500).
    let payment = app.pending_payment("pi_browser_walk").await;
    let payment_id = payment["id"].as_i64().expect("an id");
    let answer = app
        .send_stripe_event(&intent_succeeded("evt_browser_walk", "pi_browser_walk"))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    let dead = eventually("a dead notification", || async {
        let listed = api(&app, "/api/v1/notifications/?status=dead").await;
        listed["notifications"][0]["id"].as_i64()
    })
    .await;
    // An event that matched nothing, with a script in its metadata.
    let mut hostile = intent_succeeded("evt_browser_script", "pi_browser_nobody");
    hostile["data"]["object"]["metadata"]["note"] = json!(SCRIPT);
    let answer = app.send_stripe_event(&hostile).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{answer:?}");
    let hostile_id = api(&app, "/api/v1/webhook-events/?outcome=unmatched").await["items"][0]["id"]
        .as_i64()
        .expect("the unmatched event");

    let driver = Driver::start(&driver_path);
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,800", "--force-device-scale-factor=1",
            ],
        }),
    );
    let browser = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a Chromium session");
    // A failed assertion unwinds past `close`; dropping `driver` then
    // stops chromedriver, and its browser with it.
    walk(&app, &browser, &shop, payment_id, dead, hostile_id).await;
    browser.close().await.expect("the session closes");
    drop(driver);
}

async fn walk(
    app: &TestApp,
    browser: &Client,
    shop: &Shop,
    payment_id: i64,
    dead: i64,
    hostile_id: i64,
) {
    let console = |path: &str| format!("{}{path}", app.address);

    // Not signed in: sent to the sign-in page.
    browser.goto(&console("/console/")).await.expect("goto");
    wait_for_path(browser, "/console/sign-in/").await;
    assert_eq!(text(browser, "h1").await, "Sign in");
    screenshot(browser, "sign-in").await;
    browser
        .find(Locator::Css("#token"))
        .await
        .expect("the token field")
        .send_keys(API_TOKEN)
        .await
        .expect("typed");
    click(browser, "main form button[type=submit]").await;
    wait_for_exact_path(browser, "/console/").await;
    assert_eq!(text(browser, "h1").await, "Overview");
    let counts = text(browser, "dl.counts").await;
    assert!(counts.contains("Dead notifications\n1"), "{counts}");
    assert!(counts.contains("Unmatched webhook events\n1"), "{counts}");
    browser
        .find(Locator::Css("svg#webhook-chart"))
        .await
        .expect("the chart");
    screenshot(browser, "overview").await;

    // Find the payment by its external id.
    click(browser, "nav a[href='/console/payments/']").await;
    wait_for_path(browser, "/console/payments/").await;
    browser
        .find(Locator::Css("#q"))
        .await
        .expect("the search box")
        .send_keys("pi_browser_walk")
        .await
        .expect("typed");
    click(browser, "form[role=search] button").await;
    wait_for_path(browser, "/console/payments/?q=").await;
    screenshot(browser, "payments").await;
    click(
        browser,
        &format!("a[href='/console/payments/{payment_id}/']"),
    )
    .await;
    wait_for_path(browser, &format!("/console/payments/{payment_id}/")).await;
    assert_eq!(text(browser, "h1").await, format!("Payment {payment_id}"));
    assert!(text(browser, "#details").await.contains("Details"));
    let timeline = text(browser, "#timeline-table").await;
    for expected in [
        "payment_intent.succeeded",
        "evt_browser_walk",
        "confirmed",
        "order.paid",
        "dead",
    ] {
        assert!(timeline.contains(expected), "{expected} in {timeline}");
    }
    // The committed docs/console.png is this page at 1280x800.
    screenshot(browser, "payment").await;

    // Open its event and replay it: already processed, nothing changes.
    click(browser, "#timeline-table a[href^='/console/events/']").await;
    wait_for_path(browser, "/console/events/").await;
    assert_eq!(text(browser, "#outcome").await, "confirmed");
    screenshot(browser, "event").await;
    click(browser, "#replay-button").await;
    let path = eventually("the replay's answer", || async {
        let now = path_of(browser).await;
        now.contains("replayed=").then_some(now)
    })
    .await;
    assert!(path.ends_with("?replayed=duplicate"), "{path}");
    assert_eq!(
        text(browser, "#notice").await,
        "Replayed: already processed, nothing changed."
    );
    screenshot(browser, "event-replayed").await;

    // Re-queue the dead notification; the shop now answers 200.
    shop.failing.store(false, Ordering::SeqCst);
    click(browser, "nav a[href='/console/notifications/']").await;
    wait_for_path(browser, "/console/notifications/").await;
    let row = text(browser, &format!("#notification-{dead}")).await;
    assert!(row.contains("order.paid") && row.contains("dead"), "{row}");
    screenshot(browser, "notifications").await;
    click(browser, &format!("#notification-{dead} button")).await;
    let path = eventually("the re-queue's answer", || async {
        let now = path_of(browser).await;
        now.contains("requeued=").then_some(now)
    })
    .await;
    assert_eq!(path, format!("/console/notifications/?requeued={dead}"));
    assert!(text(browser, "#notice").await.contains("re-queued"));
    eventually("the re-queued notification delivered", || async {
        let listed = api(app, "/api/v1/notifications/?status=delivered").await;
        let delivered = listed["notifications"]
            .as_array()
            .is_some_and(|rows| rows.iter().any(|row| row["id"] == dead));
        delivered.then_some(())
    })
    .await;
    assert!(shop.delivered.load(Ordering::SeqCst) >= 1);
    screenshot(browser, "notifications-requeued").await;

    // The events list, filtered, and the hostile event shown as text.
    browser
        .goto(&console("/console/events/?outcome=unmatched"))
        .await
        .expect("goto");
    assert!(text(browser, "#events-table").await.contains("unmatched"));
    screenshot(browser, "events").await;
    click(browser, &format!("a[href='/console/events/{hostile_id}/']")).await;
    wait_for_path(browser, &format!("/console/events/{hostile_id}/")).await;
    let body = text(browser, "#raw-body").await;
    assert!(body.contains(SCRIPT), "the script is shown as text: {body}");
    assert_eq!(
        browser.title().await.expect("a title"),
        format!("Webhook event {hostile_id} · payhook console")
    );
    assert!(browser
        .find_all(Locator::Css("script"))
        .await
        .expect("a query")
        .is_empty());
    assert!(browser
        .find_all(Locator::Css("#pwned"))
        .await
        .expect("a query")
        .is_empty());
    screenshot(browser, "event-escaped").await;

    // Forged forms with the browser's own session change nothing.
    let session = browser
        .get_named_cookie("payhook_console")
        .await
        .expect("the session cookie")
        .value()
        .to_owned();
    let before = attempts(app, hostile_id).await;
    let replay = format!("/console/events/{hostile_id}/replay/");
    let csrf = crate::console::csrf_of(
        &get(
            app,
            &format!("/console/events/{hostile_id}/"),
            Some(&session),
        )
        .await,
    );
    let without_token = post(app, &replay, &[], Some(&session), Some(&app.address)).await;
    assert_eq!(without_token.status, StatusCode::FORBIDDEN);
    let other_origin = post(
        app,
        &replay,
        &[("csrf", &csrf)],
        Some(&session),
        Some("http://evil.example"),
    )
    .await;
    assert_eq!(other_origin.status, StatusCode::FORBIDDEN);
    assert_eq!(
        attempts(app, hostile_id).await,
        before,
        "a forged replay ran"
    );

    // Sign out: the old cookie opens nothing any more.
    click(browser, "form.sign-out button").await;
    wait_for_path(browser, "/console/sign-in/").await;
    screenshot(browser, "signed-out").await;
    let after = get(app, "/console/", Some(&session)).await;
    assert_eq!(after.status, StatusCode::SEE_OTHER);
    browser.goto(&console("/console/")).await.expect("goto");
    wait_for_path(browser, "/console/sign-in/").await;
}
