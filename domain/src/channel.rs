//! Channel accounts: the help desk's own accounts on the social platforms (a WhatsApp business
//! number, a Facebook page, a LINE bot, a WeChat official account, an X account). One stream
//! per account: `channel-<id>`.
//!
//! An account's life is events: registered, changed, its secrets rotated, removed. The secrets
//! themselves never enter the log: the caller keeps them in a side store, and the events only
//! say which secrets are set (so an audit shows when a secret was rotated, never its value).

use crate::conversation::Channel;
use crate::rules::{check_text, invalid};
use crate::{Actor, Aggregate, DomainError, Timestamp, event_family};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// Longest display name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest platform id or API base URL, in characters.
pub const MAX_ID_CHARS: usize = 512;
/// The most platform ids an account records.
pub const MAX_IDS: usize = 16;

/// Identifies a channel account; its stream is `channel-<id>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ChannelId(pub Uuid);

impl std::fmt::Display for ChannelId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The platforms an account can be on: the social channels.
pub fn is_social(channel: Channel) -> bool {
    matches!(
        channel,
        Channel::Whatsapp | Channel::Facebook | Channel::Line | Channel::Wechat | Channel::Twitter
    )
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelAccountRegistered {
    pub channel_id: ChannelId,
    /// The platform: `whatsapp`, `facebook` (Messenger), `line`, `wechat`, `twitter` (X).
    pub channel: Channel,
    pub name: String,
    /// The platform's ids for the account (`phone_number_id`, `page_id`, `channel_id`,
    /// `bot_user_id`, `app_id`, `original_id`, `user_id`, ...).
    pub platform_ids: BTreeMap<String, String>,
    /// Where replies and downloads go instead of the platform's own API (a stand-in, a proxy).
    #[serde(default)]
    pub api_base: Option<String>,
    pub by: Actor,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelAccountChanged {
    pub name: String,
    pub platform_ids: BTreeMap<String, String>,
    #[serde(default)]
    pub api_base: Option<String>,
    pub by: Actor,
    pub at: Timestamp,
}

/// Secrets were set or replaced (`changed`) or cleared (`cleared`); their values are not here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelSecretsRotated {
    pub changed: BTreeSet<String>,
    #[serde(default)]
    pub cleared: BTreeSet<String>,
    pub by: Actor,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelAccountRemoved {
    pub by: Actor,
    pub at: Timestamp,
}

event_family! {
    /// Everything that happens to a channel account.
    pub enum ChannelEvent {
        ChannelAccountRegistered,
        ChannelAccountChanged,
        ChannelSecretsRotated,
        ChannelAccountRemoved,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ChannelCommand {
    Register {
        channel_id: ChannelId,
        channel: Channel,
        name: String,
        platform_ids: BTreeMap<String, String>,
        api_base: Option<String>,
        by: Actor,
        at: Timestamp,
    },
    Change {
        name: String,
        platform_ids: BTreeMap<String, String>,
        api_base: Option<String>,
        by: Actor,
        at: Timestamp,
    },
    RotateSecrets {
        changed: BTreeSet<String>,
        cleared: BTreeSet<String>,
        by: Actor,
        at: Timestamp,
    },
    Remove {
        by: Actor,
        at: Timestamp,
    },
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChannelAccount {
    pub id: Option<ChannelId>,
    pub channel: Option<Channel>,
    pub name: String,
    pub platform_ids: BTreeMap<String, String>,
    pub api_base: Option<String>,
    /// The secrets the side store holds for it, by name.
    pub secrets: BTreeSet<String>,
    pub removed: bool,
    pub created_at: Timestamp,
    /// When its settings or secrets last changed.
    pub updated_at: Timestamp,
}

impl ChannelAccount {
    fn live(&self) -> Result<(), DomainError> {
        if self.id.is_none() || self.removed {
            return Err(DomainError::ChannelNotFound);
        }
        Ok(())
    }
}

fn check_settings(
    name: &str,
    platform_ids: &BTreeMap<String, String>,
    api_base: &Option<String>,
) -> Result<(), DomainError> {
    check_text("name", name, MAX_NAME_CHARS, false)?;
    if platform_ids.len() > MAX_IDS {
        return Err(invalid(
            "platform_ids",
            format!("at most {MAX_IDS} ids are recorded"),
        ));
    }
    for (key, value) in platform_ids {
        check_text("platform_ids", key, 64, false)?;
        check_text("platform_ids", value, MAX_ID_CHARS, false)?;
    }
    if let Some(base) = api_base {
        check_text("api_base", base, MAX_ID_CHARS, false)?;
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(invalid("api_base", "must be an http:// or https:// URL"));
        }
    }
    Ok(())
}

impl Aggregate for ChannelAccount {
    type Command = ChannelCommand;
    type Event = ChannelEvent;
    const STREAM_PREFIX: &'static str = "channel";

    fn decide(&self, command: ChannelCommand) -> Result<Vec<ChannelEvent>, DomainError> {
        use ChannelCommand as C;
        match command {
            C::Register {
                channel_id,
                channel,
                name,
                platform_ids,
                api_base,
                by,
                at,
            } => {
                if self.id.is_some() {
                    return Err(DomainError::ChannelExists);
                }
                if !is_social(channel) {
                    return Err(invalid("platform", "must be a social messaging platform"));
                }
                check_settings(&name, &platform_ids, &api_base)?;
                Ok(vec![
                    ChannelAccountRegistered {
                        channel_id,
                        channel,
                        name,
                        platform_ids,
                        api_base,
                        by,
                        at,
                    }
                    .into(),
                ])
            }
            C::Change {
                name,
                platform_ids,
                api_base,
                by,
                at,
            } => {
                self.live()?;
                check_settings(&name, &platform_ids, &api_base)?;
                if name == self.name
                    && platform_ids == self.platform_ids
                    && api_base == self.api_base
                {
                    return Ok(vec![]);
                }
                Ok(vec![
                    ChannelAccountChanged {
                        name,
                        platform_ids,
                        api_base,
                        by,
                        at,
                    }
                    .into(),
                ])
            }
            C::RotateSecrets {
                changed,
                cleared,
                by,
                at,
            } => {
                self.live()?;
                let cleared: BTreeSet<String> = cleared
                    .into_iter()
                    .filter(|name| self.secrets.contains(name))
                    .collect();
                if changed.is_empty() && cleared.is_empty() {
                    return Ok(vec![]);
                }
                Ok(vec![
                    ChannelSecretsRotated {
                        changed,
                        cleared,
                        by,
                        at,
                    }
                    .into(),
                ])
            }
            C::Remove { by, at } => {
                self.live()?;
                Ok(vec![ChannelAccountRemoved { by, at }.into()])
            }
        }
    }

    fn evolve(mut self, event: &ChannelEvent) -> Self {
        match event {
            ChannelEvent::ChannelAccountRegistered(e) => {
                self.id = Some(e.channel_id);
                self.channel = Some(e.channel);
                self.name = e.name.clone();
                self.platform_ids = e.platform_ids.clone();
                self.api_base = e.api_base.clone();
                self.created_at = e.at;
                self.updated_at = e.at;
            }
            ChannelEvent::ChannelAccountChanged(e) => {
                self.name = e.name.clone();
                self.platform_ids = e.platform_ids.clone();
                self.api_base = e.api_base.clone();
                self.updated_at = e.at;
            }
            ChannelEvent::ChannelSecretsRotated(e) => {
                self.updated_at = e.at;
                self.secrets.extend(e.changed.iter().cloned());
                for name in &e.cleared {
                    self.secrets.remove(name);
                }
            }
            ChannelEvent::ChannelAccountRemoved(_) => self.removed = true,
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::given;

    const T0: Timestamp = Timestamp::from_secs(1_700_000_000);

    fn registered() -> ChannelEvent {
        ChannelAccountRegistered {
            channel_id: ChannelId(Uuid::from_u128(1)),
            channel: Channel::Whatsapp,
            name: "Support +1 555".into(),
            platform_ids: [("phone_number_id".to_owned(), "106540352242922".to_owned())].into(),
            api_base: None,
            by: Actor::System,
            at: T0,
        }
        .into()
    }

    #[test]
    fn an_account_is_registered_only_on_a_social_platform() {
        let register = |channel| ChannelCommand::Register {
            channel_id: ChannelId(Uuid::from_u128(1)),
            channel,
            name: "Desk".into(),
            platform_ids: BTreeMap::new(),
            api_base: None,
            by: Actor::System,
            at: T0,
        };
        given::<ChannelAccount>([])
            .when(register(Channel::Line))
            .then_accepted();
        given::<ChannelAccount>([])
            .when(register(Channel::Email))
            .then_err(invalid("platform", "must be a social messaging platform"));
        given::<ChannelAccount>([registered()])
            .when(register(Channel::Line))
            .then_err(DomainError::ChannelExists);
    }

    #[test]
    fn rotating_secrets_records_their_names_only_and_clearing_an_unset_one_is_a_no_op() {
        let rotate = |changed: &[&str], cleared: &[&str]| ChannelCommand::RotateSecrets {
            changed: changed.iter().map(|s| s.to_string()).collect(),
            cleared: cleared.iter().map(|s| s.to_string()).collect(),
            by: Actor::System,
            at: T0,
        };
        let state = given::<ChannelAccount>([registered()])
            .when(rotate(&["app_secret"], &[]))
            .then_accepted();
        assert!(state.secrets.contains("app_secret"));
        given::<ChannelAccount>([registered()])
            .when(rotate(&[], &["verify_token"]))
            .then(Vec::<ChannelEvent>::new());
    }

    #[test]
    fn a_removed_account_takes_no_more_changes() {
        let removed = ChannelAccountRemoved {
            by: Actor::System,
            at: T0,
        }
        .into();
        given::<ChannelAccount>([registered(), removed])
            .when(ChannelCommand::Remove {
                by: Actor::System,
                at: T0,
            })
            .then_err(DomainError::ChannelNotFound);
    }

    #[test]
    fn an_api_base_must_be_a_url() {
        given::<ChannelAccount>([registered()])
            .when(ChannelCommand::Change {
                name: "Desk".into(),
                platform_ids: BTreeMap::new(),
                api_base: Some("ftp://example".into()),
                by: Actor::System,
                at: T0,
            })
            .then_err(invalid("api_base", "must be an http:// or https:// URL"));
    }
}
