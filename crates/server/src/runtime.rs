//! The real implementations of the domain's time and randomness ports.

use chrono::{DateTime, Utc};
use payhook_domain::ports::{Clock, TransactionIds};
use ring::rand::{SecureRandom, SystemRandom};

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// `TXN-` followed by 16 characters of Crockford base32 from the OS random
/// source: 80 bits, so ids cannot be guessed or collide in practice.
#[derive(Debug)]
pub struct RandomTransactionIds {
    random: SystemRandom,
}

impl Default for RandomTransactionIds {
    fn default() -> Self {
        Self {
            random: SystemRandom::new(),
        }
    }
}

/// The management API's bearer token, kept as an HMAC tag under a key
/// drawn at start-up: checking a presented token is `ring::hmac::verify`,
/// which compares in constant time whatever the lengths.
pub struct ApiToken {
    key: ring::hmac::Key,
    tag: ring::hmac::Tag,
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken([redacted])")
    }
}

impl ApiToken {
    /// Prepares `token` for comparison.
    pub fn new(token: &payhook_domain::Secret) -> Self {
        let key = ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &SystemRandom::new())
            .expect("the operating system's random source failed");
        let tag = ring::hmac::sign(&key, token.expose().as_bytes());
        Self { key, tag }
    }

    /// True when `presented` is the token.
    pub fn matches(&self, presented: &str) -> bool {
        ring::hmac::verify(&self.key, presented.as_bytes(), self.tag.as_ref()).is_ok()
    }
}

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

impl TransactionIds for RandomTransactionIds {
    fn next_id(&self) -> String {
        let mut bytes = [0u8; 16];
        // The OS random source only fails when the kernel has none to give,
        // which leaves nothing sensible to continue with.
        self.random
            .fill(&mut bytes)
            .expect("the operating system's random source failed");
        let mut id = String::with_capacity(20);
        id.push_str("TXN-");
        id.extend(
            bytes
                .iter()
                .map(|b| char::from(ALPHABET[usize::from(b & 31)])),
        );
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_token_matches_only_itself() {
        let token = ApiToken::new(&payhook_domain::Secret::new("s3cret-token"));
        assert!(token.matches("s3cret-token"));
        assert!(!token.matches("s3cret-token "));
        assert!(!token.matches("s3cret-tokeN"));
        assert!(!token.matches(""));
        assert!(!format!("{token:?}").contains("s3cret"));
    }

    #[test]
    fn transaction_ids_are_prefixed_and_distinct() {
        let ids = RandomTransactionIds::default();
        let a = ids.next_id();
        let b = ids.next_id();
        assert!(a.starts_with("TXN-") && a.len() == 20, "{a}");
        assert_ne!(a, b);
    }
}
