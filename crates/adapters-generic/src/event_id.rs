//! The event id a generic call is deduplicated by. It comes only from bytes
//! the call's signature covers, so that nobody can re-send a captured call
//! as a new event, or plant it under the id of a later real one:
//!
//! - Standard Webhooks (a `webhook-signature` header): the `webhook-id`
//!   header, which is signed;
//! - otherwise (`X-Webhook-Signature`, which signs the body alone, and
//!   unsigned calls): the payload's `event_id` field when present, else
//!   `sha256:` and the digest of the body. `Idempotency-Key` and a
//!   `webhook-id` without `webhook-signature` are not signed there, so they
//!   are never read.
//!
//! This module only chooses and bounds the id; it does not remember ids,
//! which is the store's job.

use payhook_domain::json::{invalid, text};
use payhook_domain::ports::{Headers, ParseError};
use ring::digest;
use serde_json::value::RawValue;

use crate::headers::{WEBHOOK_ID_HEADER, WEBHOOK_SIGNATURE_HEADER};

/// The longest event id accepted, in bytes. Standard Webhooks ids and
/// gateway event ids (UUIDs, `msg_...`, `evt_...`) are far shorter; the id
/// is stored and logged, so an unbounded one is refused rather than
/// truncated.
pub const MAX_EVENT_ID_BYTES: usize = 255;

/// The payload field a sender of the simple scheme may set to name its
/// event inside the signed body.
pub(crate) const BODY_EVENT_ID_FIELD: &str = "event_id";

/// The prefix of an id derived from the body, so that it cannot be taken
/// for a sender's own id format.
const BODY_DIGEST_PREFIX: &str = "sha256:";

/// Why the event id of a call is refused.
const UNUSABLE: &str = "must be 1 to 255 visible ASCII characters";

/// The event id of a call (see the module documentation), given the
/// payload's raw `event_id` field (`None` when absent). Under Standard
/// Webhooks the field is not read at all, so that scheme behaves exactly
/// as it did before the field existed.
///
/// Errors: with `webhook-signature`, `MissingField("webhook-id")` without
/// that header (only an unsigned adapter lets such a call reach `parse`)
/// and `InvalidField("webhook-id")` when it is unusable; otherwise
/// `InvalidField("event_id")` when the field is not a string, or is one
/// that is unusable (`null` counts as absent). An
/// unusable id is never replaced by the digest: the same delivery must not
/// get a different id depending on a field's shape.
pub(crate) fn event_id<H: Headers + ?Sized>(
    headers: &H,
    body_event_id: Option<&RawValue>,
    body: &[u8],
) -> Result<String, ParseError> {
    if headers.get(WEBHOOK_SIGNATURE_HEADER).is_some() {
        let id = headers
            .get(WEBHOOK_ID_HEADER)
            .ok_or(ParseError::MissingField(WEBHOOK_ID_HEADER))?;
        return if is_usable(id) {
            Ok(id.to_owned())
        } else {
            Err(invalid(WEBHOOK_ID_HEADER, UNUSABLE))
        };
    }
    match text(body_event_id, BODY_EVENT_ID_FIELD)? {
        Some(id) if is_usable(&id) => Ok(id.into_owned()),
        Some(_) => Err(invalid(BODY_EVENT_ID_FIELD, UNUSABLE)),
        None => Ok(body_digest(body)),
    }
}

/// True for 1 to [`MAX_EVENT_ID_BYTES`] visible ASCII characters: no
/// spaces or control characters, which would make logs and stored ids
/// ambiguous.
pub(crate) fn is_usable(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_EVENT_ID_BYTES && id.bytes().all(|b| b.is_ascii_graphic())
}

/// `sha256:` and the lower-case hex SHA-256 of the raw body, which a
/// re-delivery of the same bytes repeats.
fn body_digest(body: &[u8]) -> String {
    let digest = digest::digest(&digest::SHA256, body);
    format!("{BODY_DIGEST_PREFIX}{}", hex::encode(digest.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `printf '{}' | sha256sum`
    const EMPTY_OBJECT_DIGEST: &str =
        "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

    const STANDARD: [(&str, &str); 2] = [("webhook-signature", "v1,x"), ("webhook-id", "msg_1")];

    /// `value` as the raw JSON of a payload field.
    fn raw(value: serde_json::Value) -> Box<RawValue> {
        RawValue::from_string(value.to_string()).unwrap()
    }

    #[test]
    fn standard_webhooks_is_named_by_its_signed_webhook_id() {
        assert_eq!(
            event_id(&STANDARD, Some(&raw("evt_body".into())), b"{}"),
            Ok("msg_1".to_owned())
        );
        // Not even read: a field Standard Webhooks does not use cannot
        // refuse its calls.
        assert_eq!(
            event_id(&STANDARD, Some(&raw(42.into())), b"{}"),
            Ok("msg_1".to_owned())
        );
        let with_key = [
            ("Idempotency-Key", "key-1"),
            ("webhook-signature", "v1,x"),
            ("webhook-id", "msg_1"),
        ];
        assert_eq!(event_id(&with_key, None, b"{}"), Ok("msg_1".to_owned()));
    }

    #[test]
    fn without_webhook_signature_only_the_body_names_the_event() {
        let unsigned_headers = [("Idempotency-Key", "key-1"), ("webhook-id", "msg_1")];
        assert_eq!(
            event_id(&unsigned_headers, None, b"{}"),
            Ok(EMPTY_OBJECT_DIGEST.to_owned())
        );
        assert_eq!(
            event_id(&unsigned_headers, Some(&raw("evt_1".into())), b"{}"),
            Ok("evt_1".to_owned())
        );
        assert_eq!(
            event_id(
                &unsigned_headers,
                Some(&raw(serde_json::Value::Null)),
                b"{}"
            ),
            Ok(EMPTY_OBJECT_DIGEST.to_owned())
        );
        let none: [(&str, &str); 0] = [];
        assert_eq!(
            event_id(&none, None, b"{}"),
            Ok(EMPTY_OBJECT_DIGEST.to_owned())
        );
    }

    #[test]
    fn an_unusable_id_is_named_not_replaced() {
        let long = "m".repeat(MAX_EVENT_ID_BYTES + 1);
        for value in ["", long.as_str(), "msg 1", "msg\t1", "msg_é"] {
            let headers = [("webhook-signature", "v1,x"), ("webhook-id", value)];
            assert_eq!(
                event_id(&headers, None, b"{}"),
                Err(invalid("webhook-id", UNUSABLE)),
                "{value:?}"
            );
            let none: [(&str, &str); 0] = [];
            assert_eq!(
                event_id(&none, Some(&raw(value.into())), b"{}"),
                Err(invalid("event_id", UNUSABLE)),
                "{value:?}"
            );
        }
        let none: [(&str, &str); 0] = [];
        for value in [serde_json::json!(1), serde_json::json!({"id": "evt_1"})] {
            assert_eq!(
                event_id(&none, Some(&raw(value.clone())), b"{}"),
                Err(invalid("event_id", "expected a string")),
                "{value}"
            );
        }
        let headers = [("webhook-signature", "v1,x")];
        assert_eq!(
            event_id(&headers, None, b"{}"),
            Err(ParseError::MissingField("webhook-id"))
        );
    }

    #[test]
    fn the_bound_is_inclusive() {
        let longest = "k".repeat(MAX_EVENT_ID_BYTES);
        let none: [(&str, &str); 0] = [];
        assert_eq!(
            event_id(&none, Some(&raw(longest.as_str().into())), b"{}"),
            Ok(longest)
        );
    }
}
