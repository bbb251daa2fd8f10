//! The one place gateways are registered: the webhook path segment each one
//! answers on, and its adapter when it is configured.

use std::sync::Arc;

use anyhow::Context;
use payhook_adapters_generic::GenericAdapter;
use payhook_adapters_paypal::PaypalAdapter;
use payhook_adapters_stripe::StripeAdapter;
use payhook_domain::ports::GatewayAdapter;

use crate::config::Config;

/// A gateway known to the server, configured or not.
#[derive(Clone)]
pub struct Gateway {
    /// The last path segment: `/api/v1/order-payments/webhooks/<segment>/`.
    pub segment: &'static str,
    /// The gateway's name in logs, metrics and stored events.
    pub name: &'static str,
    /// `None` when its secrets are not configured: the endpoint answers 503.
    pub adapter: Option<Arc<dyn GatewayAdapter>>,
}

/// All gateways, looked up by path segment.
#[derive(Clone, Default)]
pub struct Gateways {
    gateways: Vec<Gateway>,
}

impl Gateways {
    /// Builds every gateway from the configuration. Adding a gateway is one
    /// `register` line here plus its crate.
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let stripe = config.stripe_secrets.clone().map(StripeAdapter::new);
        let generic = match (&config.generic_secrets, config.allow_unsigned_generic) {
            (Some(secrets), _) => {
                Some(GenericAdapter::signed(secrets.clone()).context("invalid WEBHOOK_SECRET")?)
            }
            (None, true) => Some(GenericAdapter::unsigned()),
            (None, false) => None,
        };
        let paypal = config
            .paypal
            .as_ref()
            .map(|p| PaypalAdapter::new(p.webhook_id.clone(), &p.certificates_pem))
            .transpose()
            .context("invalid PAYPAL_CERT_FILE or PAYPAL_WEBHOOK_ID")?;

        let mut gateways = Self::default();
        gateways.register(
            "stripe",
            "stripe",
            stripe
                .transpose()
                .context("invalid STRIPE_WEBHOOK_SECRET")?,
        );
        gateways.register("paypal", "paypal", paypal);
        gateways.register("payment", "generic", generic);
        Ok(gateways)
    }

    /// Adds a gateway answering on `segment`.
    ///
    /// `name` must be the adapter's [`GatewayAdapter::name`]: it is the
    /// `payment_method` of the gateway's payments, and its events find
    /// only payments of that name. A mismatch is a programming error and
    /// panics at start-up rather than leave the gateway's payments
    /// unconfirmable.
    pub fn register<A: GatewayAdapter + 'static>(
        &mut self,
        segment: &'static str,
        name: &'static str,
        adapter: Option<A>,
    ) {
        if let Some(adapter) = &adapter {
            assert_eq!(
                adapter.name(),
                name,
                "gateway registered under a name other than its adapter's"
            );
        }
        self.gateways.push(Gateway {
            segment,
            name,
            adapter: adapter.map(|a| Arc::new(a) as Arc<dyn GatewayAdapter>),
        });
    }

    /// The gateway answering on `segment`.
    pub fn by_segment(&self, segment: &str) -> Option<&Gateway> {
        self.gateways.iter().find(|g| g.segment == segment)
    }

    /// Every registered gateway.
    pub fn iter(&self) -> impl Iterator<Item = &Gateway> {
        self.gateways.iter()
    }
}
