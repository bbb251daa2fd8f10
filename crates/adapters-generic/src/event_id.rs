//! The event id a generic call is deduplicated by: the `webhook-id` header,
//! else the `Idempotency-Key` header, else a digest of the body.
//!
//! This module only chooses and bounds the id; it does not remember ids,
//! which is the store's job.

use payhook_domain::ports::Headers;
use ring::digest;

use crate::headers::{IDEMPOTENCY_KEY_HEADER, WEBHOOK_ID_HEADER};

/// The longest event id header accepted, in bytes. Standard Webhooks ids and
/// idempotency keys (UUIDs, `msg_...`) are far shorter; the id is stored
/// and logged, so an unbounded one is refused rather than truncated.
pub const MAX_EVENT_ID_BYTES: usize = 255;

/// The prefix of an id derived from the body, so that it cannot be taken
/// for a sender's own id format.
const BODY_DIGEST_PREFIX: &str = "sha256:";

/// The event id header in force and its value: `webhook-id` when present,
/// else `Idempotency-Key` when present, else `None`.
///
/// A header that is present is never skipped: when it is empty, longer than
/// [`MAX_EVENT_ID_BYTES`] or holds anything but visible ASCII, the error is
/// its name. Falling back to the next source instead would give the same
/// delivery a different id depending on a header's shape.
pub(crate) fn from_headers<H: Headers + ?Sized>(headers: &H) -> Result<Option<&str>, &'static str> {
    for name in [WEBHOOK_ID_HEADER, IDEMPOTENCY_KEY_HEADER] {
        if let Some(value) = headers.get(name) {
            return if is_usable(value) {
                Ok(Some(value))
            } else {
                Err(name)
            };
        }
    }
    Ok(None)
}

/// The event id of a call: its id header's value, or `sha256:` and the
/// lower-case hex SHA-256 of the raw body, which a re-delivery of the same
/// bytes repeats. The error is the name of an unusable id header.
pub(crate) fn event_id<H: Headers + ?Sized>(
    headers: &H,
    body: &[u8],
) -> Result<String, &'static str> {
    Ok(match from_headers(headers)? {
        Some(id) => id.to_owned(),
        None => body_digest(body),
    })
}

/// True for 1 to [`MAX_EVENT_ID_BYTES`] visible ASCII characters: no
/// spaces or control characters, which would make logs and stored ids
/// ambiguous.
pub(crate) fn is_usable(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_EVENT_ID_BYTES && id.bytes().all(|b| b.is_ascii_graphic())
}

fn body_digest(body: &[u8]) -> String {
    let digest = digest::digest(&digest::SHA256, body);
    format!("{BODY_DIGEST_PREFIX}{}", hex::encode(digest.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_id_wins_over_idempotency_key_which_wins_over_the_body() {
        let both = [("Idempotency-Key", "key-1"), ("webhook-id", "msg_1")];
        assert_eq!(event_id(&both, b"{}"), Ok("msg_1".to_owned()));
        let key_only = [("idempotency-key", "key-1")];
        assert_eq!(event_id(&key_only, b"{}"), Ok("key-1".to_owned()));
        let none: [(&str, &str); 0] = [];
        assert_eq!(
            event_id(&none, b"{}"),
            // printf '{}' | sha256sum
            Ok(
                "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
                    .to_owned()
            )
        );
    }

    #[test]
    fn an_unusable_header_is_named_not_skipped() {
        let long = "m".repeat(MAX_EVENT_ID_BYTES + 1);
        for (name, value) in [
            ("webhook-id", ""),
            ("webhook-id", long.as_str()),
            ("webhook-id", "msg 1"),
            ("webhook-id", "msg\t1"),
            ("webhook-id", "msg_é"),
        ] {
            let headers = [(name, value), ("Idempotency-Key", "key-1")];
            assert_eq!(from_headers(&headers), Err("webhook-id"), "{value:?}");
        }
        let headers = [("Idempotency-Key", "")];
        assert_eq!(from_headers(&headers), Err("Idempotency-Key"));
    }

    #[test]
    fn the_bound_is_inclusive() {
        let longest = "k".repeat(MAX_EVENT_ID_BYTES);
        let headers = [("Idempotency-Key", longest.as_str())];
        assert_eq!(from_headers(&headers), Ok(Some(longest.as_str())));
    }
}
