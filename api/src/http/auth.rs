//! Who is calling: bearer tokens, checked against the `access` read model, and what each role
//! may do. Every route that is not public takes a [`Caller`]; the checks here are the only
//! place roles are interpreted.
//!
//! A token is `parley_` followed by 64 hex digits (256 random bits). Only its SHA-256 digest
//! is stored. Lookups are cached for [`CACHE_TTL`]: a revoked token stops working within that
//! time on every node (at once on the node that revoked it).

use crate::http::AppState;
use crate::problem::Problem;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use parley_domain::Actor as DomainActor;
use parley_domain::access::{Role, TokenId};
use parley_domain::ids::{AgentId, CustomerId};
use parley_eventlog::{Actor, ActorKind, Metadata};
use parley_projections::access::{self, TokenView};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long a token lookup is trusted before the read model is asked again.
pub const CACHE_TTL: Duration = Duration::from_secs(1);
/// Most cached lookups; the cache is cleared when full.
const CACHE_CAPACITY: usize = 100_000;
const TOKEN_PREFIX: &str = "parley_";

/// A new random secret, in the form clients send.
pub fn new_secret() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!("{TOKEN_PREFIX}{}", hex(&bytes)))
}

/// The digest stored for a secret: SHA-256, lower-case hex.
pub fn digest(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// `bytes` in lower-case hex. Every authenticated request encodes a digest; formatting each
/// byte through `format!` cost more than hashing the secret.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        hex.push(char::from(DIGITS[usize::from(byte >> 4)]));
        hex.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    hex
}

/// Checks bearer tokens and applies per-token rate limits, and per-address ones to the public
/// routes that write (a new widget visitor).
pub struct Authenticator {
    cache: Mutex<HashMap<String, (Instant, TokenView)>>,
    limiter: Option<DefaultKeyedRateLimiter<TokenId>>,
    addresses: Option<DefaultKeyedRateLimiter<std::net::IpAddr>>,
    /// Counts address checks, to forget recovered addresses every [`PRUNE_ADDRESSES_EVERY`].
    address_checks: AtomicU64,
}

/// How many address checks pass between two prunings of the address table.
const PRUNE_ADDRESSES_EVERY: u64 = 1024;

/// The key an address is limited by: itself (IPv4), or its /64 network (IPv6).
pub(super) fn client_network(address: std::net::IpAddr) -> std::net::IpAddr {
    match address {
        std::net::IpAddr::V4(_) => address,
        std::net::IpAddr::V6(v6) => {
            std::net::IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into())
        }
    }
}

impl Authenticator {
    /// `per_second` requests per token, with bursts up to `burst`; `per_second == 0` turns rate
    /// limiting off.
    pub fn new(per_second: u32, burst: u32) -> Authenticator {
        let quota = NonZeroU32::new(per_second).map(|rate| {
            let burst = NonZeroU32::new(burst.max(per_second)).unwrap_or(rate);
            Quota::per_second(rate).allow_burst(burst)
        });
        Authenticator {
            cache: Mutex::new(HashMap::new()),
            limiter: quota.map(governor::RateLimiter::keyed),
            addresses: quota.map(governor::RateLimiter::keyed),
            address_checks: AtomicU64::new(0),
        }
    }

    /// Applies the rate limit to a public request from `address` (the same quota as a token's;
    /// none when the address is unknown). An IPv6 address counts by its /64 network, which one
    /// client commonly holds whole. Addresses whose limit has recovered are forgotten now and
    /// then, so the table stays as large as the recent clients.
    pub fn check_address(&self, address: Option<std::net::IpAddr>) -> Result<(), Problem> {
        let (Some(limiter), Some(address)) = (&self.addresses, address) else {
            return Ok(());
        };
        if self
            .address_checks
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(PRUNE_ADDRESSES_EVERY)
        {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        limited(limiter.check_key(&client_network(address)))
    }

    /// Forgets a cached token at once (after revoking it here).
    pub fn forget(&self, token_id: TokenId) {
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, (_, view)| view.token_id != token_id);
    }

    /// The token behind `secret`, if it exists and is not revoked.
    async fn lookup(&self, state: &AppState, secret: &str) -> Result<Option<TokenView>, Problem> {
        let digest = digest(secret);
        if let Some((at, view)) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&digest)
            && at.elapsed() < CACHE_TTL
        {
            return Ok(Some(view.clone()));
        }
        let key = digest.clone();
        let found = state
            .models
            .query(access::NAME, move |tx, t| access::by_digest(tx, t, &key))
            .await?;
        let Some(view) = found.filter(|v| v.revoked_at.is_none()) else {
            return Ok(None);
        };
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(digest, (Instant::now(), view.clone()));
        Ok(Some(view))
    }

    fn check_rate(&self, token_id: TokenId) -> Result<(), Problem> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limited(limiter.check_key(&token_id))
    }
}

/// A rate limiter's verdict as an answer: 429 with the whole seconds to wait.
fn limited(
    verdict: Result<(), governor::NotUntil<<DefaultClock as Clock>::Instant>>,
) -> Result<(), Problem> {
    verdict.map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        Problem::too_many_requests(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
    })
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub token_id: TokenId,
    pub role: Role,
    pub request_id: String,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Caller, Problem> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| {
                Problem::unauthorized("an `Authorization: Bearer <token>` header is required")
            })?;
        let secret = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                Problem::unauthorized("the Authorization header must be `Bearer <token>`")
            })?;
        let view = state
            .auth
            .lookup(state, secret)
            .await?
            .ok_or_else(|| Problem::unauthorized("the token is unknown or revoked"))?;
        state.auth.check_rate(view.token_id)?;
        Ok(Caller {
            token_id: view.token_id,
            role: view.role,
            request_id: crate::problem::request_id().unwrap_or_default(),
        })
    }
}

impl Caller {
    /// Who the domain records as acting.
    pub fn actor(&self) -> DomainActor {
        self.role.actor()
    }

    /// The envelope metadata of the events this request appends: actor, token, request and
    /// channel (`api` or `widget`), so the audit history shows who did what through which client.
    pub fn metadata(&self) -> Metadata {
        let (id, kind) = match self.role {
            Role::Admin { agent: Some(agent) } | Role::Agent { agent, .. } => {
                (agent.to_string(), ActorKind::Agent)
            }
            Role::Visitor { customer } => (customer.to_string(), ActorKind::Customer),
            Role::Admin { agent: None } | Role::Integration => {
                (self.token_id.to_string(), ActorKind::Integration)
            }
        };
        let channel = match self.role {
            Role::Visitor { .. } => "widget",
            _ => "api",
        };
        Metadata {
            actor: Some(Actor { id, kind }),
            channel: Some(channel.to_owned()),
            request_id: Some(self.request_id.clone()).filter(|r| !r.is_empty()),
            token_id: Some(self.token_id.to_string()),
            ..Metadata::default()
        }
    }

    pub fn is_admin(&self) -> bool {
        matches!(self.role, Role::Admin { .. })
    }

    /// Admins only (tokens, help-desk settings and rules).
    pub fn require_admin(&self) -> Result<(), Problem> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(Problem::forbidden("only admins may do this"))
        }
    }

    /// The `/api` routes: admins, agents and integrations; never widget visitors.
    pub fn require_staff(&self) -> Result<(), Problem> {
        match self.role {
            Role::Visitor { .. } => Err(Problem::forbidden(
                "widget visitor tokens may only use the /widget routes",
            )),
            _ => Ok(()),
        }
    }

    /// The agent this caller acts as; admins without an agent id and integrations have none.
    pub fn agent(&self) -> Option<AgentId> {
        match self.role {
            Role::Admin { agent } => agent,
            Role::Agent { agent, .. } => Some(agent),
            _ => None,
        }
    }

    /// The agent this caller acts as, for actions only an agent can take (replying as oneself,
    /// taking over, pinning).
    pub fn require_agent(&self) -> Result<AgentId, Problem> {
        self.require_staff()?;
        self.agent().ok_or_else(|| {
            Problem::forbidden("this action needs an agent's token (the token acts as no agent)")
        })
    }

    /// Whether the "from customers" section, and customer conversations outside one's own,
    /// are visible: support agents, admins and integrations.
    pub fn sees_from_customers(&self) -> bool {
        match self.role {
            Role::Agent { support, .. } => support,
            Role::Admin { .. } | Role::Integration => true,
            Role::Visitor { .. } => false,
        }
    }

    /// The customer a widget visitor is; other callers are refused.
    pub fn require_visitor(&self) -> Result<CustomerId, Problem> {
        match self.role {
            Role::Visitor { customer } => Ok(customer),
            _ => Err(Problem::forbidden(
                "the /widget routes take a visitor token",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_sha256_in_lower_case_hex() {
        // FIPS 180-2's example.
        assert_eq!(
            digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn an_ipv6_client_is_limited_by_its_network() {
        let ip = |text: &str| Some(text.parse::<std::net::IpAddr>().unwrap());
        let auth = Authenticator::new(1, 1);
        assert!(auth.check_address(ip("2001:db8:1:2::1")).is_ok());
        // Another address of the same /64: the same client.
        assert!(auth.check_address(ip("2001:db8:1:2:ffff::9")).is_err());
        assert!(auth.check_address(ip("2001:db8:1:3::1")).is_ok());
        assert!(auth.check_address(ip("192.0.2.1")).is_ok());
        assert!(auth.check_address(ip("192.0.2.2")).is_ok());
        assert!(auth.check_address(None).is_ok());
        // One entry per client: two IPv6 networks and two IPv4 addresses.
        assert_eq!(auth.addresses.as_ref().unwrap().len(), 4);
    }

    #[test]
    fn new_secrets_are_prefixed_hex_and_differ() {
        let (a, b) = (new_secret().unwrap(), new_secret().unwrap());
        assert_ne!(a, b);
        let digits = a.strip_prefix(TOKEN_PREFIX).unwrap();
        assert_eq!(digits.len(), 64);
        assert!(
            digits
                .bytes()
                .all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
        );
    }
}
