//! given / when / then for aggregates:
//! `given::<Conversation>(events).when(command).then(events)` or `.then_err(error)`.

use crate::{Aggregate, DomainError, DomainEvent};

/// Encodes an event as the log does (MessagePack, named fields) and decodes it back.
pub fn round_trip<E: DomainEvent>(event: &E) -> E {
    let mut bytes = Vec::new();
    event
        .serialize_payload(&mut rmp_serde::Serializer::new(&mut bytes).with_struct_map())
        .expect("every event encodes");
    let mut decoder = rmp_serde::Deserializer::from_read_ref(&bytes);
    E::deserialize_payload(event.event_type(), &mut decoder)
        .expect("the type name is known")
        .expect("every event decodes")
}

pub struct Given<A: Aggregate> {
    state: A,
}

pub fn given<A: Aggregate>(events: impl IntoIterator<Item = A::Event>) -> Given<A> {
    let events: Vec<A::Event> = events.into_iter().collect();
    Given {
        state: A::replay(&events),
    }
}

pub struct When<A: Aggregate> {
    state: A,
    result: Result<Vec<A::Event>, DomainError>,
}

impl<A: Aggregate> Given<A> {
    pub fn when(self, command: A::Command) -> When<A> {
        let result = self.state.decide(command);
        When {
            state: self.state,
            result,
        }
    }
}

impl<A: Aggregate> When<A>
where
    A::Event: PartialEq,
{
    /// The command is accepted with exactly these events; returns the state after them.
    #[track_caller]
    pub fn then(self, expected: impl IntoIterator<Item = A::Event>) -> A {
        let expected: Vec<A::Event> = expected.into_iter().collect();
        match self.result {
            Ok(events) => {
                assert_eq!(events, expected, "the command caused other events");
                events.iter().fold(self.state, A::evolve)
            }
            Err(error) => panic!("expected {expected:?}, the command was refused: {error}"),
        }
    }

    /// The command is accepted (whatever its events); returns the state after them.
    #[track_caller]
    pub fn then_accepted(self) -> A {
        match self.result {
            Ok(events) => events.iter().fold(self.state, A::evolve),
            Err(error) => panic!("the command was refused: {error}"),
        }
    }

    /// The command is refused with exactly this error.
    #[track_caller]
    pub fn then_err(self, expected: DomainError) {
        match self.result {
            Ok(events) => panic!("expected {expected:?}, the command was accepted: {events:?}"),
            Err(error) => assert_eq!(error, expected),
        }
    }
}

/// Runs `commands` from the initial state, applying every accepted event, and checks that each
/// event survives the log's encoding and that replaying the accepted events from scratch gives
/// the same state as applying them one by one. Refused commands are simply skipped.
#[track_caller]
pub fn check_random_history<A>(commands: Vec<A::Command>)
where
    A: Aggregate + PartialEq + std::fmt::Debug,
    A::Event: PartialEq,
{
    let mut state = A::default();
    let mut history = Vec::new();
    for command in commands {
        if let Ok(events) = state.decide(command) {
            for event in events {
                assert_eq!(round_trip(&event), event);
                state = state.evolve(&event);
                history.push(event);
            }
        }
    }
    assert_eq!(A::replay(&history), state);
}
