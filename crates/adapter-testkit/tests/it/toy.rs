//! A toy gateway, `toy`, as small as a real one can be: `Toy-Timestamp`
//! carries unix seconds, `Toy-Signature` the hex HMAC-SHA256 of
//! `"<timestamp>.<body>"`, and the body is `key=value` lines:
//!
//! ```text
//! id=evt_1
//! type=payment.succeeded
//! ref=pi_1
//! amount=15.00 USD
//! ```
//!
//! Its adapter can be built with one [`Flaw`], each a mistake a real adapter
//! could make, so that the tests can show the suite catches it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use payhook_adapter_testkit::{Conformance, HeaderList};
use payhook_domain::ports::{GatewayAdapter, ParseError, VerifyError, WebhookRequest};
use payhook_domain::{Currency, EventKind, GatewayEvent, Money, References};
use ring::hmac;

pub const SECRET: &str = "toy_test_secret";
pub const TIMESTAMP_HEADER: &str = "Toy-Timestamp";
pub const SIGNATURE_HEADER: &str = "Toy-Signature";
pub const TOLERANCE: Duration = Duration::from_secs(300);

/// A mistake the toy adapter can be built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flaw {
    /// None: the adapter is correct.
    None,
    /// `verify` accepts every request without looking at the signature.
    SkipsSignature,
    /// `verify` checks the signature but not how old its timestamp is.
    IgnoresTimestamp,
    /// The event id includes the delivery's timestamp, so every retry is a
    /// new event.
    IdPerDelivery,
    /// Unknown event types come out as failures instead of `NotHandled`.
    UnhandledAsFailed,
    /// `parse` indexes into the body without checking its length.
    PanicsOnShortBody,
}

pub struct ToyAdapter {
    key: hmac::Key,
    flaw: Flaw,
}

impl ToyAdapter {
    pub fn new(secret: &str, flaw: Flaw) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()),
            flaw,
        }
    }
}

fn signed_message(timestamp: &str, body: &[u8]) -> Vec<u8> {
    let mut message = format!("{timestamp}.").into_bytes();
    message.extend_from_slice(body);
    message
}

impl GatewayAdapter for ToyAdapter {
    fn name(&self) -> &'static str {
        "toy"
    }

    fn verify(&self, request: &WebhookRequest<'_>, now: DateTime<Utc>) -> Result<(), VerifyError> {
        if self.flaw == Flaw::SkipsSignature {
            return Ok(());
        }
        let timestamp = request
            .headers
            .get(TIMESTAMP_HEADER)
            .ok_or(VerifyError::MissingHeader(TIMESTAMP_HEADER))?;
        let signature = request
            .headers
            .get(SIGNATURE_HEADER)
            .ok_or(VerifyError::MissingHeader(SIGNATURE_HEADER))?;
        let seconds: i64 = timestamp
            .parse()
            .map_err(|_| VerifyError::MalformedHeader(TIMESTAMP_HEADER))?;
        let signature = hex::decode(signature).map_err(|_| VerifyError::BadSignature)?;
        hmac::verify(
            &self.key,
            &signed_message(timestamp, request.body),
            &signature,
        )
        .map_err(|_| VerifyError::BadSignature)?;
        if self.flaw != Flaw::IgnoresTimestamp {
            let age = now.timestamp().checked_sub(seconds);
            if age.is_none_or(|age| age.unsigned_abs() > TOLERANCE.as_secs()) {
                return Err(VerifyError::StaleTimestamp);
            }
        }
        Ok(())
    }

    fn parse(&self, request: &WebhookRequest<'_>) -> Result<GatewayEvent, ParseError> {
        if self.flaw == Flaw::PanicsOnShortBody && request.body[3] == b'!' {
            return Err(ParseError::MissingField("id"));
        }
        let text = std::str::from_utf8(request.body)
            .map_err(|_| ParseError::Malformed("not UTF-8".into()))?;
        let field = |name: &str| {
            text.lines()
                .filter_map(|line| line.split_once('='))
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value)
        };
        let id = field("id")
            .filter(|id| !id.is_empty())
            .ok_or(ParseError::MissingField("id"))?;
        let event_type = field("type").ok_or(ParseError::MissingField("type"))?;
        let kind = match event_type {
            "payment.succeeded" => EventKind::Succeeded,
            "payment.failed" => EventKind::Failed,
            _ if self.flaw == Flaw::UnhandledAsFailed => EventKind::Failed,
            _ => EventKind::NotHandled,
        };
        let event_id = match self.flaw {
            Flaw::IdPerDelivery => format!(
                "{id}@{}",
                request.headers.get(TIMESTAMP_HEADER).unwrap_or_default()
            ),
            _ => id.to_owned(),
        };
        let mut event = GatewayEvent {
            gateway: self.name().to_owned(),
            event_id,
            event_type: event_type.to_owned(),
            kind,
            references: References::default(),
            amount: None,
            report: None,
        };
        if kind == EventKind::NotHandled {
            return Ok(event);
        }
        let reference = field("ref").ok_or(ParseError::MissingField("ref"))?;
        event.references.gateway_reference = Some(reference.to_owned());
        let (amount, currency) = field("amount")
            .and_then(|amount| amount.split_once(' '))
            .ok_or(ParseError::MissingField("amount"))?;
        let currency = Currency::parse(currency).map_err(|source| ParseError::Money {
            field: "amount",
            source,
        })?;
        let amount = Money::parse(amount, currency).map_err(|source| ParseError::Money {
            field: "amount",
            source,
        })?;
        event.amount = Some(amount);
        Ok(event)
    }
}

/// The hex HMAC-SHA256 the toy gateway sends, computed with `ring` here.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let message = signed_message(&timestamp.to_string(), body);
    hex::encode(hmac::sign(&key, &message).as_ref())
}

/// How the toy is described to the suite; `tolerance` is what the test
/// declares, which need not be what the adapter does.
pub struct ToyConformance {
    pub flaw: Flaw,
    pub tolerance: Option<Duration>,
    pub signature_headers: Vec<&'static str>,
}

impl ToyConformance {
    pub fn new(flaw: Flaw) -> Self {
        Self {
            flaw,
            tolerance: Some(TOLERANCE),
            signature_headers: vec![TIMESTAMP_HEADER, SIGNATURE_HEADER],
        }
    }
}

impl Conformance for ToyConformance {
    type Adapter = ToyAdapter;

    fn adapter(&self) -> ToyAdapter {
        ToyAdapter::new(SECRET, self.flaw)
    }

    fn adapter_with_other_key(&self) -> ToyAdapter {
        ToyAdapter::new("toy_test_secreu", self.flaw)
    }

    fn sign(&self, body: &[u8], at: DateTime<Utc>, _delivery: u32) -> HeaderList {
        let timestamp = at.timestamp();
        vec![
            ("Content-Type".into(), "text/plain".into()),
            (TIMESTAMP_HEADER.into(), timestamp.to_string()),
            (SIGNATURE_HEADER.into(), sign(SECRET, timestamp, body)),
        ]
    }

    fn signature_headers(&self) -> Vec<&'static str> {
        self.signature_headers.clone()
    }

    fn valid_body(&self) -> Vec<u8> {
        b"id=evt_1\ntype=payment.succeeded\nref=pi_1\namount=15.00 USD\n".to_vec()
    }

    fn unhandled_body(&self) -> Option<Vec<u8>> {
        Some(b"id=evt_2\ntype=customer.created\n".to_vec())
    }

    fn timestamp_tolerance(&self) -> Option<Duration> {
        self.tolerance
    }
}
