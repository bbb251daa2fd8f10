#!/usr/bin/env python3
"""Regenerates fuzz/seeds/ from the adapters' test fixtures.

For the verify-and-parse targets (stripe, paypal, generic), each seed is a
webhook call in the targets' input format (headers, a blank line, the
fixture's bytes unchanged), signed with the test-only secrets and keys that
the fuzz targets configure, at the `now` they verify at, so that every seed
passes `verify` and reaches `parse` with a realistic payload.

For the parse-only targets (stripe_parse, paypal_parse, generic_parse), the
seeds are every JSON fixture of the adapter, byte for byte: the Stripe and
PayPal parsers read no header. The generic parser takes the event id from a
header, so its seeds are each fixture with no header (a leading blank line),
with `webhook-id` and with `Idempotency-Key`.

Run from anywhere: python3 fuzz/make_seeds.py  (needs the openssl CLI for
the PayPal signatures). Re-run it when a fixture changes.
"""

import base64
import hashlib
import hmac
import subprocess
import zlib
from pathlib import Path

FUZZ = Path(__file__).resolve().parent
CRATES = FUZZ.parent / "crates"
SEEDS = FUZZ / "seeds"


def fixture(crate: str, name: str) -> bytes:
    return (CRATES / crate / "tests" / "fixtures" / name).read_bytes()


def write(target: str, name: str, headers: list[tuple[str, str]], body: bytes) -> None:
    block = "".join(f"{key}: {value}\n" for key, value in headers).encode()
    path = SEEDS / target / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(block + b"\n" + body)


# --- Stripe: fuzz_targets/stripe.rs, secret whsec_test_secret, now 1700000000.
STRIPE_SECRET = b"whsec_test_secret"
STRIPE_T = 1_699_999_997


def stripe_v1(body: bytes, secret: bytes = STRIPE_SECRET, t: int = STRIPE_T) -> str:
    return hmac.new(secret, f"{t}.".encode() + body, hashlib.sha256).hexdigest()


for name, extra in [
    ("payment_intent.succeeded", []),
    ("payment_intent.payment_failed", []),
    ("payment_intent.canceled", []),
    ("payment_intent.processing", []),
    ("payment_intent.requires_action", []),
    ("charge.succeeded", []),
    # A rotation as Stripe sends it: a v0, a v1 for another secret, ours.
    ("charge.failed", ["v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39",
                       "v1=" + "0" * 64]),
    ("checkout.session.completed", []),
    ("checkout.session.async_payment_succeeded", []),
    ("checkout.session.async_payment_failed", []),
    ("checkout.session.expired", []),
    ("charge.refunded", []),
    ("refund.created", []),
    ("refund.updated", []),
    ("refund.failed", []),
    ("charge.refund.updated", []),
    ("charge.dispute.created", []),
    ("charge.dispute.updated", []),
    ("charge.dispute.closed", []),
    ("charge.dispute.funds_withdrawn", []),
    ("charge.dispute.funds_reinstated", []),
    ("customer.created", []),
]:
    body = fixture("adapters-stripe", f"{name}.json")
    header = ",".join([f"t={STRIPE_T}", *extra, f"v1={stripe_v1(body)}"])
    write("stripe", name, [
        ("Content-Type", "application/json; charset=utf-8"),
        ("Stripe-Signature", header),
        ("User-Agent", "Stripe/1.0 (+https://stripe.com/docs/webhooks)"),
    ], body)

# --- PayPal: fuzz_targets/paypal.rs, webhook id 1JE4291016473214C, the first
# test-only key, now 2026-11-27T01:02:05Z.
PAYPAL_KEY = CRATES / "adapters-paypal/tests/fixtures/test-only-signing-key.pk8.pem"
WEBHOOK_ID = "1JE4291016473214C"
SENT_AT = "2026-11-27T01:02:05Z"
CERT_URL = "https://api.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-1d93a270"

for name, transmission_id in [
    ("PAYMENT.CAPTURE.COMPLETED", "b2d5a4e0-cb7f-11f0-9a3b-4d6f3c2a1e90"),
    ("PAYMENT.CAPTURE.DENIED", "c81f0a20-cb7f-11f0-8e1d-29a7b3c4d5e6"),
    ("CHECKOUT.ORDER.APPROVED", "d0a3e6b0-cb7f-11f0-b4c2-7f8e9a0b1c2d"),
    ("PAYMENT.CAPTURE.DECLINED", "e1b4f7c0-cb7f-11f0-a5d3-8091a2b3c4d5"),
    ("PAYMENT.CAPTURE.PENDING", "f2c5a8d0-cb7f-11f0-96e4-a1b2c3d4e5f6"),
    ("PAYMENT.AUTHORIZATION.CREATED", "03d6b9e0-cb80-11f0-87f5-b2c3d4e5f607"),
    ("PAYMENT.CAPTURE.REFUNDED", "14e7caf0-cb80-11f0-9806-c3d4e5f60718"),
    ("PAYMENT.CAPTURE.REVERSED", "25f8db00-cb80-11f0-a917-d4e5f6071829"),
    ("CUSTOMER.DISPUTE.CREATED", "3609ec10-cb80-11f0-ba28-e5f60718293a"),
    ("CUSTOMER.DISPUTE.UPDATED", "471afd20-cb80-11f0-8b39-f60718293a4b"),
    ("CUSTOMER.DISPUTE.RESOLVED", "582c0e30-cb80-11f0-9c4a-0718293a4b5c"),
]:
    body = fixture("adapters-paypal", f"{name}.json")
    message = f"{transmission_id}|{SENT_AT}|{WEBHOOK_ID}|{zlib.crc32(body)}".encode()
    signature = subprocess.run(
        ["openssl", "dgst", "-sha256", "-sign", str(PAYPAL_KEY)],
        input=message, capture_output=True, check=True,
    ).stdout
    write("paypal", name, [
        ("Content-Type", "application/json"),
        ("PAYPAL-TRANSMISSION-ID", transmission_id),
        ("PAYPAL-TRANSMISSION-TIME", SENT_AT),
        ("PAYPAL-TRANSMISSION-SIG", base64.b64encode(signature).decode()),
        ("PAYPAL-CERT-URL", CERT_URL),
        ("PAYPAL-AUTH-ALGO", "SHA256withRSA"),
    ], body)

# --- Generic: fuzz_targets/generic.rs, both test secrets, now 1700000000.
WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
RAW_SECRET = b"a-shared-secret-for-the-generic-gateway"
GENERIC_T = 1_699_999_990

completed = fixture("adapters-generic", "payment.completed.json")
msg_id = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
key = base64.b64decode(WHSEC.removeprefix("whsec_"))
tag = hmac.new(key, f"{msg_id}.{GENERIC_T}.".encode() + completed, hashlib.sha256).digest()
write("generic", "payment.completed.standard-webhooks", [
    ("Content-Type", "application/json"),
    ("webhook-id", msg_id),
    ("webhook-timestamp", str(GENERIC_T)),
    ("webhook-signature", f"v1a,{'A' * 44} v1,{base64.b64encode(tag).decode()}"),
], completed)

failed = fixture("adapters-generic", "payment.failed.json")
write("generic", "payment.failed.x-webhook-signature", [
    ("Content-Type", "application/json"),
    ("X-Webhook-Signature", "sha256=" + hmac.new(RAW_SECRET, failed, hashlib.sha256).hexdigest()),
    ("Idempotency-Key", "key-failed-1"),
], failed)

# No headers at all: verify refuses it, parse takes the event id from the
# body's digest.
write("generic", "payment.completed.unsigned", [], completed)

# A refund under Standard Webhooks, signed with the raw secret.
refunded = fixture("adapters-generic", "payment.refunded.json")
refund_msg_id = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4X"
tag = hmac.new(RAW_SECRET, f"{refund_msg_id}.{GENERIC_T}.".encode() + refunded,
               hashlib.sha256).digest()
write("generic", "payment.refunded.standard-webhooks", [
    ("Content-Type", "application/json"),
    ("webhook-id", refund_msg_id),
    ("webhook-timestamp", str(GENERIC_T)),
    ("webhook-signature", f"v1,{base64.b64encode(tag).decode()}"),
], refunded)


# --- Parse-only targets: every JSON fixture, unsigned.
def write_bare(target: str, name: str, body: bytes) -> None:
    path = SEEDS / target / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)


for target, crate in [("stripe_parse", "adapters-stripe"), ("paypal_parse", "adapters-paypal")]:
    for path in sorted((CRATES / crate / "tests" / "fixtures").glob("*.json")):
        write_bare(target, path.stem, path.read_bytes())

for path in sorted((CRATES / "adapters-generic" / "tests" / "fixtures").glob("*.json")):
    body = path.read_bytes()
    write("generic_parse", f"{path.stem}.no-header", [], body)
    write("generic_parse", f"{path.stem}.webhook-id", [("webhook-id", msg_id)], body)
    write("generic_parse", f"{path.stem}.idempotency-key",
          [("Idempotency-Key", f"key-{path.stem}")], body)
