//! `GET /api/openapi.json`: the OpenAPI document describes every route the
//! server registers, with its method.

use awc::http::{Method, StatusCode};
use payhook_server::routes::ROUTES;
use serde_json::Value;

use crate::helpers::{spawn_app, TestApp};

/// `method path` without a token; the status, `Allow` and the JSON body.
async fn send(app: &TestApp, method: Method, path: &str) -> (StatusCode, Option<String>, Value) {
    let mut response = awc::Client::default()
        .request(method, format!("{}{path}", app.address))
        .send()
        .await
        .expect("the server answers");
    let body = response.body().limit(1024 * 1024).await.expect("a body");
    let allow = response
        .headers()
        .get("allow")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let json = serde_json::from_slice(&body).expect("a JSON body");
    (response.status(), allow, json)
}

async fn document(app: &TestApp) -> Value {
    let (status, _, document) = send(app, Method::GET, "/api/openapi.json").await;
    assert_eq!(status, StatusCode::OK, "{document}");
    document
}

#[actix_rt::test]
async fn the_document_lists_every_registered_route_with_its_method() {
    let app = spawn_app();
    let document = document(&app).await;
    assert!(
        document["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.")),
        "{document}"
    );
    let paths = document["paths"].as_object().expect("a paths object");
    assert!(!ROUTES.is_empty());
    let mut missing = Vec::new();
    for endpoint in ROUTES {
        let method = endpoint.verb.as_str().to_ascii_lowercase();
        if paths
            .get(endpoint.path)
            .and_then(|item| item.get(&method))
            .is_none()
        {
            missing.push(format!("{} {}", endpoint.verb.as_str(), endpoint.path));
        }
    }
    assert!(missing.is_empty(), "not in /api/openapi.json: {missing:?}");
}

#[actix_rt::test]
async fn the_document_describes_no_route_that_is_not_served() {
    let app = spawn_app();
    let document = document(&app).await;
    let paths = document["paths"].as_object().expect("a paths object");
    for (path, item) in paths {
        for method in item.as_object().expect("a path item").keys() {
            if method == "parameters" {
                continue;
            }
            assert!(
                ROUTES
                    .iter()
                    .any(|e| e.path == path && e.verb.as_str().eq_ignore_ascii_case(method)),
                "documented but not registered: {method} {path}"
            );
        }
    }
}

#[actix_rt::test]
async fn management_operations_require_the_bearer_scheme() {
    let app = spawn_app();
    let document = document(&app).await;
    assert_eq!(
        document["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let order = &document["paths"]["/api/v1/orders/"]["post"];
    assert_eq!(order["security"][0]["bearer"], serde_json::json!([]));
    for status in ["201", "400", "401", "429", "503"] {
        assert!(order["responses"].get(status).is_some(), "{status}");
    }
    let webhook = &document["paths"]["/api/v1/order-payments/webhooks/{gateway}/"]["post"];
    for status in ["200", "400", "404", "413", "415", "429", "500", "503"] {
        assert!(webhook["responses"].get(status).is_some(), "{status}");
    }
}

#[actix_rt::test]
async fn another_method_on_a_known_path_answers_405_with_allow() {
    let app = spawn_app();
    let (status, allow, body) = send(&app, Method::DELETE, "/api/v1/orders/").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");
    assert_eq!(allow.as_deref(), Some("POST"));
    assert_eq!(body["status"], "error", "{body}");
}

#[actix_rt::test]
async fn an_invalid_query_is_answered_with_the_json_error() {
    let app = spawn_app();
    let (status, _, body) = send(&app, Method::GET, "/api/v1/notifications/?bogus=1").await;
    // Without a token the query is not even read: 401 comes first or the
    // extractor refuses it; either way the answer is the contract's JSON.
    assert!(
        status == StatusCode::BAD_REQUEST || status == StatusCode::UNAUTHORIZED,
        "{status} {body}"
    );
    assert_eq!(body["status"], "error", "{body}");
}

/// The schema `reference` (`#/components/schemas/<name>`) points at.
fn resolve<'a>(document: &'a Value, reference: &Value) -> &'a Value {
    let name = reference["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
        .unwrap_or_else(|| panic!("a component reference: {reference}"));
    &document["components"]["schemas"][name]
}

/// The `enum` of a property, following a `$ref` when there is one.
fn property_enum(document: &Value, schema: &str, property: &str) -> Vec<String> {
    let property = &document["components"]["schemas"][schema]["properties"][property];
    let target = if property.get("$ref").is_some() {
        resolve(document, property)
    } else {
        property
    };
    target["enum"]
        .as_array()
        .unwrap_or_else(|| panic!("an enum for {schema}: {target}"))
        .iter()
        .map(|v| v.as_str().expect("a name").to_owned())
        .collect()
}

#[actix_rt::test]
async fn payment_and_order_statuses_are_enums_of_every_status() {
    let app = spawn_app();
    let document = document(&app).await;

    assert_eq!(
        property_enum(&document, "PaymentBody", "status"),
        [
            "created",
            "pending_external",
            "completed",
            "failed",
            "canceled",
            "partially_refunded",
            "refunded",
        ]
    );
    assert_eq!(
        property_enum(&document, "OrderBody", "status"),
        ["pending", "paid", "refunded"]
    );
    let order = &document["components"]["schemas"]["OrderBody"];
    assert!(
        order["required"]
            .as_array()
            .is_some_and(|r| r.contains(&Value::from("paid_amount"))),
        "{order}"
    );
    let paid_amount = &order["properties"]["paid_amount"];
    assert_eq!(paid_amount["type"], "string", "{paid_amount}");
    assert!(
        paid_amount["description"]
            .as_str()
            .is_some_and(|d| d.contains("completed payments")),
        "{paid_amount}"
    );
}

#[actix_rt::test]
async fn a_payment_creation_documents_the_currency_and_closed_order_refusals() {
    let app = spawn_app();
    let document = document(&app).await;
    let responses = &document["paths"]["/api/v1/order-payments/"]["post"]["responses"];

    let bad_request = responses["400"]["description"].as_str().unwrap_or_default();
    assert!(
        bad_request.contains("currency other than the order's"),
        "{bad_request}"
    );
    let conflict = responses["409"]["description"].as_str().unwrap_or_default();
    assert!(
        conflict.contains("paid") && conflict.contains("refunded"),
        "{conflict}"
    );
}

/// The query parameter `name` of the webhook-event list.
fn event_filter<'a>(document: &'a Value, name: &str) -> &'a Value {
    document["paths"]["/api/v1/webhook-events/"]["get"]["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("a {name} parameter"))
}

#[actix_rt::test]
async fn the_outcome_filter_lists_the_lifecycle_outcomes() {
    let app = spawn_app();
    let document = document(&app).await;
    let outcome = event_filter(&document, "outcome");
    let names = outcome["schema"]["enum"].as_array().expect("an enum");
    for name in [
        "unmatched",
        "confirmed",
        "canceled",
        "pending",
        "already_canceled",
        "late_cancel_ignored",
    ] {
        assert!(names.contains(&Value::from(name)), "{name} in {names:?}");
    }
    // A bad value is answered with the same list.
    let answer = app.list_events("outcome=processed").await;
    let message = answer.assert_error(StatusCode::BAD_REQUEST);
    for name in names {
        let name = name.as_str().expect("a name");
        assert!(message.contains(name), "{name} in {message}");
    }
}

/// The property names of the component schema `name`, sorted.
fn properties(document: &Value, name: &str) -> Vec<String> {
    let schema = &document["components"]["schemas"][name];
    let mut names: Vec<String> = schema["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("properties of {name}: {schema}"))
        .keys()
        .cloned()
        .collect();
    names.sort_unstable();
    names
}

/// The component schema a property refers to, through `$ref`, an array's
/// `items` or a nullable `oneOf`.
fn referred<'a>(document: &'a Value, schema: &str, property: &str) -> &'a Value {
    let property = &document["components"]["schemas"][schema]["properties"][property];
    let target = if let Some(items) = property.get("items") {
        items
    } else if let Some(choices) = property.get("oneOf").and_then(Value::as_array) {
        choices
            .iter()
            .find(|choice| choice.get("$ref").is_some())
            .unwrap_or_else(|| panic!("a reference among {property}"))
    } else {
        property
    };
    resolve(document, target)
}

#[actix_rt::test]
async fn a_payment_documents_its_refunds_and_its_dispute() {
    let app = spawn_app();
    let document = document(&app).await;

    let payment = properties(&document, "PaymentBody");
    for field in ["refunded_amount", "refunds", "dispute"] {
        assert!(payment.iter().any(|p| p == field), "{field} in {payment:?}");
    }
    let refunded =
        &document["components"]["schemas"]["PaymentBody"]["properties"]["refunded_amount"];
    assert_eq!(refunded["type"], "string", "{refunded}");
    assert_eq!(
        document["components"]["schemas"]["PaymentBody"]["properties"]["refunds"]["type"],
        "array"
    );

    let refund = referred(&document, "PaymentBody", "refunds");
    let mut refund_fields: Vec<&str> = refund["properties"]
        .as_object()
        .expect("refund properties")
        .keys()
        .map(String::as_str)
        .collect();
    refund_fields.sort_unstable();
    assert_eq!(refund_fields, ["amount", "currency", "refund_id", "status"]);
    assert_eq!(
        property_enum(&document, "RefundBody", "status"),
        ["pending", "succeeded", "failed", "canceled"]
    );

    let dispute = referred(&document, "PaymentBody", "dispute");
    let mut dispute_fields: Vec<&str> = dispute["properties"]
        .as_object()
        .expect("dispute properties")
        .keys()
        .map(String::as_str)
        .collect();
    dispute_fields.sort_unstable();
    assert_eq!(
        dispute_fields,
        ["amount", "currency", "dispute_id", "reason", "status"]
    );
    assert_eq!(
        property_enum(&document, "DisputeBody", "status"),
        ["open", "won", "lost", "closed"]
    );
}

#[actix_rt::test]
async fn the_webhook_answer_documents_the_refund_and_dispute_fields_and_the_409() {
    let app = spawn_app();
    let document = document(&app).await;

    assert_eq!(
        properties(&document, "WebhookAnswer"),
        [
            "dispute_status",
            "message",
            "payment_id",
            "payment_status",
            "refunded_amount",
            "status",
            "transaction_id",
        ]
    );
    assert_eq!(
        property_enum(&document, "WebhookAnswer", "dispute_status"),
        ["open", "won", "lost", "closed"]
    );
    assert_eq!(
        property_enum(&document, "WebhookAnswer", "payment_status"),
        property_enum(&document, "PaymentBody", "status")
    );
    let webhook = &document["paths"]["/api/v1/order-payments/webhooks/{gateway}/"]["post"];
    let conflict = webhook["responses"]["409"]["description"]
        .as_str()
        .unwrap_or_default();
    assert!(conflict.contains("not completed"), "{conflict}");
    let bad_request = webhook["responses"]["400"]["description"]
        .as_str()
        .unwrap_or_default();
    assert!(bad_request.contains("refund refused"), "{bad_request}");
    let replay = &document["paths"]["/api/v1/webhook-events/{id}/replay/"]["post"];
    assert!(replay["responses"].get("409").is_some(), "{replay}");
}

#[actix_rt::test]
async fn the_event_list_documents_the_kind_filter() {
    let app = spawn_app();
    let document = document(&app).await;
    let kind = event_filter(&document, "kind");
    assert_eq!(kind["in"], "query");
    assert_eq!(
        kind["schema"]["enum"],
        serde_json::json!([
            "succeeded",
            "failed",
            "canceled",
            "pending",
            "refund",
            "dispute"
        ])
    );
    // A listed event's kind is the same enum.
    assert_eq!(
        property_enum(&document, "EventItem", "kind"),
        [
            "succeeded",
            "failed",
            "canceled",
            "pending",
            "refund",
            "dispute"
        ]
    );
}

#[actix_rt::test]
async fn the_outcome_filter_lists_the_refund_and_dispute_outcomes() {
    let app = spawn_app();
    let document = document(&app).await;
    let outcome = event_filter(&document, "outcome");
    let names = outcome["schema"]["enum"].as_array().expect("an enum");
    for name in [
        "refund_recorded",
        "refund_rejected",
        "dispute_recorded",
        "dispute_unchanged",
        "awaiting_completion",
    ] {
        assert!(names.contains(&Value::from(name)), "{name} in {names:?}");
        // And the filter takes it.
        app.list_events(&format!("outcome={name}"))
            .await
            .assert_status(StatusCode::OK);
    }
}

#[actix_rt::test]
async fn the_event_list_documents_the_source_filter_and_field() {
    let app = spawn_app();
    let document = document(&app).await;
    let source = event_filter(&document, "source");
    assert_eq!(source["in"], "query");
    assert_eq!(
        source["schema"]["enum"],
        serde_json::json!(["webhook", "reconcile"])
    );
    assert_eq!(
        property_enum(&document, "EventItem", "source"),
        ["webhook", "reconcile"]
    );
}

#[actix_rt::test]
async fn the_reconcile_route_and_the_last_reconciliation_are_documented() {
    let app = spawn_app();
    let document = document(&app).await;
    let operation = &document["paths"]["/api/v1/order-payments/{id}/reconcile/"]["post"];
    assert_eq!(operation["security"][0]["bearer"], serde_json::json!([]));
    for status in ["200", "400", "401", "404", "429", "500", "502", "503"] {
        assert!(
            operation["responses"].get(status).is_some(),
            "{status}: {operation}"
        );
    }
    assert!(
        operation["responses"]["502"]["headers"]
            .get("Retry-After")
            .is_some(),
        "{operation}"
    );
    let dry_run = operation["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .find(|p| p["name"] == "dry_run")
        .expect("a dry_run parameter");
    assert_eq!(dry_run["in"], "query");
    let answer = properties(&document, "ReconcileAnswer");
    assert_eq!(
        answer,
        [
            "gateway",
            "gateway_state",
            "outcome",
            "payment",
            "payment_id",
            "result",
            "status",
            "status_before",
            "transaction_id"
        ]
    );
    assert_eq!(
        property_enum(&document, "ReconcileAnswer", "result"),
        ["applied", "already_known", "would_apply", "no_change"]
    );
    let payment = properties(&document, "PaymentBody");
    assert!(
        payment.iter().any(|p| p == "last_reconciliation"),
        "{payment:?}"
    );
    let last = referred(&document, "PaymentBody", "last_reconciliation");
    let mut fields: Vec<&str> = last["properties"]
        .as_object()
        .expect("properties")
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(fields, ["checked_at", "gateway_state", "result"]);
}
