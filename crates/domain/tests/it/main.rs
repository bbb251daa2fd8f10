//! Integration tests of `payhook-domain`: the state machine as a table, its
//! properties, and the services driven end to end over the in-memory store.

mod properties;
mod reconcile;
mod refunds;
mod services;
mod state_machine;
mod support;
