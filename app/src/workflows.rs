//! Actions that touch two aggregates, built on [`CommandService`]: each step is one command
//! on one stream, in an order where a step that fails leaves nothing misleading behind (the
//! first step's event already names the other aggregate, so read models can relate them).
//! Retrying a workflow whose second step failed resumes it: a first step found already done
//! (with the same ids) is taken as done.

use crate::service::{CommandService, Executed, ServiceError};
use parley_domain::conversation::{
    Conversation, ConversationCommand, ConversationKind, Start, Status, TicketDraft, Visibility,
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
        if conversation.kind == Some(ConversationKind::Internal) {
            return Err(DomainError::Invalid {
                field: "conversation_id",
                reason: "tickets are created from customer conversations".into(),
            }
            .into());
        }
        let source = TicketSource::Conversation {
            conversation_id: request.conversation_id,
            message_id: request.message_id,
        };
        let draft = conversation.ticket_draft(request.edits);
        let ticket_stream = Self::stream::<Ticket>(request.ticket_id)?;
        let created = self
            .execute::<Ticket>(
                &ticket_stream,
                TicketCommand::Create(CreateTicket {
                    reply_token: None,
                    ticket_id: request.ticket_id,
                    ticket_type: request.ticket_type,
                    title: draft.title.unwrap_or_default(),
                    description: draft.description.unwrap_or_default(),
                    priority: request.priority,
                    requester: draft.requester,
                    source: source.clone(),
                    tags: request.tags,
                    channel_info: None,
                    created_by: request.by,
                    at: request.at,
                }),
                metadata,
            )
            .await;
        // A retry after the ticket was created but not linked resumes with the link.
        let ticket = match created {
            Err(ServiceError::Domain(DomainError::TicketExists)) => {
                let (ticket, version, position) = self.load::<Ticket>(&ticket_stream).await?;
                if ticket.source.as_ref() != Some(&source) {
                    return Err(DomainError::TicketExists.into());
                }
                Executed::unchanged(version, position)
            }
            other => other?,
        };
        let linked = self
            .execute::<Conversation>(
                &conversation_stream,
                ConversationCommand::LinkTicket {
                    ticket_id: request.ticket_id,
                    by: request.by,
                    at: request.at,
                },
                metadata,
            )
            .await;
        let link = match linked {
            Err(ServiceError::Domain(DomainError::TicketAlreadyLinked(_))) => {
                let (_, version, position) =
                    self.load::<Conversation>(&conversation_stream).await?;
                Executed::unchanged(version, position)
            }
            other => other?,
        };
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
        // A retry whose first attempt started the new conversation checked the message then
        // (it may have been deleted since).
        let resumed = self
            .acted_before(&Self::stream::<Conversation>(new_conversation_id)?)
            .await?;
        match original.messages.get(&message_id) {
            _ if resumed => {}
            None => return Err(DomainError::MessageNotFound(message_id).into()),
            Some(message) if message.deleted => {
                return Err(DomainError::MessageDeleted(message_id).into());
            }
            Some(message)
                if kind == ConversationKind::Customer
                    && message.visibility == Visibility::Internal =>
            {
                return Err(DomainError::Invalid {
                    field: "message_id",
                    reason: "an internal note cannot start a conversation customers see".into(),
                }
                .into());
            }
            Some(_) => {}
        }
        if kind == ConversationKind::Internal {
            match by {
                Actor::Agent(agent) if original.members.contains(&agent) => {}
                Actor::Agent(agent) => return Err(DomainError::NotAParticipant(agent).into()),
                _ => return Err(DomainError::CustomerInInternalConversation.into()),
            }
        }
        let members = match kind {
            ConversationKind::Internal => original.members.iter().copied().collect(),
            ConversationKind::Customer => Vec::new(),
        };
        let new_stream = Self::stream::<Conversation>(new_conversation_id)?;
        let origin_of_new = parley_domain::conversation::Origin {
            conversation_id: origin,
            message_id,
        };
        let started = self
            .execute::<Conversation>(
                &new_stream,
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
                    origin: Some(origin_of_new),
                    at,
                }),
                metadata,
            )
            .await;
        // A retry after the new conversation started but the branch was not recorded resumes.
        let started = match started {
            Err(ServiceError::Domain(DomainError::ConversationExists)) => {
                let (existing, version, position) = self.load::<Conversation>(&new_stream).await?;
                if existing.origin != Some(origin_of_new) {
                    return Err(DomainError::ConversationExists.into());
                }
                Executed::unchanged(version, position)
            }
            other => other?,
        };
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
            .await;
        let branch = match branch {
            Err(ServiceError::Domain(DomainError::NoChange)) => {
                let (_, version, position) = self.load::<Conversation>(&origin_stream).await?;
                Executed::unchanged(version, position)
            }
            other => other?,
        };
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
        Err(ServiceError::MergeChain {
            customer: customer_id,
        })
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
        let merged_stream = Self::stream::<Customer>(merged)?;
        // A retry whose first attempt made the first step checked the survivor then.
        if !self.acted_before(&merged_stream).await? {
            let (target, _, _) = self.load::<Customer>(&survivor_stream).await?;
            if target.id.is_none() {
                return Err(DomainError::CustomerNotFound.into());
            }
            if let Some(further) = target.merged_into {
                return Err(DomainError::CustomerMerged(further).into());
            }
        }
        let (source, _, _) = self.load::<Customer>(&merged_stream).await?;
        match self
            .execute::<Customer>(
                &merged_stream,
                CustomerCommand::MergeInto { survivor, by, at },
                metadata,
            )
            .await
        {
            // A retry of a merge whose second step failed resumes with that step.
            Ok(_) => {}
            Err(ServiceError::Domain(DomainError::CustomerMerged(into))) if into == survivor => {}
            Err(error) => return Err(error),
        }
        let absorbed = self
            .execute::<Customer>(
                &survivor_stream,
                CustomerCommand::Absorb {
                    merged,
                    identities: source.identities.iter().cloned().collect(),
                    by,
                    at,
                },
                metadata,
            )
            .await;
        match absorbed {
            Ok(_) | Err(ServiceError::Domain(DomainError::NoChange)) => Ok(()),
            Err(error) => Err(error),
        }
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
        // A retry of an unmerge whose second step failed resumes with that step.
        let survivor = match (source.merged_into, source.unmerged_from) {
            (Some(survivor), _) => {
                self.execute::<Customer>(
                    &merged_stream,
                    CustomerCommand::Unmerge { by, at },
                    metadata,
                )
                .await?;
                survivor
            }
            (None, Some(survivor)) => survivor,
            (None, None) => return Err(DomainError::NoChange.into()),
        };
        let released = self
            .execute::<Customer>(
                &Self::stream::<Customer>(survivor)?,
                CustomerCommand::Release { merged, by, at },
                metadata,
            )
            .await;
        match released {
            Ok(_) => Ok(()),
            // Nothing left to undo on either side.
            Err(ServiceError::Domain(DomainError::NotMergedHere(_)))
                if source.merged_into.is_none() =>
            {
                Err(DomainError::NoChange.into())
            }
            Err(error) => Err(error),
        }
    }
}
