//! Liveness and readiness: unauthenticated, and ready once migrated.

use awc::http::StatusCode;
use serde_json::json;

use crate::helpers::{spawn_app, spawn_app_without};

#[actix_rt::test]
async fn healthz_answers_that_the_process_is_alive() {
    let app = spawn_app();

    let answer = app.healthz().await;

    assert_eq!(
        answer.assert_status(StatusCode::OK),
        &json!({"status": "ok"})
    );
}

#[actix_rt::test]
async fn readyz_answers_ready_on_a_migrated_database() {
    let app = spawn_app();

    let answer = app.readyz().await;

    assert_eq!(
        answer.assert_status(StatusCode::OK),
        &json!({"status": "ready"})
    );
}

#[actix_rt::test]
async fn health_checks_need_no_token_and_no_gateway() {
    let app = spawn_app_without(&["PAYHOOK_API_TOKEN", "STRIPE_WEBHOOK_SECRET"]);

    assert_eq!(app.healthz().await.status, StatusCode::OK);
    assert_eq!(app.readyz().await.status, StatusCode::OK);
}
