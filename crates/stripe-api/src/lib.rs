//! Stripe's API as payhook's [`payhook_domain::GatewayApi`]: the HTTP half of
//! reconciliation. The mapping of Stripe's objects to payhook's event kinds
//! lives in `payhook-adapters-stripe`, which stays free of an HTTP client.
