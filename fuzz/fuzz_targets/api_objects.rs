//! Fuzzes the readers of the gateways' API answers used by reconciliation:
//! Stripe's PaymentIntent and Checkout Session
//! (`payhook_adapters_stripe::api`) and PayPal's Orders v2 order
//! (`payhook_adapters_paypal::api::order_state`).
//!
//! Input: the raw body, as the API would answer it.
//! Property: no panic, no unbounded allocation, no timeout; an accepted
//! body keeps its bytes in the state, for the audit.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for state in [
        payhook_adapters_stripe::api::payment_intent(data),
        payhook_adapters_stripe::api::checkout_session(data),
        payhook_adapters_paypal::api::order_state(data.to_vec()),
    ]
    .into_iter()
    .flatten()
    {
        assert_eq!(state.body, data);
    }
});
