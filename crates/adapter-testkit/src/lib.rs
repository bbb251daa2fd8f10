//! The conformance suite of payhook's gateway adapters: the checks every
//! [`GatewayAdapter`] must pass, whatever its gateway, run from the
//! adapter crate's own tests with a few lines.
//!
//! An adapter's test implements [`Conformance`] (how to build the adapter,
//! how the gateway signs a request, one event it handles and one it does
//! not) and calls [`run`], which panics with a report naming every failed
//! [`Check`], or [`check`], which returns that [`Report`]:
//!
//! | check | what must hold |
//! |---|---|
//! | [`Check::ValidRequestAccepted`] | a correctly signed request verifies and parses into a handled event of this gateway, with an event id and a reference to look the payment up by |
//! | [`Check::BodyChangeRefused`] | changing, adding or removing one byte of the body makes `verify` fail |
//! | [`Check::HeaderChangeRefused`] | changing one byte of a signature header makes `verify` fail |
//! | [`Check::MissingHeaderRefused`] | removing a signature header makes `verify` fail |
//! | [`Check::OtherKeyRefused`] | an adapter configured with another key refuses the request |
//! | [`Check::StaleTimestampRefused`] | where the scheme signs a time: a request older than the tolerance is `StaleTimestamp`, one inside it verifies |
//! | [`Check::UnhandledTypeNotHandled`] | an event type payhook does not act on parses as [`EventKind::NotHandled`] |
//! | [`Check::EventIdStable`] | re-deliveries of the same event, signed again later, parse into the same event, same id |
//! | [`Check::ArbitraryInputNeverPanics`] | thousands of mangled bodies, header values and clocks never make `verify` or `parse` panic |
//!
//! Every input is derived from a fixed seed, so a failure repeats on every
//! run and on every machine.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use chrono::{DateTime, Utc};
//! use payhook_adapter_testkit::Conformance;
//! # use payhook_domain::ports::{GatewayAdapter, ParseError, VerifyError, WebhookRequest};
//! # struct AcmeAdapter;
//! # impl AcmeAdapter { fn new(_secret: &str) -> Self { Self } }
//! # impl GatewayAdapter for AcmeAdapter {
//! #     fn name(&self) -> &'static str { "acme" }
//! #     fn verify(&self, _: &WebhookRequest<'_>, _: DateTime<Utc>) -> Result<(), VerifyError> { Ok(()) }
//! #     fn parse(&self, _: &WebhookRequest<'_>) -> Result<payhook_domain::GatewayEvent, ParseError> { unimplemented!() }
//! # }
//! # fn acme_signature(_secret: &str, _at: i64, _body: &[u8]) -> String { String::new() }
//! # fn fixture(_name: &str) -> Vec<u8> { Vec::new() }
//!
//! struct AcmeConformance;
//!
//! impl Conformance for AcmeConformance {
//!     type Adapter = AcmeAdapter;
//!
//!     fn adapter(&self) -> AcmeAdapter {
//!         AcmeAdapter::new("acme_test_secret")
//!     }
//!
//!     fn adapter_with_other_key(&self) -> AcmeAdapter {
//!         AcmeAdapter::new("acme_test_secreu") // one byte changed
//!     }
//!
//!     fn sign(&self, body: &[u8], at: DateTime<Utc>, _delivery: u32) -> Vec<(String, String)> {
//!         let signature = acme_signature("acme_test_secret", at.timestamp(), body);
//!         vec![("Acme-Signature".to_owned(), signature)]
//!     }
//!
//!     fn signature_headers(&self) -> Vec<&'static str> {
//!         vec!["Acme-Signature"]
//!     }
//!
//!     fn valid_body(&self) -> Vec<u8> {
//!         fixture("payment.succeeded")
//!     }
//!
//!     fn unhandled_body(&self) -> Option<Vec<u8>> {
//!         Some(fixture("customer.created"))
//!     }
//!
//!     fn timestamp_tolerance(&self) -> Option<Duration> {
//!         Some(Duration::from_secs(300))
//!     }
//! }
//!
//! // In tests/it/conformance.rs:
//! // #[test]
//! // fn acme_passes_the_adapter_conformance_suite() {
//! payhook_adapter_testkit::run(&AcmeConformance);
//! // }
//! ```
//!
//! What it deliberately does not do: it does not check that an adapter
//! reads its gateway's events *correctly* (which field is the amount, which
//! reference is which, every event type and error): that needs the
//! gateway's documentation and fixtures, and stays in the adapter's own
//! tests. Nor does it sign anything itself: the adapter's test signs, with
//! an implementation independent of the code under test.

mod fuzz;

use std::any::Any;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use payhook_domain::ports::{GatewayAdapter, ParseError, VerifyError, WebhookRequest};
use payhook_domain::{EventKind, GatewayEvent};

/// Request headers as the suite hands them to an adapter: name and value
/// pairs, looked up case-insensitively through
/// [`payhook_domain::ports::Headers`].
pub type HeaderList = Vec<(String, String)>;

/// What the suite needs to know about one adapter and its gateway. The
/// adapter crate's test implements it; every method is called several times
/// and must return the same thing each time.
pub trait Conformance {
    /// The adapter under test.
    type Adapter: GatewayAdapter;

    /// The adapter, configured with the key [`Conformance::sign`] signs with.
    fn adapter(&self) -> Self::Adapter;

    /// The same adapter configured with another key, which must refuse
    /// everything [`Conformance::sign`] signs. Where the key is a secret,
    /// the same secret with one byte changed; where it is a certificate,
    /// another certificate.
    fn adapter_with_other_key(&self) -> Self::Adapter;

    /// The headers of one delivery of `body` sent at `at`, signed the way
    /// the gateway signs, with the key of [`Conformance::adapter`].
    ///
    /// `delivery` counts the deliveries of the same event from 0. A gateway
    /// that gives every attempt its own id (PayPal's transmission id)
    /// derives that id from `delivery`; one that keeps its message id
    /// across retries (Standard Webhooks' `webhook-id`) ignores it. Either
    /// way the event must parse the same: [`Check::EventIdStable`].
    ///
    /// Compute the signature in the test (with `ring` or the gateway's
    /// published recipe), never with the adapter's own code, so that a bug
    /// there cannot sign its way past the suite.
    fn sign(&self, body: &[u8], at: DateTime<Utc>, delivery: u32) -> HeaderList;

    /// The names of the headers [`Conformance::sign`] returns that carry the
    /// signature or are covered by it: changing one byte of any of them, or
    /// removing it, must be refused. Leave out headers the scheme does not
    /// protect (a content type, PayPal's certificate URL, an unsigned
    /// idempotency key).
    fn signature_headers(&self) -> Vec<&'static str>;

    /// The body of an event the adapter handles (one that parses as
    /// [`EventKind::Succeeded`] or [`EventKind::Failed`]) and that names its
    /// payment, shaped like the gateway's real events.
    fn valid_body(&self) -> Vec<u8>;

    /// The body of an event type the gateway sends but payhook does not act
    /// on, which must parse as [`EventKind::NotHandled`]; `None` when the
    /// gateway has no such types.
    fn unhandled_body(&self) -> Option<Vec<u8>>;

    /// How old a signed time may be, or `None` when the scheme signs no time.
    fn timestamp_tolerance(&self) -> Option<Duration>;

    /// The instant the checks run at; requests are signed at or around it.
    /// Defaults to 2023-11-14T22:13:20Z (unix time 1 700 000 000).
    fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap_or(DateTime::UNIX_EPOCH)
    }

    /// How many mangled requests [`Check::ArbitraryInputNeverPanics`] tries.
    fn arbitrary_inputs(&self) -> u32 {
        3_000
    }
}

/// One check of the suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Check {
    /// A correctly signed request of a handled event verifies and parses
    /// into an event of this gateway with an id, a handled kind and a
    /// reference. The checks that change a valid request are skipped when
    /// this one fails.
    ValidRequestAccepted,
    /// One byte of the body changed, appended or removed is refused.
    BodyChangeRefused,
    /// One byte of a signature header changed is refused.
    HeaderChangeRefused,
    /// A signature header removed is refused.
    MissingHeaderRefused,
    /// An adapter configured with another key refuses the request.
    OtherKeyRefused,
    /// A request signed longer ago than the tolerance is `StaleTimestamp`;
    /// one signed within it verifies.
    StaleTimestampRefused,
    /// An event type the gateway sends but payhook does not act on verifies
    /// and parses as [`EventKind::NotHandled`].
    UnhandledTypeNotHandled,
    /// Re-deliveries of an event, signed again at later times, parse into
    /// the same event with the same id.
    EventIdStable,
    /// Arbitrary bodies, header values and clocks never make `verify` or
    /// `parse` panic.
    ArbitraryInputNeverPanics,
}

impl Check {
    /// Every check, in the order the suite runs them.
    pub const ALL: [Check; 9] = [
        Check::ValidRequestAccepted,
        Check::BodyChangeRefused,
        Check::HeaderChangeRefused,
        Check::MissingHeaderRefused,
        Check::OtherKeyRefused,
        Check::StaleTimestampRefused,
        Check::UnhandledTypeNotHandled,
        Check::EventIdStable,
        Check::ArbitraryInputNeverPanics,
    ];

    /// The check's name in reports, e.g. `body_change_refused`.
    pub fn name(self) -> &'static str {
        match self {
            Self::ValidRequestAccepted => "valid_request_accepted",
            Self::BodyChangeRefused => "body_change_refused",
            Self::HeaderChangeRefused => "header_change_refused",
            Self::MissingHeaderRefused => "missing_header_refused",
            Self::OtherKeyRefused => "other_key_refused",
            Self::StaleTimestampRefused => "stale_timestamp_refused",
            Self::UnhandledTypeNotHandled => "unhandled_type_not_handled",
            Self::EventIdStable => "event_id_stable",
            Self::ArbitraryInputNeverPanics => "arbitrary_input_never_panics",
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One failed check and what the suite saw.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Failure {
    /// The check that failed.
    pub check: Check,
    /// What happened, with the input that showed it.
    pub detail: String,
}

/// The failed checks of one adapter, in the order they ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    gateway: String,
    failures: Vec<Failure>,
}

impl Report {
    /// The adapter's [`GatewayAdapter::name`].
    pub fn gateway(&self) -> &str {
        &self.gateway
    }

    /// Every failure, in the order the checks ran; a check may fail more
    /// than once.
    pub fn failures(&self) -> &[Failure] {
        &self.failures
    }

    /// True when `check` failed.
    pub fn failed(&self, check: Check) -> bool {
        self.failures.iter().any(|failure| failure.check == check)
    }

    /// The checks that failed, each once, in the order they ran.
    pub fn failed_checks(&self) -> Vec<Check> {
        Check::ALL
            .into_iter()
            .filter(|check| self.failed(*check))
            .collect()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.failed_checks().into_iter().map(Check::name).collect();
        write!(
            f,
            "adapter `{}` fails the conformance suite: {}",
            self.gateway,
            names.join(", ")
        )?;
        for failure in &self.failures {
            write!(f, "\n  - {}: {}", failure.check, failure.detail)?;
        }
        Ok(())
    }
}

impl std::error::Error for Report {}

/// Runs every check on the adapter `suite` describes and panics with the
/// [`Report`] when one fails. Call it from a `#[test]`; the panic points at
/// that call.
#[track_caller]
pub fn run<C: Conformance + ?Sized>(suite: &C) {
    if let Err(report) = check(suite) {
        panic!("{report}");
    }
}

/// Runs every check on the adapter `suite` describes; `Err` lists each
/// failed check with what showed it.
///
/// A panic in the adapter is caught and reported as a failure of the check
/// that provoked it. A panic in `suite`'s own methods is a bug of the test
/// and is not caught.
pub fn check<C: Conformance + ?Sized>(suite: &C) -> Result<(), Report> {
    let mut runner = Runner {
        adapter: suite.adapter(),
        suite,
        now: suite.now(),
        failures: Vec::new(),
    };
    // In the order of `Check::ALL`.
    let valid = runner.valid_request_accepted();
    if let Some(valid) = &valid {
        runner.body_change_refused(valid);
        runner.header_change_refused(valid);
        runner.missing_header_refused(valid);
        runner.other_key_refused(valid);
        runner.stale_timestamp_refused(valid);
    }
    runner.unhandled_type_not_handled();
    if let Some(valid) = &valid {
        runner.event_id_stable(valid);
    }
    runner.arbitrary_input_never_panics();
    if runner.failures.is_empty() {
        Ok(())
    } else {
        Err(Report {
            gateway: runner.adapter.name().to_owned(),
            failures: runner.failures,
        })
    }
}

/// A signed request the suite built and the event it parsed into.
struct Valid {
    body: Vec<u8>,
    headers: HeaderList,
    event: GatewayEvent,
}

/// At most this many examples are quoted per failed check.
const EXAMPLES: usize = 3;

/// Header values longer than this are changed at sampled positions only.
const EVERY_POSITION_UP_TO: usize = 512;

struct Runner<'s, C: Conformance + ?Sized> {
    suite: &'s C,
    adapter: C::Adapter,
    now: DateTime<Utc>,
    failures: Vec<Failure>,
}

impl<C: Conformance + ?Sized> Runner<'_, C> {
    fn fail(&mut self, check: Check, detail: impl Into<String>) {
        self.failures.push(Failure {
            check,
            detail: detail.into(),
        });
    }

    /// Records up to [`EXAMPLES`] of `accepted` as one failure of `check`.
    fn fail_accepted(&mut self, check: Check, what: &str, tried: usize, accepted: &[String]) {
        if accepted.is_empty() {
            return;
        }
        let shown: Vec<&str> = accepted.iter().take(EXAMPLES).map(String::as_str).collect();
        let hint = match check {
            Check::HeaderChangeRefused => {
                ". A header the signature does not cover does not belong in \
                 signature_headers; one it should cover lets a captured request be \
                 replayed or altered"
            }
            _ => "",
        };
        self.fail(
            check,
            format!(
                "verify accepted {} of {tried} requests with {what}, e.g. {}{hint}",
                accepted.len(),
                shown.join("; ")
            ),
        );
    }

    /// A correctly signed, handled event; `None` (and a failure) when the
    /// adapter refuses it, since every later change would then be refused
    /// for the wrong reason.
    fn valid_request_accepted(&mut self) -> Option<Valid> {
        let check = Check::ValidRequestAccepted;
        let skipped = "the checks that change a valid request were skipped";
        let body = self.suite.valid_body();
        let headers = self.suite.sign(&body, self.now, 0);
        match verify(&self.adapter, &headers, &body, self.now) {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                self.fail(
                    check,
                    format!(
                        "verify refused a correctly signed request ({error:?}: {error}); {skipped}"
                    ),
                );
                return None;
            }
            Err(panic) => {
                self.fail(
                    check,
                    format!("verify panicked on a correctly signed request: {panic}; {skipped}"),
                );
                return None;
            }
        }
        let event = match parse(&self.adapter, &headers, &body) {
            Ok(Ok(event)) => event,
            Ok(Err(error)) => {
                self.fail(
                    check,
                    format!("parse refused valid_body ({error:?}: {error}); {skipped}"),
                );
                return None;
            }
            Err(panic) => {
                self.fail(
                    check,
                    format!("parse panicked on valid_body: {panic}; {skipped}"),
                );
                return None;
            }
        };
        let name = self.adapter.name();
        if event.gateway != name {
            self.fail(
                check,
                format!(
                    "the event's gateway is {:?}, not the adapter's name {name:?}",
                    event.gateway
                ),
            );
        }
        if event.event_id.trim().is_empty() {
            self.fail(
                check,
                "the event id is empty: deliveries could not be told apart",
            );
        }
        if event.kind == EventKind::NotHandled {
            self.fail(
                check,
                format!(
                    "valid_body parsed as NotHandled ({}); it must be an event the adapter acts on",
                    event.event_type
                ),
            );
        }
        if event.references.is_empty() {
            self.fail(
                check,
                "the event names no transaction id, external id or gateway reference: no payment could ever match it",
            );
        }
        Some(Valid {
            body,
            headers,
            event,
        })
    }

    fn body_change_refused(&mut self, valid: &Valid) {
        let check = Check::BodyChangeRefused;
        let mut changed: Vec<(String, Vec<u8>)> = Vec::new();
        for position in body_positions(valid.body.len()) {
            let mut body = valid.body.clone();
            let before = body[position];
            body[position] ^= 0x01;
            changed.push((
                format!(
                    "byte {position} changed from {before:#04x} to {:#04x}",
                    body[position]
                ),
                body,
            ));
        }
        let mut appended = valid.body.clone();
        appended.push(b' ');
        changed.push(("a space appended".to_owned(), appended));
        if let Some((_, shorter)) = valid.body.split_last() {
            changed.push(("its last byte removed".to_owned(), shorter.to_vec()));
        }
        let mut accepted = Vec::new();
        for (what, body) in &changed {
            match verify(&self.adapter, &valid.headers, body, self.now) {
                Ok(Ok(())) => accepted.push(format!("the body with {what}")),
                Ok(Err(_)) => {}
                Err(panic) => accepted.push(format!("a panic on the body with {what}: {panic}")),
            }
        }
        self.fail_accepted(
            check,
            "a one-byte change of the body",
            changed.len(),
            &accepted,
        );
    }

    fn header_change_refused(&mut self, valid: &Valid) {
        let check = Check::HeaderChangeRefused;
        let mut tried = 0;
        let mut accepted = Vec::new();
        for name in self.suite.signature_headers() {
            let Some(index) = header_index(&valid.headers, name) else {
                self.fail(
                    check,
                    format!("signature_headers names {name:?}, which sign() does not return"),
                );
                continue;
            };
            let value = &valid.headers[index].1;
            for position in header_positions(value.len()) {
                let Some(changed) = change_byte(value, position) else {
                    continue;
                };
                let mut headers = valid.headers.clone();
                headers[index].1 = changed.clone();
                tried += 1;
                match verify(&self.adapter, &headers, &valid.body, self.now) {
                    Ok(Ok(())) => accepted.push(format!("{name}: {changed:?}")),
                    Ok(Err(_)) => {}
                    Err(panic) => accepted.push(format!("a panic on {name}: {changed:?}: {panic}")),
                }
            }
        }
        self.fail_accepted(
            check,
            "a one-byte change of a signature header",
            tried,
            &accepted,
        );
    }

    fn missing_header_refused(&mut self, valid: &Valid) {
        let check = Check::MissingHeaderRefused;
        for name in self.suite.signature_headers() {
            if header_index(&valid.headers, name).is_none() {
                // Already reported by header_change_refused.
                continue;
            }
            let headers: HeaderList = valid
                .headers
                .iter()
                .filter(|(key, _)| !key.eq_ignore_ascii_case(name))
                .cloned()
                .collect();
            match verify(&self.adapter, &headers, &valid.body, self.now) {
                Ok(Ok(())) => {
                    self.fail(check, format!("verify accepted the request without {name}"))
                }
                Ok(Err(_)) => {}
                Err(panic) => self.fail(
                    check,
                    format!("verify panicked on the request without {name}: {panic}"),
                ),
            }
        }
    }

    fn other_key_refused(&mut self, valid: &Valid) {
        let check = Check::OtherKeyRefused;
        let other = self.suite.adapter_with_other_key();
        match verify(&other, &valid.headers, &valid.body, self.now) {
            Ok(Ok(())) => self.fail(
                check,
                "an adapter configured with another key accepted the request",
            ),
            Ok(Err(_)) => {}
            Err(panic) => self.fail(
                check,
                format!("the adapter with another key panicked: {panic}"),
            ),
        }
    }

    fn stale_timestamp_refused(&mut self, valid: &Valid) {
        let check = Check::StaleTimestampRefused;
        let Some(tolerance) = self.suite.timestamp_tolerance() else {
            return;
        };
        let Ok(tolerance_delta) = TimeDelta::from_std(tolerance) else {
            self.fail(
                check,
                format!("the tolerance {tolerance:?} is out of range"),
            );
            return;
        };
        let second = TimeDelta::seconds(1);
        let stale_at = self.now - tolerance_delta - second;
        let headers = self.suite.sign(&valid.body, stale_at, 0);
        match verify(&self.adapter, &headers, &valid.body, self.now) {
            Ok(Err(VerifyError::StaleTimestamp)) => {}
            Ok(Ok(())) => self.fail(
                check,
                format!(
                    "verify accepted a request signed {}s ago, beyond the tolerance of {}s",
                    (tolerance_delta + second).num_seconds(),
                    tolerance_delta.num_seconds()
                ),
            ),
            Ok(Err(error)) => self.fail(
                check,
                format!(
                    "a correctly signed request older than the tolerance was refused as {error:?}, not StaleTimestamp"
                ),
            ),
            Err(panic) => self.fail(
                check,
                format!("verify panicked on an old request: {panic}"),
            ),
        }
        let inside = (tolerance_delta - second).max(TimeDelta::zero());
        let fresh_at = self.now - inside;
        let headers = self.suite.sign(&valid.body, fresh_at, 0);
        match verify(&self.adapter, &headers, &valid.body, self.now) {
            Ok(Ok(())) => {}
            Ok(Err(error)) => self.fail(
                check,
                format!(
                    "verify refused ({error:?}) a request signed {}s ago, within the tolerance of {}s",
                    inside.num_seconds(),
                    tolerance_delta.num_seconds()
                ),
            ),
            Err(panic) => self.fail(
                check,
                format!("verify panicked on a request within the tolerance: {panic}"),
            ),
        }
    }

    fn unhandled_type_not_handled(&mut self) {
        let check = Check::UnhandledTypeNotHandled;
        let Some(body) = self.suite.unhandled_body() else {
            return;
        };
        let headers = self.suite.sign(&body, self.now, 0);
        match verify(&self.adapter, &headers, &body, self.now) {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                return self.fail(
                    check,
                    format!("verify refused the signed unhandled_body ({error:?}: {error})"),
                )
            }
            Err(panic) => {
                return self.fail(
                    check,
                    format!("verify panicked on the signed unhandled_body: {panic}"),
                )
            }
        }
        match parse(&self.adapter, &headers, &body) {
            Ok(Ok(event)) => {
                if event.kind != EventKind::NotHandled {
                    self.fail(
                        check,
                        format!(
                            "the event type {:?} parsed as {:?}, not NotHandled",
                            event.event_type, event.kind
                        ),
                    );
                }
                if event.event_id.trim().is_empty() {
                    self.fail(check, "the unhandled event's id is empty");
                }
                if event.gateway != self.adapter.name() {
                    self.fail(
                        check,
                        format!(
                            "the unhandled event's gateway is {:?}, not {:?}",
                            event.gateway,
                            self.adapter.name()
                        ),
                    );
                }
            }
            Ok(Err(error)) => self.fail(
                check,
                format!(
                    "parse refused unhandled_body ({error:?}: {error}); a type payhook ignores must parse as NotHandled so that the gateway stops retrying it"
                ),
            ),
            Err(panic) => self.fail(
                check,
                format!("parse panicked on unhandled_body: {panic}"),
            ),
        }
    }

    fn event_id_stable(&mut self, valid: &Valid) {
        let check = Check::EventIdStable;
        let later = [
            TimeDelta::minutes(1),
            TimeDelta::hours(1),
            TimeDelta::days(3),
        ];
        for (delivery, delay) in (1..).zip(later) {
            let at = self.now + delay;
            let headers = self.suite.sign(&valid.body, at, delivery);
            let when = format!("re-delivery {delivery}, {}s later", delay.num_seconds());
            match verify(&self.adapter, &headers, &valid.body, at) {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    self.fail(check, format!("verify refused {when} ({error:?}: {error})"));
                    continue;
                }
                Err(panic) => {
                    self.fail(check, format!("verify panicked on {when}: {panic}"));
                    continue;
                }
            }
            match parse(&self.adapter, &headers, &valid.body) {
                Ok(Ok(event)) if event.event_id != valid.event.event_id => self.fail(
                    check,
                    format!(
                        "{when} has event id {:?}, the first delivery {:?}: the store would apply the event twice",
                        event.event_id, valid.event.event_id
                    ),
                ),
                Ok(Ok(event)) if event != valid.event => self.fail(
                    check,
                    format!(
                        "{when} parsed into {event:?}, the first delivery into {:?}",
                        valid.event
                    ),
                ),
                Ok(Ok(_)) => {}
                Ok(Err(error)) => {
                    self.fail(check, format!("parse refused {when} ({error:?}: {error})"))
                }
                Err(panic) => self.fail(check, format!("parse panicked on {when}: {panic}")),
            }
        }
    }

    fn arbitrary_input_never_panics(&mut self) {
        if let Err(detail) = fuzz::never_panics(self.suite, &self.adapter, self.now) {
            self.fail(Check::ArbitraryInputNeverPanics, detail);
        }
    }
}

/// `adapter.verify` on these headers and body, with a panic caught and
/// turned into its message.
fn verify<A: GatewayAdapter + ?Sized>(
    adapter: &A,
    headers: &HeaderList,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Result<(), VerifyError>, String> {
    let request = WebhookRequest { headers, body };
    guarded(|| adapter.verify(&request, now))
}

/// `adapter.parse` on these headers and body, with a panic caught.
fn parse<A: GatewayAdapter + ?Sized>(
    adapter: &A,
    headers: &HeaderList,
    body: &[u8],
) -> Result<Result<GatewayEvent, ParseError>, String> {
    let request = WebhookRequest { headers, body };
    guarded(|| adapter.parse(&request))
}

/// Runs `work`, turning a panic into its message.
fn guarded<T>(work: impl FnOnce() -> T) -> Result<T, String> {
    // The adapter is only read through `&self`, so whatever a panic
    // interrupted, nothing the suite looks at afterwards was mid-update.
    catch_unwind(AssertUnwindSafe(work)).map_err(|payload| panic_message(payload.as_ref()))
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic without a message");
    format!("panicked: {text}")
}

/// The position of the header `name` (any case) in `headers`.
fn header_index(headers: &HeaderList, name: &str) -> Option<usize> {
    headers
        .iter()
        .position(|(key, _)| key.eq_ignore_ascii_case(name))
}

/// `value` with the ASCII byte at `position` changed in its lowest bit,
/// which keeps it ASCII and never just changes its case; `None` for a byte
/// that is not ASCII.
fn change_byte(value: &str, position: usize) -> Option<String> {
    let mut bytes = value.as_bytes().to_vec();
    let byte = bytes.get_mut(position)?;
    if !byte.is_ascii() {
        return None;
    }
    *byte ^= 0x01;
    String::from_utf8(bytes).ok()
}

/// Every position of a short header value; of a long one, both ends and an
/// even spread in between.
fn header_positions(len: usize) -> Vec<usize> {
    spread(len, EVERY_POSITION_UP_TO)
}

/// The body positions to change: every one of a small body; of a larger
/// one, the first and last 16, the middle, and an even spread, so that the
/// edges (where a parser starts and a MAC ends) are always covered.
fn body_positions(len: usize) -> Vec<usize> {
    spread(len, 96)
}

fn spread(len: usize, budget: usize) -> Vec<usize> {
    if len <= budget {
        return (0..len).collect();
    }
    let edge = 16.min(budget / 4);
    let mut positions: Vec<usize> = (0..edge).chain(len - edge..len).collect();
    positions.push(len / 2);
    let between = budget - positions.len();
    let step = len / between.max(1);
    positions.extend((0..between).map(|i| (i * step + step / 2).min(len - 1)));
    positions.sort_unstable();
    positions.dedup();
    positions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_inputs_are_changed_at_every_position() {
        assert_eq!(spread(0, 96), Vec::<usize>::new());
        assert_eq!(spread(5, 96), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn large_inputs_keep_both_edges_and_stay_in_bounds() {
        let positions = body_positions(3_000);
        assert!(positions.len() <= 96);
        assert!(positions.len() > 80);
        for edge in [0, 15, 1_500, 2_984, 2_999] {
            assert!(positions.contains(&edge), "{edge}");
        }
        assert!(positions.iter().all(|p| *p < 3_000));
    }

    #[test]
    fn a_byte_change_keeps_ascii_and_case() {
        assert_eq!(change_byte("t=1,v1=ab", 0).as_deref(), Some("u=1,v1=ab"));
        assert_eq!(change_byte("a", 0).as_deref(), Some("`"));
        assert_eq!(change_byte("A", 0).as_deref(), Some("@"));
        assert_eq!(change_byte("é", 0), None);
        assert_eq!(change_byte("a", 1), None);
    }

    #[test]
    fn every_check_has_a_distinct_name() {
        let mut names: Vec<&str> = Check::ALL.iter().map(|c| c.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Check::ALL.len());
    }
}
