//! Actions that touch two aggregates, on both backends.

use parley_api::service::{CommandService, ServiceError};
use parley_api::workflows::TicketFromConversation;
use parley_domain::conversation::{Channel, Conversation, TicketDraft};
use parley_domain::customer::{ChannelIdentity, Customer};
use parley_domain::ids::{AgentId, ConversationId, CustomerId, MessageId, TicketId};
use parley_domain::ticket::{Priority, Ticket, TicketType};
use parley_domain::{Actor, DomainError};
use parley_eventlog::{EventLog, Metadata};
use std::sync::Arc;
use support::{AT, on_both_backends, send_public, start_conversation};
use uuid::Uuid;

mod support;

fn agent() -> Actor {
    Actor::Agent(AgentId(Uuid::from_u128(0xa001)))
}

/// A customer conversation with one message from the customer.
async fn conversation(
    service: &CommandService,
    customer: CustomerId,
) -> (ConversationId, MessageId) {
    let id = ConversationId(Uuid::now_v7());
    let message = MessageId(Uuid::now_v7());
    let stream = start_conversation(service, id, customer, Channel::Line, "Broken blender").await;
    send_public(
        service,
        &stream,
        message,
        Actor::Customer(customer),
        "It stopped after a week.".into(),
    )
    .await;
    (id, message)
}

async fn a_ticket_created_from_a_conversation_is_prefilled_and_linked(log: Arc<dyn EventLog>) {
    let service = CommandService::new(log);
    let customer = CustomerId(Uuid::now_v7());
    let (conversation_id, message_id) = conversation(&service, customer).await;
    let ticket_id = TicketId(Uuid::now_v7());
    service
        .create_ticket_from_conversation(
            TicketFromConversation {
                conversation_id,
                message_id: Some(message_id),
                ticket_id,
                ticket_type: TicketType::Task,
                priority: Priority::High,
                edits: TicketDraft {
                    description: Some("Replace the motor".into()),
                    ..TicketDraft::default()
                },
                tags: vec!["warranty".into()],
                by: agent(),
                at: AT,
            },
            &Metadata::default(),
        )
        .await
        .unwrap();
    let (ticket, _, _) = service
        .load::<Ticket>(&CommandService::stream::<Ticket>(ticket_id).unwrap())
        .await
        .unwrap();
    assert_eq!(
        ticket.title, "Broken blender",
        "prefilled from the conversation"
    );
    assert_eq!(
        ticket.description, "Replace the motor",
        "edited in the command"
    );
    assert_eq!(ticket.requester, Some(customer));
    assert_eq!(ticket.ticket_type, Some(TicketType::Task));
    let (conversation, _, _) = service
        .load::<Conversation>(&CommandService::stream::<Conversation>(conversation_id).unwrap())
        .await
        .unwrap();
    assert!(conversation.tickets.contains(&ticket_id));

    let missing = service
        .create_ticket_from_conversation(
            TicketFromConversation {
                conversation_id: ConversationId(Uuid::now_v7()),
                message_id: None,
                ticket_id: TicketId(Uuid::now_v7()),
                ticket_type: TicketType::Ticket,
                priority: Priority::Normal,
                edits: TicketDraft::default(),
                tags: vec![],
                by: agent(),
                at: AT,
            },
            &Metadata::default(),
        )
        .await;
    assert!(matches!(
        missing,
        Err(ServiceError::Domain(DomainError::ConversationNotFound))
    ));
}

async fn a_conversation_started_from_a_message_links_back(log: Arc<dyn EventLog>) {
    let service = CommandService::new(log);
    let customer = CustomerId(Uuid::now_v7());
    let (origin, message_id) = conversation(&service, customer).await;
    let new_id = ConversationId(Uuid::now_v7());
    service
        .start_conversation_from_message(
            origin,
            message_id,
            new_id,
            agent(),
            AT,
            &Metadata::default(),
        )
        .await
        .unwrap();
    let (branch, _, _) = service
        .load::<Conversation>(&CommandService::stream::<Conversation>(new_id).unwrap())
        .await
        .unwrap();
    assert_eq!(branch.subject, "Re: Broken blender");
    assert!(branch.customers.contains(&customer));
    let (original, _, _) = service
        .load::<Conversation>(&CommandService::stream::<Conversation>(origin).unwrap())
        .await
        .unwrap();
    assert!(original.branches.contains(&new_id));
    let unknown = service
        .start_conversation_from_message(
            origin,
            MessageId(Uuid::now_v7()),
            ConversationId(Uuid::now_v7()),
            agent(),
            AT,
            &Metadata::default(),
        )
        .await;
    assert!(matches!(
        unknown,
        Err(ServiceError::Domain(DomainError::MessageNotFound(_)))
    ));
}

async fn customers_are_created_on_first_contact_and_merge_reversibly(log: Arc<dyn EventLog>) {
    let service = CommandService::new(log);
    let metadata = Metadata::default();
    let whatsapp = ChannelIdentity {
        channel: Channel::Whatsapp,
        value: format!("+1555{}", Uuid::now_v7().simple()),
        account: None,
    };
    let line = ChannelIdentity {
        channel: Channel::Line,
        value: format!("U{}", Uuid::now_v7().simple()),
        account: None,
    };
    let first = service
        .first_contact(whatsapp.clone(), None, None, AT, &metadata)
        .await
        .unwrap();
    let again = service
        .first_contact(whatsapp.clone(), None, None, AT, &metadata)
        .await
        .unwrap();
    assert_eq!(first, again, "the same identity is the same customer");
    let other = service
        .first_contact(
            line.clone(),
            Some("Ana".into()),
            Some("ana@example.com".into()),
            AT,
            &metadata,
        )
        .await
        .unwrap();
    assert_ne!(first, other);
    let accented = service
        .first_contact(
            ChannelIdentity {
                channel: Channel::Email,
                value: "aná@example.com".into(),
                account: None,
            },
            None,
            None,
            AT,
            &metadata,
        )
        .await;
    assert!(matches!(
        accented,
        Err(ServiceError::Domain(DomainError::Invalid {
            field: "email",
            ..
        }))
    ));

    service
        .merge_customers(first, other, agent(), AT, &metadata)
        .await
        .unwrap();
    let after = service
        .first_contact(whatsapp.clone(), None, None, AT, &metadata)
        .await
        .unwrap();
    assert_eq!(
        after, other,
        "a merged customer's identity now leads to the survivor"
    );
    let (survivor, _, _) = service
        .load::<Customer>(&CommandService::stream::<Customer>(other).unwrap())
        .await
        .unwrap();
    assert!(survivor.absorbed.contains_key(&first));
    let into_merged = service
        .merge_customers(other, first, agent(), AT, &metadata)
        .await;
    assert!(
        matches!(into_merged, Err(ServiceError::Domain(DomainError::CustomerMerged(s))) if s == other)
    );

    service
        .unmerge_customers(first, agent(), AT, &metadata)
        .await
        .unwrap();
    let back = service
        .first_contact(whatsapp, None, None, AT, &metadata)
        .await
        .unwrap();
    assert_eq!(back, first, "after the unmerge it stands for itself again");
}

async fn a_workflow_whose_second_step_failed_resumes_when_retried(log: Arc<dyn EventLog>) {
    use parley_domain::ticket::{CreateTicket, TicketCommand, TicketSource};
    let service = CommandService::new(log);
    let metadata = Metadata::default();
    let customer = CustomerId(Uuid::now_v7());
    let (conversation_id, message_id) = conversation(&service, customer).await;
    // As if a first attempt created the ticket and stopped before linking it.
    let ticket_id = TicketId(Uuid::now_v7());
    service
        .execute::<Ticket>(
            &CommandService::stream::<Ticket>(ticket_id).unwrap(),
            TicketCommand::Create(CreateTicket {
                reply_token: None,
                ticket_id,
                ticket_type: TicketType::Ticket,
                title: "Broken blender".into(),
                description: String::new(),
                priority: Priority::Normal,
                requester: Some(customer),
                source: TicketSource::Conversation {
                    conversation_id,
                    message_id: Some(message_id),
                },
                tags: vec![],
                channel_info: None,
                created_by: agent(),
                at: AT,
            }),
            &metadata,
        )
        .await
        .unwrap();
    let request = TicketFromConversation {
        conversation_id,
        message_id: Some(message_id),
        ticket_id,
        ticket_type: TicketType::Ticket,
        priority: Priority::Normal,
        edits: TicketDraft::default(),
        tags: vec![],
        by: agent(),
        at: AT,
    };
    service
        .create_ticket_from_conversation(request.clone(), &metadata)
        .await
        .unwrap();
    // Retrying the whole workflow again is harmless too.
    service
        .create_ticket_from_conversation(request, &metadata)
        .await
        .unwrap();
    let (conversation, _, _) = service
        .load::<Conversation>(&CommandService::stream::<Conversation>(conversation_id).unwrap())
        .await
        .unwrap();
    assert!(conversation.tickets.contains(&ticket_id));

    // A branch retried after it completed answers the same way.
    let new_id = ConversationId(Uuid::now_v7());
    for _ in 0..2 {
        service
            .start_conversation_from_message(
                conversation_id,
                message_id,
                new_id,
                agent(),
                AT,
                &metadata,
            )
            .await
            .unwrap();
    }
}

on_both_backends!(
    a_ticket_created_from_a_conversation_is_prefilled_and_linked,
    a_conversation_started_from_a_message_links_back,
    customers_are_created_on_first_contact_and_merge_reversibly,
    a_workflow_whose_second_step_failed_resumes_when_retried,
);
