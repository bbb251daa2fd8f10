//! The console's browser security: the session cookie (its attributes, and
//! reading it back), the `Origin` check of every POST, and the headers
//! every console answer carries.
//!
//! CSRF is stopped twice: a POST whose `Origin` is missing or not this
//! server's changes nothing (403), and every state-changing form carries
//! its session's token ([`super::session::Session::csrf_matches`]). The
//! cookie is `SameSite=Strict` besides, so another site's form does not
//! even send it.

use std::net::IpAddr;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{
    HeaderName, HeaderValue, CACHE_CONTROL, CONTENT_SECURITY_POLICY, COOKIE, ORIGIN,
    REFERRER_POLICY, X_FRAME_OPTIONS,
};
use actix_web::middleware::Next;
use actix_web::HttpRequest;

/// The session cookie's name.
pub const COOKIE_NAME: &str = "payhook_console";

/// The cookie's path: the console only.
const COOKIE_PATH: &str = "/console/";

/// Nothing but the console's own stylesheet and images, no script at all,
/// forms only to itself, never in a frame.
pub const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'none'; style-src 'self'; \
     img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The headers of every console answer, errors and redirects included.
pub const HEADERS: [(HeaderName, &str); 4] = [
    (CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY_VALUE),
    (X_FRAME_OPTIONS, "DENY"),
    (REFERRER_POLICY, "same-origin"),
    // Pages name payments and carry CSRF tokens: never kept by a browser
    // or a proxy.
    (CACHE_CONTROL, "no-store"),
];

/// Middleware (through `actix_web::middleware::from_fn`) adding
/// [`HEADERS`] to whatever the console answered.
pub async fn console_headers(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let mut response = next.call(request).await?;
    let headers = response.headers_mut();
    for (name, value) in HEADERS {
        headers.insert(name, HeaderValue::from_static(value));
    }
    Ok(response)
}

/// The host part of a `Host` value (`host`, `host:port`, `[v6]:port`).
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    host.rsplit_once(':').map_or(host, |(name, _)| name)
}

/// True for `localhost` and loopback addresses.
fn is_loopback(host: &str) -> bool {
    let name = host_name(host);
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

/// Whether the cookie must be `Secure`: always, unless the request came
/// over plain HTTP to a loopback address (a browser would drop a `Secure`
/// cookie there, and nothing on the wire leaves the machine).
pub fn cookie_secure(request: &HttpRequest) -> bool {
    let info = request.connection_info();
    !(info.scheme() == "http" && is_loopback(info.host()))
}

/// The `Set-Cookie` value that starts session `id` for `lifetime`.
pub fn session_cookie(id: &str, lifetime: Duration, secure: bool) -> String {
    let mut cookie = format!(
        "{COOKIE_NAME}={id}; Path={COOKIE_PATH}; Max-Age={}; HttpOnly; SameSite=Strict",
        lifetime.as_secs()
    );
    if secure {
        cookie.push_str("; Secure");
    }
    cookie
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn cleared_cookie(secure: bool) -> String {
    session_cookie("", Duration::ZERO, secure)
}

/// The session id the request's cookies carry, if any.
pub fn session_id(request: &HttpRequest) -> Option<String> {
    request
        .headers()
        .get_all(COOKIE)
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == COOKIE_NAME && !value.is_empty())
        .map(|(_, value)| value.to_owned())
}

/// True when the request's `Origin` is this server's own: the scheme and
/// host the request was made to. A missing `Origin`, or `null` (a
/// sandboxed frame, a redirect across sites), is not.
pub fn same_origin(request: &HttpRequest) -> bool {
    let Some(origin) = request.headers().get(ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let info = request.connection_info();
    let own = format!("{}://{}", info.scheme(), info.host());
    origin.eq_ignore_ascii_case(&own)
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    #[test]
    fn the_cookie_is_secure_unless_plain_http_to_loopback() {
        let cases = [
            ("127.0.0.1:8000", None, false),
            ("localhost:8000", None, false),
            ("[::1]:8000", None, false),
            ("127.0.0.1", None, false),
            ("payhook.example:8000", None, true),
            ("10.0.0.5:8000", None, true),
            ("[2001:db8::1]:8000", None, true),
            // Behind a TLS proxy that says so, even on loopback.
            ("127.0.0.1:8000", Some("https"), true),
        ];
        for (host, forwarded, secure) in cases {
            let mut request = TestRequest::default().insert_header(("host", host));
            if let Some(proto) = forwarded {
                request = request.insert_header(("x-forwarded-proto", proto));
            }
            assert_eq!(cookie_secure(&request.to_http_request()), secure, "{host}");
        }
    }

    #[test]
    fn the_cookie_has_every_attribute() {
        let cookie = session_cookie("abc", Duration::from_secs(28_800), true);
        assert_eq!(
            cookie,
            "payhook_console=abc; Path=/console/; Max-Age=28800; HttpOnly; SameSite=Strict; Secure"
        );
        let plain = session_cookie("abc", Duration::from_secs(60), false);
        assert!(!plain.contains("Secure"), "{plain}");
        assert!(plain.contains("HttpOnly") && plain.contains("SameSite=Strict"));
        let cleared = cleared_cookie(true);
        assert!(cleared.starts_with("payhook_console=;"), "{cleared}");
        assert!(cleared.contains("Max-Age=0"), "{cleared}");
    }

    #[test]
    fn the_session_id_is_read_from_among_other_cookies() {
        let request = TestRequest::default()
            .insert_header(("cookie", "theme=dark; payhook_console=s3ss10n; x=1"))
            .to_http_request();
        assert_eq!(session_id(&request).as_deref(), Some("s3ss10n"));
        for cookies in ["payhook_console=", "other=1", "payhook_consolex=1", ""] {
            let request = TestRequest::default()
                .insert_header(("cookie", cookies))
                .to_http_request();
            assert_eq!(session_id(&request), None, "{cookies}");
        }
    }

    #[test]
    fn only_the_servers_own_origin_passes() {
        let request = |origin: Option<&str>| {
            let mut request = TestRequest::post().insert_header(("host", "127.0.0.1:8000"));
            if let Some(origin) = origin {
                request = request.insert_header(("origin", origin));
            }
            request.to_http_request()
        };
        assert!(same_origin(&request(Some("http://127.0.0.1:8000"))));
        for origin in [
            None,
            Some("null"),
            Some("http://evil.example"),
            Some("https://127.0.0.1:8000"),
            Some("http://127.0.0.1:8001"),
            Some("http://127.0.0.1:8000.evil.example"),
        ] {
            assert!(!same_origin(&request(origin)), "{origin:?}");
        }
    }
}
