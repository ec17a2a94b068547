use super::*;
use crate::harness::given;

const T0: Timestamp = Timestamp::from_secs(1_700_000_000);

fn agent(n: u128) -> AgentId {
    AgentId(Uuid::from_u128(0xa000 + n))
}
fn id(n: u128) -> Uuid {
    Uuid::from_u128(0x5000 + n)
}
fn by() -> Actor {
    Actor::Agent(agent(1))
}
fn whatsapp() -> ChannelInfo {
    ChannelInfo {
        channel: Channel::Whatsapp,
        account_id: "+15550001".into(),
        customer_handle: "+15559876".into(),
    }
}

fn create(source: TicketSource, channel_info: Option<ChannelInfo>) -> CreateTicket {
    CreateTicket {
        reply_token: None,
        ticket_id: TicketId(id(1)),
        ticket_type: TicketType::Ticket,
        title: "Parcel lost".into(),
        description: "The customer's parcel did not arrive.".into(),
        priority: Priority::Normal,
        requester: Some(CustomerId(id(2))),
        source,
        tags: vec![" VIP ".into()],
        channel_info,
        created_by: by(),
        at: T0,
    }
}

fn created(source: TicketSource, tags: &[&str], channel_info: Option<ChannelInfo>) -> TicketEvent {
    TicketCreated {
        reply_token: None,
        ticket_id: TicketId(id(1)),
        ticket_type: TicketType::Ticket,
        title: "Parcel lost".into(),
        description: "The customer's parcel did not arrive.".into(),
        priority: Priority::Normal,
        requester: Some(CustomerId(id(2))),
        source,
        tags: tags.iter().map(|t| t.to_string()).collect(),
        channel_info,
        created_by: by(),
        at: T0,
    }
    .into()
}

fn api_ticket() -> TicketEvent {
    created(TicketSource::Api, &["vip"], None)
}

fn social_ticket() -> TicketEvent {
    created(
        TicketSource::Social {
            channel: Channel::Whatsapp,
        },
        &["messaging_support", "vip", "whatsapp"],
        Some(whatsapp()),
    )
}

fn status(from: TicketStatus, to: TicketStatus) -> TicketEvent {
    TicketStatusChanged {
        from,
        to,
        by: by(),
        at: T0,
    }
    .into()
}

use TicketCommand as C;

#[test]
fn a_ticket_is_created_with_normalised_tags() {
    let state = given::<Ticket>([])
        .when(C::Create(create(TicketSource::Api, None)))
        .then([api_ticket()]);
    assert_eq!(state.status, TicketStatus::New);
    assert!(!state.is_social());
}

#[test]
fn a_social_ticket_carries_its_channel_tag_messaging_support_and_channel_info() {
    let state = given::<Ticket>([])
        .when(C::Create(create(
            TicketSource::Social {
                channel: Channel::Whatsapp,
            },
            Some(whatsapp()),
        )))
        .then([social_ticket()]);
    assert!(state.is_social());
    given::<Ticket>([])
        .when(C::Create(create(
            TicketSource::Social {
                channel: Channel::Whatsapp,
            },
            None,
        )))
        .then_err(DomainError::Invalid {
            field: "channel_info",
            reason: "a social ticket needs its channel info".into(),
        });
}

#[test]
fn a_ticket_from_a_conversation_remembers_it() {
    let source = TicketSource::Conversation {
        conversation_id: ConversationId(id(9)),
        message_id: Some(MessageId(id(10))),
    };
    given::<Ticket>([])
        .when(C::Create(create(source.clone(), None)))
        .then([created(source, &["vip"], None)]);
}

#[test]
fn a_ticket_cannot_be_created_twice_or_changed_before_it_exists() {
    given::<Ticket>([api_ticket()])
        .when(C::Create(create(TicketSource::Api, None)))
        .then_err(DomainError::TicketExists);
    given::<Ticket>([])
        .when(C::ChangeTitle {
            title: "x".into(),
            by: by(),
            at: T0,
        })
        .then_err(DomainError::TicketNotFound);
}

#[test]
fn title_description_priority_and_type_change_only_when_they_differ() {
    given::<Ticket>([api_ticket()])
        .when(C::ChangeTitle {
            title: "Parcel found".into(),
            by: by(),
            at: T0,
        })
        .then([TicketTitleChanged {
            title: "Parcel found".into(),
            by: by(),
            at: T0,
        }
        .into()]);
    given::<Ticket>([api_ticket()])
        .when(C::ChangeTitle {
            title: "Parcel lost".into(),
            by: by(),
            at: T0,
        })
        .then_err(DomainError::NoChange);
    given::<Ticket>([api_ticket()])
        .when(C::ChangeDescription {
            description: String::new(),
            by: by(),
            at: T0,
        })
        .then([TicketDescriptionChanged {
            description: String::new(),
            by: by(),
            at: T0,
        }
        .into()]);
    given::<Ticket>([api_ticket()])
        .when(C::ChangePriority {
            priority: Priority::Urgent,
            by: by(),
            at: T0,
        })
        .then([TicketPriorityChanged {
            priority: Priority::Urgent,
            by: by(),
            at: T0,
        }
        .into()]);
    given::<Ticket>([api_ticket()])
        .when(C::ChangeType {
            ticket_type: TicketType::Task,
            by: by(),
            at: T0,
        })
        .then([TicketTypeChanged {
            ticket_type: TicketType::Task,
            by: by(),
            at: T0,
        }
        .into()]);
    given::<Ticket>([api_ticket()])
        .when(C::ChangeType {
            ticket_type: TicketType::Ticket,
            by: by(),
            at: T0,
        })
        .then_err(DomainError::NoChange);
}

#[test]
fn status_follows_the_documented_transitions() {
    use TicketStatus::*;
    let all = [New, Open, Pending, Solved, Closed];
    for from in all {
        for to in all {
            if from == to || from == Closed {
                continue;
            }
            let mut history = vec![api_ticket()];
            if from != New {
                history.push(status(New, from));
            }
            let when = given::<Ticket>(history).when(C::ChangeStatus {
                to,
                by: by(),
                at: T0,
            });
            if from.may_become(to) {
                when.then([status(from, to)]);
            } else {
                when.then_err(DomainError::InvalidTransition {
                    from: from.name(),
                    to: to.name(),
                });
            }
        }
    }
    assert!(Solved.may_become(Closed) && !Open.may_become(Closed) && !New.may_become(Closed));
}

#[test]
fn a_closed_ticket_changes_no_more() {
    let closed = [
        api_ticket(),
        status(TicketStatus::New, TicketStatus::Solved),
        status(TicketStatus::Solved, TicketStatus::Closed),
    ];
    given::<Ticket>(closed.clone())
        .when(C::ChangeStatus {
            to: TicketStatus::Open,
            by: by(),
            at: T0,
        })
        .then_err(DomainError::TicketClosed);
    given::<Ticket>(closed)
        .when(C::AddTag {
            tag: "late".into(),
            by: by(),
            at: T0,
        })
        .then_err(DomainError::TicketClosed);
}

#[test]
fn assigning_a_new_ticket_opens_it_and_unassigning_needs_an_assignee() {
    let state = given::<Ticket>([api_ticket()])
        .when(C::Assign {
            agent: agent(2),
            by: by(),
            at: T0,
        })
        .then([
            TicketAssigned {
                agent: agent(2),
                by: by(),
                at: T0,
            }
            .into(),
            status(TicketStatus::New, TicketStatus::Open),
        ]);
    assert_eq!(state.assignee, Some(agent(2)));
    let assigned = [
        api_ticket(),
        TicketAssigned {
            agent: agent(2),
            by: by(),
            at: T0,
        }
        .into(),
    ];
    given::<Ticket>(assigned.clone())
        .when(C::Assign {
            agent: agent(2),
            by: by(),
            at: T0,
        })
        .then_err(DomainError::AlreadyAssignedTo(agent(2)));
    given::<Ticket>(assigned)
        .when(C::Unassign { by: by(), at: T0 })
        .then([TicketUnassigned {
            agent: agent(2),
            by: by(),
            at: T0,
        }
        .into()]);
    given::<Ticket>([api_ticket()])
        .when(C::Unassign { by: by(), at: T0 })
        .then_err(DomainError::Unassigned);
}

#[test]
fn followers_and_comments() {
    given::<Ticket>([api_ticket()])
        .when(C::Follow {
            agent: agent(3),
            at: T0,
        })
        .then([TicketFollowed {
            agent: agent(3),
            at: T0,
        }
        .into()]);
    given::<Ticket>([
        api_ticket(),
        TicketFollowed {
            agent: agent(3),
            at: T0,
        }
        .into(),
    ])
    .when(C::Follow {
        agent: agent(3),
        at: T0,
    })
    .then_err(DomainError::AlreadyFollowing(agent(3)));
    given::<Ticket>([api_ticket()])
        .when(C::Unfollow {
            agent: agent(3),
            at: T0,
        })
        .then_err(DomainError::NotFollowing(agent(3)));
    given::<Ticket>([api_ticket()])
        .when(C::Comment {
            comment_id: id(50),
            author: by(),
            body: "Checked with the carrier".into(),
            visibility: Visibility::Internal,
            attachments: vec![],
            at: T0,
        })
        .then([TicketCommented {
            comment_id: id(50),
            author: by(),
            body: "Checked with the carrier".into(),
            visibility: Visibility::Internal,
            attachments: vec![],
            at: T0,
        }
        .into()]);
    given::<Ticket>([api_ticket()])
        .when(C::Comment {
            comment_id: id(51),
            author: Actor::Customer(CustomerId(id(2))),
            body: "psst".into(),
            visibility: Visibility::Internal,
            attachments: vec![],
            at: T0,
        })
        .then_err(DomainError::Invalid {
            field: "visibility",
            reason: "customers cannot write internal comments".into(),
        });
}

#[test]
fn removing_the_messaging_support_tag_takes_a_ticket_out_of_the_social_views() {
    let state = given::<Ticket>([social_ticket()])
        .when(C::RemoveTag {
            tag: "Messaging_Support".into(),
            by: by(),
            at: T0,
        })
        .then([TicketTagRemoved {
            tag: "messaging_support".into(),
            by: by(),
            at: T0,
        }
        .into()]);
    assert!(!state.is_social());
    given::<Ticket>([social_ticket()])
        .when(C::AddTag {
            tag: "whatsapp".into(),
            by: by(),
            at: T0,
        })
        .then_err(DomainError::TagPresent("whatsapp".into()));
    given::<Ticket>([api_ticket()])
        .when(C::RemoveTag {
            tag: "whatsapp".into(),
            by: by(),
            at: T0,
        })
        .then_err(DomainError::TagAbsent("whatsapp".into()));
    given::<Ticket>([api_ticket()])
        .when(C::AddTag {
            tag: "two words".into(),
            by: by(),
            at: T0,
        })
        .then_err(DomainError::Invalid {
            field: "tag",
            reason: "must not contain blanks".into(),
        });
}

#[test]
fn channel_info_can_be_set_and_cleared() {
    given::<Ticket>([api_ticket()])
        .when(C::SetChannelInfo {
            channel_info: Some(whatsapp()),
            by: by(),
            at: T0,
        })
        .then([TicketChannelInfoSet {
            channel_info: Some(whatsapp()),
            by: by(),
            at: T0,
        }
        .into()]);
    given::<Ticket>([social_ticket()])
        .when(C::SetChannelInfo {
            channel_info: Some(whatsapp()),
            by: by(),
            at: T0,
        })
        .then_err(DomainError::NoChange);
}

#[test]
fn a_customer_message_reopens_a_pending_or_solved_ticket() {
    let pending = [
        social_ticket(),
        status(TicketStatus::New, TicketStatus::Pending),
    ];
    let state = given::<Ticket>(pending)
        .when(C::ReceiveCustomerMessage {
            reply_token: None,
            message_id: id(60),
            body: "any news?".into(),
            attachments: vec![],
            at: T0,
        })
        .then([
            TicketStatusChanged {
                from: TicketStatus::Pending,
                to: TicketStatus::Open,
                by: Actor::System,
                at: T0,
            }
            .into(),
            CustomerMessageReceived {
                reply_token: None,
                message_id: id(60),
                body: "any news?".into(),
                attachments: vec![],
                at: T0,
            }
            .into(),
        ]);
    assert_eq!(state.status, TicketStatus::Open);
}

#[test]
fn a_whatsapp_reply_within_24_hours_is_requested_then_delivered() {
    let within = T0.plus_secs(WHATSAPP_WINDOW_SECS - 1);
    let requested: TicketEvent = OutboundReplyRequested {
        attachments: vec![],
        reply_id: id(70),
        body: "It ships today".into(),
        channel_info: whatsapp(),
        by: by(),
        at: within,
    }
    .into();
    given::<Ticket>([social_ticket()])
        .when(C::RequestReply {
            attachments: vec![],
            reply_id: id(70),
            body: "It ships today".into(),
            by: by(),
            at: within,
        })
        .then([requested.clone()]);
    given::<Ticket>([social_ticket(), requested.clone()])
        .when(C::MarkReplyDelivered {
            attempts: 0,
            platform_message_id: None,
            reply_id: id(70),
            at: within,
        })
        .then([OutboundReplyDelivered {
            attempts: 0,
            platform_message_id: None,
            reply_id: id(70),
            at: within,
        }
        .into()]);
    given::<Ticket>([
        social_ticket(),
        requested,
        OutboundReplyDelivered {
            attempts: 0,
            platform_message_id: None,
            reply_id: id(70),
            at: within,
        }
        .into(),
    ])
    .when(C::MarkReplyFailed {
        attempts: 0,
        code: None,
        reply_id: id(70),
        reason: "late".into(),
        at: within,
    })
    .then_err(DomainError::ReplyNotPending(id(70)));
}

#[test]
fn a_whatsapp_reply_after_24_hours_fails_with_a_clear_event() {
    let late = T0.plus_secs(WHATSAPP_WINDOW_SECS + 1);
    given::<Ticket>([social_ticket()])
        .when(C::RequestReply {
            attachments: vec![],
            reply_id: id(71),
            body: "Sorry for the wait".into(),
            by: by(),
            at: late,
        })
        .then([
            OutboundReplyRequested {
                attachments: vec![],
                reply_id: id(71),
                body: "Sorry for the wait".into(),
                channel_info: whatsapp(),
                by: by(),
                at: late,
            }
            .into(),
            OutboundReplyFailed {
                attempts: 0,
                code: Some("131047".into()),
                reply_id: id(71),
                reason:
                    "WhatsApp accepts replies only within 24 hours of the customer's last message"
                        .into(),
                at: late,
            }
            .into(),
        ]);
    // A new customer message opens the window again.
    let state = given::<Ticket>([
        social_ticket(),
        CustomerMessageReceived {
            reply_token: None,
            message_id: id(72),
            body: "hello?".into(),
            attachments: vec![],
            at: late,
        }
        .into(),
    ])
    .when(C::RequestReply {
        attachments: vec![],
        reply_id: id(73),
        body: "Here".into(),
        by: by(),
        at: late.plus_secs(60),
    })
    .then_accepted();
    assert_eq!(state.replies.get(&id(73)), Some(&ReplyState::Pending));
}

#[test]
fn a_reply_needs_a_messaging_channel() {
    given::<Ticket>([api_ticket()])
        .when(C::RequestReply {
            attachments: vec![],
            reply_id: id(74),
            body: "hi".into(),
            by: by(),
            at: T0,
        })
        .then_err(DomainError::NoReplyChannel);
}

#[test]
fn a_closed_ticket_still_learns_how_its_replies_ended() {
    let requested: TicketEvent = OutboundReplyRequested {
        attachments: vec![],
        reply_id: id(80),
        body: "Done".into(),
        channel_info: whatsapp(),
        by: by(),
        at: T0,
    }
    .into();
    let closed = [
        social_ticket(),
        requested,
        status(TicketStatus::New, TicketStatus::Solved),
        status(TicketStatus::Solved, TicketStatus::Closed),
    ];
    given::<Ticket>(closed.clone())
        .when(C::MarkReplyDelivered {
            attempts: 0,
            platform_message_id: None,
            reply_id: id(80),
            at: T0,
        })
        .then([OutboundReplyDelivered {
            attempts: 0,
            platform_message_id: None,
            reply_id: id(80),
            at: T0,
        }
        .into()]);
    given::<Ticket>(closed)
        .when(C::ReceiveCustomerMessage {
            reply_token: None,
            message_id: id(81),
            body: "thanks".into(),
            attachments: vec![],
            at: T0,
        })
        .then_err(DomainError::TicketClosed);
}

#[test]
fn redelivered_messages_and_retried_comments_are_recorded_once() {
    let received: TicketEvent = CustomerMessageReceived {
        reply_token: None,
        message_id: id(90),
        body: "hi".into(),
        attachments: vec![],
        at: T0,
    }
    .into();
    given::<Ticket>([social_ticket(), received.clone()])
        .when(C::ReceiveCustomerMessage {
            reply_token: None,
            message_id: id(90),
            body: "hi".into(),
            attachments: vec![],
            at: T0,
        })
        .then([]);
    let commented: TicketEvent = TicketCommented {
        comment_id: id(91),
        author: by(),
        body: "noted".into(),
        visibility: Visibility::Internal,
        attachments: vec![],
        at: T0,
    }
    .into();
    given::<Ticket>([api_ticket(), commented])
        .when(C::Comment {
            comment_id: id(91),
            author: by(),
            body: "noted".into(),
            visibility: Visibility::Internal,
            attachments: vec![],
            at: T0,
        })
        .then([]);
}

#[test]
fn a_late_delivery_of_an_older_message_does_not_shrink_the_whatsapp_window() {
    let recent = T0.plus_secs(3_600);
    let state = Ticket::replay(&[
        social_ticket(),
        CustomerMessageReceived {
            reply_token: None,
            message_id: id(92),
            body: "new".into(),
            attachments: vec![],
            at: recent,
        }
        .into(),
        CustomerMessageReceived {
            reply_token: None,
            message_id: id(93),
            body: "old".into(),
            attachments: vec![],
            at: T0,
        }
        .into(),
    ]);
    assert_eq!(state.last_customer_message_at, Some(recent));
}

fn social_ticket_on(channel: Channel) -> TicketEvent {
    let mut created = social_ticket();
    if let TicketEvent::TicketCreated(e) = &mut created
        && let Some(info) = &mut e.channel_info
    {
        info.channel = channel;
    }
    created
}

fn reply_at(n: u128, at: Timestamp) -> TicketCommand {
    C::RequestReply {
        attachments: vec![],
        reply_id: id(n),
        body: "Hello".into(),
        by: by(),
        at,
    }
}

#[test]
fn a_messenger_reply_within_seven_days_is_requested_and_after_them_fails() {
    let day6 = T0.plus_secs(6 * 24 * 3600);
    let state = given::<Ticket>([social_ticket_on(Channel::Facebook)])
        .when(reply_at(80, day6))
        .then_accepted();
    assert_eq!(state.replies.get(&id(80)), Some(&ReplyState::Pending));
    let day8 = T0.plus_secs(8 * 24 * 3600);
    let state = given::<Ticket>([social_ticket_on(Channel::Facebook)])
        .when(reply_at(81, day8))
        .then_accepted();
    assert_eq!(state.replies.get(&id(81)), Some(&ReplyState::Failed));
}

#[test]
fn wechat_takes_five_replies_per_customer_message_within_48_hours() {
    let mut history = vec![social_ticket_on(Channel::Wechat)];
    for n in 0..5 {
        history.push(
            OutboundReplyRequested {
                attachments: vec![],
                reply_id: id(90 + n),
                body: "Hello".into(),
                channel_info: ChannelInfo {
                    channel: Channel::Wechat,
                    ..whatsapp()
                },
                by: by(),
                at: T0,
            }
            .into(),
        );
    }
    let state = given::<Ticket>(history.clone())
        .when(reply_at(99, T0.plus_secs(60)))
        .then_accepted();
    assert_eq!(state.replies.get(&id(99)), Some(&ReplyState::Failed));
    // The customer writes again: five more may go out.
    history.push(
        CustomerMessageReceived {
            message_id: id(98),
            body: "Still there?".into(),
            attachments: vec![],
            at: T0.plus_secs(120),
            reply_token: None,
        }
        .into(),
    );
    let state = given::<Ticket>(history)
        .when(reply_at(99, T0.plus_secs(180)))
        .then_accepted();
    assert_eq!(state.replies.get(&id(99)), Some(&ReplyState::Pending));
    let late = T0.plus_secs(120 + WECHAT_WINDOW_SECS + 1);
    let state = given::<Ticket>([social_ticket_on(Channel::Wechat)])
        .when(reply_at(97, late))
        .then_accepted();
    assert_eq!(state.replies.get(&id(97)), Some(&ReplyState::Failed));
}

#[test]
fn receipts_record_only_news_and_a_failed_one_fails_the_reply() {
    let requested: TicketEvent = OutboundReplyRequested {
        attachments: vec![],
        reply_id: id(60),
        body: "Hello".into(),
        channel_info: whatsapp(),
        by: by(),
        at: T0,
    }
    .into();
    let delivered: TicketEvent = OutboundReplyDelivered {
        reply_id: id(60),
        at: T0,
        platform_message_id: Some("wamid.1".into()),
        attempts: 1,
    }
    .into();
    let receipt = |status| C::RecordReceipt {
        reply_id: id(60),
        status,
        code: None,
        text: None,
        at: T0,
    };
    let read: TicketEvent = OutboundReplyReceipt {
        reply_id: id(60),
        status: ReceiptStatus::Read,
        code: None,
        text: None,
        at: T0,
    }
    .into();
    given::<Ticket>([social_ticket(), requested.clone(), delivered.clone()])
        .when(receipt(ReceiptStatus::Read))
        .then([read.clone()]);
    given::<Ticket>([social_ticket(), requested.clone(), delivered.clone(), read])
        .when(receipt(ReceiptStatus::Delivered))
        .then(Vec::<TicketEvent>::new());
    let state = given::<Ticket>([social_ticket(), requested, delivered])
        .when(receipt(ReceiptStatus::Failed))
        .then_accepted();
    assert_eq!(state.replies.get(&id(60)), Some(&ReplyState::Failed));
    given::<Ticket>([social_ticket()])
        .when(receipt(ReceiptStatus::Read))
        .then_err(DomainError::ReplyNotPending(id(60)));
}
