//! Embedding payhook in your own Rust service, without the payhook server:
//! a shop that keeps its orders and payments in SQLite through
//! `payhook-store-diesel`, receives Stripe's webhook on its own HTTP
//! endpoint, and lets payhook's domain services verify and apply it.
//!
//! ```sh
//! cargo run -p payhook-examples --example embedded_shop            # a temporary database
//! cargo run -p payhook-examples --example embedded_shop -- shop.db # or this SQLite file
//! ```
//!
//! What it walks through:
//!
//! 1. open the store on a SQLite file and run the embedded migrations;
//! 2. build `PaymentService` and `WebhookService` from the store, a clock and
//!    a transaction id source (the two ports below, implemented here);
//! 3. create an order and a Stripe payment for it, and mark the payment
//!    pending under the PaymentIntent id the shop got from Stripe;
//! 4. serve `POST /webhooks/stripe` on `127.0.0.1:0` with a deliberately
//!    tiny blocking HTTP/1.1 server of its own (any HTTP stack does:
//!    payhook needs only the headers and the raw body), while a client
//!    thread plays
//!    Stripe: it signs a `payment_intent.succeeded` event with the endpoint
//!    secret and delivers it twice, as Stripe does when it retries;
//! 5. read the payment and the order back: completed and paid, once.
//!
//! It deliberately leaves out what a real service adds around it:
//! configuration, TLS, logging, a real HTTP server, and calling the shop's
//! fulfilment when the order is paid.

use std::error::Error;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread;
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use payhook_adapters_stripe::StripeAdapter;
use payhook_domain::ports::{Clock, Store, TransactionIds, WebhookRequest};
use payhook_domain::{
    AmountPolicy, Currency, Money, OrderStatus, PaymentError, PaymentService, PaymentStatus,
    Secret, WebhookError, WebhookOutcome, WebhookService,
};
use payhook_store_diesel::{DieselStore, StoreOptions};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// The Stripe endpoint secret of this demo. A real service reads its own
/// from its configuration.
const DEMO_SECRET: &str = "whsec_embedded_demo_secret";

/// The largest webhook body this endpoint reads.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The clock port: the system's clock.
struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        DateTime::<Utc>::from(SystemTime::now())
    }
}

/// The transaction id port: `TXN-` and 12 random bytes in hex.
struct RandomTransactionIds(SystemRandom);

impl TransactionIds for RandomTransactionIds {
    fn next_id(&self) -> String {
        format!("TXN-{}", random_hex(&self.0, 12).to_uppercase())
    }
}

/// `bytes` random bytes in lower-case hex.
fn random_hex(random: &SystemRandom, bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    random
        .fill(&mut buffer)
        .expect("the operating system's random source");
    hex::encode(buffer)
}

fn main() -> Result<(), Box<dyn Error>> {
    // payhook's services are async; this service's own HTTP code is plain
    // blocking code, so it drives them with `block_on`. `DieselStore` runs
    // each call on the runtime's blocking pool, one transaction per call.
    let runtime = tokio::runtime::Runtime::new()?;

    // 1. The store.
    let temporary = tempfile::tempdir()?;
    let path = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| temporary.path().join("shop.db"));
    let store = DieselStore::open(
        &format!("sqlite://{}", path.display()),
        &StoreOptions::default(),
    )?;
    let applied = store.migrate()?;
    println!(
        "store: SQLite at {}, migrations applied now: {}",
        path.display(),
        applied.len()
    );

    // 2. The services, sharing the store and the clock.
    let store: Arc<dyn Store> = Arc::new(store);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let ids = Arc::new(RandomTransactionIds(SystemRandom::new()));
    let policy = AmountPolicy::Warn;
    // A payment names its gateway, one of those the shop receives events from.
    let gateways = [payhook_adapters_stripe::NAME];
    let payments =
        PaymentService::new(store.clone(), clock.clone(), ids, gateways).with_amount_policy(policy);
    let webhooks = WebhookService::new(store, clock, policy);

    // 3. An order, its payment, and the customer sent to Stripe, which
    //    named the PaymentIntent (new ids each run, so that the example can
    //    run again on the same database file).
    let stripe_run = random_hex(&SystemRandom::new(), 6);
    let payment_intent = format!("pi_3Embedded{stripe_run}");
    let usd = Currency::parse("USD")?;
    let total = Money::parse("150.00", usd)?;
    let (order, payment) = runtime.block_on(async {
        let order = payments.create_order("customer-42".into(), total).await?;
        let payment = payments
            .create_payment(order.id, "stripe".into(), total)
            .await?;
        let payment = payments
            .mark_pending(payment.id, payment_intent.clone())
            .await?;
        Ok::<_, PaymentError>((order, payment))
    })?;
    println!(
        "created: order {} of {} {}, payment {} ({}) {}",
        order.id,
        order.total.amount_string(),
        order.total.currency().code(),
        payment.id,
        payment.transaction_id,
        payment.status.as_str()
    );

    // 4. The webhook endpoint, and Stripe delivering one event twice.
    let stripe = StripeAdapter::new(vec![Secret::new(DEMO_SECRET)])?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let address = listener.local_addr()?;
    println!("listening: http://{address}/webhooks/stripe");
    let event = stripe_event(
        &format!("evt_3Embedded{stripe_run}"),
        &payment_intent,
        &payment.transaction_id,
    );
    let stripe_side = thread::spawn(move || play_stripe(address, &event));

    for _delivery in 0..2 {
        let (mut stream, _) = listener.accept()?;
        let received = read_request(&mut stream)?;
        let request = WebhookRequest {
            headers: &received.headers,
            body: &received.body,
        };
        // Verify on the raw bytes, parse, apply in one store transaction.
        let answer = runtime.block_on(webhooks.handle(&stripe, &request));
        println!("webhook: {answer:?}");
        let (status, message) = http_answer(&answer);
        write_response(&mut stream, status, message)?;
    }
    let answers = stripe_side
        .join()
        .map_err(|_| "the Stripe thread panicked")??;
    for (delivery, answer) in answers.iter().enumerate() {
        println!("stripe got, delivery {}: {answer}", delivery + 1);
    }

    // 5. The result, read back through the service.
    let (payment, order) = runtime.block_on(async {
        let payment = payments.payment(payment.id).await?;
        let order = payments.order(order.id).await?;
        Ok::<_, PaymentError>((payment, order))
    })?;
    println!(
        "result: payment {} is {}, order {} is {}",
        payment.id,
        payment.status.as_str(),
        order.id,
        order.status.as_str()
    );
    if payment.status != PaymentStatus::Completed || order.status != OrderStatus::Paid {
        return Err("the payment was not confirmed".into());
    }
    Ok(())
}

/// The HTTP status and message this endpoint answers for an outcome: the
/// same rules as payhook's server, in a few lines.
fn http_answer(answer: &Result<WebhookOutcome, WebhookError>) -> (u16, &'static str) {
    match answer {
        Ok(WebhookOutcome::Decided { .. }) => (200, "processed"),
        Ok(WebhookOutcome::Duplicate { .. }) => (200, "already processed"),
        Ok(WebhookOutcome::Ignored { .. }) => (200, "ignored"),
        Ok(WebhookOutcome::Unmatched { .. }) => (404, "no payment matches"),
        // Stripe retries anything but 2xx; a 400 tells whoever sent a
        // forged or broken call that it will never be accepted.
        Err(WebhookError::Verify(_) | WebhookError::Parse(_)) => (400, "refused"),
        // The store failed (the payment is as it was) or, on a replay, the
        // event is gone: a retry may fix either. The match is exhaustive, so
        // a new outcome or error of the domain fails to compile here until
        // someone decides its answer.
        Err(WebhookError::Store(_) | WebhookError::EventNotFound(_)) => (500, "internal error"),
    }
}

/// A `payment_intent.succeeded` event shaped like Stripe's, for the
/// PaymentIntent the shop recorded, carrying the transaction id in its
/// metadata as a shop would set it.
fn stripe_event(event_id: &str, payment_intent: &str, transaction_id: &str) -> Vec<u8> {
    format!(
        r#"{{"id":"{event_id}","object":"event","type":"payment_intent.succeeded","created":1700000000,"data":{{"object":{{"id":"{payment_intent}","object":"payment_intent","amount":15000,"amount_received":15000,"currency":"usd","metadata":{{"transaction_id":"{transaction_id}"}}}}}}}}"#
    )
    .into_bytes()
}

/// Plays Stripe: signs `body` the way Stripe does (HMAC-SHA256 with the
/// endpoint secret over `"<unix time>.<body>"`) and POSTs it twice, each
/// time signed afresh. Returns the status line and body of each answer.
fn play_stripe(address: SocketAddr, body: &[u8]) -> std::io::Result<Vec<String>> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, DEMO_SECRET.as_bytes());
    let mut answers = Vec::new();
    for _delivery in 0..2 {
        let timestamp = SystemClock.now().timestamp();
        let mut signed = format!("{timestamp}.").into_bytes();
        signed.extend_from_slice(body);
        let signature = hex::encode(hmac::sign(&key, &signed).as_ref());

        let mut stream = TcpStream::connect(address)?;
        write!(
            stream,
            "POST /webhooks/stripe HTTP/1.1\r\nHost: {address}\r\n\
             Content-Type: application/json; charset=utf-8\r\n\
             Stripe-Signature: t={timestamp},v1={signature}\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )?;
        stream.write_all(body)?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        let status = answer.lines().next().unwrap_or_default();
        let text = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
        answers.push(format!("{status} {text}"));
    }
    Ok(answers)
}

/// What payhook needs of an HTTP request.
struct Received {
    /// Header names and values, as sent.
    headers: Vec<(String, String)>,
    /// The body, byte for byte.
    body: Vec<u8>,
}

/// Reads one HTTP/1.1 request: its headers, and its body by
/// `Content-Length`, as raw bytes. Enough for this demo; a real service
/// uses its HTTP framework and hands payhook the same two things.
fn read_request(stream: &mut TcpStream) -> std::io::Result<Received> {
    let invalid = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    if !request_line.starts_with("POST /webhooks/stripe ") {
        return Err(invalid("only POST /webhooks/stripe is served"));
    }
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| invalid("malformed header"))?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    let length: usize = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.parse().ok())
        .ok_or_else(|| invalid("no Content-Length"))?;
    if length > MAX_BODY_BYTES {
        return Err(invalid("body too large"));
    }
    // The raw bytes, unparsed: Stripe signed exactly these.
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(Received { headers, body })
}

fn write_response(stream: &mut TcpStream, status: u16, message: &str) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        _ => "Internal Server Error",
    };
    let body = format!("{{\"message\":\"{message}\"}}");
    write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}
