//! Every request `StripeApi` makes and every answer it maps.

use std::time::{Duration, Instant};

use payhook_adapters_stripe::api::ApiObject;
use payhook_domain::{Currency, EventKind, GatewayApi, GatewayApiError, Money, Secret};
use payhook_stripe_api::{object_of, StripeApi, StripeApiConfig, API_VERSION, MAX_BODY};

use crate::support::{api_fixture, payment, Reply, Seen, StandIn, INTENT_ID, KEY, SESSION_ID};

fn intent_path() -> String {
    format!("/v1/payment_intents/{INTENT_ID}")
}

fn session_path() -> String {
    format!("/v1/checkout/sessions/{SESSION_ID}")
}

fn usd(minor: i64) -> Money {
    Money::from_minor(minor, Currency::parse("USD").unwrap())
}

#[actix_rt::test]
async fn a_payment_intent_is_fetched_by_its_path_with_the_key_and_version() {
    let stripe = StandIn::start();
    let body = api_fixture("payment_intent.succeeded");
    stripe.on(&intent_path(), Reply::ok(body.clone()));
    let api = stripe.client();
    assert_eq!(api.gateway(), "stripe");

    let state = api.state(&payment(Some(INTENT_ID), None)).await.unwrap();

    assert_eq!(state.object_id, INTENT_ID);
    assert_eq!(state.object_type, "payment_intent");
    assert_eq!(state.state, "succeeded");
    assert_eq!(state.kind, Some(EventKind::Succeeded));
    assert_eq!(state.amount, Some(usd(1099)));
    assert_eq!(state.gateway_reference.as_deref(), Some(INTENT_ID));
    assert_eq!(state.body, body);
    assert_eq!(
        stripe.seen(),
        vec![Seen {
            method: "GET".to_owned(),
            target: intent_path(),
            authorization: Some(format!("Bearer {KEY}")),
            stripe_version: Some(API_VERSION.to_owned()),
        }]
    );
}

#[actix_rt::test]
async fn a_checkout_session_is_fetched_by_its_path() {
    let stripe = StandIn::start();
    stripe.on(
        &session_path(),
        Reply::ok(api_fixture("checkout.session.complete.paid")),
    );
    let state = stripe
        .client()
        .state(&payment(Some(SESSION_ID), None))
        .await
        .unwrap();
    assert_eq!(state.object_type, "checkout.session");
    assert_eq!(state.state, "complete.paid");
    assert_eq!(state.kind, Some(EventKind::Succeeded));
    assert_eq!(state.amount, Some(usd(1099)));
    assert_eq!(state.gateway_reference.as_deref(), Some(INTENT_ID));
    let seen = stripe.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].target, session_path());
}

#[actix_rt::test]
async fn every_documented_state_comes_back_as_mapped() {
    let stripe = StandIn::start();
    let api = stripe.client();
    let intents = [
        (
            "payment_intent.canceled",
            "canceled",
            Some(EventKind::Canceled),
        ),
        (
            "payment_intent.processing",
            "processing",
            Some(EventKind::Pending),
        ),
        (
            "payment_intent.requires_action",
            "requires_action",
            Some(EventKind::Pending),
        ),
        (
            "payment_intent.requires_payment_method.failed",
            "requires_payment_method",
            Some(EventKind::Failed),
        ),
        ("payment_intent", "requires_payment_method", None),
        ("payment_intent.requires_capture", "requires_capture", None),
        (
            "payment_intent.requires_confirmation",
            "requires_confirmation",
            None,
        ),
    ];
    for (fixture, state, kind) in intents {
        stripe.on(&intent_path(), Reply::ok(api_fixture(fixture)));
        let read = api.state(&payment(Some(INTENT_ID), None)).await.unwrap();
        assert_eq!((read.state.as_str(), read.kind), (state, kind), "{fixture}");
    }
    let sessions = [
        (
            "checkout.session.complete.unpaid",
            "complete.unpaid",
            Some(EventKind::Pending),
        ),
        (
            "checkout.session.expired",
            "expired.unpaid",
            Some(EventKind::Canceled),
        ),
        ("checkout.session", "open.unpaid", None),
    ];
    for (fixture, state, kind) in sessions {
        stripe.on(&session_path(), Reply::ok(api_fixture(fixture)));
        let read = api.state(&payment(Some(SESSION_ID), None)).await.unwrap();
        assert_eq!((read.state.as_str(), read.kind), (state, kind), "{fixture}");
    }
}

#[actix_rt::test]
async fn the_object_is_chosen_by_the_payments_ids() {
    let stripe = StandIn::start();
    stripe
        .on(
            &intent_path(),
            Reply::ok(api_fixture("payment_intent.succeeded")),
        )
        .on(
            &session_path(),
            Reply::ok(api_fixture("checkout.session.complete.paid")),
        );
    let api = stripe.client();

    // The external id decides, even when a reference is known.
    let by_session = api
        .state(&payment(Some(SESSION_ID), Some(INTENT_ID)))
        .await
        .unwrap();
    assert_eq!(by_session.object_type, "checkout.session");
    // An external id of another kind: the PaymentIntent the webhooks
    // recorded as the reference.
    let by_reference = api
        .state(&payment(
            Some("ch_3PqR8sLkdIwHu7ix1Lm6Np7Q"),
            Some(INTENT_ID),
        ))
        .await
        .unwrap();
    assert_eq!(by_reference.object_type, "payment_intent");
    let by_reference_only = api.state(&payment(None, Some(INTENT_ID))).await.unwrap();
    assert_eq!(by_reference_only.object_id, INTENT_ID);
    assert_eq!(
        stripe
            .seen()
            .iter()
            .map(|seen| seen.target.clone())
            .collect::<Vec<_>>(),
        vec![session_path(), intent_path(), intent_path()]
    );

    // Nothing Stripe's API can look up: no request at all.
    for (external, reference) in [
        (None, None),
        (Some("ch_3PqR8sLkdIwHu7ix1Lm6Np7Q"), None),
        (Some("ch_1"), Some("ch_1")),
        // A session is never looked up by the reference.
        (None, Some(SESSION_ID)),
        (Some("TXN-1"), Some("re_1")),
    ] {
        assert_eq!(
            api.state(&payment(external, reference)).await,
            Err(GatewayApiError::NoReference),
            "{external:?} {reference:?}"
        );
    }
    assert_eq!(stripe.seen().len(), 3);
    assert_eq!(
        object_of(&payment(Some(SESSION_ID), None)),
        Some((ApiObject::CheckoutSession, SESSION_ID))
    );
}

#[actix_rt::test]
async fn an_id_that_could_reach_another_path_is_refused_unsent() {
    let stripe = StandIn::start();
    stripe.on(
        &intent_path(),
        Reply::ok(api_fixture("payment_intent.succeeded")),
    );
    let api = stripe.client();
    for id in [
        "pi_1/../../v1/customers",
        "pi_..",
        "cs_../payment_intents/pi_1",
        "pi_1%2F..%2Fx",
        "pi_1?expand[]=customer",
        "pi_1#x",
        "pi_1 x",
        "pi_1\nHost: evil",
        "pi_",
    ] {
        assert_eq!(
            api.state(&payment(Some(id), None)).await,
            Err(GatewayApiError::NoReference),
            "{id:?}"
        );
        assert_eq!(
            api.state(&payment(None, Some(id))).await,
            Err(GatewayApiError::NoReference),
            "{id:?}"
        );
        assert_eq!(
            api.fetch(ApiObject::PaymentIntent, id).await,
            Err(GatewayApiError::NoReference),
            "{id:?}"
        );
    }
    assert_eq!(stripe.seen(), Vec::new());
}

#[actix_rt::test]
async fn a_wrong_key_is_unauthorized() {
    let stripe = StandIn::start();
    stripe.on(
        &intent_path(),
        Reply::ok(api_fixture("payment_intent.succeeded")),
    );
    let api = stripe.client_with_key("sk_test_wrongKey");
    let error = api
        .state(&payment(Some(INTENT_ID), None))
        .await
        .unwrap_err();
    assert_eq!(error, GatewayApiError::Unauthorized { status: 401 });
    assert!(!error.to_string().contains("sk_test"), "{error}");
    assert_eq!(
        stripe.seen()[0].authorization.as_deref(),
        Some("Bearer sk_test_wrongKey")
    );
}

#[actix_rt::test]
async fn statuses_map_to_the_documented_errors() {
    let stripe = StandIn::start();
    let api = stripe.client();
    let error_body = br#"{"error":{"message":"sensitive detail","type":"api_error"}}"#.to_vec();
    let cases = [
        (
            Reply::status(403, error_body.clone()),
            GatewayApiError::Unauthorized { status: 403 },
        ),
        (
            Reply::status(404, error_body.clone()),
            GatewayApiError::NotFound,
        ),
        (
            Reply::status(429, error_body.clone()).header("Retry-After", "7"),
            GatewayApiError::RateLimited {
                retry_after: Some(Duration::from_secs(7)),
            },
        ),
        (
            Reply::status(429, error_body.clone()),
            GatewayApiError::RateLimited { retry_after: None },
        ),
        (
            Reply::status(500, error_body.clone()),
            GatewayApiError::Unavailable { status: Some(500) },
        ),
        (
            Reply::status(503, Vec::new()),
            GatewayApiError::Unavailable { status: Some(503) },
        ),
        (
            Reply::status(400, error_body.clone()),
            GatewayApiError::Rejected { status: 400 },
        ),
        (
            Reply::status(402, error_body.clone()),
            GatewayApiError::Rejected { status: 402 },
        ),
        (
            Reply::status(302, Vec::new()).header("Location", "http://127.0.0.1:1/elsewhere"),
            GatewayApiError::Rejected { status: 302 },
        ),
    ];
    for (reply, expected) in cases {
        stripe.on(&intent_path(), reply);
        let error = api
            .state(&payment(Some(INTENT_ID), None))
            .await
            .unwrap_err();
        assert_eq!(error, expected);
        assert!(!error.to_string().contains("sensitive"), "{error}");
    }
    // A path the stand-in does not know: Stripe's 404.
    assert_eq!(
        api.state(&payment(Some("pi_unknown"), None)).await,
        Err(GatewayApiError::NotFound)
    );
    // The redirect was not followed.
    assert!(stripe
        .seen()
        .iter()
        .all(|seen| seen.target.starts_with("/v1/")));
}

#[actix_rt::test]
async fn answers_that_are_not_the_object_asked_for_are_malformed() {
    let stripe = StandIn::start();
    let api = stripe.client();
    let payment = payment(Some(INTENT_ID), None);

    stripe.on(
        &intent_path(),
        Reply::ok(b"<html>maintenance</html>".to_vec()),
    );
    let error = api.state(&payment).await.unwrap_err();
    assert!(matches!(error, GatewayApiError::Malformed(_)), "{error:?}");
    assert!(!error.to_string().contains("maintenance"), "{error}");

    // A session where an intent was asked for.
    stripe.on(
        &intent_path(),
        Reply::ok(api_fixture("checkout.session.complete.paid")),
    );
    assert!(matches!(
        api.state(&payment).await,
        Err(GatewayApiError::Malformed(text)) if text.contains("object")
    ));

    // Another intent than the one asked for.
    let other = String::from_utf8(api_fixture("payment_intent.succeeded"))
        .unwrap()
        .replace(INTENT_ID, "pi_1SomeoneElsesIntent0000");
    stripe.on(&intent_path(), Reply::ok(other.into_bytes()));
    assert_eq!(
        api.state(&payment).await,
        Err(GatewayApiError::Malformed(
            "the answer is another object than the one asked for".to_owned()
        ))
    );

    // Larger than the limit, whatever it holds.
    let mut huge = api_fixture("payment_intent.succeeded");
    huge.truncate(huge.len() - 2);
    huge.extend_from_slice(b",\"padding\":\"");
    huge.resize(MAX_BODY + 1, b'x');
    huge.extend_from_slice(b"\"}");
    stripe.on(&intent_path(), Reply::ok(huge));
    assert!(matches!(
        api.state(&payment).await,
        Err(GatewayApiError::Malformed(text)) if text.contains("larger")
    ));
}

#[actix_rt::test]
async fn a_slow_answer_times_out_as_unavailable() {
    let stripe = StandIn::start();
    stripe.on(
        &intent_path(),
        Reply::ok(api_fixture("payment_intent.succeeded")).after(Duration::from_secs(3)),
    );
    let api = StripeApi::new(stripe.config(KEY).with_timeout(Duration::from_millis(300))).unwrap();
    let started = Instant::now();
    let answer = api.state(&payment(Some(INTENT_ID), None)).await;
    assert_eq!(answer, Err(GatewayApiError::Unavailable { status: None }));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[actix_rt::test]
async fn no_server_is_unavailable() {
    // A port that was just free: nothing listens on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = StripeApiConfig::new(Secret::new(KEY))
        .with_base_url(format!("http://127.0.0.1:{port}"))
        .with_timeout(Duration::from_secs(2));
    let api = StripeApi::new(config).unwrap();
    assert_eq!(
        api.state(&payment(Some(INTENT_ID), None)).await,
        Err(GatewayApiError::Unavailable { status: None })
    );
}

#[actix_rt::test]
async fn a_trailing_slash_in_the_base_url_is_ignored() {
    let stripe = StandIn::start();
    stripe.on(
        &intent_path(),
        Reply::ok(api_fixture("payment_intent.canceled")),
    );
    let config = stripe
        .config(KEY)
        .with_base_url(format!("{}/", stripe.base_url));
    let api = StripeApi::new(config).unwrap();
    let state = api.state(&payment(Some(INTENT_ID), None)).await.unwrap();
    assert_eq!(state.kind, Some(EventKind::Canceled));
    assert_eq!(stripe.seen()[0].target, intent_path());
}

#[actix_rt::test]
async fn debug_never_shows_the_key() {
    let stripe = StandIn::start();
    let config = stripe.config(KEY);
    let api = StripeApi::new(config.clone()).unwrap();
    for shown in [
        format!("{config:?}"),
        format!("{api:?}"),
        format!("{:#?}", api.config()),
    ] {
        assert!(!shown.contains(KEY), "{shown}");
        assert!(!shown.contains("sk_test"), "{shown}");
        assert!(shown.contains("[redacted]"), "{shown}");
        assert!(shown.contains(&stripe.base_url), "{shown}");
    }
}
