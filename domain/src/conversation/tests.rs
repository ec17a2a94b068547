use super::*;
use crate::harness::given;
use uuid::Uuid;

const T0: Timestamp = Timestamp::from_secs(1_700_000_000);

fn agent(n: u128) -> AgentId {
    AgentId(Uuid::from_u128(0xa000 + n))
}
fn customer(n: u128) -> CustomerId {
    CustomerId(Uuid::from_u128(0xc000 + n))
}
fn message(n: u128) -> MessageId {
    MessageId(Uuid::from_u128(0xe000 + n))
}
fn conversation_id() -> ConversationId {
    ConversationId(Uuid::from_u128(0xd000))
}

fn started_by_customer() -> ConversationEvent {
    ConversationStarted {
        conversation_id: conversation_id(),
        kind: ConversationKind::Customer,
        channel: Channel::Widget,
        queue: Some(QueueId(Uuid::from_u128(0xf001))),
        subject: "Order #42".into(),
        started_by: Actor::Customer(customer(1)),
        customers: vec![customer(1)],
        members: vec![],
        origin: None,
        at: T0,
    }
    .into()
}

fn internal_started() -> ConversationEvent {
    ConversationStarted {
        conversation_id: conversation_id(),
        kind: ConversationKind::Internal,
        channel: Channel::Internal,
        queue: None,
        subject: "Shift hand-over".into(),
        started_by: Actor::Agent(agent(1)),
        customers: vec![],
        members: vec![agent(2)],
        origin: None,
        at: T0,
    }
    .into()
}

fn sent(n: u128, author: Actor, visibility: Visibility) -> ConversationEvent {
    MessageSent {
        message_id: message(n),
        author,
        body: format!("message {n}"),
        visibility,
        attachments: vec![],
        mentions: vec![],
        quote_of: None,
        at: T0,
    }
    .into()
}

fn send(n: u128, author: Actor, visibility: Visibility) -> ConversationCommand {
    ConversationCommand::SendMessage(SendMessage {
        message_id: message(n),
        author,
        body: format!("message {n}"),
        visibility,
        attachments: vec![],
        mentions: vec![],
        quote_of: None,
        at: T0,
    })
}

fn assigned(to: AgentId) -> ConversationEvent {
    ConversationAssigned {
        agent: to,
        by: Actor::System,
        at: T0,
    }
    .into()
}

fn closed() -> Vec<ConversationEvent> {
    vec![
        ConversationClosed {
            by: Actor::Agent(agent(1)),
            at: T0,
        }
        .into(),
        RatingRequested { at: T0 }.into(),
    ]
}

use ConversationCommand as C;

#[test]
fn a_customer_starts_a_conversation_that_waits_for_its_first_response() {
    let state = given::<Conversation>([])
        .when(C::Start(Start {
            conversation_id: conversation_id(),
            kind: ConversationKind::Customer,
            channel: Channel::Widget,
            queue: Some(QueueId(Uuid::from_u128(0xf001))),
            subject: "Order #42".into(),
            started_by: Actor::Customer(customer(1)),
            customers: vec![customer(1)],
            members: vec![],
            origin: None,
            at: T0,
        }))
        .then([started_by_customer()]);
    assert_eq!(state.status, Status::Open);
    assert!(state.awaiting_first_response);
}

#[test]
fn a_conversation_cannot_start_twice() {
    let start = match started_by_customer() {
        ConversationEvent::ConversationStarted(e) => e,
        _ => unreachable!(),
    };
    given::<Conversation>([started_by_customer()])
        .when(C::Start(Start {
            conversation_id: start.conversation_id,
            kind: start.kind,
            channel: start.channel,
            queue: start.queue,
            subject: start.subject,
            started_by: start.started_by,
            customers: start.customers,
            members: start.members,
            origin: None,
            at: T0,
        }))
        .then_err(DomainError::ConversationExists);
}

#[test]
fn an_internal_conversation_refuses_customers_at_start_and_later() {
    given::<Conversation>([])
        .when(C::Start(Start {
            conversation_id: conversation_id(),
            kind: ConversationKind::Internal,
            channel: Channel::Internal,
            queue: None,
            subject: String::new(),
            started_by: Actor::Agent(agent(1)),
            customers: vec![customer(1)],
            members: vec![agent(2)],
            origin: None,
            at: T0,
        }))
        .then_err(DomainError::CustomerInInternalConversation);
    given::<Conversation>([internal_started()])
        .when(send(1, Actor::Customer(customer(1)), Visibility::Public))
        .then_err(DomainError::CustomerInInternalConversation);
}

#[test]
fn only_members_write_in_an_internal_conversation() {
    given::<Conversation>([internal_started()])
        .when(send(1, Actor::Agent(agent(2)), Visibility::Internal))
        .then([sent(1, Actor::Agent(agent(2)), Visibility::Internal)]);
    given::<Conversation>([internal_started()])
        .when(send(1, Actor::Agent(agent(9)), Visibility::Internal))
        .then_err(DomainError::NotAParticipant(agent(9)));
}

#[test]
fn commands_on_a_conversation_that_was_never_started_are_refused() {
    given::<Conversation>([])
        .when(send(1, Actor::Agent(agent(1)), Visibility::Public))
        .then_err(DomainError::ConversationNotFound);
}

#[test]
fn the_first_public_agent_reply_ends_the_wait_for_a_first_response_but_a_note_does_not() {
    let state = given::<Conversation>([started_by_customer()])
        .when(send(1, Actor::Agent(agent(1)), Visibility::Internal))
        .then([sent(1, Actor::Agent(agent(1)), Visibility::Internal)]);
    assert!(state.awaiting_first_response);
    let state = given::<Conversation>([started_by_customer()])
        .when(send(1, Actor::Agent(agent(1)), Visibility::Public))
        .then([sent(1, Actor::Agent(agent(1)), Visibility::Public)]);
    assert!(!state.awaiting_first_response);
    assert!(state.members.contains(&agent(1)), "the agent took part");
}

#[test]
fn customers_cannot_write_internal_notes_or_into_others_conversations() {
    given::<Conversation>([started_by_customer()])
        .when(send(1, Actor::Customer(customer(1)), Visibility::Internal))
        .then_err(DomainError::Invalid {
            field: "visibility",
            reason: "customers cannot write internal notes".into(),
        });
    given::<Conversation>([started_by_customer()])
        .when(send(1, Actor::Customer(customer(2)), Visibility::Public))
        .then_err(DomainError::CustomerNotAParticipant(customer(2)));
}

#[test]
fn an_empty_or_oversized_message_is_invalid() {
    let mut command = SendMessage {
        message_id: message(1),
        author: Actor::Agent(agent(1)),
        body: "   ".into(),
        visibility: Visibility::Public,
        attachments: vec![],
        mentions: vec![],
        quote_of: None,
        at: T0,
    };
    given::<Conversation>([started_by_customer()])
        .when(C::SendMessage(command.clone()))
        .then_err(DomainError::Invalid {
            field: "body",
            reason: "must not be empty".into(),
        });
    command.body = "x".repeat(MAX_BODY_CHARS + 1);
    given::<Conversation>([started_by_customer()])
        .when(C::SendMessage(command.clone()))
        .then_err(DomainError::Invalid {
            field: "body",
            reason: format!(
                "is {} characters long, the limit is {MAX_BODY_CHARS}",
                MAX_BODY_CHARS + 1
            ),
        });
    // NUL and other control characters are refused; line breaks and tabs are text.
    command.body = "hello\0world".into();
    given::<Conversation>([started_by_customer()])
        .when(C::SendMessage(command.clone()))
        .then_err(DomainError::Invalid {
            field: "body",
            reason: "must not contain control characters (other than line breaks and tabs)".into(),
        });
    command.body = "line one\r\n\tline two".into();
    given::<Conversation>([started_by_customer()])
        .when(C::SendMessage(command.clone()))
        .then_accepted();
    // An attachment alone is a message.
    command.body = String::new();
    command.attachments = vec![Attachment {
        name: "invoice.pdf".into(),
        content_type: "application/pdf".into(),
        size: 1024,
        storage_ref: "files/1".into(),
        file_id: None,
        sha256: None,
        unavailable: None,
    }];
    let state = given::<Conversation>([started_by_customer()])
        .when(C::SendMessage(command))
        .then_accepted();
    assert_eq!(state.messages.len(), 1);
}

#[test]
fn a_quote_must_point_at_a_live_message() {
    let mut command = SendMessage {
        message_id: message(2),
        author: Actor::Agent(agent(1)),
        body: "as you said".into(),
        visibility: Visibility::Public,
        attachments: vec![],
        mentions: vec![agent(2)],
        quote_of: Some(message(9)),
        at: T0,
    };
    given::<Conversation>([started_by_customer()])
        .when(C::SendMessage(command.clone()))
        .then_err(DomainError::MessageNotFound(message(9)));
    command.quote_of = Some(message(1));
    given::<Conversation>([
        started_by_customer(),
        sent(1, Actor::Customer(customer(1)), Visibility::Public),
        MessageDeleted {
            message_id: message(1),
            by: Actor::Customer(customer(1)),
            at: T0,
        }
        .into(),
    ])
    .when(C::SendMessage(command))
    .then_err(DomainError::MessageDeleted(message(1)));
}

#[test]
fn an_agent_edits_and_deletes_only_their_own_messages() {
    let history = [
        started_by_customer(),
        sent(1, Actor::Agent(agent(1)), Visibility::Public),
    ];
    given::<Conversation>(history.clone())
        .when(C::EditMessage {
            message_id: message(1),
            body: "fixed".into(),
            by: Actor::Agent(agent(1)),
            at: T0,
        })
        .then([MessageEdited {
            message_id: message(1),
            body: "fixed".into(),
            by: Actor::Agent(agent(1)),
            at: T0,
        }
        .into()]);
    given::<Conversation>(history.clone())
        .when(C::EditMessage {
            message_id: message(1),
            body: "mine now".into(),
            by: Actor::Agent(agent(2)),
            at: T0,
        })
        .then_err(DomainError::NotTheAuthor(message(1)));
    let state = given::<Conversation>(history.clone())
        .when(C::DeleteMessage {
            message_id: message(1),
            by: Actor::Agent(agent(1)),
            at: T0,
        })
        .then([MessageDeleted {
            message_id: message(1),
            by: Actor::Agent(agent(1)),
            at: T0,
        }
        .into()]);
    assert!(state.messages[&message(1)].deleted);
    let mut deleted = history.to_vec();
    deleted.push(
        MessageDeleted {
            message_id: message(1),
            by: Actor::Agent(agent(1)),
            at: T0,
        }
        .into(),
    );
    given::<Conversation>(deleted)
        .when(C::EditMessage {
            message_id: message(1),
            body: "again".into(),
            by: Actor::Agent(agent(1)),
            at: T0,
        })
        .then_err(DomainError::MessageDeleted(message(1)));
}

#[test]
fn reading_clears_unread_and_marking_unread_brings_it_back() {
    let history = [
        started_by_customer(),
        sent(1, Actor::Customer(customer(1)), Visibility::Public),
        sent(2, Actor::Customer(customer(1)), Visibility::Public),
    ];
    let reader = Participant::Agent(agent(1));
    assert_eq!(Conversation::replay(&history).unread_count(reader), 2);
    let state = given::<Conversation>(history.clone())
        .when(C::MarkRead {
            reader,
            through: message(2),
            at: T0,
        })
        .then([ConversationRead {
            reader,
            through: message(2),
            at: T0,
        }
        .into()]);
    assert_eq!(state.unread_count(reader), 0);
    let mut read = history.to_vec();
    read.push(
        ConversationRead {
            reader,
            through: message(2),
            at: T0,
        }
        .into(),
    );
    // Reading again is harmless and records nothing.
    given::<Conversation>(read.clone())
        .when(C::MarkRead {
            reader,
            through: message(1),
            at: T0,
        })
        .then([]);
    let state = given::<Conversation>(read)
        .when(C::MarkUnread {
            reader,
            message_id: message(2),
            at: T0,
        })
        .then([MessageMarkedUnread {
            reader,
            message_id: message(2),
            at: T0,
        }
        .into()]);
    assert_eq!(state.unread_count(reader), 1);
}

#[test]
fn internal_notes_never_count_as_unread_for_customers() {
    let state = Conversation::replay(&[
        started_by_customer(),
        sent(1, Actor::Agent(agent(1)), Visibility::Internal),
        sent(2, Actor::Agent(agent(1)), Visibility::Public),
    ]);
    assert_eq!(state.unread_count(Participant::Customer(customer(1))), 1);
}

#[test]
fn closing_requests_a_rating_and_a_customer_message_reopens_it() {
    let mut history = vec![started_by_customer()];
    let state = given::<Conversation>(history.clone())
        .when(C::Close {
            by: Actor::Agent(agent(1)),
            at: T0,
        })
        .then(closed());
    assert_eq!(state.status, Status::Closed);
    history.extend(closed());
    let state = given::<Conversation>(history.clone())
        .when(send(1, Actor::Customer(customer(1)), Visibility::Public))
        .then([
            ConversationReopened {
                by: Actor::Customer(customer(1)),
                automatically: true,
                at: T0,
            }
            .into(),
            sent(1, Actor::Customer(customer(1)), Visibility::Public),
        ]);
    assert_eq!(state.status, Status::Open);
    given::<Conversation>(history.clone())
        .when(send(1, Actor::Agent(agent(1)), Visibility::Public))
        .then_err(DomainError::ConversationClosed);
    given::<Conversation>(history.clone())
        .when(C::Close {
            by: Actor::Agent(agent(1)),
            at: T0,
        })
        .then_err(DomainError::ConversationClosed);
    given::<Conversation>(history)
        .when(C::Reopen {
            by: Actor::Agent(agent(1)),
            at: T0,
        })
        .then([ConversationReopened {
            by: Actor::Agent(agent(1)),
            automatically: false,
            at: T0,
        }
        .into()]);
    given::<Conversation>([started_by_customer()])
        .when(C::Reopen {
            by: Actor::Agent(agent(1)),
            at: T0,
        })
        .then_err(DomainError::ConversationAlreadyOpen);
}

#[test]
fn a_rating_is_requested_once_even_if_the_conversation_is_closed_again() {
    let mut history = vec![started_by_customer()];
    history.extend(closed());
    history.push(
        ConversationReopened {
            by: Actor::Agent(agent(1)),
            automatically: false,
            at: T0,
        }
        .into(),
    );
    given::<Conversation>(history)
        .when(C::Close {
            by: Actor::Agent(agent(1)),
            at: T0,
        })
        .then([ConversationClosed {
            by: Actor::Agent(agent(1)),
            at: T0,
        }
        .into()]);
}

#[test]
fn spam_ends_the_conversation_without_a_rating_and_customer_messages_stay_in_spam() {
    let spam: ConversationEvent = ConversationMarkedSpam {
        by: Actor::Agent(agent(1)),
        at: T0,
    }
    .into();
    given::<Conversation>([started_by_customer()])
        .when(C::MarkSpam {
            by: Actor::Agent(agent(1)),
            at: T0,
        })
        .then([spam.clone()]);
    let state = given::<Conversation>([started_by_customer(), spam.clone()])
        .when(send(1, Actor::Customer(customer(1)), Visibility::Public))
        .then([sent(1, Actor::Customer(customer(1)), Visibility::Public)]);
    assert_eq!(state.status, Status::Spam);
    assert!(!state.rating_requested);
    given::<Conversation>([started_by_customer(), spam.clone()])
        .when(send(1, Actor::Agent(agent(1)), Visibility::Public))
        .then_err(DomainError::ConversationIsSpam);
    given::<Conversation>([started_by_customer(), spam.clone()])
        .when(C::Rate {
            customer: customer(1),
            score: 5,
            comment: None,
            at: T0,
        })
        .then_err(DomainError::ConversationIsSpam);
    given::<Conversation>([started_by_customer(), spam])
        .when(C::MarkSpam {
            by: Actor::Agent(agent(1)),
            at: T0,
        })
        .then_err(DomainError::ConversationIsSpam);
}

#[test]
fn a_customer_rates_once_from_1_to_5() {
    let mut history = vec![started_by_customer()];
    history.extend(closed());
    given::<Conversation>(history.clone())
        .when(C::Rate {
            customer: customer(1),
            score: 6,
            comment: None,
            at: T0,
        })
        .then_err(DomainError::Invalid {
            field: "score",
            reason: "must be from 1 to 5".into(),
        });
    let rated: ConversationEvent = ConversationRated {
        customer: customer(1),
        score: 4,
        comment: Some("quick".into()),
        at: T0,
    }
    .into();
    given::<Conversation>(history.clone())
        .when(C::Rate {
            customer: customer(1),
            score: 4,
            comment: Some("quick".into()),
            at: T0,
        })
        .then([rated.clone()]);
    history.push(rated);
    given::<Conversation>(history)
        .when(C::Rate {
            customer: customer(1),
            score: 5,
            comment: None,
            at: T0,
        })
        .then_err(DomainError::AlreadyRated);
    given::<Conversation>([started_by_customer()])
        .when(C::Rate {
            customer: customer(1),
            score: 5,
            comment: None,
            at: T0,
        })
        .then_err(DomainError::RatingNotRequested);
}

#[test]
fn renaming_needs_a_new_valid_subject() {
    given::<Conversation>([started_by_customer()])
        .when(C::Rename {
            subject: "Refund".into(),
            by: Actor::Agent(agent(1)),
            at: T0,
        })
        .then([ConversationRenamed {
            subject: "Refund".into(),
            by: Actor::Agent(agent(1)),
            at: T0,
        }
        .into()]);
    given::<Conversation>([started_by_customer()])
        .when(C::Rename {
            subject: "Order #42".into(),
            by: Actor::Agent(agent(1)),
            at: T0,
        })
        .then_err(DomainError::NoChange);
    given::<Conversation>([started_by_customer()])
        .when(C::Rename {
            subject: "".into(),
            by: Actor::Agent(agent(1)),
            at: T0,
        })
        .then_err(DomainError::Invalid {
            field: "subject",
            reason: "must not be empty".into(),
        });
}

#[test]
fn transfer_to_the_current_assignee_is_refused() {
    let by = Actor::Agent(agent(1));
    given::<Conversation>([started_by_customer(), assigned(agent(1))])
        .when(C::Transfer {
            to: agent(2),
            by,
            at: T0,
        })
        .then([ConversationTransferred {
            from: Some(agent(1)),
            to: agent(2),
            by,
            at: T0,
        }
        .into()]);
    given::<Conversation>([started_by_customer(), assigned(agent(1))])
        .when(C::Transfer {
            to: agent(1),
            by,
            at: T0,
        })
        .then_err(DomainError::AlreadyAssignedTo(agent(1)));
    given::<Conversation>([started_by_customer(), assigned(agent(1))])
        .when(C::Assign {
            agent: agent(1),
            by,
            at: T0,
        })
        .then_err(DomainError::AlreadyAssignedTo(agent(1)));
}

#[test]
fn taking_over_needs_someone_to_take_over_from() {
    given::<Conversation>([started_by_customer()])
        .when(C::TakeOver {
            agent: agent(2),
            at: T0,
        })
        .then_err(DomainError::Unassigned);
    let state = given::<Conversation>([started_by_customer(), assigned(agent(1))])
        .when(C::TakeOver {
            agent: agent(2),
            at: T0,
        })
        .then([ConversationTakenOver {
            from: agent(1),
            to: agent(2),
            at: T0,
        }
        .into()]);
    assert_eq!(state.assignee, Some(agent(2)));
}

#[test]
fn passing_back_to_the_queue_is_for_the_assignee() {
    let state = given::<Conversation>([started_by_customer(), assigned(agent(1))])
        .when(C::ReturnToQueue {
            agent: agent(1),
            at: T0,
        })
        .then([ConversationReturnedToQueue {
            agent: agent(1),
            at: T0,
        }
        .into()]);
    assert_eq!(state.assignee, None);
    given::<Conversation>([started_by_customer(), assigned(agent(1))])
        .when(C::ReturnToQueue {
            agent: agent(2),
            at: T0,
        })
        .then_err(DomainError::AssignedToAnother(agent(1)));
    given::<Conversation>([started_by_customer()])
        .when(C::ReturnToQueue {
            agent: agent(2),
            at: T0,
        })
        .then_err(DomainError::Unassigned);
}

#[test]
fn moving_to_another_queue_unassigns() {
    let queue = QueueId(Uuid::from_u128(0xf002));
    let by = Actor::Agent(agent(1));
    let state = given::<Conversation>([started_by_customer(), assigned(agent(1))])
        .when(C::ChangeQueue { queue, by, at: T0 })
        .then([ConversationQueueChanged {
            from: Some(QueueId(Uuid::from_u128(0xf001))),
            to: queue,
            by,
            at: T0,
        }
        .into()]);
    assert_eq!((state.queue, state.assignee), (Some(queue), None));
    given::<Conversation>([started_by_customer()])
        .when(C::ChangeQueue {
            queue: QueueId(Uuid::from_u128(0xf001)),
            by,
            at: T0,
        })
        .then_err(DomainError::AlreadyInQueue);
}

#[test]
fn a_pin_keeps_the_conversation_with_its_agent_and_pushes_auto_close_later() {
    let later = T0.plus_secs(86_400);
    let state = given::<Conversation>([started_by_customer()])
        .when(C::Pin {
            agent: agent(1),
            auto_close_at: later,
            at: T0,
        })
        .then([
            ConversationAssigned {
                agent: agent(1),
                by: Actor::Agent(agent(1)),
                at: T0,
            }
            .into(),
            ConversationPinned {
                agent: agent(1),
                auto_close_at: later,
                at: T0,
            }
            .into(),
        ]);
    assert_eq!(
        (state.assignee, state.pinned_by),
        (Some(agent(1)), Some(agent(1)))
    );
    let pinned = [
        started_by_customer(),
        assigned(agent(1)),
        ConversationPinned {
            agent: agent(1),
            auto_close_at: later,
            at: T0,
        }
        .into(),
    ];
    given::<Conversation>(pinned.clone())
        .when(C::TakeOver {
            agent: agent(2),
            at: T0,
        })
        .then_err(DomainError::PinnedBy(agent(1)));
    given::<Conversation>(pinned.clone())
        .when(C::Transfer {
            to: agent(2),
            by: Actor::Agent(agent(3)),
            at: T0,
        })
        .then_err(DomainError::PinnedBy(agent(1)));
    given::<Conversation>(pinned.clone())
        .when(C::ReturnToQueue {
            agent: agent(1),
            at: T0,
        })
        .then_err(DomainError::PinnedBy(agent(1)));
    given::<Conversation>(pinned.clone())
        .when(C::Unpin {
            agent: agent(2),
            at: T0,
        })
        .then_err(DomainError::PinnedBy(agent(1)));
    given::<Conversation>(pinned.clone())
        .when(C::Unpin {
            agent: agent(1),
            at: T0,
        })
        .then([ConversationUnpinned {
            agent: agent(1),
            at: T0,
        }
        .into()]);
    let mut unpinned = pinned.to_vec();
    unpinned.push(
        ConversationUnpinned {
            agent: agent(1),
            at: T0,
        }
        .into(),
    );
    given::<Conversation>(unpinned)
        .when(C::Pin {
            agent: agent(1),
            auto_close_at: T0,
            at: T0,
        })
        .then_err(DomainError::Invalid {
            field: "auto_close_at",
            reason: "a pin moves the auto-close deadline later".into(),
        });
    given::<Conversation>([started_by_customer(), assigned(agent(2))])
        .when(C::Pin {
            agent: agent(1),
            auto_close_at: later,
            at: T0,
        })
        .then_err(DomainError::AssignedToAnother(agent(2)));
}

#[test]
fn invite_remove_follow_and_unfollow() {
    let by = Actor::Agent(agent(1));
    let state = given::<Conversation>([started_by_customer()])
        .when(C::Invite {
            agent: agent(2),
            by,
            at: T0,
        })
        .then([ParticipantInvited {
            agent: agent(2),
            by,
            at: T0,
        }
        .into()]);
    assert!(state.members.contains(&agent(2)));
    let invited = [
        started_by_customer(),
        ParticipantInvited {
            agent: agent(2),
            by,
            at: T0,
        }
        .into(),
    ];
    given::<Conversation>(invited.clone())
        .when(C::Invite {
            agent: agent(2),
            by,
            at: T0,
        })
        .then_err(DomainError::AlreadyAParticipant(agent(2)));
    given::<Conversation>(invited.clone())
        .when(C::RemoveParticipant {
            participant: Participant::Agent(agent(2)),
            by,
            at: T0,
        })
        .then([ParticipantRemoved {
            participant: Participant::Agent(agent(2)),
            by,
            at: T0,
        }
        .into()]);
    // A removed agent who followed the conversation follows it no more.
    let following = [
        invited[0].clone(),
        invited[1].clone(),
        ConversationFollowed {
            agent: agent(2),
            at: T0,
        }
        .into(),
    ];
    let state = given::<Conversation>(following)
        .when(C::RemoveParticipant {
            participant: Participant::Agent(agent(2)),
            by,
            at: T0,
        })
        .then_accepted();
    assert!(!state.members.contains(&agent(2)));
    assert!(!state.followers.contains(&agent(2)));
    given::<Conversation>(invited)
        .when(C::RemoveParticipant {
            participant: Participant::Agent(agent(7)),
            by,
            at: T0,
        })
        .then_err(DomainError::NotAParticipant(agent(7)));
    given::<Conversation>([started_by_customer()])
        .when(C::RemoveParticipant {
            participant: Participant::Customer(customer(1)),
            by,
            at: T0,
        })
        .then_err(DomainError::Invalid {
            field: "participant",
            reason: "a customer conversation keeps at least one customer".into(),
        });
    given::<Conversation>([started_by_customer()])
        .when(C::Follow {
            agent: agent(3),
            at: T0,
        })
        .then([ConversationFollowed {
            agent: agent(3),
            at: T0,
        }
        .into()]);
    given::<Conversation>([
        started_by_customer(),
        ConversationFollowed {
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
    given::<Conversation>([started_by_customer()])
        .when(C::Unfollow {
            agent: agent(3),
            at: T0,
        })
        .then_err(DomainError::NotFollowing(agent(3)));
    given::<Conversation>([internal_started()])
        .when(C::Follow {
            agent: agent(9),
            at: T0,
        })
        .then_err(DomainError::NotAParticipant(agent(9)));
}

#[test]
fn tickets_link_once_and_unlink_when_linked() {
    let ticket = TicketId(Uuid::from_u128(0x7001));
    let by = Actor::Agent(agent(1));
    given::<Conversation>([started_by_customer()])
        .when(C::LinkTicket {
            ticket_id: ticket,
            by,
            at: T0,
        })
        .then([TicketLinked {
            ticket_id: ticket,
            by,
            at: T0,
        }
        .into()]);
    given::<Conversation>([
        started_by_customer(),
        TicketLinked {
            ticket_id: ticket,
            by,
            at: T0,
        }
        .into(),
    ])
    .when(C::LinkTicket {
        ticket_id: ticket,
        by,
        at: T0,
    })
    .then_err(DomainError::TicketAlreadyLinked(ticket));
    given::<Conversation>([started_by_customer()])
        .when(C::UnlinkTicket {
            ticket_id: ticket,
            by,
            at: T0,
        })
        .then_err(DomainError::TicketNotLinked(ticket));
}

#[test]
fn assignment_is_for_customer_conversations() {
    given::<Conversation>([internal_started()])
        .when(C::Assign {
            agent: agent(1),
            by: Actor::Agent(agent(1)),
            at: T0,
        })
        .then_err(DomainError::Invalid {
            field: "conversation",
            reason: "cannot assign an internal conversation".into(),
        });
}

#[test]
fn a_branch_is_recorded_once_from_a_live_message() {
    let new = ConversationId(Uuid::from_u128(0xd001));
    let by = Actor::Agent(agent(1));
    let history = [
        started_by_customer(),
        sent(1, Actor::Customer(customer(1)), Visibility::Public),
    ];
    given::<Conversation>(history.clone())
        .when(C::RecordBranch {
            message_id: message(1),
            new_conversation_id: new,
            by,
            at: T0,
        })
        .then([ConversationBranched {
            message_id: message(1),
            new_conversation_id: new,
            by,
            at: T0,
        }
        .into()]);
    given::<Conversation>(history)
        .when(C::RecordBranch {
            message_id: message(2),
            new_conversation_id: new,
            by,
            at: T0,
        })
        .then_err(DomainError::MessageNotFound(message(2)));
}

#[test]
fn a_ticket_draft_is_prefilled_from_the_conversation_and_editable() {
    let state = Conversation::replay(&[
        started_by_customer(),
        sent(1, Actor::Customer(customer(1)), Visibility::Public),
        sent(2, Actor::Agent(agent(1)), Visibility::Internal),
    ]);
    let draft = state.ticket_draft(TicketDraft::default());
    assert_eq!(draft.title.as_deref(), Some("Order #42"));
    assert_eq!(draft.requester, Some(customer(1)));
    assert_eq!(
        draft.description.as_deref(),
        Some("Created from a conversation with 1 public message(s).")
    );
    let edited = state.ticket_draft(TicketDraft {
        title: Some("Refund".into()),
        ..TicketDraft::default()
    });
    assert_eq!(edited.title.as_deref(), Some("Refund"));
}

#[test]
fn a_rating_needs_a_finished_conversation_not_a_spam_or_reopened_one() {
    let mut closed_then_spam = vec![started_by_customer()];
    closed_then_spam.extend(closed());
    closed_then_spam.push(
        ConversationMarkedSpam {
            by: Actor::Agent(agent(1)),
            at: T0,
        }
        .into(),
    );
    given::<Conversation>(closed_then_spam)
        .when(C::Rate {
            customer: customer(1),
            score: 5,
            comment: None,
            at: T0,
        })
        .then_err(DomainError::ConversationIsSpam);
    let mut reopened = vec![started_by_customer()];
    reopened.extend(closed());
    reopened.push(
        ConversationReopened {
            by: Actor::Customer(customer(1)),
            automatically: true,
            at: T0,
        }
        .into(),
    );
    given::<Conversation>(reopened)
        .when(C::Rate {
            customer: customer(1),
            score: 5,
            comment: None,
            at: T0,
        })
        .then_err(DomainError::RatingNotRequested);
}

#[test]
fn an_internal_conversation_needs_two_distinct_agents_and_only_members_invite() {
    given::<Conversation>([])
        .when(C::Start(Start {
            conversation_id: conversation_id(),
            kind: ConversationKind::Internal,
            channel: Channel::Internal,
            queue: None,
            subject: String::new(),
            started_by: Actor::Agent(agent(1)),
            customers: vec![],
            members: vec![agent(1), agent(1)],
            origin: None,
            at: T0,
        }))
        .then_err(DomainError::Invalid {
            field: "members",
            reason: "an internal conversation needs two agents or more".into(),
        });
    given::<Conversation>([internal_started()])
        .when(C::Invite {
            agent: agent(9),
            by: Actor::Agent(agent(9)),
            at: T0,
        })
        .then_err(DomainError::NotAParticipant(agent(9)));
    given::<Conversation>([internal_started()])
        .when(C::Invite {
            agent: agent(3),
            by: Actor::Agent(agent(2)),
            at: T0,
        })
        .then([ParticipantInvited {
            agent: agent(3),
            by: Actor::Agent(agent(2)),
            at: T0,
        }
        .into()]);
}

#[test]
fn an_internal_note_is_never_quoted_where_a_customer_could_see_it() {
    let history = [
        started_by_customer(),
        sent(1, Actor::Agent(agent(1)), Visibility::Internal),
    ];
    let quoting = |author: Actor, visibility: Visibility| {
        C::SendMessage(SendMessage {
            message_id: message(2),
            author,
            body: "about that".into(),
            visibility,
            attachments: vec![],
            mentions: vec![],
            quote_of: Some(message(1)),
            at: T0,
        })
    };
    given::<Conversation>(history.clone())
        .when(quoting(Actor::Customer(customer(1)), Visibility::Public))
        .then_err(DomainError::MessageNotFound(message(1)));
    given::<Conversation>(history.clone())
        .when(quoting(Actor::Agent(agent(2)), Visibility::Public))
        .then_err(DomainError::Invalid {
            field: "quote_of",
            reason: "a public message cannot quote an internal note".into(),
        });
    given::<Conversation>(history)
        .when(quoting(Actor::Agent(agent(2)), Visibility::Internal))
        .then_accepted();
}

#[test]
fn a_pin_ends_when_its_agent_hands_the_conversation_on_or_leaves() {
    let later = T0.plus_secs(3_600);
    let pinned = [
        started_by_customer(),
        assigned(agent(1)),
        ConversationPinned {
            agent: agent(1),
            auto_close_at: later,
            at: T0,
        }
        .into(),
    ];
    let by = Actor::Agent(agent(1));
    let state = given::<Conversation>(pinned.clone())
        .when(C::Transfer {
            to: agent(2),
            by,
            at: T0,
        })
        .then([
            ConversationTransferred {
                from: Some(agent(1)),
                to: agent(2),
                by,
                at: T0,
            }
            .into(),
            ConversationUnpinned {
                agent: agent(1),
                at: T0,
            }
            .into(),
        ]);
    assert_eq!(state.pinned_by, None);
    given::<Conversation>(pinned.clone())
        .when(C::RemoveParticipant {
            participant: Participant::Agent(agent(1)),
            by: Actor::System,
            at: T0,
        })
        .then([
            ParticipantRemoved {
                participant: Participant::Agent(agent(1)),
                by: Actor::System,
                at: T0,
            }
            .into(),
            ConversationUnpinned {
                agent: agent(1),
                at: T0,
            }
            .into(),
        ]);
    let queue = QueueId(Uuid::from_u128(0xf009));
    let state = given::<Conversation>(pinned)
        .when(C::ChangeQueue { queue, by, at: T0 })
        .then_accepted();
    assert_eq!((state.pinned_by, state.assignee), (None, None));
}

#[test]
fn precise_errors_for_repeated_ids_customer_edits_and_past_deadlines() {
    let history = [
        started_by_customer(),
        sent(1, Actor::Customer(customer(1)), Visibility::Public),
    ];
    given::<Conversation>(history.clone())
        .when(send(1, Actor::Agent(agent(1)), Visibility::Public))
        .then_err(DomainError::MessageExists(message(1)));
    given::<Conversation>(history)
        .when(C::EditMessage {
            message_id: message(1),
            body: "x".into(),
            by: Actor::Customer(customer(1)),
            at: T0,
        })
        .then_err(DomainError::Invalid {
            field: "by",
            reason: "only agents edit or delete messages".into(),
        });
    given::<Conversation>([started_by_customer()])
        .when(C::Pin {
            agent: agent(1),
            auto_close_at: T0,
            at: T0,
        })
        .then_err(DomainError::Invalid {
            field: "auto_close_at",
            reason: "a pin moves the auto-close deadline later".into(),
        });
}
