//! API tokens: who may call the API, as what. One stream per token: `token-<id>`.
//!
//! The secret itself is never stored: only its SHA-256 digest (hex), computed by the caller.
//! Tokens carry 256 random bits, so a fast digest is enough to make a leaked log useless for
//! calling the API. A revoked token stays revoked.

use crate::ids::{AgentId, CustomerId};
use crate::rules::check_text;
use crate::{Actor, Aggregate, DomainError, Timestamp, event_family};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Identifies a token; its stream is `token-<id>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TokenId(pub Uuid);

impl std::fmt::Display for TokenId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Role {
    /// Everything, including managing tokens, agents and help-desk rules. An admin who is also
    /// an agent acts under that agent's id.
    Admin {
        #[serde(default)]
        agent: Option<AgentId>,
    },
    /// A support team member. Only agents with `support` see the "from customers" section.
    Agent { agent: AgentId, support: bool },
    /// Another system: acts as the system, reads every read model and the event feed.
    Integration,
    /// A widget visitor: only the `/widget` routes, only their own conversations.
    Visitor { customer: CustomerId },
}

impl Role {
    /// The actor commands are recorded under.
    pub fn actor(&self) -> Actor {
        match *self {
            Role::Admin { agent: Some(agent) } | Role::Agent { agent, .. } => Actor::Agent(agent),
            Role::Admin { agent: None } | Role::Integration => Actor::System,
            Role::Visitor { customer } => Actor::Customer(customer),
        }
    }

    /// A stable lower-case name: `admin`, `agent`, `integration`, `visitor`.
    pub fn name(&self) -> &'static str {
        match self {
            Role::Admin { .. } => "admin",
            Role::Agent { .. } => "agent",
            Role::Integration => "integration",
            Role::Visitor { .. } => "visitor",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenIssued {
    pub token_id: TokenId,
    pub role: Role,
    /// A name for people: "Ana's laptop", "CRM sync".
    pub label: String,
    /// SHA-256 of the secret, lower-case hex.
    pub secret_sha256: String,
    pub by: Actor,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenRevoked {
    pub token_id: TokenId,
    pub by: Actor,
    pub at: Timestamp,
}

event_family! {
    /// Everything that happens to an API token.
    pub enum TokenEvent {
        TokenIssued,
        TokenRevoked,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum TokenCommand {
    Issue {
        token_id: TokenId,
        role: Role,
        label: String,
        secret_sha256: String,
        by: Actor,
        at: Timestamp,
    },
    Revoke {
        by: Actor,
        at: Timestamp,
    },
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Token {
    pub id: Option<TokenId>,
    pub role: Option<Role>,
    pub revoked: bool,
}

/// Longest label, in characters.
pub const MAX_LABEL_CHARS: usize = 200;

impl Aggregate for Token {
    type Command = TokenCommand;
    type Event = TokenEvent;
    const STREAM_PREFIX: &'static str = "token";

    fn decide(&self, command: TokenCommand) -> Result<Vec<TokenEvent>, DomainError> {
        match command {
            TokenCommand::Issue {
                token_id,
                role,
                label,
                secret_sha256,
                by,
                at,
            } => {
                if self.id.is_some() {
                    return Err(DomainError::TokenExists);
                }
                check_text("label", &label, MAX_LABEL_CHARS, true)?;
                let is_digest = secret_sha256.len() == 64
                    && secret_sha256
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
                if !is_digest {
                    return Err(DomainError::Invalid {
                        field: "secret_sha256",
                        reason: "must be 64 lower-case hex digits".into(),
                    });
                }
                Ok(vec![
                    TokenIssued {
                        token_id,
                        role,
                        label,
                        secret_sha256,
                        by,
                        at,
                    }
                    .into(),
                ])
            }
            TokenCommand::Revoke { by, at } => match self.id {
                None => Err(DomainError::TokenNotFound),
                Some(_) if self.revoked => Err(DomainError::NoChange),
                Some(token_id) => Ok(vec![TokenRevoked { token_id, by, at }.into()]),
            },
        }
    }

    fn evolve(mut self, event: &TokenEvent) -> Self {
        match event {
            TokenEvent::TokenIssued(e) => {
                self.id = Some(e.token_id);
                self.role = Some(e.role);
            }
            TokenEvent::TokenRevoked(_) => self.revoked = true,
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issue(label: &str, digest: &str) -> TokenCommand {
        TokenCommand::Issue {
            token_id: TokenId(Uuid::nil()),
            role: Role::Integration,
            label: label.into(),
            secret_sha256: digest.into(),
            by: Actor::System,
            at: Timestamp(1),
        }
    }

    #[test]
    fn a_token_is_issued_once_and_revoked_once() {
        let digest = "ab".repeat(32);
        let events = Token::default().decide(issue("crm", &digest)).unwrap();
        let token = Token::replay(&events);
        assert_eq!(
            token.decide(issue("crm", &digest)),
            Err(DomainError::TokenExists)
        );
        let revoked = token
            .decide(TokenCommand::Revoke {
                by: Actor::System,
                at: Timestamp(2),
            })
            .unwrap();
        let token = revoked.iter().fold(token, Token::evolve);
        assert!(token.revoked);
        assert_eq!(
            token.decide(TokenCommand::Revoke {
                by: Actor::System,
                at: Timestamp(3)
            }),
            Err(DomainError::NoChange)
        );
    }

    #[test]
    fn only_a_digest_is_accepted_never_a_secret() {
        assert!(matches!(
            Token::default().decide(issue("crm", "plain-secret")),
            Err(DomainError::Invalid {
                field: "secret_sha256",
                ..
            })
        ));
        assert_eq!(
            Token::default().decide(TokenCommand::Revoke {
                by: Actor::System,
                at: Timestamp(1)
            }),
            Err(DomainError::TokenNotFound)
        );
    }

    #[test]
    fn roles_act_as_who_they_are() {
        let agent = AgentId(Uuid::from_u128(7));
        assert_eq!(
            Role::Agent {
                agent,
                support: false
            }
            .actor(),
            Actor::Agent(agent)
        );
        assert_eq!(Role::Integration.actor(), Actor::System);
        assert_eq!(Role::Admin { agent: None }.name(), "admin");
    }
}
