//! Group commit: concurrent `apply_event` calls are queued to a few writer
//! threads, each of which takes everything waiting (up to [`MAX_BATCH`]),
//! applies it in one transaction, commits once, and only then answers each
//! caller. A batch in which an event fails is rolled back and applied again
//! with a savepoint per event (`ops::apply_events`), so that event fails
//! alone.
//!
//! No batch is formed by waiting: while a writer is committing, new events
//! queue up, and the next batch takes them all. Under light load a batch is
//! one event and costs what a plain transaction costs.

use std::sync::mpsc::{channel, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};

use payhook_domain::ports::{Applied, EventToApply, StoreError};
use tokio::sync::oneshot;

use crate::conn::Manager;
use crate::ops;

/// Most events in one transaction: bounds the time rows stay locked and the
/// work lost when a commit fails.
pub(crate) const MAX_BATCH: usize = 64;

type Reply = oneshot::Sender<Result<Applied, StoreError>>;

/// The queue in front of the writer threads. Dropping the last clone of
/// the store closes it, and the writers finish what is queued and exit.
pub(crate) struct GroupCommit {
    queue: Mutex<Sender<(EventToApply, Reply)>>,
}

impl GroupCommit {
    /// Starts `writers` threads taking connections from `pool`.
    pub(crate) fn start(pool: r2d2::Pool<Manager>, writers: usize) -> Self {
        let (sender, receiver) = channel::<(EventToApply, Reply)>();
        let receiver = Arc::new(Mutex::new(receiver));
        for index in 0..writers.max(1) {
            let receiver = receiver.clone();
            let pool = pool.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("payhook-writer-{index}"))
                .spawn(move || write_loop(&receiver, &pool));
            if let Err(error) = spawned {
                tracing::error!(%error, "cannot start a group-commit writer");
            }
        }
        Self {
            queue: Mutex::new(sender),
        }
    }

    /// Queues one event and waits for the commit that made it durable.
    /// `None` when the writers are gone (the caller applies it alone).
    pub(crate) async fn apply(&self, event: EventToApply) -> Option<Result<Applied, StoreError>> {
        let (reply, answer) = oneshot::channel();
        {
            let queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            queue.send((event, reply)).ok()?;
        }
        answer.await.ok()
    }
}

/// Takes the first waiting event (blocking), then whatever else is already
/// queued, up to [`MAX_BATCH`].
fn next_batch(
    receiver: &Mutex<Receiver<(EventToApply, Reply)>>,
) -> Option<Vec<(EventToApply, Reply)>> {
    let receiver = receiver.lock().unwrap_or_else(|e| e.into_inner());
    let first = receiver.recv().ok()?;
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH {
        match receiver.try_recv() {
            Ok(job) => batch.push(job),
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
        }
    }
    Some(batch)
}

/// The events already queued, up to [`MAX_BATCH`], without waiting: `None`
/// when there are none, or when another writer is waiting for the next one
/// (it holds the queue, which is then empty).
fn queued_batch(
    receiver: &Mutex<Receiver<(EventToApply, Reply)>>,
) -> Option<Vec<(EventToApply, Reply)>> {
    let receiver = receiver.try_lock().ok()?;
    let mut batch = Vec::new();
    while batch.len() < MAX_BATCH {
        match receiver.try_recv() {
            Ok(job) => batch.push(job),
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
        }
    }
    (!batch.is_empty()).then_some(batch)
}

/// Applies batches as they come. The connection of a batch that applied
/// cleanly is kept for the next one when that one is already queued, and
/// given back to the pool before the writer waits: taking it from the pool
/// again would cost a round trip (r2d2 tests a connection as it hands it
/// out, `SELECT 1`), a tenth of PostgreSQL's statements under load. A
/// connection it just used without an error needs no test; one given back
/// is tested again when it is next taken.
fn write_loop(receiver: &Mutex<Receiver<(EventToApply, Reply)>>, pool: &r2d2::Pool<Manager>) {
    let mut kept = None;
    loop {
        let batch = match queued_batch(receiver) {
            Some(batch) => batch,
            None => {
                // Back to the pool before waiting, for the server's other
                // work, and so that it is tested before its next use.
                kept = None;
                match next_batch(receiver) {
                    Some(batch) => batch,
                    None => break,
                }
            }
        };
        let (events, replies): (Vec<EventToApply>, Vec<Reply>) = batch.into_iter().unzip();
        let conn = match kept.take() {
            Some(conn) => Ok(conn),
            None => pool.get(),
        };
        let results = match conn {
            Ok(mut conn) => {
                let results = ops::apply_events(&mut conn, &events);
                if results.iter().all(Result::is_ok) {
                    kept = Some(conn);
                }
                results
            }
            Err(error) => {
                let message = error.to_string();
                events
                    .iter()
                    .map(|_| Err(StoreError::Unavailable(message.clone().into())))
                    .collect()
            }
        };
        for (reply, result) in replies.into_iter().zip(results) {
            // The caller may have gone (client disconnected); the event is
            // committed all the same, and its re-delivery is a duplicate.
            let _ = reply.send(result);
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;
    use diesel::RunQueryDsl;
    use payhook_domain::{
        AmountPolicy, Currency, EventKind, GatewayEvent, Money, NewOrder, NewPayment, Outcome,
        References,
    };

    use super::*;
    use crate::{DieselStore, StoreOptions};

    fn event(id: &str, transaction_id: &str) -> EventToApply {
        let usd = Currency::parse("USD").unwrap();
        EventToApply {
            event: GatewayEvent {
                gateway: "stripe".into(),
                event_id: id.into(),
                event_type: "payment_intent.succeeded".into(),
                kind: EventKind::Succeeded,
                references: References {
                    transaction_id: Some(transaction_id.into()),
                    ..References::default()
                },
                amount: Some(Money::from_minor(15000, usd)),
                report: None,
            },
            payload: b"{}".to_vec(),
            policy: AmountPolicy::Warn,
            received_at: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
            source: payhook_domain::ports::EventSource::Webhook,
        }
    }

    #[test]
    fn a_failing_event_in_a_group_does_not_affect_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("g.db").display());
        let options = StoreOptions {
            group_commit: false,
            ..StoreOptions::default()
        };
        let store = DieselStore::open(&url, &options).unwrap();
        store.migrate().unwrap();
        let mut conn = store.pool.get().unwrap();
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let usd = Currency::parse("USD").unwrap();
        let order = ops::create_order(
            &mut conn,
            &NewOrder {
                client_id: "c".into(),
                total: Money::from_minor(30000, usd),
            },
            now,
        )
        .unwrap();
        for n in 1..=3 {
            let payment = NewPayment {
                order_id: order.id,
                transaction_id: format!("TXN-G{n}"),
                payment_method: "stripe".into(),
                amount: Money::from_minor(15000, usd),
            };
            ops::create_payment(&mut conn, &payment, now).unwrap();
        }
        // The second payment's row cannot be read back: its event must fail.
        diesel::sql_query("UPDATE payments SET currency = 'ZZZ' WHERE transaction_id = 'TXN-G2'")
            .execute(&mut conn.db)
            .unwrap();

        let batch = [
            event("evt_g1", "TXN-G1"),
            event("evt_g2", "TXN-G2"),
            event("evt_g3", "TXN-G3"),
        ];
        let results = ops::apply_events(&mut conn, &batch);

        assert!(matches!(
            results[0],
            Ok(Applied::Decided {
                outcome: Outcome::Confirmed,
                ..
            })
        ));
        assert!(
            matches!(results[1], Err(StoreError::Backend(_))),
            "{:?}",
            results[1]
        );
        assert!(matches!(
            results[2],
            Ok(Applied::Decided {
                outcome: Outcome::Confirmed,
                ..
            })
        ));
        let recorded: Vec<String> = ops::inspect::events(&mut conn)
            .unwrap()
            .into_iter()
            .map(|e| e.event_id)
            .collect();
        // The failed event left nothing behind: its savepoint was rolled back.
        assert_eq!(recorded, ["evt_g1", "evt_g3"]);
        let outbox = ops::inspect::outbox(&mut conn).unwrap();
        // Split payments: G1 and G3 together cover the 300.00 order.
        assert_eq!(outbox.len(), 1, "the order became paid once");
        assert_eq!(outbox[0].kind, "order.paid");
    }
}
