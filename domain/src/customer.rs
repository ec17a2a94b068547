//! Customers (end users). One stream per customer: `customer-<id>`.
//!
//! A customer is created on first contact through a channel identity (a WhatsApp number, a
//! LINE id, an e-mail address, a widget visitor id...). [`CustomerId::for_identity`] derives
//! the id from the identity, so "create on first contact" is naturally idempotent: the same
//! identity always names the same stream. Merging two customers is two events — the merged one
//! points to the survivor, the survivor absorbs its identities — and reversible: an unmerge
//! records the way back; nothing is ever deleted.

use crate::contact::SocialProfile;
use crate::conversation::Channel;
use crate::ids::CustomerId;
use crate::rules::{check_text, invalid};
use crate::{Actor, Aggregate, DomainError, Timestamp, event_family};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// A customer's address on one channel.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ChannelIdentity {
    pub channel: Channel,
    /// Phone number, LINE or WeChat id, Facebook id, Twitter handle, e-mail, visitor id.
    pub value: String,
    /// The help desk's channel account the customer wrote to, for identities met through a
    /// connected account (`channel-<id>`): the same person writing to two accounts is two
    /// customers until merged. Absent for identities met otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

/// Namespace of identity-derived customer ids (a fixed random UUID).
const IDENTITY_NAMESPACE: Uuid = Uuid::from_u128(0x6a1f_3c2e_9b47_4d0a_8e55_1f0c_2d7b_9e31);

impl ChannelIdentity {
    /// The identity as stored and compared: trimmed; e-mail addresses in lower case; phone
    /// numbers (WhatsApp) without spaces, dashes, dots or parentheses.
    pub fn normalized(&self) -> ChannelIdentity {
        let value = self.value.trim();
        let value = match self.channel {
            Channel::Email => value.to_lowercase(),
            Channel::Whatsapp => value
                .chars()
                .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
                .collect(),
            _ => value.to_owned(),
        };
        ChannelIdentity {
            channel: self.channel,
            value,
            account: self
                .account
                .as_ref()
                .map(|account| account.trim().to_owned()),
        }
    }
}

impl CustomerId {
    /// The id of the customer first met through `identity`: the same identity (once
    /// normalised) always gives the same id (UUID v5), so a second "first contact" finds the
    /// existing stream.
    pub fn for_identity(identity: &ChannelIdentity) -> CustomerId {
        let identity = identity.normalized();
        // Identities without an account keep the form every existing customer id was derived
        // from.
        let name = match &identity.account {
            None => format!(
                "{}:{}",
                crate::ticket::channel_tag(identity.channel),
                identity.value
            ),
            Some(account) => format!(
                "{}@{account}:{}",
                crate::ticket::channel_tag(identity.channel),
                identity.value
            ),
        };
        CustomerId(Uuid::new_v5(&IDENTITY_NAMESPACE, name.as_bytes()))
    }
}

/// Checks an e-mail address: ASCII only (addresses with accented characters are refused,
/// as the messaging widgets our users know do), one `@`, a dotted domain, 254 characters at most.
pub fn check_email(email: &str) -> Result<(), DomainError> {
    if !email.is_ascii() {
        return Err(invalid(
            "email",
            "must contain only ASCII characters (no accents)",
        ));
    }
    if email.len() > 254 {
        return Err(invalid("email", "is longer than 254 characters"));
    }
    let Some((local, domain)) = email.split_once('@') else {
        return Err(invalid("email", "must contain an @"));
    };
    let valid_domain = domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..");
    if local.is_empty() || domain.contains('@') || !valid_domain {
        return Err(invalid("email", "is not an e-mail address"));
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("email", "must not contain blanks"));
    }
    Ok(())
}

fn check_identity(identity: &ChannelIdentity) -> Result<(), DomainError> {
    check_text("identity.value", &identity.value, 320, false)?;
    if identity.channel == Channel::Email {
        check_email(&identity.value)?;
    }
    if identity.channel == Channel::Internal {
        return Err(invalid(
            "identity.channel",
            "customers have no internal identity",
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Events.

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerCreated {
    pub customer_id: CustomerId,
    pub identity: ChannelIdentity,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerIdentityAdded {
    pub identity: ChannelIdentity,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerDetailsChanged {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    pub by: Actor,
    pub at: Timestamp,
}

/// On the merged customer: from now on it is `survivor`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerMergedInto {
    pub survivor: CustomerId,
    pub by: Actor,
    pub at: Timestamp,
}

/// On the survivor: it now also stands for `merged` and its identities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerAbsorbed {
    pub merged: CustomerId,
    pub identities: Vec<ChannelIdentity>,
    pub by: Actor,
    pub at: Timestamp,
}

/// On the merged customer: the merge is undone; it stands for itself again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerUnmerged {
    pub survivor: CustomerId,
    pub by: Actor,
    pub at: Timestamp,
}

/// On the survivor: it no longer stands for `merged`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerReleased {
    pub merged: CustomerId,
    pub by: Actor,
    pub at: Timestamp,
}

/// What a channel account's platform told about the customer ("social messaging info"): a
/// newer profile for the same account replaces the older one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerSocialProfileRecorded {
    /// The channel account (`channel-<id>`) the customer wrote to.
    pub account: String,
    pub channel: Channel,
    pub profile: SocialProfile,
    pub at: Timestamp,
}

event_family! {
    /// Everything that happens to a customer.
    pub enum CustomerEvent {
        CustomerCreated,
        CustomerIdentityAdded,
        CustomerDetailsChanged,
        CustomerMergedInto,
        CustomerAbsorbed,
        CustomerUnmerged,
        CustomerReleased,
        CustomerSocialProfileRecorded,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum CustomerCommand {
    /// First contact through `identity`.
    Create {
        customer_id: CustomerId,
        identity: ChannelIdentity,
        name: Option<String>,
        email: Option<String>,
        at: Timestamp,
    },
    AddIdentity {
        identity: ChannelIdentity,
        at: Timestamp,
    },
    ChangeDetails {
        name: Option<String>,
        email: Option<String>,
        by: Actor,
        at: Timestamp,
    },
    /// Sent to the customer that disappears into `survivor`.
    MergeInto {
        survivor: CustomerId,
        by: Actor,
        at: Timestamp,
    },
    /// Sent to the survivor, with the merged customer's identities.
    Absorb {
        merged: CustomerId,
        identities: Vec<ChannelIdentity>,
        by: Actor,
        at: Timestamp,
    },
    Unmerge {
        by: Actor,
        at: Timestamp,
    },
    Release {
        merged: CustomerId,
        by: Actor,
        at: Timestamp,
    },
    /// Keeps what a platform told about the customer; the same profile again is a no-op.
    RecordSocialProfile {
        account: String,
        channel: Channel,
        profile: SocialProfile,
        at: Timestamp,
    },
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Customer {
    pub id: Option<CustomerId>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub identities: BTreeSet<ChannelIdentity>,
    /// Set while this customer is merged into another.
    pub merged_into: Option<CustomerId>,
    /// The survivor of the last merge that was undone (a retried unmerge resumes with it).
    pub unmerged_from: Option<CustomerId>,
    /// Customers merged into this one, with the identities they brought.
    pub absorbed: BTreeMap<CustomerId, Vec<ChannelIdentity>>,
    /// What each channel account's platform told about the customer.
    pub social: BTreeMap<String, (Channel, SocialProfile)>,
}

impl Customer {
    fn active(&self) -> Result<(), DomainError> {
        if self.id.is_none() {
            return Err(DomainError::CustomerNotFound);
        }
        if let Some(survivor) = self.merged_into {
            return Err(DomainError::CustomerMerged(survivor));
        }
        Ok(())
    }
}

fn check_details(name: &Option<String>, email: &Option<String>) -> Result<(), DomainError> {
    if let Some(name) = name {
        check_text("name", name, 200, false)?;
    }
    if let Some(email) = email {
        check_email(email)?;
    }
    Ok(())
}

impl Aggregate for Customer {
    type Command = CustomerCommand;
    type Event = CustomerEvent;
    const STREAM_PREFIX: &'static str = "customer";

    fn decide(&self, command: CustomerCommand) -> Result<Vec<CustomerEvent>, DomainError> {
        use CustomerCommand as C;
        match command {
            C::RecordSocialProfile {
                account,
                channel,
                profile,
                at,
            } => {
                if self.id.is_none() {
                    return Err(DomainError::CustomerNotFound);
                }
                check_text("account", &account, 200, false)?;
                if self
                    .social
                    .get(&account)
                    .is_some_and(|(known, was)| *known == channel && *was == profile)
                {
                    return Ok(vec![]);
                }
                Ok(vec![
                    CustomerSocialProfileRecorded {
                        account,
                        channel,
                        profile,
                        at,
                    }
                    .into(),
                ])
            }
            C::Create {
                customer_id,
                identity,
                name,
                email,
                at,
            } => {
                if self.id.is_some() {
                    return Err(DomainError::CustomerExists);
                }
                check_identity(&identity)?;
                check_details(&name, &email)?;
                let identity = identity.normalized();
                Ok(vec![
                    CustomerCreated {
                        customer_id,
                        identity,
                        name,
                        email,
                        at,
                    }
                    .into(),
                ])
            }
            C::AddIdentity { identity, at } => {
                self.active()?;
                check_identity(&identity)?;
                let identity = identity.normalized();
                if self.identities.contains(&identity) {
                    return Err(DomainError::IdentityKnown);
                }
                Ok(vec![CustomerIdentityAdded { identity, at }.into()])
            }
            C::ChangeDetails {
                name,
                email,
                by,
                at,
            } => {
                self.active()?;
                check_details(&name, &email)?;
                if name == self.name && email == self.email {
                    return Err(DomainError::NoChange);
                }
                Ok(vec![
                    CustomerDetailsChanged {
                        name,
                        email,
                        by,
                        at,
                    }
                    .into(),
                ])
            }
            C::MergeInto { survivor, by, at } => {
                self.active()?;
                if Some(survivor) == self.id {
                    return Err(DomainError::MergeIntoSelf);
                }
                Ok(vec![CustomerMergedInto { survivor, by, at }.into()])
            }
            C::Absorb {
                merged,
                identities,
                by,
                at,
            } => {
                self.active()?;
                if Some(merged) == self.id {
                    return Err(DomainError::MergeIntoSelf);
                }
                if self.absorbed.contains_key(&merged) {
                    return Err(DomainError::NoChange);
                }
                Ok(vec![
                    CustomerAbsorbed {
                        merged,
                        identities,
                        by,
                        at,
                    }
                    .into(),
                ])
            }
            C::Unmerge { by, at } => {
                if self.id.is_none() {
                    return Err(DomainError::CustomerNotFound);
                }
                let survivor = self.merged_into.ok_or(DomainError::NoChange)?;
                Ok(vec![CustomerUnmerged { survivor, by, at }.into()])
            }
            C::Release { merged, by, at } => {
                // A survivor merged further on still lets go of what it absorbed.
                if self.id.is_none() {
                    return Err(DomainError::CustomerNotFound);
                }
                if !self.absorbed.contains_key(&merged) {
                    return Err(DomainError::NotMergedHere(merged));
                }
                Ok(vec![CustomerReleased { merged, by, at }.into()])
            }
        }
    }

    fn evolve(mut self, event: &CustomerEvent) -> Self {
        use CustomerEvent as E;
        match event {
            E::CustomerCreated(e) => {
                self.id = Some(e.customer_id);
                self.identities.insert(e.identity.clone());
                self.name = e.name.clone();
                self.email = e.email.clone();
            }
            E::CustomerIdentityAdded(e) => {
                self.identities.insert(e.identity.clone());
            }
            E::CustomerDetailsChanged(e) => {
                self.name = e.name.clone();
                self.email = e.email.clone();
            }
            E::CustomerMergedInto(e) => self.merged_into = Some(e.survivor),
            E::CustomerAbsorbed(e) => {
                self.identities.extend(e.identities.iter().cloned());
                self.absorbed.insert(e.merged, e.identities.clone());
            }
            E::CustomerUnmerged(e) => {
                self.merged_into = None;
                self.unmerged_from = Some(e.survivor);
            }
            E::CustomerSocialProfileRecorded(e) => {
                self.social
                    .insert(e.account.clone(), (e.channel, e.profile.clone()));
            }
            E::CustomerReleased(e) => {
                if let Some(identities) = self.absorbed.remove(&e.merged) {
                    for identity in identities {
                        self.identities.remove(&identity);
                    }
                }
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DomainEvent;
    use crate::harness::given;

    const T0: Timestamp = Timestamp::from_secs(1_700_000_000);

    fn whatsapp(number: &str) -> ChannelIdentity {
        ChannelIdentity {
            channel: Channel::Whatsapp,
            value: number.into(),
            account: None,
        }
    }

    fn created(identity: ChannelIdentity) -> CustomerEvent {
        CustomerCreated {
            customer_id: CustomerId::for_identity(&identity),
            identity,
            name: None,
            email: None,
            at: T0,
        }
        .into()
    }

    #[test]
    fn the_same_identity_always_names_the_same_customer() {
        let a = CustomerId::for_identity(&whatsapp("+15550001"));
        assert_eq!(a, CustomerId::for_identity(&whatsapp("+15550001")));
        assert_ne!(a, CustomerId::for_identity(&whatsapp("+15550002")));
        let line = ChannelIdentity {
            channel: Channel::Line,
            value: "+15550001".into(),
            account: None,
        };
        assert_ne!(
            a,
            CustomerId::for_identity(&line),
            "identities are per channel"
        );
    }

    #[test]
    fn first_contact_creates_the_customer_once() {
        let identity = whatsapp("+15550001");
        let create = CustomerCommand::Create {
            customer_id: CustomerId::for_identity(&identity),
            identity: identity.clone(),
            name: None,
            email: None,
            at: T0,
        };
        given::<Customer>([])
            .when(create.clone())
            .then([created(identity.clone())]);
        given::<Customer>([created(identity)])
            .when(create)
            .then_err(DomainError::CustomerExists);
    }

    #[test]
    fn e_mail_addresses_with_accented_characters_are_refused() {
        assert!(check_email("jose@example.com").is_ok());
        assert_eq!(
            check_email("josé@example.com"),
            Err(DomainError::Invalid {
                field: "email",
                reason: "must contain only ASCII characters (no accents)".into()
            })
        );
        for bad in [
            "no-at.example.com",
            "@example.com",
            "a@b",
            "a@.example.com",
            "a@@b.com",
            "a b@c.com",
        ] {
            assert!(check_email(bad).is_err(), "{bad} is refused");
        }
        given::<Customer>([created(whatsapp("+15550001"))])
            .when(CustomerCommand::ChangeDetails {
                name: Some("Zoë".into()),
                email: Some("zoë@example.com".into()),
                by: Actor::System,
                at: T0,
            })
            .then_err(DomainError::Invalid {
                field: "email",
                reason: "must contain only ASCII characters (no accents)".into(),
            });
    }

    #[test]
    fn identities_are_added_once() {
        let line = ChannelIdentity {
            channel: Channel::Line,
            value: "U123".into(),
            account: None,
        };
        given::<Customer>([created(whatsapp("+15550001"))])
            .when(CustomerCommand::AddIdentity {
                identity: line.clone(),
                at: T0,
            })
            .then([CustomerIdentityAdded {
                identity: line,
                at: T0,
            }
            .into()]);
        given::<Customer>([created(whatsapp("+15550001"))])
            .when(CustomerCommand::AddIdentity {
                identity: whatsapp("+15550001"),
                at: T0,
            })
            .then_err(DomainError::IdentityKnown);
    }

    #[test]
    fn a_merge_is_recorded_on_both_sides_and_can_be_undone() {
        let merged_identity = whatsapp("+15550001");
        let survivor = CustomerId::for_identity(&whatsapp("+15550002"));
        let by = Actor::System;
        let state = given::<Customer>([created(merged_identity.clone())])
            .when(CustomerCommand::MergeInto {
                survivor,
                by,
                at: T0,
            })
            .then([CustomerMergedInto {
                survivor,
                by,
                at: T0,
            }
            .into()]);
        assert_eq!(state.merged_into, Some(survivor));
        let merged_history = [
            created(merged_identity.clone()),
            CustomerMergedInto {
                survivor,
                by,
                at: T0,
            }
            .into(),
        ];
        given::<Customer>(merged_history.clone())
            .when(CustomerCommand::AddIdentity {
                identity: whatsapp("+1"),
                at: T0,
            })
            .then_err(DomainError::CustomerMerged(survivor));
        given::<Customer>(merged_history)
            .when(CustomerCommand::Unmerge { by, at: T0 })
            .then([CustomerUnmerged {
                survivor,
                by,
                at: T0,
            }
            .into()]);

        let merged = CustomerId::for_identity(&merged_identity);
        let absorbed: CustomerEvent = CustomerAbsorbed {
            merged,
            identities: vec![merged_identity.clone()],
            by,
            at: T0,
        }
        .into();
        given::<Customer>([created(whatsapp("+15550002"))])
            .when(CustomerCommand::Absorb {
                merged,
                identities: vec![merged_identity],
                by,
                at: T0,
            })
            .then([absorbed.clone()]);
        given::<Customer>([created(whatsapp("+15550002")), absorbed])
            .when(CustomerCommand::Release { merged, by, at: T0 })
            .then([CustomerReleased { merged, by, at: T0 }.into()]);
        given::<Customer>([created(whatsapp("+15550002"))])
            .when(CustomerCommand::MergeInto {
                survivor,
                by,
                at: T0,
            })
            .then_err(DomainError::MergeIntoSelf);
    }

    #[test]
    fn identities_are_normalised_before_they_name_a_customer() {
        let spaced = whatsapp("+1 (555) 000-1");
        assert_eq!(
            CustomerId::for_identity(&spaced),
            CustomerId::for_identity(&whatsapp("+15550001"))
        );
        let upper = ChannelIdentity {
            channel: Channel::Email,
            value: " Ana@Example.COM ".into(),
            account: None,
        };
        let lower = ChannelIdentity {
            channel: Channel::Email,
            value: "ana@example.com".into(),
            account: None,
        };
        assert_eq!(
            CustomerId::for_identity(&upper),
            CustomerId::for_identity(&lower)
        );
    }

    #[test]
    fn a_survivor_takes_over_and_gives_back_the_merged_identities() {
        let merged_identity = whatsapp("+15550001");
        let merged = CustomerId::for_identity(&merged_identity);
        let by = Actor::System;
        let state = Customer::replay(&[
            created(whatsapp("+15550002")),
            CustomerAbsorbed {
                merged,
                identities: vec![merged_identity.clone()],
                by,
                at: T0,
            }
            .into(),
        ]);
        assert!(state.identities.contains(&merged_identity));
        // Merged further on, it can still give back what it absorbed.
        let further: CustomerEvent = CustomerMergedInto {
            survivor: CustomerId(Uuid::nil()),
            by,
            at: T0,
        }
        .into();
        let state = given::<Customer>([
            created(whatsapp("+15550002")),
            CustomerAbsorbed {
                merged,
                identities: vec![merged_identity.clone()],
                by,
                at: T0,
            }
            .into(),
            further,
        ])
        .when(CustomerCommand::Release { merged, by, at: T0 })
        .then_accepted();
        assert!(!state.identities.contains(&merged_identity));
    }

    #[test]
    fn an_identity_met_through_an_account_names_another_customer_than_without_one() {
        let plain = whatsapp("+15550001");
        let through = |account: &str| ChannelIdentity {
            account: Some(account.into()),
            ..plain.clone()
        };
        // Customers met before accounts existed keep their ids.
        assert_eq!(
            CustomerId::for_identity(&plain),
            CustomerId(Uuid::new_v5(&IDENTITY_NAMESPACE, b"whatsapp:+15550001"))
        );
        assert_ne!(
            CustomerId::for_identity(&plain),
            CustomerId::for_identity(&through("a"))
        );
        assert_ne!(
            CustomerId::for_identity(&through("a")),
            CustomerId::for_identity(&through("b"))
        );
    }

    #[test]
    fn the_same_social_profile_again_records_nothing() {
        let record = || CustomerCommand::RecordSocialProfile {
            account: "a".into(),
            channel: Channel::Line,
            profile: SocialProfile {
                user_id: "U1".into(),
                name: Some("Ana".into()),
                ..SocialProfile::default()
            },
            at: T0,
        };
        let state = given::<Customer>([created(whatsapp("+15550002"))])
            .when(record())
            .then_accepted();
        let recorded = CustomerSocialProfileRecorded {
            account: "a".into(),
            channel: Channel::Line,
            profile: state.social["a"].1.clone(),
            at: T0,
        };
        given::<Customer>([created(whatsapp("+15550002")), recorded.into()])
            .when(record())
            .then(Vec::<CustomerEvent>::new());
    }

    #[test]
    fn every_customer_event_survives_the_logs_encoding() {
        let identity = whatsapp("+15550001");
        let id = CustomerId::for_identity(&identity);
        let events: Vec<CustomerEvent> = vec![
            created(identity.clone()),
            CustomerIdentityAdded {
                identity: identity.clone(),
                at: T0,
            }
            .into(),
            CustomerDetailsChanged {
                name: Some("Ana".into()),
                email: None,
                by: Actor::System,
                at: T0,
            }
            .into(),
            CustomerMergedInto {
                survivor: id,
                by: Actor::System,
                at: T0,
            }
            .into(),
            CustomerAbsorbed {
                merged: id,
                identities: vec![identity],
                by: Actor::System,
                at: T0,
            }
            .into(),
            CustomerUnmerged {
                survivor: id,
                by: Actor::System,
                at: T0,
            }
            .into(),
            CustomerReleased {
                merged: id,
                by: Actor::System,
                at: T0,
            }
            .into(),
            CustomerSocialProfileRecorded {
                account: "7f1c2e4a-0000-4000-8000-000000000001".into(),
                channel: Channel::Whatsapp,
                profile: SocialProfile {
                    user_id: "15550001".into(),
                    name: Some("Ana".into()),
                    phone: Some("15550001".into()),
                    ..SocialProfile::default()
                },
                at: T0,
            }
            .into(),
        ];
        assert_eq!(events.len(), CustomerEvent::event_types().len());
        for event in events {
            assert_eq!(crate::harness::round_trip(&event), event);
        }
    }
}
