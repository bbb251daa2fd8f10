//! Where traffic may go: a plain-HTTP URL on the loopback interface, and
//! nothing else.

/// Why a `--url` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Not `http://host[:port][/]`.
    #[error("expected http://<host>[:<port>], e.g. http://127.0.0.1:8000")]
    Malformed,
    /// The host is not 127.0.0.1, localhost or ::1.
    #[error("refusing host {0:?}: load is only ever sent to 127.0.0.1, localhost or [::1]")]
    NotLoopback(String),
}

/// The base URL of a server on this machine, without a trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoopbackUrl(String);

impl LoopbackUrl {
    /// Accepts `http://127.0.0.1[:port]`, `http://localhost[:port]` and
    /// `http://[::1][:port]`, with or without a trailing `/`; refuses any
    /// other host, a path, a query, credentials and HTTPS.
    pub fn parse(url: &str) -> Result<Self, UrlError> {
        let rest = url.strip_prefix("http://").ok_or(UrlError::Malformed)?;
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
            return Err(UrlError::Malformed);
        }
        // The port, when present, follows the host after a `:`.
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            let (host, after) = bracketed.split_once(']').ok_or(UrlError::Malformed)?;
            match after {
                "" => (host, None),
                _ => (
                    host,
                    Some(after.strip_prefix(':').ok_or(UrlError::Malformed)?),
                ),
            }
        } else {
            match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if let Some(port) = port {
            port.parse::<u16>().map_err(|_| UrlError::Malformed)?;
        }
        match host.to_ascii_lowercase().as_str() {
            "127.0.0.1" | "localhost" | "::1" => Ok(Self(format!("http://{authority}"))),
            _ => Err(UrlError::NotLoopback(host.to_owned())),
        }
    }

    /// The base URL, e.g. `http://127.0.0.1:8000`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The base URL followed by `path` (which starts with `/`).
    pub fn join(&self, path: &str) -> String {
        format!("{}{path}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_accepted() {
        for (given, base) in [
            ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
            ("http://127.0.0.1:8000/", "http://127.0.0.1:8000"),
            ("http://localhost", "http://localhost"),
            ("http://LOCALHOST:9/", "http://LOCALHOST:9"),
            ("http://[::1]:8000", "http://[::1]:8000"),
        ] {
            assert_eq!(LoopbackUrl::parse(given).unwrap().as_str(), base, "{given}");
        }
        assert_eq!(
            LoopbackUrl::parse("http://127.0.0.1:8000")
                .unwrap()
                .join("/readyz"),
            "http://127.0.0.1:8000/readyz"
        );
    }

    #[test]
    fn everything_else_is_refused() {
        for other in [
            "http://10.0.0.1:8000",
            "http://127.0.0.2:8000",
            "http://example.com",
            "http://localhost.example.com",
            "http://[::2]:80",
        ] {
            assert!(
                matches!(LoopbackUrl::parse(other), Err(UrlError::NotLoopback(_))),
                "{other}"
            );
        }
        for malformed in [
            "https://127.0.0.1",
            "127.0.0.1:8000",
            "http://",
            "http://127.0.0.1:8000/api",
            "http://user@127.0.0.1",
            "http://127.0.0.1:port",
            "http://127.0.0.1:99999",
            "http://[::1",
        ] {
            assert_eq!(
                LoopbackUrl::parse(malformed),
                Err(UrlError::Malformed),
                "{malformed}"
            );
        }
    }
}
