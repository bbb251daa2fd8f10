//! The names of the headers the generic gateway reads, in one place so that
//! the signature check and the choice of event id share them without
//! importing each other.
//!
//! Names only: reading and judging the values is the job of `signature` and
//! `event_id`.

/// The Standard Webhooks header naming the message; it is signed.
pub const WEBHOOK_ID_HEADER: &str = "webhook-id";

/// The Standard Webhooks header with the signing time, in unix seconds.
pub const WEBHOOK_TIMESTAMP_HEADER: &str = "webhook-timestamp";

/// The Standard Webhooks header with the signatures; its presence selects
/// that scheme.
pub const WEBHOOK_SIGNATURE_HEADER: &str = "webhook-signature";

/// The header of the simple scheme, `sha256=<hex>`; used only when
/// [`WEBHOOK_SIGNATURE_HEADER`] is absent.
pub const SIMPLE_SIGNATURE_HEADER: &str = "X-Webhook-Signature";
