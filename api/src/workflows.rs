//! Actions that touch two aggregates, built on [`CommandService`]: each step is one command
//! on one stream, in an order where a step that fails leaves nothing misleading behind (the
//! first step's event already names the other aggregate, so read models can relate them).

use crate::service::{CommandService, Executed, ServiceError};
use parley_domain::conversation::{
    Conversation, ConversationCommand, ConversationKind, Start, Status, TicketDraft,
};
use parley_domain::customer::{ChannelIdentity, Customer, CustomerCommand};
use parley_domain::ids::{ConversationId, CustomerId, MessageId, TicketId};
use parley_domain::ticket::{
    CreateTicket, Priority, Ticket, TicketCommand, TicketSource, TicketType,
};
use parley_domain::{Actor, DomainError, Timestamp};
use parley_eventlog::Metadata;

/// A ticket or task to create from a conversation: what is not given is prefilled from it.
#[derive(Debug, Clone)]
pub struct TicketFromConversation {
    pub conversation_id: ConversationId,
    /// The message it was created from, if any.
    pub message_id: Option<MessageId>,
    pub ticket_id: TicketId,
    pub ticket_type: TicketType,
    pub priority: Priority,
    pub edits: TicketDraft,
    pub tags: Vec<String>,
    pub by: Actor,
    pub at: Timestamp,
}

/// How many merge pointers `first_contact` follows before it stops (merges never form loops,
/// but stored data is not trusted to be well formed).
const MAX_MERGE_HOPS: usize = 16;

impl CommandService {
    /// Creates a ticket prefilled from a conversation, then links it to the conversation.
    pub async fn create_ticket_from_conversation(
        &self,
        request: TicketFromConversation,
        metadata: &Metadata,
    ) -> Result<(Executed, Executed), ServiceError> {
        let conversation_stream = Self::stream::<Conversation>(request.conversation_id)?;
        let (conversation, _, _) = self.load::<Conversation>(&conversation_stream).await?;
        if conversation.status == Status::New {
            return Err(DomainError::ConversationNotFound.into());
        }
        let draft = conversation.ticket_draft(request.edits);
        let ticket = self
            .execute::<Ticket>(
                &Self::stream::<Ticket>(request.ticket_id)?,
                TicketCommand::Create(CreateTicket {
                    ticket_id: request.ticket_id,
                    ticket_type: request.ticket_type,
                    title: draft.title.unwrap_or_default(),
                    description: draft.description.unwrap_or_default(),
                    priority: request.priority,
                    requester: draft.requester,
                    source: TicketSource::Conversation {
                        conversation_id: request.conversation_id,
                        message_id: request.message_id,
                    },
                    tags: request.tags,
                    channel_info: None,
                    created_by: request.by,
                    at: request.at,
                }),
                metadata,
            )
            .await?;
        let link = self
            .execute::<Conversation>(
                &conversation_stream,
                ConversationCommand::LinkTicket {
                    ticket_id: request.ticket_id,
                    by: request.by,
                    at: request.at,
                },
                metadata,
            )
            .await?;
        Ok((ticket, link))
    }

    /// Starts a new conversation from a message of another one (same customers, channel and
    /// queue; it names its origin), then records the branch on the original conversation.
    pub async fn start_conversation_from_message(
        &self,
        origin: ConversationId,
        message_id: MessageId,
        new_conversation_id: ConversationId,
        by: Actor,
        at: Timestamp,
        metadata: &Metadata,
    ) -> Result<(Executed, Executed), ServiceError> {
        let origin_stream = Self::stream::<Conversation>(origin)?;
        let (original, _, _) = self.load::<Conversation>(&origin_stream).await?;
        let (Some(kind), Some(channel)) = (original.kind, original.channel) else {
            return Err(DomainError::ConversationNotFound.into());
        };
        match original.messages.get(&message_id) {
            None => return Err(DomainError::MessageNotFound(message_id).into()),
            Some(message) if message.deleted => {
                return Err(DomainError::MessageDeleted(message_id).into());
            }
            Some(_) => {}
        }
        let members = match kind {
            ConversationKind::Internal => original.members.iter().copied().collect(),
            ConversationKind::Customer => Vec::new(),
        };
        let started = self
            .execute::<Conversation>(
                &Self::stream::<Conversation>(new_conversation_id)?,
                ConversationCommand::Start(Start {
                    conversation_id: new_conversation_id,
                    kind,
                    channel,
                    queue: original.queue,
                    subject: format!("Re: {}", original.subject)
                        .chars()
                        .take(parley_domain::conversation::MAX_SUBJECT_CHARS)
                        .collect(),
                    started_by: by,
                    customers: original.customers.iter().copied().collect(),
                    members,
                    origin: Some(parley_domain::conversation::Origin {
                        conversation_id: origin,
                        message_id,
                    }),
                    at,
                }),
                metadata,
            )
            .await?;
        let branch = self
            .execute::<Conversation>(
                &origin_stream,
                ConversationCommand::RecordBranch {
                    message_id,
                    new_conversation_id,
                    by,
                    at,
                },
                metadata,
            )
            .await?;
        Ok((started, branch))
    }

    /// The customer behind `identity`, created on first contact. A customer that was merged
    /// is answered with the one it was merged into.
    pub async fn first_contact(
        &self,
        identity: ChannelIdentity,
        name: Option<String>,
        email: Option<String>,
        at: Timestamp,
        metadata: &Metadata,
    ) -> Result<CustomerId, ServiceError> {
        let customer_id = CustomerId::for_identity(&identity);
        let created = self
            .execute::<Customer>(
                &Self::stream::<Customer>(customer_id)?,
                CustomerCommand::Create {
                    customer_id,
                    identity,
                    name,
                    email,
                    at,
                },
                metadata,
            )
            .await;
        match created {
            Ok(_) | Err(ServiceError::Domain(DomainError::CustomerExists)) => {}
            Err(error) => return Err(error),
        }
        let mut current = customer_id;
        for _ in 0..MAX_MERGE_HOPS {
            let (customer, _, _) = self
                .load::<Customer>(&Self::stream::<Customer>(current)?)
                .await?;
            match customer.merged_into {
                Some(survivor) => current = survivor,
                None => return Ok(current),
            }
        }
        Ok(current)
    }

    /// Merges `merged` into `survivor`: the merged customer points to the survivor, which
    /// takes over its identities. Reversible with [`CommandService::unmerge_customers`].
    pub async fn merge_customers(
        &self,
        merged: CustomerId,
        survivor: CustomerId,
        by: Actor,
        at: Timestamp,
        metadata: &Metadata,
    ) -> Result<(), ServiceError> {
        if merged == survivor {
            return Err(DomainError::MergeIntoSelf.into());
        }
        let survivor_stream = Self::stream::<Customer>(survivor)?;
        let (target, _, _) = self.load::<Customer>(&survivor_stream).await?;
        if target.id.is_none() {
            return Err(DomainError::CustomerNotFound.into());
        }
        if let Some(further) = target.merged_into {
            return Err(DomainError::CustomerMerged(further).into());
        }
        let merged_stream = Self::stream::<Customer>(merged)?;
        let (source, _, _) = self.load::<Customer>(&merged_stream).await?;
        self.execute::<Customer>(
            &merged_stream,
            CustomerCommand::MergeInto { survivor, by, at },
            metadata,
        )
        .await?;
        self.execute::<Customer>(
            &survivor_stream,
            CustomerCommand::Absorb {
                merged,
                identities: source.identities.into_iter().collect(),
                by,
                at,
            },
            metadata,
        )
        .await?;
        Ok(())
    }

    /// Undoes a merge: both customers record it; history keeps the merge and its undoing.
    pub async fn unmerge_customers(
        &self,
        merged: CustomerId,
        by: Actor,
        at: Timestamp,
        metadata: &Metadata,
    ) -> Result<(), ServiceError> {
        let merged_stream = Self::stream::<Customer>(merged)?;
        let (source, _, _) = self.load::<Customer>(&merged_stream).await?;
        let survivor = source.merged_into.ok_or(DomainError::NoChange)?;
        self.execute::<Customer>(
            &merged_stream,
            CustomerCommand::Unmerge { by, at },
            metadata,
        )
        .await?;
        self.execute::<Customer>(
            &Self::stream::<Customer>(survivor)?,
            CustomerCommand::Release { merged, by, at },
            metadata,
        )
        .await?;
        Ok(())
    }
}
