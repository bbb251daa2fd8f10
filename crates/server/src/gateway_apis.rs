//! PLACEHOLDER until payhook-stripe-api and payhook-paypal-api land.
#![allow(missing_docs)]
use std::rc::Rc;
use std::time::Duration;

use async_trait::async_trait;
use payhook_domain::{GatewayApi, GatewayApiError, GatewayState, Payment};

use crate::config::{PaypalApiSettings, StripeApiSettings};
use crate::reconciler::ApiFactory;

pub struct Placeholder(&'static str);
struct Api(&'static str);
#[async_trait(?Send)]
impl GatewayApi for Api {
    fn gateway(&self) -> &str { self.0 }
    async fn state(&self, _p: &Payment) -> Result<GatewayState, GatewayApiError> {
        Err(GatewayApiError::Unavailable { status: None })
    }
}
impl ApiFactory for Placeholder {
    fn gateway(&self) -> &'static str { self.0 }
    fn build(&self) -> Rc<dyn GatewayApi> { Rc::new(Api(self.0)) }
}
pub fn stripe(_s: &StripeApiSettings, _t: Duration) -> Placeholder { Placeholder("stripe") }
pub fn paypal(_s: &PaypalApiSettings, _t: Duration) -> Placeholder { Placeholder("paypal") }
