//! Property tests for tickets: random command sequences never panic, replaying the accepted
//! events reproduces the state, and every event survives the log's encoding.

use super::*;
use crate::harness::check_random_history;
use proptest::prelude::*;

fn actor() -> impl Strategy<Value = Actor> {
    prop_oneof![
        (1u128..4).prop_map(|n| Actor::Agent(AgentId(Uuid::from_u128(n)))),
        (1u128..3).prop_map(|n| Actor::Customer(CustomerId(Uuid::from_u128(n)))),
        Just(Actor::System),
    ]
}
fn agent() -> impl Strategy<Value = AgentId> {
    (1u128..4).prop_map(|n| AgentId(Uuid::from_u128(n)))
}
fn at() -> impl Strategy<Value = Timestamp> {
    (0i64..200_000).prop_map(|s| Timestamp::from_secs(1_700_000_000 + s))
}
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-z ]{1,10}",
        Just("Ünïcødé".to_string())
    ]
}
fn tag() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("messaging_support".to_string()),
        Just("WhatsApp".to_string()),
        Just("vip".to_string()),
        Just("two words".to_string())
    ]
}
fn status() -> impl Strategy<Value = TicketStatus> {
    prop_oneof![
        Just(TicketStatus::New),
        Just(TicketStatus::Open),
        Just(TicketStatus::Pending),
        Just(TicketStatus::Solved),
        Just(TicketStatus::Closed)
    ]
}
fn reply() -> impl Strategy<Value = Uuid> {
    (1u128..4).prop_map(Uuid::from_u128)
}
fn info() -> impl Strategy<Value = Option<ChannelInfo>> {
    prop_oneof![
        Just(None),
        Just(Some(ChannelInfo {
            channel: Channel::Whatsapp,
            account_id: "+1555".into(),
            customer_handle: "+1666".into()
        })),
        Just(Some(ChannelInfo {
            channel: Channel::Line,
            account_id: "L".into(),
            customer_handle: "U1".into()
        })),
    ]
}

fn command() -> impl Strategy<Value = TicketCommand> {
    use TicketCommand as C;
    let create = (
        text(),
        proptest::collection::vec(tag(), 0..3),
        info(),
        actor(),
        at(),
        any::<bool>(),
    )
        .prop_map(|(title, tags, channel_info, created_by, at, social)| {
            let source = match (&channel_info, social) {
                (Some(info), true) => TicketSource::Social {
                    channel: info.channel,
                },
                _ => TicketSource::Api,
            };
            C::Create(CreateTicket {
                reply_token: None,
                ticket_id: TicketId(Uuid::from_u128(1)),
                ticket_type: TicketType::Ticket,
                title,
                description: String::new(),
                priority: Priority::Normal,
                requester: None,
                source,
                tags,
                channel_info,
                created_by,
                at,
            })
        });
    prop_oneof![
        2 => create,
        1 => (text(), actor(), at()).prop_map(|(title, by, at)| C::ChangeTitle { title, by, at }),
        1 => (text(), actor(), at()).prop_map(|(description, by, at)| C::ChangeDescription { description, by, at }),
        1 => (actor(), at()).prop_map(|(by, at)| C::ChangePriority { priority: Priority::High, by, at }),
        1 => (actor(), at()).prop_map(|(by, at)| C::ChangeType { ticket_type: TicketType::Task, by, at }),
        3 => (status(), actor(), at()).prop_map(|(to, by, at)| C::ChangeStatus { to, by, at }),
        2 => (agent(), actor(), at()).prop_map(|(agent, by, at)| C::Assign { agent, by, at }),
        1 => (actor(), at()).prop_map(|(by, at)| C::Unassign { by, at }),
        1 => (agent(), at()).prop_map(|(agent, at)| C::Follow { agent, at }),
        1 => (agent(), at()).prop_map(|(agent, at)| C::Unfollow { agent, at }),
        1 => (text(), actor(), at()).prop_map(|(body, author, at)| C::Comment {
            comment_id: Uuid::from_u128(9), author, body, visibility: Visibility::Public, attachments: vec![], at
        }),
        2 => (tag(), actor(), at()).prop_map(|(tag, by, at)| C::AddTag { tag, by, at }),
        2 => (tag(), actor(), at()).prop_map(|(tag, by, at)| C::RemoveTag { tag, by, at }),
        1 => (info(), actor(), at()).prop_map(|(channel_info, by, at)| C::SetChannelInfo { channel_info, by, at }),
        2 => (text(), at()).prop_map(|(body, at)| C::ReceiveCustomerMessage { reply_token: None, message_id: Uuid::from_u128(8), body, attachments: vec![], at }),
        2 => (reply(), text(), actor(), at()).prop_map(|(reply_id, body, by, at)| C::RequestReply { attachments: vec![], reply_id, body, by, at }),
        1 => (reply(), at()).prop_map(|(reply_id, at)| C::MarkReplyDelivered { attempts: 0, platform_message_id: None, reply_id, at }),
        1 => (reply(), text(), at()).prop_map(|(reply_id, reason, at)| C::MarkReplyFailed { attempts: 0, code: None, reply_id, reason, at }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_commands_never_panic_and_replay_reproduces_the_state(
        commands in proptest::collection::vec(command(), 1..60)
    ) {
        check_random_history::<Ticket>(commands);
    }
}
