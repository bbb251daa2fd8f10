//! The `Retry-After` header of a 429: delay seconds or an HTTP date
//! (RFC 9110, section 10.2.3).

use std::time::{Duration, SystemTime};

/// The longest wait taken from a `Retry-After`: a larger value is read as
/// this, so that one odd header cannot stop reconciliation for good.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// How long `value` says to wait, seen at `now`; `None` when it is neither
/// a number of seconds nor an HTTP date. A date in the past is no wait.
pub(crate) fn parse(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let wait = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits for a u64 is still "a very long time".
        Duration::from_secs(value.parse::<u64>().unwrap_or(u64::MAX))
    } else {
        let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
        let at = SystemTime::UNIX_EPOCH
            .checked_add(Duration::from_secs(u64::try_from(at.timestamp()).ok()?))?;
        at.duration_since(now).unwrap_or_default()
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_and_dates() {
        // Sun, 06 Nov 1994 08:49:37 GMT, RFC 9110's example.
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(parse("120", now), Some(Duration::from_secs(120)));
        assert_eq!(parse(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse("Sun, 06 Nov 1994 08:50:07 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse("99999999999999999999999", now), Some(MAX_RETRY_AFTER));
        assert_eq!(parse("172800", now), Some(MAX_RETRY_AFTER));
        for bad in ["", "-5", "1.5", "soon", "Sun, 06 Nov"] {
            assert_eq!(parse(bad, now), None, "{bad}");
        }
    }
}
