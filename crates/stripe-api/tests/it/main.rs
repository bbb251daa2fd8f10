//! `StripeApi` against a stand-in Stripe on 127.0.0.1: a real HTTP server
//! that checks the key and the exact path and answers with Stripe's
//! documented objects (the fixtures of `payhook-adapters-stripe`).

mod calls;
mod reconcile;
mod support;
