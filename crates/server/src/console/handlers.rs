//! The console's handlers: check the session (and, for a POST, the origin
//! and the CSRF token), call the same service or store query as the
//! management API, render a page or redirect.
//!
//! Every POST checks, in this order, before reading anything else: the
//! console is on, the `Origin` is this server's, there is a live session,
//! the form carries that session's CSRF token. A failed check changes
//! nothing.

use actix_web::http::header::{self, ContentType};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{TimeDelta, Utc};
use maud::Markup;
use payhook_domain::ports::{EventFilter, EventOutcome, EventSource, OutboxStore};
use payhook_domain::{
    EventKind, OutboxStatus, OverviewStore, PaymentId, ReconcileStore, WebhookError, WebhookOutcome,
};
use serde::Deserialize;

use super::pages::{self, EventFilterForm};
use super::security::{cleared_cookie, cookie_secure, same_origin, session_cookie, session_id};
use super::session::Session;
use super::ConsoleError;
use crate::api_types::STORED_KIND_NAMES;
use crate::routes::api::{search, search_text};
use crate::state::AppState;

/// How far back the overview's webhook counts go.
const OVERVIEW_WINDOW: TimeDelta = TimeDelta::hours(24);
/// How long a payment may stay pending at its gateway before the overview
/// counts it as needing a person.
const PENDING_TOO_LONG: TimeDelta = TimeDelta::hours(1);
/// Most notifications listed per status, and per order on a payment page.
const NOTIFICATIONS_SHOWN: u32 = 200;

fn page(markup: Markup) -> HttpResponse {
    page_with(StatusCode::OK, markup)
}

fn page_with(status: StatusCode, markup: Markup) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header(ContentType::html())
        .body(markup.into_string())
}

fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

/// The console is on when the management API is.
fn ensure_on(state: &AppState) -> Result<(), ConsoleError> {
    state
        .api_token
        .as_ref()
        .map(|_| ())
        .ok_or(ConsoleError::Off)
}

/// The request's live session.
fn signed_in(request: &HttpRequest, state: &AppState) -> Result<Session, ConsoleError> {
    ensure_on(state)?;
    let id = session_id(request).ok_or(ConsoleError::SignInRequired)?;
    state.console.get(&id).ok_or(ConsoleError::SignInRequired)
}

/// A state-changing form's one common field.
#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

fn form<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ConsoleError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ConsoleError::BadRequest("the form is not UTF-8".into()))?;
    web::Query::<T>::from_query(text)
        .map(web::Query::into_inner)
        .map_err(|error| ConsoleError::BadRequest(format!("invalid form: {error}")))
}

fn check_origin(request: &HttpRequest) -> Result<(), ConsoleError> {
    if same_origin(request) {
        Ok(())
    } else {
        Err(ConsoleError::Forbidden(
            "Refused: the form did not come from this console (Origin header missing or \
             different). Nothing was changed.",
        ))
    }
}

/// The checks of every state-changing POST after sign-in.
fn authorized_post(
    request: &HttpRequest,
    state: &AppState,
    body: &[u8],
) -> Result<Session, ConsoleError> {
    ensure_on(state)?;
    check_origin(request)?;
    let session = signed_in(request, state)?;
    let submitted: CsrfForm = form(body)?;
    if !session.csrf_matches(&submitted.csrf) {
        return Err(ConsoleError::Forbidden(
            "Refused: the form's security token is missing or out of date. Reload the page \
             and try again. Nothing was changed.",
        ));
    }
    Ok(session)
}

fn path_id(request: &HttpRequest) -> Result<i64, ConsoleError> {
    request
        .match_info()
        .get("id")
        .and_then(|text| text.parse::<i64>().ok())
        .ok_or_else(|| ConsoleError::NotFound("No such id.".into()))
}

/// `GET /console/sign-in/`.
pub async fn sign_in_form(state: web::Data<AppState>) -> Result<HttpResponse, ConsoleError> {
    ensure_on(&state)?;
    Ok(page(pages::sign_in(None)))
}

#[derive(Deserialize)]
struct SignInForm {
    #[serde(default)]
    token: String,
}

/// `POST /console/sign-in/`: a session for the right token; a wrong one
/// counts against the address's budget of failed authentications, the
/// same budget as a wrong bearer token.
pub async fn sign_in(
    request: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ConsoleError> {
    let Some(expected) = &state.api_token else {
        return Err(ConsoleError::Off);
    };
    check_origin(&request)?;
    let submitted: SignInForm = form(&body)?;
    // Compared in constant time (an HMAC tag check).
    if expected.matches(&submitted.token) {
        if let Some(old) = session_id(&request) {
            state.console.remove(&old);
        }
        let session = state.console.create();
        let cookie = session_cookie(
            session.id(),
            state.console.lifetime(),
            cookie_secure(&request),
        );
        tracing::info!("console sign-in");
        return Ok(HttpResponse::SeeOther()
            .insert_header((header::LOCATION, "/console/"))
            .insert_header((header::SET_COOKIE, cookie))
            .finish());
    }
    let client = request.peer_addr().map(|addr| addr.ip());
    if let Err(retry_after) = state.limits.failed_authentication(client) {
        state.metrics.rate_limited("failed_authentication");
        return Err(ConsoleError::TooManyRequests(retry_after));
    }
    tracing::warn!("console sign-in refused: wrong token");
    Ok(page_with(
        StatusCode::UNAUTHORIZED,
        pages::sign_in(Some("That is not the management token.")),
    ))
}

/// `POST /console/sign-out/`: ends the session and clears the cookie.
pub async fn sign_out(
    request: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ConsoleError> {
    let session = authorized_post(&request, &state, &body)?;
    state.console.remove(session.id());
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/console/sign-in/"))
        .insert_header((header::SET_COOKIE, cleared_cookie(cookie_secure(&request))))
        .finish())
}

/// `GET /console/`: the overview.
pub async fn overview(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let session = signed_in(&request, &state)?;
    let now = Utc::now();
    let overview = state
        .store
        .overview(now - OVERVIEW_WINDOW, now - PENDING_TOO_LONG)
        .await?;
    Ok(page(pages::overview(&session, &overview)))
}

#[derive(Deserialize)]
struct SearchParameters {
    q: Option<String>,
}

/// `GET /console/payments/?q=...`: the search, as the API's
/// `GET /api/v1/order-payments/?q=` runs it.
pub async fn payments(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let session = signed_in(&request, &state)?;
    let parameters = web::Query::<SearchParameters>::from_query(request.query_string())
        .map(web::Query::into_inner)
        .unwrap_or(SearchParameters { q: None });
    let Some(query) = parameters.q else {
        return Ok(page(pages::payments(&session, "", None, None)));
    };
    match search_text(Some(&query)) {
        Ok(text) => {
            let found = search(&state, text).await?;
            let shown = text.unwrap_or(query.trim());
            Ok(page(pages::payments(&session, shown, Some(&found), None)))
        }
        Err(refused) => Ok(page_with(
            StatusCode::BAD_REQUEST,
            pages::payments(&session, &query, None, Some(&refused.to_string())),
        )),
    }
}

/// `GET /console/payments/{id}/`.
pub async fn payment(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let session = signed_in(&request, &state)?;
    let id = PaymentId(path_id(&request)?);
    let payment = state.payments.payment(id).await?;
    let order = state.payments.order(payment.order_id).await?;
    let refunds = state.payments.refunds(id).await?;
    let events = state
        .webhooks
        .events(EventFilter {
            payment_id: Some(id),
            limit: EventFilter::MAX_LIMIT,
            ..EventFilter::default()
        })
        .await?;
    let notifications = state
        .store
        .order_notifications(order.id, NOTIFICATIONS_SHOWN)
        .await?;
    Ok(page(pages::payment(
        &session,
        &payment,
        &order,
        &refunds,
        &events.items,
        &notifications,
        state.store.last_check(id).await?.as_ref(),
    )))
}

#[derive(Deserialize)]
struct EventParameters {
    #[serde(default)]
    gateway: String,
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    payment_id: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    after_id: String,
}

/// The filter the form's fields say; an empty field filters nothing.
fn event_filter(parameters: &EventParameters) -> Result<EventFilter, String> {
    let id = |name: &str, text: &str| -> Result<Option<i64>, String> {
        if text.trim().is_empty() {
            return Ok(None);
        }
        text.trim()
            .parse::<i64>()
            .ok()
            .filter(|id| *id >= 0)
            .map(Some)
            .ok_or_else(|| format!("{name} must be a non-negative whole number"))
    };
    let gateway = parameters.gateway.trim();
    if gateway.len() > 255 || gateway.contains('\0') {
        return Err("the gateway must be a gateway's name".into());
    }
    let outcome = match parameters.outcome.as_str() {
        "" => None,
        name => Some(EventOutcome::parse(name).ok_or("unknown outcome")?),
    };
    let kind = match parameters.kind.as_str() {
        "" => None,
        name if STORED_KIND_NAMES.contains(&name) => {
            Some(EventKind::parse(name).ok_or("unknown kind")?)
        }
        _ => return Err("unknown kind".into()),
    };
    let source = match parameters.source.as_str() {
        "" => None,
        name => Some(EventSource::parse(name).ok_or("unknown source")?),
    };
    Ok(EventFilter {
        gateway: (!gateway.is_empty()).then(|| gateway.to_owned()),
        source,
        outcome,
        kind,
        payment_id: id("the payment id", &parameters.payment_id)?.map(PaymentId),
        after_id: id("after_id", &parameters.after_id)?,
        ..EventFilter::default()
    })
}

/// `GET /console/events/`: one page of the audit list, filtered as the
/// API filters it.
pub async fn events(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let session = signed_in(&request, &state)?;
    let parameters = web::Query::<EventParameters>::from_query(request.query_string())
        .map(web::Query::into_inner)
        .map_err(|error| ConsoleError::BadRequest(format!("invalid query: {error}")))?;
    let form = EventFilterForm {
        gateway: parameters.gateway.clone(),
        outcome: parameters.outcome.clone(),
        kind: parameters.kind.clone(),
        payment_id: parameters.payment_id.clone(),
        source: parameters.source.clone(),
    };
    match event_filter(&parameters) {
        Ok(filter) => {
            let listed = state.webhooks.events(filter).await?;
            Ok(page(pages::events(
                &session,
                &form,
                &listed.items,
                listed.next_after_id,
                None,
            )))
        }
        Err(problem) => Ok(page_with(
            StatusCode::BAD_REQUEST,
            pages::events(&session, &form, &[], None, Some(&problem)),
        )),
    }
}

#[derive(Deserialize)]
struct Notice {
    replayed: Option<String>,
    requeued: Option<i64>,
    status: Option<String>,
}

fn notice(request: &HttpRequest) -> Notice {
    web::Query::<Notice>::from_query(request.query_string())
        .map(web::Query::into_inner)
        .unwrap_or(Notice {
            replayed: None,
            requeued: None,
            status: None,
        })
}

/// `GET /console/events/{id}/`.
pub async fn event(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let session = signed_in(&request, &state)?;
    let id = path_id(&request)?;
    let detail = state.webhooks.event(id).await?;
    let replayed = notice(&request)
        .replayed
        .and_then(|name| pages::replay_notice(&name));
    Ok(page(pages::event(&session, &detail, replayed.as_deref())))
}

/// The name a replay's result is shown by.
fn replay_name(outcome: &WebhookOutcome) -> &'static str {
    match outcome {
        WebhookOutcome::Decided { outcome, .. } => outcome.as_str(),
        WebhookOutcome::Duplicate { .. } => "duplicate",
        WebhookOutcome::Ignored { .. } => "ignored",
        WebhookOutcome::Unmatched { .. } => "unmatched",
    }
}

/// `POST /console/events/{id}/replay/`: [`payhook_domain::WebhookService::replay`],
/// then back to the event with what it did.
pub async fn replay(
    request: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ConsoleError> {
    authorized_post(&request, &state, &body)?;
    let id = path_id(&request)?;
    let name = match state.webhooks.replay(id).await {
        Ok(outcome) => replay_name(&outcome),
        Err(WebhookError::EventNotFound(_)) => {
            return Err(ConsoleError::NotFound(format!("No webhook event {id}.")))
        }
        Err(error) => return Err(error.into()),
    };
    tracing::info!(
        event = id,
        outcome = name,
        "webhook event replayed from the console"
    );
    Ok(see_other(&format!("/console/events/{id}/?replayed={name}")))
}

/// `GET /console/notifications/`: dead and pending ones, or those of the
/// status asked for.
pub async fn notifications(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let session = signed_in(&request, &state)?;
    let asked = notice(&request);
    let statuses = match asked.status.as_deref() {
        None | Some("") => vec![OutboxStatus::Dead, OutboxStatus::Pending],
        Some(name) => vec![OutboxStatus::parse(name).ok_or_else(|| {
            ConsoleError::BadRequest("The status is dead, pending or delivered.".into())
        })?],
    };
    let mut sections = Vec::new();
    for status in statuses {
        let rows =
            OutboxStore::notifications(state.store.as_ref(), Some(status), NOTIFICATIONS_SHOWN)
                .await?;
        sections.push((status, rows));
    }
    let requeued = asked
        .requeued
        .map(|id| format!("Notification {id} re-queued: it is pending again and due now."));
    Ok(page(pages::notifications(
        &session,
        &sections,
        requeued.as_deref(),
    )))
}

/// `POST /console/notifications/{id}/requeue/`: the outbox's re-queue,
/// as `POST /api/v1/notifications/{id}/requeue/` runs it.
pub async fn requeue(
    request: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ConsoleError> {
    authorized_post(&request, &state, &body)?;
    let id = path_id(&request)?;
    OutboxStore::requeue(state.store.as_ref(), id, Utc::now()).await?;
    tracing::info!(notification = id, "notification re-queued from the console");
    Ok(see_other(&format!("/console/notifications/?requeued={id}")))
}
