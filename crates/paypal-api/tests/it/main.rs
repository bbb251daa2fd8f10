//! `PayPalApi` against a stand-in PayPal on 127.0.0.1: the calls it makes
//! (credentials, form body, Bearer token, path), the token cache, and what
//! each answer becomes.

mod stand_in;

use std::sync::{Arc, Barrier};
use std::time::Duration;

use chrono::DateTime;
use payhook_domain::{
    Currency, EventKind, GatewayApi, GatewayApiError, Money, OrderId, Payment, PaymentId,
    PaymentStatus, Secret,
};
use payhook_paypal_api::{PayPalApi, PayPalApiConfig, PayPalEnvironment, MAX_BODY_BYTES};

use stand_in::{Answer, StandIn, CLIENT_ID, CLIENT_SECRET, TOKEN_PREFIX};

const ORDER: &str = "5O190127TN364715T";
const CAPTURE: &str = "2GG279541U471931P";

/// A fixture of the adapter crate, whose mapping this crate calls.
fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../adapters-paypal/tests/fixtures/api/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
}

fn config_for(stand_in: &StandIn, secret: &str) -> PayPalApiConfig {
    PayPalApiConfig::new(CLIENT_ID, Secret::new(secret), PayPalEnvironment::Sandbox)
        .unwrap()
        .with_base_url(&stand_in.url)
        .unwrap()
        .with_timeout(Duration::from_secs(5))
}

fn api(stand_in: &StandIn) -> PayPalApi {
    PayPalApi::new(config_for(stand_in, CLIENT_SECRET))
}

fn payment(external_id: Option<&str>) -> Payment {
    let usd = Currency::parse("USD").unwrap();
    let at = DateTime::from_timestamp(1_796_000_000, 0).unwrap();
    Payment {
        id: PaymentId(7),
        order_id: OrderId(3),
        transaction_id: "TXN-8F3A2C91D4".into(),
        payment_method: "paypal".into(),
        amount: Money::from_minor(15000, usd),
        status: PaymentStatus::PendingExternal,
        external_id: external_id.map(str::to_owned),
        gateway_reference: None,
        amount_mismatch: None,
        refunded_amount: Money::zero(usd),
        dispute: None,
        created_at: at,
        updated_at: at,
    }
}

/// A stand-in with the completed order of the fixtures.
fn with_completed_order() -> StandIn {
    let stand_in = StandIn::start();
    stand_in.order(ORDER, Answer::new(200, fixture("order-completed.json")));
    stand_in
}

/// Asserts that nothing secret or from the body is in the error's texts.
fn assert_discreet(error: &GatewayApiError) {
    for text in [error.to_string(), format!("{error:?}")] {
        assert!(!text.contains(CLIENT_SECRET), "{text}");
        assert!(!text.contains(TOKEN_PREFIX), "{text}");
        assert!(!text.contains("BODYMARKER"), "{text}");
    }
}

#[actix_rt::test]
async fn a_completed_order_is_read_with_the_documented_calls() {
    let stand_in = with_completed_order();
    let api = api(&stand_in);
    assert_eq!(api.gateway(), "paypal");

    let state = api.state(&payment(Some(ORDER))).await.unwrap();

    assert_eq!(state.object_id, ORDER);
    assert_eq!(state.object_type, "order");
    assert_eq!(state.state, "COMPLETED.COMPLETED");
    assert_eq!(state.kind, Some(EventKind::Succeeded));
    assert_eq!(
        state.amount,
        Some(Money::from_minor(15000, Currency::parse("USD").unwrap()))
    );
    assert_eq!(state.gateway_reference.as_deref(), Some(CAPTURE));
    assert_eq!(state.body, fixture("order-completed.json"));
    // The stand-in answers a token only for the right Basic credentials and
    // form body, and the order only for a token it issued.
    assert_eq!(stand_in.token_requests(), 1);
    assert_eq!(stand_in.issued().len(), 1);
    assert_eq!(
        stand_in.order_paths(),
        vec![format!("/v2/checkout/orders/{ORDER}")]
    );
    assert!(
        stand_in.unexpected().is_empty(),
        "{:?}",
        stand_in.unexpected()
    );
}

#[actix_rt::test]
async fn the_token_is_fetched_once_for_several_calls() {
    let stand_in = with_completed_order();
    let api = api(&stand_in);
    for _ in 0..3 {
        api.state(&payment(Some(ORDER))).await.unwrap();
    }
    // A second API object from a clone of the configuration shares it too.
    let second = PayPalApi::new(api.config().clone());
    second.state(&payment(Some(ORDER))).await.unwrap();
    assert_eq!(stand_in.token_requests(), 1);
    assert_eq!(stand_in.order_requests(), 4);
}

#[actix_rt::test]
async fn the_token_is_fetched_again_after_it_expires() {
    let stand_in = with_completed_order();
    // Used for half of its one second, as it lives less than twice the
    // margin.
    stand_in.expires_in(1);
    let api = api(&stand_in);
    api.state(&payment(Some(ORDER))).await.unwrap();
    api.state(&payment(Some(ORDER))).await.unwrap();
    assert_eq!(stand_in.token_requests(), 1);
    actix_rt::time::sleep(Duration::from_millis(700)).await;
    api.state(&payment(Some(ORDER))).await.unwrap();
    assert_eq!(stand_in.token_requests(), 2);
}

#[actix_rt::test]
async fn a_refused_token_is_fetched_again_once() {
    let stand_in = with_completed_order();
    let api = api(&stand_in);
    api.state(&payment(Some(ORDER))).await.unwrap();
    stand_in.revoke_tokens();

    let state = api.state(&payment(Some(ORDER))).await.unwrap();

    assert_eq!(state.kind, Some(EventKind::Succeeded));
    assert_eq!(stand_in.token_requests(), 2);
    assert_eq!(stand_in.order_requests(), 3);
    // And the new token is kept.
    api.state(&payment(Some(ORDER))).await.unwrap();
    assert_eq!(stand_in.token_requests(), 2);
}

#[actix_rt::test]
async fn a_second_refusal_is_unauthorized() {
    let stand_in = with_completed_order();
    stand_in.refuse_all_tokens();
    let api = api(&stand_in);

    let error = api.state(&payment(Some(ORDER))).await.unwrap_err();

    assert_eq!(error, GatewayApiError::Unauthorized { status: 401 });
    assert_discreet(&error);
    assert_eq!(stand_in.token_requests(), 2);
    assert_eq!(stand_in.order_requests(), 2);
}

#[test]
fn clones_on_two_threads_share_one_token() {
    let stand_in = with_completed_order();
    // A slow token endpoint: without one fetch at a time, both threads
    // would be fetching.
    stand_in.token_delay(Duration::from_millis(300));
    let config = config_for(&stand_in, CLIENT_SECRET);
    let start = Arc::new(Barrier::new(2));
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let config = config.clone();
            let start = start.clone();
            std::thread::spawn(move || {
                actix_rt::System::new().block_on(async move {
                    let api = PayPalApi::new(config);
                    start.wait();
                    for _ in 0..3 {
                        let state = api.state(&payment(Some(ORDER))).await.unwrap();
                        assert_eq!(state.kind, Some(EventKind::Succeeded));
                    }
                });
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("a thread failed");
    }
    assert_eq!(stand_in.token_requests(), 1);
    assert_eq!(stand_in.order_requests(), 6);
}

#[actix_rt::test]
async fn a_wrong_client_secret_is_unauthorized() {
    let stand_in = with_completed_order();
    let api = PayPalApi::new(config_for(&stand_in, "wrong-secret-BODYMARKER"));

    let error = api.state(&payment(Some(ORDER))).await.unwrap_err();

    assert_eq!(error, GatewayApiError::Unauthorized { status: 401 });
    assert!(!error.to_string().contains("wrong-secret"), "{error}");
    assert_eq!(stand_in.token_requests(), 1);
    assert_eq!(stand_in.order_requests(), 0);
}

#[actix_rt::test]
async fn each_order_answer_maps_as_documented() {
    let stand_in = StandIn::start();
    let huge = {
        let mut body = fixture("order-completed.json");
        body.pop();
        body.pop();
        body.extend_from_slice(b",\"padding\":\"");
        body.resize(MAX_BODY_BYTES + 10, b'x');
        body.extend_from_slice(b"\"}");
        body
    };
    let rate_limited = Answer {
        retry_after: Some("7".into()),
        ..Answer::new(
            429,
            r#"{"name":"RATE_LIMIT_REACHED","message":"BODYMARKER"}"#,
        )
    };
    let another = String::from_utf8(fixture("order-completed.json"))
        .unwrap()
        .replace(ORDER, "9XY98765ZW432109V");
    let rows: Vec<(&str, Answer, GatewayApiError)> = vec![
        (
            "GONE-1",
            Answer::new(
                404,
                r#"{"name":"RESOURCE_NOT_FOUND","debug_id":"BODYMARKER"}"#,
            ),
            GatewayApiError::NotFound,
        ),
        (
            "SLOW-1",
            rate_limited,
            GatewayApiError::RateLimited {
                retry_after: Some(Duration::from_secs(7)),
            },
        ),
        (
            "SLOW-2",
            Answer::new(429, "{}"),
            GatewayApiError::RateLimited { retry_after: None },
        ),
        (
            "DOWN-1",
            Answer::new(
                500,
                r#"{"name":"INTERNAL_SERVER_ERROR","message":"BODYMARKER"}"#,
            ),
            GatewayApiError::Unavailable { status: Some(500) },
        ),
        (
            "DOWN-2",
            Answer::new(503, "BODYMARKER"),
            GatewayApiError::Unavailable { status: Some(503) },
        ),
        (
            "FORBIDDEN-1",
            Answer::new(403, r#"{"name":"NOT_AUTHORIZED","message":"BODYMARKER"}"#),
            GatewayApiError::Unauthorized { status: 403 },
        ),
        (
            "BAD-1",
            Answer::new(400, r#"{"name":"INVALID_REQUEST","message":"BODYMARKER"}"#),
            GatewayApiError::Rejected { status: 400 },
        ),
        (
            "BAD-2",
            Answer::new(
                422,
                r#"{"name":"UNPROCESSABLE_ENTITY","message":"BODYMARKER"}"#,
            ),
            GatewayApiError::Rejected { status: 422 },
        ),
        (
            "MOVED-1",
            Answer::new(302, ""),
            GatewayApiError::Rejected { status: 302 },
        ),
        (
            "HUGE-1",
            Answer::new(200, huge),
            GatewayApiError::Malformed(format!("the answer is larger than {MAX_BODY_BYTES} bytes")),
        ),
        (
            "ODD-1",
            Answer::new(200, r#"{"BODYMARKER":["not an order"]}"#),
            GatewayApiError::Malformed("missing field id".into()),
        ),
        (
            "ODD-2",
            Answer::new(200, "<html>BODYMARKER</html>"),
            GatewayApiError::Malformed("malformed JSON: invalid JSON at line 1 column 1".into()),
        ),
        (
            ORDER,
            Answer::new(200, another),
            GatewayApiError::Malformed("the answer is another order than the one asked for".into()),
        ),
    ];
    for (id, answer, _) in &rows {
        stand_in.order(id, answer.clone());
    }
    let api = api(&stand_in);
    for (id, _, expected) in rows {
        let error = api.state(&payment(Some(id))).await.unwrap_err();
        assert_eq!(error, expected, "{id}");
        assert_discreet(&error);
    }
    // The order id the stand-in does not know at all.
    assert_eq!(
        api.state(&payment(Some("UNKNOWN-1"))).await.unwrap_err(),
        GatewayApiError::NotFound
    );
    assert_eq!(stand_in.token_requests(), 1);
}

#[actix_rt::test]
async fn each_token_answer_maps_as_documented() {
    let rows: Vec<(Answer, GatewayApiError)> = vec![
        (
            Answer::new(
                400,
                r#"{"error":"invalid_client","error_description":"BODYMARKER"}"#,
            ),
            GatewayApiError::Unauthorized { status: 400 },
        ),
        (
            Answer::new(
                401,
                r#"{"error":"invalid_client","error_description":"BODYMARKER"}"#,
            ),
            GatewayApiError::Unauthorized { status: 401 },
        ),
        (
            Answer::new(403, "{}"),
            GatewayApiError::Unauthorized { status: 403 },
        ),
        (
            Answer::new(
                400,
                r#"{"error":"unsupported_grant_type","error_description":"BODYMARKER"}"#,
            ),
            GatewayApiError::Rejected { status: 400 },
        ),
        (
            Answer {
                retry_after: Some("Thu, 01 Jan 1970 00:00:00 GMT".into()),
                ..Answer::new(429, "{}")
            },
            GatewayApiError::RateLimited {
                retry_after: Some(Duration::ZERO),
            },
        ),
        (
            Answer::new(502, "BODYMARKER"),
            GatewayApiError::Unavailable { status: Some(502) },
        ),
        (Answer::new(404, "{}"), GatewayApiError::NotFound),
        (
            Answer::new(
                200,
                r#"{"access_token":"A21AAStandInToken-x","token_type":"Bearer"}"#,
            ),
            GatewayApiError::Malformed("token answer: no positive expires_in".into()),
        ),
        (
            Answer::new(200, "BODYMARKER"),
            GatewayApiError::Malformed("token answer: not the documented object".into()),
        ),
    ];
    for (answer, expected) in rows {
        let stand_in = with_completed_order();
        stand_in.token_answer(answer);
        let error = api(&stand_in)
            .state(&payment(Some(ORDER)))
            .await
            .unwrap_err();
        assert_eq!(error, expected);
        assert_discreet(&error);
        assert_eq!(stand_in.order_requests(), 0, "{expected:?}");
    }
}

#[actix_rt::test]
async fn no_answer_is_unavailable() {
    // A port that was just free: nothing listens there.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let config = PayPalApiConfig::new(
        CLIENT_ID,
        Secret::new(CLIENT_SECRET),
        PayPalEnvironment::Live,
    )
    .unwrap()
    .with_base_url(&closed)
    .unwrap();
    let error = PayPalApi::new(config)
        .state(&payment(Some(ORDER)))
        .await
        .unwrap_err();
    assert_eq!(error, GatewayApiError::Unavailable { status: None });

    let stand_in = StandIn::start();
    stand_in.order(
        ORDER,
        Answer {
            delay: Duration::from_secs(3),
            ..Answer::new(200, fixture("order-completed.json"))
        },
    );
    let slow = PayPalApi::new(
        config_for(&stand_in, CLIENT_SECRET).with_timeout(Duration::from_millis(300)),
    );
    let error = slow.state(&payment(Some(ORDER))).await.unwrap_err();
    assert_eq!(error, GatewayApiError::Unavailable { status: None });
}

#[actix_rt::test]
async fn only_plain_order_ids_are_asked_for() {
    let stand_in = with_completed_order();
    let api = api(&stand_in);
    for external_id in [
        None,
        Some(""),
        Some("../v1/oauth2/token"),
        Some("5O19 0127"),
        Some("5O1?x=1"),
    ] {
        assert_eq!(
            api.state(&payment(external_id)).await.unwrap_err(),
            GatewayApiError::NoReference,
            "{external_id:?}"
        );
    }
    assert_eq!(stand_in.token_requests(), 0);
    assert_eq!(stand_in.order_requests(), 0);
}

#[actix_rt::test]
async fn debug_shows_neither_the_secret_nor_the_token() {
    let stand_in = with_completed_order();
    let api = api(&stand_in);
    api.state(&payment(Some(ORDER))).await.unwrap();
    let token = stand_in.issued().pop().unwrap();
    for shown in [format!("{api:?}"), format!("{:?}", api.config())] {
        assert!(!shown.contains(CLIENT_SECRET), "{shown}");
        assert!(!shown.contains(&token), "{shown}");
        assert!(shown.contains("[redacted]"), "{shown}");
        assert!(shown.contains("[cached]"), "{shown}");
    }
}
