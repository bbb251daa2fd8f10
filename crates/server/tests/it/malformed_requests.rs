//! A request the HTTP layer cannot parse, from anyone, is a counted WARN
//! line, not an ERROR: the binary's own log and `/metrics` are read, since
//! only the installed subscriber sees actix-http's line.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;

use crate::processes::{client, Server};

/// Sends `bytes` on a fresh connection and returns the first line answered.
fn send_raw(server: &Server, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(server.address.trim_start_matches("http://"))
        .expect("connect to the server");
    stream.write_all(bytes).expect("send the request");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("a read timeout");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    answer.lines().next().unwrap_or_default().to_owned()
}

/// `payhook_http_parse_errors_total` as scraped.
async fn parse_errors(server: &Server) -> f64 {
    let mut response = client()
        .get(format!("{}/metrics", server.address))
        .send()
        .await
        .expect("metrics answer");
    let text = response.body().await.expect("a metrics body");
    String::from_utf8_lossy(&text)
        .lines()
        .find_map(|line| {
            line.strip_prefix("payhook_http_parse_errors_total ")?
                .parse()
                .ok()
        })
        .expect("the parse error counter")
}

#[actix_rt::test]
async fn a_malformed_request_is_a_counted_warning_not_an_error() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let database = format!("sqlite://{}", dir.path().join("payhook.db").display());
    let server = Server::start(&database, &[]);
    assert_eq!(parse_errors(&server).await, 0.0);

    let garbage: [&[u8]; 2] = [
        b"GARBAGE \x01\x02 HTTP/9\r\n\r\n",
        b"POST /api/v1/orders/ HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n{}",
    ];
    for request in garbage {
        let status = send_raw(&server, request);
        assert_eq!(status, "HTTP/1.1 400 Bad Request", "{request:?}");
    }

    let mut counted = 0.0;
    for _ in 0..50 {
        counted = parse_errors(&server).await;
        if counted >= 2.0 {
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(counted, 2.0);

    let log = server.log.lock().expect("log lock").clone();
    let entries: Vec<Value> = log
        .iter()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let errors: Vec<&Value> = entries
        .iter()
        .filter(|entry| entry["level"] == "ERROR")
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    let warnings = entries
        .iter()
        .filter(|entry| {
            entry["level"] == "WARN"
                && entry["fields"]["message"] == "malformed request refused by the HTTP layer"
                && entry["fields"]["error"]
                    .as_str()
                    .is_some_and(|error| error.starts_with("request parse error"))
        })
        .count();
    assert_eq!(warnings, 2, "{log:#?}");
}
