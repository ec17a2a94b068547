//! What bounds the live streams besides their own memory (see [`super::live`]): how many one
//! token, or one address of widget visitors, may hold open at once ([`StreamLimits`]), and the
//! revocations every open stream listens for ([`Revocations`]).

use crate::problem::Problem;
use axum::http::StatusCode;
use parley_domain::access::TokenId;
use parley_eventlog::{EventLog, Subscription};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// Open streams counted per token, and per client address for widget visitors (who can
/// become many tokens without one).
pub struct StreamLimits {
    per_token: usize,
    per_address: usize,
    open: Mutex<HashMap<Holder, usize>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Holder {
    Token(TokenId),
    Address(IpAddr),
}

/// One open stream's places in the counts, given back when it is dropped.
pub struct StreamSlot {
    limits: Arc<StreamLimits>,
    holders: Vec<Holder>,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.limits.open.lock().unwrap_or_else(|e| e.into_inner());
        for holder in &self.holders {
            if let Some(count) = open.get_mut(holder) {
                *count -= 1;
                if *count == 0 {
                    open.remove(holder);
                }
            }
        }
    }
}

impl StreamLimits {
    /// At most `per_token` streams per token and `per_address` per visitors' address (0: no
    /// limit).
    pub fn new(per_token: usize, per_address: usize) -> Arc<StreamLimits> {
        Arc::new(StreamLimits {
            per_token,
            per_address,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// Takes a place for a new stream of `token` (and of the visitor at `address`), or
    /// answers 429 naming the limit reached.
    pub fn open(
        self: &Arc<Self>,
        token: TokenId,
        visitor_address: Option<IpAddr>,
    ) -> Result<StreamSlot, Problem> {
        let mut wanted = vec![(Holder::Token(token), self.per_token, "token")];
        if let Some(address) = visitor_address {
            wanted.push((
                Holder::Address(super::auth::client_network(address)),
                self.per_address,
                "address",
            ));
        }
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        for (holder, limit, what) in &wanted {
            if *limit > 0 && open.get(holder).copied().unwrap_or(0) >= *limit {
                return Err(Problem {
                    retry_after: Some(5),
                    ..Problem::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "too-many-streams",
                        format!(
                            "this {what} already holds {limit} open streams, the most allowed; \
                             close one first"
                        ),
                    )
                });
            }
        }
        for (holder, _, _) in &wanted {
            *open.entry(*holder).or_default() += 1;
        }
        Ok(StreamSlot {
            limits: self.clone(),
            holders: wanted.into_iter().map(|(holder, _, _)| holder).collect(),
        })
    }
}

/// Tokens revoked while this process runs, told to every open stream at once. One follower of
/// the log per process feeds it, so on PostgreSQL every node learns of a revocation made on
/// any other as soon as the log's head reaches it.
#[derive(Clone)]
pub struct Revocations {
    sender: broadcast::Sender<TokenId>,
}

/// Revocations a stream may miss before it re-checks its token instead.
const REVOCATIONS_KEPT: usize = 256;

impl Default for Revocations {
    fn default() -> Self {
        Revocations {
            sender: broadcast::channel(REVOCATIONS_KEPT).0,
        }
    }
}

impl Revocations {
    pub fn subscribe(&self) -> broadcast::Receiver<TokenId> {
        self.sender.subscribe()
    }

    /// Follows the log from its head and tells of every `TokenRevoked`, until the log closes.
    /// Only the event's type and stream are looked at; nothing is decoded.
    pub async fn follow(self, log: Arc<dyn EventLog>) {
        let head = match log.head().await {
            Ok(head) => head,
            Err(error) => {
                tracing::error!(%error, "cannot follow token revocations");
                return;
            }
        };
        // Pages of small events by the thousand, of large ones a few: memory stays bounded.
        let mut feed = Subscription::new(log, head, 1_000).with_max_bytes(256 * 1024);
        loop {
            match feed.next_batch().await {
                Ok(batch) => {
                    for recorded in batch {
                        if recorded.event_type == "TokenRevoked"
                            && let Some(id) = recorded
                                .stream_id
                                .strip_prefix("token-")
                                .and_then(|id| id.parse().ok())
                        {
                            // Nobody listening is no error.
                            let _ = self.sender.send(TokenId(id));
                        }
                    }
                }
                Err(parley_eventlog::LogError::Closed) => return,
                Err(error) => {
                    // Streams fall back on checking their token now and then.
                    tracing::warn!(%error, "token revocations: the log cannot be read; again in a second");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_holds_at_most_its_limit_and_gets_places_back() {
        let limits = StreamLimits::new(2, 3);
        let token = TokenId(uuid::Uuid::now_v7());
        let first = limits.open(token, None).unwrap();
        let _second = limits.open(token, None).unwrap();
        let refused = limits.open(token, None).err().unwrap();
        assert_eq!(refused.status, 429);
        assert!(limits.open(TokenId(uuid::Uuid::now_v7()), None).is_ok());
        drop(first);
        assert!(limits.open(token, None).is_ok());
    }

    #[test]
    fn visitors_of_one_address_share_its_limit() {
        let limits = StreamLimits::new(8, 2);
        let address: IpAddr = "2001:db8::1".parse().unwrap();
        let same_network: IpAddr = "2001:db8::2".parse().unwrap();
        let _a = limits
            .open(TokenId(uuid::Uuid::now_v7()), Some(address))
            .unwrap();
        let _b = limits
            .open(TokenId(uuid::Uuid::now_v7()), Some(same_network))
            .unwrap();
        assert!(
            limits
                .open(TokenId(uuid::Uuid::now_v7()), Some(address))
                .is_err()
        );
        assert!(limits.open(TokenId(uuid::Uuid::now_v7()), None).is_ok());
    }
}
