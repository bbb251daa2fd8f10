//! PayPal's API as payhook's [`payhook_domain::GatewayApi`]: the HTTP half of
//! reconciliation. The mapping of PayPal's objects to payhook's event kinds
//! lives in `payhook-adapters-paypal`, which stays free of an HTTP client.
