#!/usr/bin/env bash
# Fuzzes the running server against its own OpenAPI document with
# schemathesis: every check, a bounded number of examples per operation.
# Fails on any server error, undocumented status or schema violation.
#
# Environment: PAYHOOK_BIN (default: build and use target/debug/payhook),
# SCHEMATHESIS_MAX_EXAMPLES (default 30), SCHEMATHESIS_TIMEOUT seconds (300).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v st >/dev/null 2>&1 && ! python3 -c 'import schemathesis' 2>/dev/null; then
    python3 -m pip install --quiet schemathesis
fi
if command -v st >/dev/null 2>&1; then st=(st); else st=(python3 -m schemathesis.cli); fi

if [[ -z "${PAYHOOK_BIN:-}" ]]; then
    cargo build --quiet -p payhook-server --bin payhook
    PAYHOOK_BIN="${CARGO_TARGET_DIR:-target}/debug/payhook"
fi

work="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
token="schemathesis-$(date +%s)-$$"
server_pid=""
cleanup() {
    if [[ -n "${server_pid}" ]] && kill -0 "${server_pid}" 2>/dev/null; then
        kill "${server_pid}"
        wait "${server_pid}" 2>/dev/null || true
    fi
    rm -rf "${work}"
}
trap cleanup EXIT

# Every gateway configured so that fuzzing reaches the verifiers; a
# generous failed-attempt budget so that the fuzzer's bad signatures and
# tokens are answered 401/400 rather than throttled (429 is documented).
DATABASE_URL="sqlite://${work}/payhook.db" \
PAYHOOK_ADDR="127.0.0.1:${port}" \
PAYHOOK_API_TOKEN="${token}" \
STRIPE_WEBHOOK_SECRET="whsec_schemathesis_stripe" \
WEBHOOK_SECRET="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" \
PAYPAL_WEBHOOK_ID="1JE4291016473214C" \
PAYPAL_CERT_FILE="crates/adapters-paypal/tests/fixtures/test-only-cert.pem" \
PAYHOOK_FAILED_ATTEMPTS_PER_SECOND=100000 \
PAYHOOK_FAILED_ATTEMPTS_BURST=100000 \
RUST_LOG="${RUST_LOG:-warn}" \
    "${PAYHOOK_BIN}" >"${work}/server.log" 2>&1 &
server_pid=$!

base="http://127.0.0.1:${port}"
for _ in $(seq 1 100); do
    if curl -fsS "${base}/readyz" >/dev/null 2>&1; then break; fi
    if ! kill -0 "${server_pid}" 2>/dev/null; then
        cat "${work}/server.log" >&2
        echo "schemathesis: the server did not start" >&2
        exit 1
    fi
    sleep 0.1
done
curl -fsS "${base}/readyz" >/dev/null

status=0
timeout --kill-after=10 "${SCHEMATHESIS_TIMEOUT:-300}" \
    "${st[@]}" --config-file .ci/schemathesis.toml run "${base}/api/openapi.json" \
    --checks all \
    --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-30}" \
    --header "Authorization: Bearer ${token}" \
    --request-timeout 10 \
    --seed "${SCHEMATHESIS_SEED:-1}" \
    --no-color \
    || status=$?

if [[ ${status} -ne 0 ]]; then
    echo "schemathesis failed (exit ${status}); server log:" >&2
    tail -n 50 "${work}/server.log" >&2
fi
exit "${status}"
