//! The help desk's online/offline switch and what widget visitors are told. One stream per
//! help desk: `helpdesk-<id>`.

use crate::rules::check_text;
use crate::{Actor, Aggregate, DomainError, Timestamp, event_family};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HelpDeskWentOnline {
    pub by: Actor,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HelpDeskWentOffline {
    pub by: Actor,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WidgetMessagesChanged {
    pub online_message: String,
    pub offline_message: String,
    pub by: Actor,
    pub at: Timestamp,
}

event_family! {
    /// Everything that happens to the help desk's availability.
    pub enum HelpDeskEvent {
        HelpDeskWentOnline,
        HelpDeskWentOffline,
        WidgetMessagesChanged,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum HelpDeskCommand {
    GoOnline {
        by: Actor,
        at: Timestamp,
    },
    GoOffline {
        by: Actor,
        at: Timestamp,
    },
    SetWidgetMessages {
        online_message: String,
        offline_message: String,
        by: Actor,
        at: Timestamp,
    },
}

/// Widget messages shown until an admin sets others.
pub const DEFAULT_ONLINE_MESSAGE: &str = "We're online. Ask us anything!";
pub const DEFAULT_OFFLINE_MESSAGE: &str =
    "We're away right now. Leave a message and we'll get back to you.";

#[derive(Debug, Clone, PartialEq)]
pub struct HelpDesk {
    pub online: bool,
    pub online_message: String,
    pub offline_message: String,
}

impl Default for HelpDesk {
    fn default() -> Self {
        HelpDesk {
            online: false,
            online_message: DEFAULT_ONLINE_MESSAGE.into(),
            offline_message: DEFAULT_OFFLINE_MESSAGE.into(),
        }
    }
}

impl HelpDesk {
    /// What a widget visitor is told now.
    pub fn visitor_message(&self) -> &str {
        if self.online {
            &self.online_message
        } else {
            &self.offline_message
        }
    }
}

impl Aggregate for HelpDesk {
    type Command = HelpDeskCommand;
    type Event = HelpDeskEvent;
    const STREAM_PREFIX: &'static str = "helpdesk";

    fn decide(&self, command: HelpDeskCommand) -> Result<Vec<HelpDeskEvent>, DomainError> {
        match command {
            HelpDeskCommand::GoOnline { by, at } if !self.online => {
                Ok(vec![HelpDeskWentOnline { by, at }.into()])
            }
            HelpDeskCommand::GoOffline { by, at } if self.online => {
                Ok(vec![HelpDeskWentOffline { by, at }.into()])
            }
            HelpDeskCommand::GoOnline { .. } | HelpDeskCommand::GoOffline { .. } => {
                Err(DomainError::NoChange)
            }
            HelpDeskCommand::SetWidgetMessages {
                online_message,
                offline_message,
                by,
                at,
            } => {
                check_text("online_message", &online_message, 1_000, false)?;
                check_text("offline_message", &offline_message, 1_000, false)?;
                if online_message == self.online_message && offline_message == self.offline_message
                {
                    return Err(DomainError::NoChange);
                }
                Ok(vec![
                    WidgetMessagesChanged {
                        online_message,
                        offline_message,
                        by,
                        at,
                    }
                    .into(),
                ])
            }
        }
    }

    fn evolve(mut self, event: &HelpDeskEvent) -> Self {
        match event {
            HelpDeskEvent::HelpDeskWentOnline(_) => self.online = true,
            HelpDeskEvent::HelpDeskWentOffline(_) => self.online = false,
            HelpDeskEvent::WidgetMessagesChanged(e) => {
                self.online_message = e.online_message.clone();
                self.offline_message = e.offline_message.clone();
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

    #[test]
    fn the_switch_changes_what_visitors_are_told() {
        let state = given::<HelpDesk>([])
            .when(HelpDeskCommand::GoOnline {
                by: Actor::System,
                at: T0,
            })
            .then([HelpDeskWentOnline {
                by: Actor::System,
                at: T0,
            }
            .into()]);
        assert_eq!(state.visitor_message(), DEFAULT_ONLINE_MESSAGE);
        assert_eq!(
            HelpDesk::default().visitor_message(),
            DEFAULT_OFFLINE_MESSAGE
        );
        given::<HelpDesk>([HelpDeskWentOnline {
            by: Actor::System,
            at: T0,
        }
        .into()])
        .when(HelpDeskCommand::GoOnline {
            by: Actor::System,
            at: T0,
        })
        .then_err(DomainError::NoChange);
        given::<HelpDesk>([])
            .when(HelpDeskCommand::GoOffline {
                by: Actor::System,
                at: T0,
            })
            .then_err(DomainError::NoChange);
    }

    #[test]
    fn widget_messages_are_configurable() {
        let state = given::<HelpDesk>([])
            .when(HelpDeskCommand::SetWidgetMessages {
                online_message: "Hi!".into(),
                offline_message: "Back at 9.".into(),
                by: Actor::System,
                at: T0,
            })
            .then_accepted();
        assert_eq!(state.visitor_message(), "Back at 9.");
        given::<HelpDesk>([])
            .when(HelpDeskCommand::SetWidgetMessages {
                online_message: "".into(),
                offline_message: "x".into(),
                by: Actor::System,
                at: T0,
            })
            .then_err(DomainError::Invalid {
                field: "online_message",
                reason: "must not be empty".into(),
            });
    }

    #[test]
    fn every_help_desk_event_survives_the_logs_encoding() {
        let events: Vec<HelpDeskEvent> = vec![
            HelpDeskWentOnline {
                by: Actor::System,
                at: T0,
            }
            .into(),
            HelpDeskWentOffline {
                by: Actor::System,
                at: T0,
            }
            .into(),
            WidgetMessagesChanged {
                online_message: "a".into(),
                offline_message: "b".into(),
                by: Actor::System,
                at: T0,
            }
            .into(),
        ];
        assert_eq!(events.len(), HelpDeskEvent::event_types().len());
        for event in events {
            assert_eq!(crate::harness::round_trip(&event), event);
        }
    }
}
