//! How read models write a person as text: `agent:<id>`, `customer:<id>`, or `system` for an
//! actor that is neither. Detail and search store these keys; the API reads them back.

use parley_domain::Actor;
use parley_domain::conversation::Participant;
use std::fmt::Display;

/// An agent's key, from their id in any form (typed, a bare UUID, or its text).
pub fn agent_key(id: impl Display) -> String {
    format!("agent:{id}")
}

/// A customer's key, from their id in any form (typed, a bare UUID, or its text).
pub fn customer_key(id: impl Display) -> String {
    format!("customer:{id}")
}

pub fn actor_key(actor: &Actor) -> String {
    match *actor {
        Actor::Agent(id) => agent_key(id),
        Actor::Customer(id) => customer_key(id),
        Actor::System => "system".to_owned(),
    }
}

pub fn participant_key(participant: &Participant) -> String {
    match *participant {
        Participant::Agent(id) => agent_key(id),
        Participant::Customer(id) => customer_key(id),
    }
}
