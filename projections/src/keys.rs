//! How read models write a person as text: `agent:<id>`, `customer:<id>`, or `system` for an
//! actor that is neither. Detail and search store these keys; the API reads them back.

use parley_domain::Actor;
use parley_domain::conversation::Participant;
use parley_domain::ids::{AgentId, CustomerId};
use uuid::Uuid;

/// An id as a key writes it: typed ids and UUIDs in lower-case hyphenated form, straight from
/// the UUID's text buffer (detail and search write a key for nearly every event they apply,
/// and `format!` cost several times more), text as it is.
pub trait KeyId {
    fn push_to(&self, key: &mut String);
}

impl KeyId for Uuid {
    fn push_to(&self, key: &mut String) {
        key.push_str(self.hyphenated().encode_lower(&mut Uuid::encode_buffer()));
    }
}

impl KeyId for AgentId {
    fn push_to(&self, key: &mut String) {
        self.0.push_to(key);
    }
}

impl KeyId for CustomerId {
    fn push_to(&self, key: &mut String) {
        self.0.push_to(key);
    }
}

impl KeyId for str {
    fn push_to(&self, key: &mut String) {
        key.push_str(self);
    }
}

impl KeyId for String {
    fn push_to(&self, key: &mut String) {
        key.push_str(self);
    }
}

impl<T: KeyId + ?Sized> KeyId for &T {
    fn push_to(&self, key: &mut String) {
        (**self).push_to(key);
    }
}

fn key(prefix: &str, id: impl KeyId) -> String {
    // A hyphenated UUID is 36 characters.
    let mut key = String::with_capacity(prefix.len() + 36);
    key.push_str(prefix);
    id.push_to(&mut key);
    key
}

/// An agent's key, from their id in any form (typed, a bare UUID, or its text).
pub fn agent_key(id: impl KeyId) -> String {
    key("agent:", id)
}

/// A customer's key, from their id in any form (typed, a bare UUID, or its text).
pub fn customer_key(id: impl KeyId) -> String {
    key("customer:", id)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_of_an_id_gives_the_same_key() {
        let id = Uuid::from_u128(0x0192_0000_7000_8000_0000_0000_0000_00ff);
        let text = "01920000-7000-8000-0000-0000000000ff";
        assert_eq!(agent_key(id), format!("agent:{text}"));
        assert_eq!(agent_key(AgentId(id)), agent_key(text));
        assert_eq!(customer_key(CustomerId(id)), customer_key(text.to_owned()));
        assert_eq!(actor_key(&Actor::Agent(AgentId(id))), agent_key(id));
        assert_eq!(
            actor_key(&Actor::Customer(CustomerId(id))),
            format!("customer:{text}")
        );
        assert_eq!(actor_key(&Actor::System), "system");
        assert_eq!(
            participant_key(&Participant::Agent(AgentId(id))),
            format!("agent:{text}")
        );
        assert_eq!(
            participant_key(&Participant::Customer(CustomerId(id))),
            customer_key(id)
        );
    }
}
