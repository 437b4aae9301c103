//! Rate limiting for the account flows: the keys one request is counted
//! under and the hit / failure / success calls around a guarded attempt.

use crate::error::ApiResult;
use crate::http::client::ClientInfo;
use crate::identity::ratelimit::{self, Policy};
use crate::state::AppState;

/// Rate-limit keys of one request: keyed hashes of its IP and the account
/// it names, so the limits table holds no address.
pub(super) struct Guard<'a> {
    state: &'a AppState,
    secret: [u8; 32],
    ip: Option<std::net::IpAddr>,
}

impl<'a> Guard<'a> {
    /// The guard of one request, with the server-side key its keys are
    /// hashed with.
    pub(super) async fn new(state: &'a AppState, client: &ClientInfo) -> ApiResult<Self> {
        Ok(Self {
            state,
            secret: state.keyring.mac("rate-limit", b"").await?,
            ip: client.ip,
        })
    }

    /// The key of the request's IP under `policy`, when the IP is known.
    pub(super) fn ip_key(&self, policy: &Policy) -> Option<String> {
        self.ip
            .map(|ip| ratelimit::key(policy, &ratelimit::ip_subject(ip), &self.secret))
    }

    /// The key of `account` (an address or a user id) under `policy`.
    pub(super) fn account_key(&self, policy: &Policy, account: &str) -> String {
        ratelimit::key(policy, account, &self.secret)
    }

    /// Counts an attempt against both keys; refused while either is over
    /// its limit or locked.
    pub(super) async fn hit(&self, keys: &[(&Policy, Option<String>)]) -> ApiResult<()> {
        for (policy, key) in keys {
            if let Some(key) = key {
                self.state.limiter.hit(policy, key).await?;
            }
        }
        Ok(())
    }

    /// Records a failed attempt on every key (for unknown accounts too, so a
    /// lock-out reveals nothing).
    pub(super) async fn failed(&self, keys: &[(&Policy, Option<String>)]) -> ApiResult<()> {
        for (policy, key) in keys {
            if let Some(key) = key {
                self.state.limiter.failure(policy, key).await?;
            }
        }
        Ok(())
    }

    /// Forgets an account's failures after a success (never an IP's: one
    /// valid account must not clear an attacker's record).
    pub(super) async fn succeeded(&self, policy: &Policy, key: &str) -> ApiResult<()> {
        self.state.limiter.success(policy, key).await?;
        Ok(())
    }
}
