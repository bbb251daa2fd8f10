#!/usr/bin/env bash
# The PostgreSQL ceiling for payhook: pgbench runs payhook's per-event
# transaction (the SQL work of a first delivery that confirms a payment:
# insert the event and its body, lock and update the payment, write the
# order's status and paid sum, insert the outbox row) at payhook's
# concurrency, one event per
# transaction, on a scratch database created here from migrations/postgres
# and dropped on exit.
#
#   bench/pg-ceiling.sh [-u ADMIN_URL] [-n EVENTS] [-c CLIENTS] [-j THREADS] [-m MODE]
#
#   -u  a database URL to create the scratch database from
#       (default postgres://postgres@127.0.0.1:5432/test; loopback hosts only)
#   -n  events, at least (default 20000; rounded up to a multiple of -c)
#   -c  concurrent clients (default 64, loadgen's default)
#   -j  pgbench threads (default: number of cores)
#   -m  statements (default): one statement per step, the plain transaction;
#       one: the same work as a single statement (one round trip,
#       data-modifying CTEs), the strongest per-event baseline
#
# Prints pgbench's report with per-statement latencies and a last line
#   RESULT events=.. clients=.. mode=.. tps=.. latency_avg_ms=.. ok=true
set -euo pipefail

ADMIN_URL=postgres://postgres@127.0.0.1:5432/test
EVENTS=20000
CLIENTS=64
THREADS=$(nproc)
MODE=statements
while getopts "u:n:c:j:m:h" opt; do
  case $opt in
    m) MODE=$OPTARG ;;
    u) ADMIN_URL=$OPTARG ;;
    n) EVENTS=$OPTARG ;;
    c) CLIENTS=$OPTARG ;;
    j) THREADS=$OPTARG ;;
    *) sed -n '2,21p' "$0"; exit 2 ;;
  esac
done
[[ $EVENTS =~ ^[0-9]+$ && $EVENTS -ge 1 && $EVENTS -le 1000000 ]] || { echo "-n: 1..1000000" >&2; exit 2; }
[[ $CLIENTS =~ ^[0-9]+$ && $CLIENTS -ge 1 && $CLIENTS -le 1000 ]] || { echo "-c: 1..1000" >&2; exit 2; }
[[ $MODE == statements || $MODE == one ]] || { echo "-m: statements or one" >&2; exit 2; }
(( THREADS > CLIENTS )) && THREADS=$CLIENTS

# Loopback only: this is a load test.
host=$(sed -E 's#^[a-z]+://([^@/]*@)?(\[[^]]*\]|[^:/?]*).*#\2#' <<<"$ADMIN_URL")
case $host in
  127.0.0.1|localhost|\[::1\]) ;;
  *) echo "pg-ceiling: refusing host '$host': loopback only" >&2; exit 2 ;;
esac

PGBENCH=$(command -v pgbench || ls /usr/lib/postgresql/*/bin/pgbench 2>/dev/null | tail -1 || true)
[[ -x $PGBENCH ]] || { echo "pg-ceiling: pgbench not found" >&2; exit 2; }

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PER_CLIENT=$(( (EVENTS + CLIENTS - 1) / CLIENTS ))
TOTAL=$(( PER_CLIENT * CLIENTS ))
DB=payhook_pgbench_$$_$(date +%s)
DB_URL="${ADMIN_URL%/*}/$DB"
WORK=$(mktemp -d)

cleanup() {
  psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

psql -q -v ON_ERROR_STOP=1 "$ADMIN_URL" -c "CREATE DATABASE $DB" >/dev/null
for up in "$ROOT"/migrations/postgres/*/up.sql; do
  psql -q -v ON_ERROR_STOP=1 "$DB_URL" -f "$up" >/dev/null
done
psql -q -v ON_ERROR_STOP=1 "$DB_URL" >/dev/null <<SQL
INSERT INTO orders (client_id, total_minor, currency, status, created_at, updated_at)
  SELECT 'bench-' || i, 15000, 'USD', 'pending', now(), now() FROM generate_series(1, $TOTAL) i;
INSERT INTO payments (order_id, transaction_id, payment_method, amount_minor, currency, status,
                      external_id, created_at, updated_at)
  SELECT i, 'TXN-BENCH' || lpad(i::text, 12, '0'), 'stripe', 15000, 'USD', 'pending_external',
         'pi_bench_' || i, now(), now()
  FROM generate_series(1, $TOTAL) i;
CREATE SEQUENCE payhook_bench_event;
VACUUM ANALYZE;
SQL

# The stored payload: a real-shaped Stripe event (~1.6 KB once compacted),
# sent as a bind parameter like payhook sends it.
PAYLOAD=$(tr -d '\n' < "$ROOT/crates/adapters-stripe/tests/fixtures/payment_intent.succeeded.json" | sed -E 's/ +/ /g')

# One event, a statement per step, as payhook's store sent them before the
# work of the performance issue: the event row first in a savepoint (its
# unique index decides duplicates), the payment found by external id and
# re-read FOR UPDATE, the order's status, total and paid sum FOR UPDATE, then
# the writes (the order's status and paid sum as absolute values, as the store
# writes them on the locked row).
# (payhook now does this work in three statements; this script keeps the
# plain transaction as the baseline, and -m one is the strongest one.)
cat > "$WORK/event.sql" <<'SQL'
BEGIN;
SELECT nextval('payhook_bench_event') AS k \gset
SAVEPOINT diesel_savepoint_1;
INSERT INTO webhook_events (gateway, event_id, event_type, kind, outcome, ref_transaction_id, ref_external_id, ref_gateway_reference, amount_minor, currency, attempts, received_at, processed_at) VALUES ('stripe', 'evt_bench_' || :k, 'payment_intent.succeeded', 'succeeded', 'unmatched', NULL, 'pi_bench_' || :k, 'pi_bench_' || :k, 15000, 'USD', 1, now(), now()) RETURNING id AS event_row \gset
RELEASE SAVEPOINT diesel_savepoint_1;
INSERT INTO webhook_event_bodies (event_row, received_at, payload) VALUES (:event_row, now(), convert_to(:payload, 'UTF8'));
SELECT * FROM payments WHERE external_id = 'pi_bench_' || :k ORDER BY (payment_method = 'stripe') DESC, id LIMIT 1 \gset
SELECT * FROM payments WHERE id = :id FOR UPDATE;
SELECT status AS order_status, total_minor AS order_total, paid_minor AS order_paid FROM orders WHERE id = :order_id FOR UPDATE \gset
\set paid :order_paid + :amount_minor
UPDATE payments SET status = 'completed', external_id = 'pi_bench_' || :k, gateway_reference = 'pi_bench_' || :k, mismatch_expected_minor = NULL, mismatch_expected_currency = NULL, mismatch_received_minor = NULL, mismatch_received_currency = NULL, updated_at = now() WHERE id = :id;
UPDATE orders SET status = CASE WHEN :paid >= :order_total THEN 'paid' ELSE :order_status END, paid_minor = :paid, updated_at = now() WHERE id = :order_id;
INSERT INTO outbox (kind, order_id, payment_id, payload, status, attempts, next_attempt_at, created_at) VALUES ('order.paid', :order_id, :id, '{"type":"order.paid","order_id":' || :order_id || ',"payment_id":' || :id || ',"transaction_id":"' || :transaction_id || '","payment_status":"completed","amount":"150.00","currency":"USD","occurred_at":"' || now() || '"}', 'pending', 0, now(), now());
UPDATE webhook_events SET outcome = 'confirmed', payment_id = :id WHERE id = :event_row;
COMMIT;
SQL

# The same work in one round trip: one statement, autocommitted. The
# payment and its order are locked first (FOR UPDATE), then updated; the
# event row is written with its outcome at once, since a CTE's insert is not
# visible to the rest of its statement.
cat > "$WORK/one.sql" <<'SQL'
WITH k AS (SELECT nextval('payhook_bench_event') AS k), pay AS (SELECT p.id, p.order_id, p.transaction_id, p.amount_minor, o.total_minor, o.paid_minor, k.k FROM payments p JOIN orders o ON o.id = p.order_id, k WHERE p.external_id = 'pi_bench_' || k.k FOR UPDATE OF p, o), ev AS (INSERT INTO webhook_events (gateway, event_id, event_type, kind, outcome, payment_id, ref_transaction_id, ref_external_id, ref_gateway_reference, amount_minor, currency, attempts, received_at, processed_at) SELECT 'stripe', 'evt_bench_' || pay.k, 'payment_intent.succeeded', 'succeeded', 'confirmed', pay.id, NULL, 'pi_bench_' || pay.k, 'pi_bench_' || pay.k, 15000, 'USD', 1, now(), now() FROM pay ON CONFLICT (gateway, event_id) DO NOTHING RETURNING id, received_at), body AS (INSERT INTO webhook_event_bodies (event_row, received_at, payload) SELECT id, received_at, convert_to(:payload, 'UTF8') FROM ev), upd AS (UPDATE payments SET status = 'completed', gateway_reference = 'pi_bench_' || pay.k, mismatch_expected_minor = NULL, mismatch_expected_currency = NULL, mismatch_received_minor = NULL, mismatch_received_currency = NULL, updated_at = now() FROM pay WHERE payments.id = pay.id), paid AS (UPDATE orders SET status = CASE WHEN pay.paid_minor + pay.amount_minor >= pay.total_minor THEN 'paid' ELSE orders.status END, paid_minor = pay.paid_minor + pay.amount_minor, updated_at = now() FROM pay WHERE orders.id = pay.order_id) INSERT INTO outbox (kind, order_id, payment_id, payload, status, attempts, next_attempt_at, created_at) SELECT 'order.paid', pay.order_id, pay.id, '{"type":"order.paid","order_id":' || pay.order_id || ',"payment_id":' || pay.id || ',"transaction_id":"' || pay.transaction_id || '","payment_status":"completed","amount":"150.00","currency":"USD","occurred_at":"' || now() || '"}', 'pending', 0, now(), now() FROM pay;
SQL
SCRIPT=$WORK/event.sql
[[ $MODE == one ]] && SCRIPT=$WORK/one.sql

echo "pg-ceiling: $TOTAL events ($PER_CLIENT per client), $CLIENTS clients, $THREADS threads, mode $MODE, database $DB"
"$PGBENCH" -n -M prepared -r -c "$CLIENTS" -j "$THREADS" -t "$PER_CLIENT" \
  -D payload="$PAYLOAD" -f "$SCRIPT" "$DB_URL" | tee "$WORK/report.txt"

TPS=$(sed -nE 's/^tps = ([0-9.]+) \(without initial connection time\).*/\1/p' "$WORK/report.txt")
LATENCY=$(sed -nE 's/^latency average = ([0-9.]+) ms.*/\1/p' "$WORK/report.txt")
ROWS=$(psql -qtA "$DB_URL" -c "SELECT count(*) FROM outbox")
PAID=$(psql -qtA "$DB_URL" -c "SELECT count(*) FROM orders WHERE status = 'paid' AND paid_minor = total_minor")
OK=true
[[ $ROWS == "$TOTAL" && $PAID == "$TOTAL" && -n $TPS ]] || OK=false
echo "outbox rows: $ROWS, orders paid in full: $PAID (expected $TOTAL each)"
EVENTS_ROWS=$(psql -qtA "$DB_URL" -c "SELECT count(*) FROM webhook_events WHERE outcome = 'confirmed' AND payment_id IS NOT NULL")
[[ $EVENTS_ROWS == "$TOTAL" ]] || OK=false
echo "events confirmed: $EVENTS_ROWS (expected $TOTAL)"
BODY_ROWS=$(psql -qtA "$DB_URL" -c "SELECT count(*) FROM webhook_event_bodies b JOIN webhook_events e ON e.id = b.event_row")
[[ $BODY_ROWS == "$TOTAL" ]] || OK=false
echo "event bodies kept: $BODY_ROWS (expected $TOTAL)"
echo "RESULT events=$TOTAL clients=$CLIENTS mode=$MODE tps=$TPS latency_avg_ms=$LATENCY ok=$OK"
[[ $OK == true ]]
