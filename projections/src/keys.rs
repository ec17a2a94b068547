//! How read models write a person as text: `agent:<id>`, `customer:<id>`, or `system` for an
//! actor that is neither. Detail and search store these keys; the API reads them back.

use parley_domain::Actor;
use parley_domain::conversation::Participant;
use std::fmt::Display;
use uuid::Uuid;

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
        Actor::Agent(id) => uuid_key("agent:", id.0),
        Actor::Customer(id) => uuid_key("customer:", id.0),
        Actor::System => "system".to_owned(),
    }
}

pub fn participant_key(participant: &Participant) -> String {
    match *participant {
        Participant::Agent(id) => uuid_key("agent:", id.0),
        Participant::Customer(id) => uuid_key("customer:", id.0),
    }
}

/// `prefix` and `id`, as `agent_key`/`customer_key` write them, without going through
/// `format!` (detail writes one for nearly every event it applies).
fn uuid_key(prefix: &str, id: Uuid) -> String {
    let mut buf = Uuid::encode_buffer();
    let id = id.hyphenated().encode_lower(&mut buf);
    let mut key = String::with_capacity(prefix.len() + id.len());
    key.push_str(prefix);
    key.push_str(id);
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use parley_domain::ids::{AgentId, CustomerId};

    #[test]
    fn typed_keys_match_the_display_forms() {
        let id = Uuid::from_u128(0x0192_0000_7000_8000_0000_0000_0000_00ff);
        assert_eq!(actor_key(&Actor::Agent(AgentId(id))), agent_key(id));
        assert_eq!(
            actor_key(&Actor::Customer(CustomerId(id))),
            customer_key(id)
        );
        assert_eq!(actor_key(&Actor::System), "system");
        assert_eq!(
            participant_key(&Participant::Agent(AgentId(id))),
            "agent:01920000-7000-8000-0000-0000000000ff"
        );
        assert_eq!(
            participant_key(&Participant::Customer(CustomerId(id))),
            customer_key(id)
        );
    }
}
