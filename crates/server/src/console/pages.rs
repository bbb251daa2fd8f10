//! The console's pages as maud templates: every value is escaped by maud,
//! raw bodies included; nothing here reads the store or decides anything.
//!
//! Accessibility basics hold on every page: one `h1`, headings in order,
//! a label on every field, plain forms usable from the keyboard, and no
//! meaning carried by colour alone (statuses are words).

use chrono::{DateTime, Utc};
use maud::{html, Markup, DOCTYPE};
use payhook_domain::ports::{EventDetail, EventFilter, EventOutcome, EventSource, StoredEvent};
use payhook_domain::{
    Money, Order, OutboxMessage, OutboxStatus, Overview, Payment, ReconcileCheck, Refund,
};

use super::chart::{bar_chart, Bar};
use super::pretty::pretty_json;
use super::session::Session;
use crate::api_types::{stored_outcome_names, STORED_KIND_NAMES};

fn time(at: DateTime<Utc>) -> Markup {
    html! {
        time datetime=(at.to_rfc3339()) { (at.format("%Y-%m-%d %H:%M:%S UTC")) }
    }
}

fn money(amount: Money) -> String {
    format!("{} {}", amount.amount_string(), amount.currency().code())
}

fn optional(value: Option<&str>) -> Markup {
    match value {
        Some(text) => html! { code { (text) } },
        None => html! { span class="none" { "none" } },
    }
}

/// The page around `content`: the navigation and the sign-out form when
/// signed in, one `h1` with `title`.
fn layout(title: &str, session: Option<&Session>, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · payhook console" }
                link rel="stylesheet" href="/console/static/console.css";
            }
            body {
                header {
                    p class="brand" { "payhook console" }
                    @if let Some(session) = session {
                        nav aria-label="Console" {
                            ul {
                                li { a href="/console/" { "Overview" } }
                                li { a href="/console/payments/" { "Payments" } }
                                li { a href="/console/events/" { "Webhook events" } }
                                li { a href="/console/notifications/" { "Notifications" } }
                            }
                        }
                        form class="sign-out" method="post" action="/console/sign-out/" {
                            input type="hidden" name="csrf" value=(session.csrf());
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (content)
                }
            }
        }
    }
}

/// A page saying what went wrong, without navigation (the session may be
/// unknown).
pub fn error_page(title: &str, message: &str) -> Markup {
    layout(
        title,
        None,
        html! {
            p class="error" role="alert" { (message) }
            p { a href="/console/" { "Back to the console" } }
        },
    )
}

/// The sign-in form, with `problem` said above it.
pub fn sign_in(problem: Option<&str>) -> Markup {
    layout(
        "Sign in",
        None,
        html! {
            @if let Some(problem) = problem {
                p class="error" role="alert" { (problem) }
            }
            p { "Sign in with the management API's token (" code { "PAYHOOK_API_TOKEN" } ")." }
            form method="post" action="/console/sign-in/" {
                p {
                    label for="token" { "Management token" }
                    input id="token" name="token" type="password" required
                        autocomplete="current-password";
                }
                p { button type="submit" { "Sign in" } }
            }
        },
    )
}

/// The overview: webhooks of the last 24 hours, and what needs a person.
pub fn overview(session: &Session, overview: &Overview) -> Markup {
    let bars: Vec<Bar> = overview
        .webhooks
        .iter()
        .map(|count| Bar {
            label: format!("{}: {}", count.gateway, count.outcome.as_str()),
            value: count.count,
        })
        .collect();
    let total: u64 = overview.webhooks.iter().map(|count| count.count).sum();
    layout(
        "Overview",
        Some(session),
        html! {
            section aria-labelledby="attention" {
                h2 id="attention" { "Needs a person" }
                dl class="counts" {
                    dt { "Payments pending at their gateway for more than an hour" }
                    dd { (overview.pending_too_long) }
                    dt { a href="/console/events/?outcome=unmatched" { "Unmatched webhook events" } }
                    dd { (overview.unmatched_events) }
                    dt { a href="/console/notifications/?status=dead" { "Dead notifications" } }
                    dd { (overview.dead_notifications) }
                    dt { "Open disputes" }
                    dd { (overview.open_disputes) }
                }
            }
            section aria-labelledby="webhooks" {
                h2 id="webhooks" { "Webhooks in the last 24 hours" }
                @if overview.webhooks.is_empty() {
                    p { "No webhook arrived in the last 24 hours." }
                } @else {
                    p { (total) " events, by gateway and outcome." }
                    (bar_chart("webhook-chart", "Webhooks in the last 24 hours by gateway and outcome", &bars))
                    table {
                        caption { "The same counts as a table" }
                        thead { tr { th scope="col" { "Gateway" } th scope="col" { "Outcome" } th scope="col" class="number" { "Events" } } }
                        tbody {
                            @for count in &overview.webhooks {
                                tr {
                                    td { (count.gateway) }
                                    td { (count.outcome.as_str()) }
                                    td class="number" { (count.count) }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

fn search_form(query: &str) -> Markup {
    html! {
        form method="get" action="/console/payments/" role="search" {
            p {
                label for="q" { "Payment id, transaction id, external id or gateway reference" }
                input id="q" name="q" type="search" value=(query) required maxlength="255";
                button type="submit" { "Search" }
            }
        }
    }
}

/// The search form and, after a search, what it found.
pub fn payments(
    session: &Session,
    query: &str,
    found: Option<&[Payment]>,
    problem: Option<&str>,
) -> Markup {
    layout(
        "Payments",
        Some(session),
        html! {
            (search_form(query))
            @if let Some(problem) = problem {
                p class="error" role="alert" { (problem) }
            }
            @if let Some(found) = found {
                h2 { "Results" }
                @if found.is_empty() {
                    p { "No payment is known by " code { (query) } "." }
                } @else {
                    table {
                        thead { tr {
                            th scope="col" { "Payment" } th scope="col" { "Transaction id" }
                            th scope="col" { "Gateway" } th scope="col" { "Status" }
                            th scope="col" class="number" { "Amount" } th scope="col" { "External id" }
                            th scope="col" { "Gateway reference" }
                        } }
                        tbody {
                            @for payment in found {
                                tr {
                                    td { a href={ "/console/payments/" (payment.id.0) "/" } { "Payment " (payment.id.0) } }
                                    td { code { (payment.transaction_id) } }
                                    td { (payment.payment_method) }
                                    td { (payment.status.as_str()) }
                                    td class="number" { (money(payment.amount)) }
                                    td { (optional(payment.external_id.as_deref())) }
                                    td { (optional(payment.gateway_reference.as_deref())) }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// One line of a payment's timeline.
enum Moment<'a> {
    Event(&'a StoredEvent),
    Notification(&'a OutboxMessage),
}

impl Moment<'_> {
    fn at(&self) -> DateTime<Utc> {
        match self {
            Self::Event(event) => event.received_at,
            Self::Notification(message) => message.created_at,
        }
    }
}

/// Everything about one payment: its order, amounts, refunds, dispute, and
/// the timeline of gateway events and notifications.
pub fn payment(
    session: &Session,
    payment: &Payment,
    order: &Order,
    refunds: &[Refund],
    events: &[StoredEvent],
    notifications: &[OutboxMessage],
    last_check: Option<&ReconcileCheck>,
) -> Markup {
    let mut timeline: Vec<Moment<'_>> = events
        .iter()
        .map(Moment::Event)
        .chain(notifications.iter().map(Moment::Notification))
        .collect();
    timeline.sort_by_key(Moment::at);
    let title = format!("Payment {}", payment.id.0);
    layout(
        &title,
        Some(session),
        html! {
            section aria-labelledby="details" {
                h2 id="details" { "Details" }
                dl {
                    dt { "Status" } dd { strong { (payment.status.as_str()) } }
                    dt { "Transaction id" } dd { code { (payment.transaction_id) } }
                    dt { "Gateway" } dd { (payment.payment_method) }
                    dt { "Amount" } dd { (money(payment.amount)) }
                    dt { "Refunded amount" } dd { (money(payment.refunded_amount)) }
                    dt { "External id" } dd { (optional(payment.external_id.as_deref())) }
                    dt { "Gateway reference" } dd { (optional(payment.gateway_reference.as_deref())) }
                    dt { "Amount mismatch" }
                    dd {
                        @match &payment.amount_mismatch {
                            Some(mismatch) => { "expected " (money(mismatch.expected)) ", received " (money(mismatch.received)) }
                            None => span class="none" { "none" },
                        }
                    }
                    dt { "Created" } dd { (time(payment.created_at)) }
                    dt { "Last changed" } dd { (time(payment.updated_at)) }
                    dt { "Last reconciliation" }
                    dd {
                        @match last_check {
                            Some(check) => {
                                (time(check.checked_at)) ": "
                                (optional(check.gateway_state.as_deref())) ", " (check.result)
                            }
                            None => span class="none" { "never checked with the gateway's API" },
                        }
                    }
                }
            }
            section aria-labelledby="order" {
                h2 id="order" { "Order " (order.id.0) }
                dl {
                    dt { "Status" } dd { strong { (order.status.as_str()) } }
                    dt { "Client id" } dd { code { (order.client_id) } }
                    dt { "Total" } dd { (money(order.total)) }
                    dt { "Paid amount" } dd { (money(order.paid_amount)) }
                    dt { "Created" } dd { (time(order.created_at)) }
                }
            }
            section aria-labelledby="refunds" {
                h2 id="refunds" { "Refunds" }
                @if refunds.is_empty() {
                    p { "No refund." }
                } @else {
                    table {
                        thead { tr { th scope="col" { "Refund id" } th scope="col" class="number" { "Amount" } th scope="col" { "Status" } } }
                        tbody {
                            @for refund in refunds {
                                tr {
                                    td { code { (refund.refund_id) } }
                                    td class="number" { (money(refund.amount)) }
                                    td { (refund.status.as_str()) }
                                }
                            }
                        }
                    }
                }
            }
            section aria-labelledby="dispute" {
                h2 id="dispute" { "Dispute" }
                @match &payment.dispute {
                    None => p { "No dispute." },
                    Some(dispute) => dl {
                        dt { "Dispute id" } dd { code { (dispute.dispute_id) } }
                        dt { "Status" } dd { strong { (dispute.status.as_str()) } }
                        dt { "Amount" } dd { (money(dispute.amount)) }
                        dt { "Reason" } dd { (optional(dispute.reason.as_deref())) }
                    },
                }
            }
            section aria-labelledby="timeline" {
                h2 id="timeline" { "Timeline" }
                p { "Every event the gateways sent for this payment, and every notification sent to the shop for its order, oldest first." }
                @if timeline.is_empty() {
                    p { "Nothing yet." }
                } @else {
                    table id="timeline-table" {
                        thead { tr {
                            th scope="col" { "When" } th scope="col" { "What" }
                            th scope="col" { "Detail" } th scope="col" { "Outcome or status" }
                        } }
                        tbody {
                            @for moment in &timeline {
                                @match moment {
                                    Moment::Event(event) => tr class="event" {
                                        td { (time(event.received_at)) }
                                        td { a href={ "/console/events/" (event.id) "/" } { "Webhook event " (event.id) } }
                                        td { (event.event.gateway) " " code { (event.event.event_type) } " " code { (event.event.event_id) } }
                                        td { (event.outcome.as_str()) }
                                    },
                                    Moment::Notification(message) => tr class="notification" {
                                        td { (time(message.created_at)) }
                                        td { "Notification " (message.id) }
                                        td {
                                            code { (message.kind.as_str()) }
                                            @if message.payment_id != payment.id {
                                                " (payment " a href={ "/console/payments/" (message.payment_id.0) "/" } { (message.payment_id.0) } ")"
                                            }
                                        }
                                        td { (message.status.as_str()) }
                                    },
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// The events list's filters, as the form shows them.
#[derive(Debug, Default, Clone)]
pub struct EventFilterForm {
    /// The gateway typed, as typed.
    pub gateway: String,
    /// The outcome chosen.
    pub outcome: String,
    /// The kind chosen.
    pub kind: String,
    /// The payment id typed.
    pub payment_id: String,
    /// The source chosen (`webhook` or `reconcile`).
    pub source: String,
}

impl EventFilterForm {
    /// The query string of these filters, with `after_id` for a next page.
    fn query(&self, after_id: i64) -> String {
        let mut query = String::new();
        for (name, value) in [
            ("gateway", &self.gateway),
            ("outcome", &self.outcome),
            ("kind", &self.kind),
            ("payment_id", &self.payment_id),
            ("source", &self.source),
        ] {
            if !value.is_empty() {
                query.push_str(name);
                query.push('=');
                query.extend(url_encode(value));
                query.push('&');
            }
        }
        query.push_str(&format!("after_id={after_id}"));
        query
    }
}

/// The sources an event may come from, as the filter offers them.
pub const SOURCE_NAMES: [&str; 2] = ["webhook", "reconcile"];

/// `value` percent-encoded for a query string.
fn url_encode(value: &str) -> impl Iterator<Item = String> + '_ {
    value.bytes().map(|byte| match byte {
        b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
            char::from(byte).to_string()
        }
        _ => format!("%{byte:02X}"),
    })
}

fn select(id: &str, label: &str, names: &[&str], chosen: &str) -> Markup {
    html! {
        label for=(id) { (label) }
        select id=(id) name=(id) {
            option value="" selected[chosen.is_empty()] { "any" }
            @for name in names {
                option value=(name) selected[*name == chosen] { (name) }
            }
        }
    }
}

/// The webhook events list, one page, with the API's filters.
pub fn events(
    session: &Session,
    form: &EventFilterForm,
    listed: &[StoredEvent],
    next_after_id: Option<i64>,
    problem: Option<&str>,
) -> Markup {
    let outcomes: Vec<&str> = stored_outcome_names().collect();
    layout(
        "Webhook events",
        Some(session),
        html! {
            form method="get" action="/console/events/" class="filters" {
                p {
                    label for="gateway" { "Gateway" }
                    input id="gateway" name="gateway" type="text" value=(form.gateway) maxlength="255";
                }
                p { (select("outcome", "Outcome", &outcomes, &form.outcome)) }
                p { (select("kind", "Kind", &STORED_KIND_NAMES, &form.kind)) }
                p { (select("source", "Source", &SOURCE_NAMES, &form.source)) }
                p {
                    label for="payment_id" { "Payment id" }
                    input id="payment_id" name="payment_id" type="text" inputmode="numeric" value=(form.payment_id);
                }
                p { button type="submit" { "Filter" } }
            }
            @if let Some(problem) = problem {
                p class="error" role="alert" { (problem) }
            }
            h2 { "Events" }
            @if listed.is_empty() {
                p { "No event passes these filters." }
            } @else {
                table id="events-table" {
                    thead { tr {
                        th scope="col" { "Event" } th scope="col" { "Received" } th scope="col" { "Gateway" }
                        th scope="col" { "Source" } th scope="col" { "Type" } th scope="col" { "Kind" }
                        th scope="col" { "Outcome" } th scope="col" { "Payment" } th scope="col" class="number" { "Attempts" }
                    } }
                    tbody {
                        @for event in listed {
                            tr {
                                td { a href={ "/console/events/" (event.id) "/" } { "Event " (event.id) } }
                                td { (time(event.received_at)) }
                                td { (event.event.gateway) }
                                td { (event.source.as_str()) }
                                td { code { (event.event.event_type) } }
                                td { (event.event.kind.as_str()) }
                                td { (event.outcome.as_str()) }
                                td {
                                    @match event.payment_id {
                                        Some(id) => a href={ "/console/payments/" (id.0) "/" } { "Payment " (id.0) },
                                        None => span class="none" { "none" },
                                    }
                                }
                                td class="number" { (event.attempts) }
                            }
                        }
                    }
                }
            }
            @if let Some(after_id) = next_after_id {
                p { a rel="next" href={ "/console/events/?" (form.query(after_id)) } { "Next page" } }
            }
            p class="hint" { (EventFilter::DEFAULT_LIMIT) " events per page, oldest first." }
        },
    )
}

/// What a replay did, in words; `None` for a name no replay answers.
pub fn replay_notice(name: &str) -> Option<String> {
    let text = match name {
        "duplicate" => "Replayed: already processed, nothing changed.".to_owned(),
        "unmatched" => "Replayed: still no payment matches this event; it stays kept.".to_owned(),
        "ignored" => "Replayed: payhook does not act on this event type.".to_owned(),
        other => {
            let outcome = EventOutcome::parse(other)?;
            format!("Replayed: {}.", outcome.as_str())
        }
    };
    Some(text)
}

/// One event: what payhook recorded and decided, its raw body, and the
/// Replay button.
pub fn event(session: &Session, detail: &EventDetail, notice: Option<&str>) -> Markup {
    let record = &detail.record;
    let event = &record.event;
    let body = String::from_utf8(detail.payload.clone());
    let title = format!("Webhook event {}", record.id);
    layout(
        &title,
        Some(session),
        html! {
            @if let Some(notice) = notice {
                p class="notice" role="status" id="notice" { (notice) }
            }
            section aria-labelledby="recorded" {
                h2 id="recorded" { "Recorded" }
                dl {
                    dt { "Outcome" } dd { strong id="outcome" { (record.outcome.as_str()) } }
                    dt { "Gateway" } dd { (event.gateway) }
                    dt { "Source" }
                    dd {
                        @match record.source {
                            EventSource::Reconcile => "reconcile (payhook asked the gateway's API)",
                            _ => "webhook (signature verified)",
                        }
                    }
                    dt { "Event id" } dd { code { (event.event_id) } }
                    dt { "Type" } dd { code { (event.event_type) } }
                    dt { "Kind" } dd { (event.kind.as_str()) }
                    dt { "Payment" }
                    dd {
                        @match record.payment_id {
                            Some(id) => a href={ "/console/payments/" (id.0) "/" } { "Payment " (id.0) },
                            None => span class="none" { "none" },
                        }
                    }
                    dt { "Amount" }
                    dd {
                        @match event.amount {
                            Some(amount) => (money(amount)),
                            None => span class="none" { "none" },
                        }
                    }
                    dt { "Transaction id named" } dd { (optional(event.references.transaction_id.as_deref())) }
                    dt { "External id named" } dd { (optional(event.references.external_id.as_deref())) }
                    dt { "Gateway reference named" } dd { (optional(event.references.gateway_reference.as_deref())) }
                    dt { "Attempts" } dd { (record.attempts) }
                    dt { "Received" } dd { (time(record.received_at)) }
                    dt { "Last evaluated" } dd { (time(record.processed_at)) }
                }
            }
            section aria-labelledby="replay" {
                h2 id="replay" { "Replay" }
                p { "Applies the stored event again through the same path as a delivery: an event already processed changes nothing." }
                form method="post" action={ "/console/events/" (record.id) "/replay/" } {
                    input type="hidden" name="csrf" value=(session.csrf());
                    button type="submit" id="replay-button" { "Replay event " (record.id) }
                }
            }
            section aria-labelledby="body" {
                h2 id="body" { "Raw body" }
                @if let Some(pruned_at) = detail.pruned_at {
                    p id="pruned" { "Removed by retention at " (time(pruned_at)) ". The record stays, so a late re-delivery is still recognised." }
                } @else {
                    @match &body {
                        Ok(text) => {
                            @match pretty_json(text) {
                                Some(pretty) => pre id="raw-body" { code { (pretty) } },
                                None => pre id="raw-body" { code { (text) } },
                            }
                        }
                        Err(_) => p { "The body is not UTF-8 text; the API answers it as base64 (" code { "payload_base64" } ")." },
                    }
                }
            }
        },
    )
}

fn notification_table(session: &Session, rows: &[OutboxMessage]) -> Markup {
    html! {
        table class="notifications" {
            thead { tr {
                th scope="col" { "Notification" } th scope="col" { "Type" } th scope="col" { "Payment" }
                th scope="col" { "Status" } th scope="col" class="number" { "Attempts" }
                th scope="col" { "Last error" } th scope="col" { "Created" } th scope="col" { "Next attempt" }
                th scope="col" { "Action" }
            } }
            tbody {
                @for row in rows {
                    tr id={ "notification-" (row.id) } {
                        td { (row.id) " " code { (row.webhook_id()) } }
                        td { code { (row.kind.as_str()) } }
                        td { a href={ "/console/payments/" (row.payment_id.0) "/" } { "Payment " (row.payment_id.0) } }
                        td { (row.status.as_str()) }
                        td class="number" { (row.attempts) }
                        td { (optional(row.last_error.as_deref())) }
                        td { (time(row.created_at)) }
                        td { (time(row.next_attempt_at)) }
                        td {
                            @if row.status == OutboxStatus::Dead {
                                form method="post" action={ "/console/notifications/" (row.id) "/requeue/" } {
                                    input type="hidden" name="csrf" value=(session.csrf());
                                    button type="submit" { "Re-queue notification " (row.id) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The notifications in each status shown, with Re-queue on dead ones.
pub fn notifications(
    session: &Session,
    sections: &[(OutboxStatus, Vec<OutboxMessage>)],
    notice: Option<&str>,
) -> Markup {
    layout(
        "Notifications",
        Some(session),
        html! {
            @if let Some(notice) = notice {
                p class="notice" role="status" id="notice" { (notice) }
            }
            form method="get" action="/console/notifications/" class="filters" {
                p {
                    label for="status" { "Status" }
                    select id="status" name="status" {
                        option value="" { "dead and pending" }
                        @for status in [OutboxStatus::Dead, OutboxStatus::Pending, OutboxStatus::Delivered] {
                            option value=(status.as_str()) selected[sections.len() == 1 && sections[0].0 == status] { (status.as_str()) }
                        }
                    }
                    button type="submit" { "Show" }
                }
            }
            @for (status, rows) in sections {
                section aria-labelledby={ "status-" (status.as_str()) } {
                    h2 id={ "status-" (status.as_str()) } { "Status " (status.as_str()) }
                    @if rows.is_empty() {
                        p { "None." }
                    } @else {
                        (notification_table(session, rows))
                    }
                }
            }
        },
    )
}
