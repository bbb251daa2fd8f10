//! The console's sessions: an in-process store of signed-in browsers.
//!
//! A session id is 32 bytes from the operating system's random source,
//! written base64url in the cookie; the store keeps only its SHA-256, so a
//! memory dump or a debug print does not hand out live sessions. Each
//! session carries its own CSRF token, also 32 random bytes.
//!
//! The store belongs to one server process: a browser signed in on one
//! process is not signed in on another, and a restart signs everyone out.
//! Behind a load balancer, the console needs sticky sessions (or a single
//! process serving `/console/`). It holds at most `capacity` sessions: when
//! full it first forgets the expired ones, then the oldest.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use base64::Engine as _;
use ring::digest::{digest, SHA256};
use ring::rand::{SecureRandom, SystemRandom};
use subtle::ConstantTimeEq;

/// Most sessions held at once.
pub const DEFAULT_CAPACITY: usize = 10_000;

/// How long a session lasts after sign-in, whatever happens in it.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(8 * 60 * 60);

/// The key a session is kept under: the SHA-256 of its id.
type Key = [u8; 32];

struct Entry {
    csrf: String,
    created: Instant,
    expires: Instant,
}

/// A live session as a handler sees it.
#[derive(Clone)]
pub struct Session {
    id: String,
    csrf: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Either value opens the console to whoever reads it.
        f.write_str("Session([redacted])")
    }
}

impl Session {
    /// The id the cookie carries.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The token every state-changing form of this session must carry.
    pub fn csrf(&self) -> &str {
        &self.csrf
    }

    /// True when `presented` is this session's CSRF token, compared in
    /// constant time (for tokens of the right length).
    pub fn csrf_matches(&self, presented: &str) -> bool {
        self.csrf.as_bytes().ct_eq(presented.as_bytes()).into()
    }
}

/// The sessions of this process.
pub struct Sessions {
    entries: Mutex<HashMap<Key, Entry>>,
    capacity: usize,
    lifetime: Duration,
    random: SystemRandom,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("capacity", &self.capacity)
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

impl Default for Sessions {
    /// [`DEFAULT_CAPACITY`] sessions of [`DEFAULT_LIFETIME`].
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY, DEFAULT_LIFETIME)
    }
}

fn key(id: &str) -> Key {
    let mut key = [0u8; 32];
    key.copy_from_slice(digest(&SHA256, id.as_bytes()).as_ref());
    key
}

impl Sessions {
    /// A store of at most `capacity` (at least 1) sessions, each lasting
    /// `lifetime` from sign-in.
    pub fn new(capacity: usize, lifetime: Duration) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
            lifetime,
            random: SystemRandom::new(),
        }
    }

    /// How long a session lasts: the cookie's `Max-Age`.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn token(&self) -> String {
        let mut bytes = [0u8; 32];
        // The OS random source only fails when the kernel has none to give,
        // which leaves nothing sensible to continue with.
        self.random
            .fill(&mut bytes)
            .expect("the operating system's random source failed");
        BASE64URL.encode(bytes)
    }

    /// A new session, started now.
    pub fn create(&self) -> Session {
        self.create_at(Instant::now())
    }

    /// A new session started at `now`.
    pub fn create_at(&self, now: Instant) -> Session {
        let session = Session {
            id: self.token(),
            csrf: self.token(),
        };
        let mut entries = self.entries();
        if entries.len() >= self.capacity {
            entries.retain(|_, entry| entry.expires > now);
        }
        if entries.len() >= self.capacity {
            let oldest = entries
                .iter()
                .min_by_key(|(_, entry)| entry.created)
                .map(|(key, _)| *key);
            if let Some(oldest) = oldest {
                entries.remove(&oldest);
            }
        }
        entries.insert(
            key(&session.id),
            Entry {
                csrf: session.csrf.clone(),
                created: now,
                expires: now + self.lifetime,
            },
        );
        session
    }

    /// The live session whose id is `id`, now.
    pub fn get(&self, id: &str) -> Option<Session> {
        self.get_at(id, Instant::now())
    }

    /// The session whose id is `id` if it is live at `now`; an expired one
    /// is forgotten.
    pub fn get_at(&self, id: &str, now: Instant) -> Option<Session> {
        let key = key(id);
        let mut entries = self.entries();
        let entry = entries.get(&key)?;
        if entry.expires <= now {
            entries.remove(&key);
            return None;
        }
        Some(Session {
            id: id.to_owned(),
            csrf: entry.csrf.clone(),
        })
    }

    /// Ends the session `id` (sign-out); nothing when there is none.
    pub fn remove(&self, id: &str) {
        self.entries().remove(&key(id));
    }

    /// Sessions held, expired ones not yet forgotten included.
    pub fn len(&self) -> usize {
        self.entries().len()
    }

    /// True when no session is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_tokens_are_32_random_bytes_in_base64url() {
        let sessions = Sessions::default();
        let first = sessions.create();
        let second = sessions.create();
        for token in [first.id(), first.csrf(), second.id(), second.csrf()] {
            let bytes = BASE64URL.decode(token).expect("base64url");
            assert_eq!(bytes.len(), 32, "{token}");
        }
        assert_ne!(first.id(), second.id());
        assert_ne!(first.csrf(), second.csrf());
        assert_ne!(first.id(), first.csrf());
        assert!(!format!("{first:?}{sessions:?}").contains(first.id()));
    }

    #[test]
    fn a_session_is_found_by_its_id_only_until_it_expires_or_ends() {
        let sessions = Sessions::new(10, Duration::from_secs(60));
        let start = Instant::now();
        let session = sessions.create_at(start);
        let found = sessions.get_at(session.id(), start).expect("live");
        assert_eq!(found.csrf(), session.csrf());
        assert!(sessions.get_at("not-a-session", start).is_none());
        let later = start + Duration::from_secs(59);
        assert!(sessions.get_at(session.id(), later).is_some());
        let expired = start + Duration::from_secs(60);
        assert!(sessions.get_at(session.id(), expired).is_none());
        assert!(sessions.is_empty(), "an expired session is forgotten");

        let other = sessions.create_at(start);
        sessions.remove(other.id());
        assert!(sessions.get_at(other.id(), start).is_none());
    }

    #[test]
    fn the_store_is_bounded_forgetting_the_expired_then_the_oldest() {
        let sessions = Sessions::new(3, Duration::from_secs(60));
        let start = Instant::now();
        let oldest = sessions.create_at(start);
        let second = sessions.create_at(start + Duration::from_secs(1));
        let third = sessions.create_at(start + Duration::from_secs(2));
        let fourth = sessions.create_at(start + Duration::from_secs(3));
        assert_eq!(sessions.len(), 3);
        let now = start + Duration::from_secs(3);
        assert!(sessions.get_at(oldest.id(), now).is_none());
        for kept in [&second, &third, &fourth] {
            assert!(sessions.get_at(kept.id(), now).is_some());
        }
        // Expired ones go first, all of them.
        let late = start + Duration::from_secs(62);
        let fifth = sessions.create_at(late);
        assert!(sessions.get_at(fifth.id(), late).is_some());
        assert!(sessions.get_at(fourth.id(), late).is_some());
        assert!(sessions.get_at(second.id(), late).is_none());
        assert!(sessions.len() <= 3);
    }

    #[test]
    fn csrf_tokens_must_match_exactly() {
        let session = Sessions::default().create();
        assert!(session.csrf_matches(session.csrf()));
        let mut altered = session.csrf().to_owned();
        let last = altered.pop().expect("a token");
        assert!(!session.csrf_matches(&altered), "a prefix");
        altered.push(if last == 'A' { 'B' } else { 'A' });
        assert!(!session.csrf_matches(&altered), "one character changed");
        assert!(!session.csrf_matches(""));
        assert!(!session.csrf_matches(session.id()));
    }
}
