//! Property tests: random command sequences never panic; folding the accepted events from
//! scratch gives the same state as applying them one by one; every event survives an encode
//! and decode through MessagePack with named fields.

use super::*;
use crate::DomainEvent;
use crate::harness::check_random_history;
use proptest::prelude::*;
use uuid::Uuid;

fn agent() -> impl Strategy<Value = AgentId> {
    (1u128..4).prop_map(|n| AgentId(Uuid::from_u128(0xa000 + n)))
}
fn customer() -> impl Strategy<Value = CustomerId> {
    (1u128..3).prop_map(|n| CustomerId(Uuid::from_u128(0xc000 + n)))
}
fn message() -> impl Strategy<Value = MessageId> {
    (1u128..6).prop_map(|n| MessageId(Uuid::from_u128(0xe000 + n)))
}
fn actor() -> impl Strategy<Value = Actor> {
    prop_oneof![
        agent().prop_map(Actor::Agent),
        customer().prop_map(Actor::Customer),
        Just(Actor::System)
    ]
}
fn participant() -> impl Strategy<Value = Participant> {
    prop_oneof![
        agent().prop_map(Participant::Agent),
        customer().prop_map(Participant::Customer)
    ]
}
fn at() -> impl Strategy<Value = Timestamp> {
    (0i64..1_000).prop_map(|s| Timestamp::from_secs(1_700_000_000 + s))
}
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-z ]{1,12}",
        Just("é€😀".to_string())
    ]
}

fn command() -> impl Strategy<Value = ConversationCommand> {
    use ConversationCommand as C;
    let start = (
        prop_oneof![
            Just(ConversationKind::Customer),
            Just(ConversationKind::Internal)
        ],
        actor(),
        proptest::collection::vec(customer(), 0..3),
        proptest::collection::vec(agent(), 0..3),
        text(),
        at(),
    )
        .prop_map(|(kind, started_by, customers, members, subject, at)| {
            C::Start(Start {
                conversation_id: ConversationId(Uuid::from_u128(1)),
                kind,
                channel: Channel::Whatsapp,
                queue: None,
                subject,
                started_by,
                customers,
                members,
                origin: None,
                at,
            })
        });
    let send = (
        message(),
        actor(),
        text(),
        prop_oneof![Just(Visibility::Public), Just(Visibility::Internal)],
        proptest::option::of(message()),
        at(),
    )
        .prop_map(|(message_id, author, body, visibility, quote_of, at)| {
            C::SendMessage(SendMessage {
                message_id,
                author,
                body,
                visibility,
                attachments: vec![],
                mentions: vec![],
                quote_of,
                at,
            })
        });
    prop_oneof![
        2 => start,
        6 => send,
        1 => (message(), text(), actor(), at()).prop_map(|(message_id, body, by, at)| C::EditMessage { message_id, body, by, at }),
        1 => (message(), actor(), at()).prop_map(|(message_id, by, at)| C::DeleteMessage { message_id, by, at }),
        1 => (participant(), message(), at()).prop_map(|(reader, through, at)| C::MarkRead { reader, through, at }),
        1 => (participant(), message(), at()).prop_map(|(reader, message_id, at)| C::MarkUnread { reader, message_id, at }),
        1 => (actor(), at()).prop_map(|(by, at)| C::Close { by, at }),
        1 => (actor(), at()).prop_map(|(by, at)| C::Reopen { by, at }),
        1 => (text(), actor(), at()).prop_map(|(subject, by, at)| C::Rename { subject, by, at }),
        1 => (actor(), at()).prop_map(|(by, at)| C::MarkSpam { by, at }),
        1 => (agent(), actor(), at()).prop_map(|(agent, by, at)| C::Assign { agent, by, at }),
        1 => (agent(), actor(), at()).prop_map(|(to, by, at)| C::Transfer { to, by, at }),
        1 => ((1u128..3), actor(), at()).prop_map(|(q, by, at)| C::ChangeQueue { queue: QueueId(Uuid::from_u128(q)), by, at }),
        1 => (agent(), at()).prop_map(|(agent, at)| C::ReturnToQueue { agent, at }),
        1 => (agent(), at()).prop_map(|(agent, at)| C::TakeOver { agent, at }),
        1 => (agent(), actor(), at()).prop_map(|(agent, by, at)| C::Invite { agent, by, at }),
        1 => (participant(), actor(), at()).prop_map(|(participant, by, at)| C::RemoveParticipant { participant, by, at }),
        1 => (agent(), at()).prop_map(|(agent, at)| C::Follow { agent, at }),
        1 => (agent(), at()).prop_map(|(agent, at)| C::Unfollow { agent, at }),
        1 => (agent(), at(), at()).prop_map(|(agent, auto_close_at, at)| C::Pin { agent, auto_close_at, at }),
        1 => (agent(), at()).prop_map(|(agent, at)| C::Unpin { agent, at }),
        1 => (customer(), 0u8..7, proptest::option::of(text()), at()).prop_map(|(customer, score, comment, at)| C::Rate { customer, score, comment, at }),
        1 => ((1u128..3), actor(), at()).prop_map(|(t, by, at)| C::LinkTicket { ticket_id: TicketId(Uuid::from_u128(t)), by, at }),
        1 => ((1u128..3), actor(), at()).prop_map(|(t, by, at)| C::UnlinkTicket { ticket_id: TicketId(Uuid::from_u128(t)), by, at }),
        1 => (message(), (2u128..4), actor(), at()).prop_map(|(message_id, c, by, at)| C::RecordBranch { message_id, new_conversation_id: ConversationId(Uuid::from_u128(c)), by, at }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_commands_never_panic_and_replay_reproduces_the_state(
        commands in proptest::collection::vec(command(), 1..60)
    ) {
        check_random_history::<Conversation>(commands);
    }
}

#[test]
fn every_event_type_name_is_unique() {
    let names = ConversationEvent::event_types();
    let unique: std::collections::BTreeSet<_> = names.iter().collect();
    assert_eq!(unique.len(), names.len());
}
