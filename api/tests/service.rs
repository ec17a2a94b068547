//! The application service on both backends: 20 agents acting on one conversation at once.
//! Every accepted action is in the stream exactly once; every refused one got its precise
//! domain error; none is lost to a concurrency conflict.

use parley_api::service::{CommandService, ServiceError};
use parley_domain::conversation::{
    Channel, Conversation, ConversationCommand as C, MessageSent, SendMessage, Visibility,
};
use parley_domain::ids::{AgentId, ConversationId, CustomerId, MessageId};
use parley_domain::{Actor, DomainError};
use parley_eventlog::{EventLog, Metadata, StreamId};
use std::collections::HashSet;
use std::sync::Arc;
use support::{AT, on_both_backends, send_public, start_conversation};
use uuid::Uuid;

mod support;

const AGENTS: u128 = 20;
const MESSAGES_PER_AGENT: u128 = 3;

fn agent(n: u128) -> AgentId {
    AgentId(Uuid::from_u128(0xa000 + n))
}

fn message(agent: u128, n: u128) -> MessageId {
    MessageId(Uuid::from_u128(0xe000_0000 + agent * 100 + n))
}

#[derive(Default)]
struct Outcome {
    accepted_events: usize,
    takeovers: usize,
}

async fn agent_acts(service: CommandService, stream: StreamId, n: u128) -> Outcome {
    let me = agent(n);
    let metadata = Metadata::default();
    let mut outcome = Outcome::default();
    for m in 0..MESSAGES_PER_AGENT {
        let sent = send_public(
            &service,
            &stream,
            message(n, m),
            Actor::Agent(me),
            format!("reply {m} from agent {n}"),
        )
        .await;
        outcome.accepted_events += sent.events;
    }
    let followed = service
        .execute::<Conversation>(&stream, C::Follow { agent: me, at: AT }, &metadata)
        .await
        .expect("the first follow is accepted");
    outcome.accepted_events += followed.events;
    let again = service
        .execute::<Conversation>(&stream, C::Follow { agent: me, at: AT }, &metadata)
        .await;
    assert!(
        matches!(again, Err(ServiceError::Domain(DomainError::AlreadyFollowing(a))) if a == me),
        "{again:?}"
    );
    let rated = service
        .execute::<Conversation>(
            &stream,
            C::Rate {
                customer: CustomerId(Uuid::from_u128(1)),
                score: 5,
                comment: None,
                at: AT,
            },
            &metadata,
        )
        .await;
    assert!(
        matches!(
            rated,
            Err(ServiceError::Domain(DomainError::RatingNotRequested))
        ),
        "{rated:?}"
    );
    match service
        .execute::<Conversation>(&stream, C::TakeOver { agent: me, at: AT }, &metadata)
        .await
    {
        Ok(done) => {
            outcome.accepted_events += done.events;
            outcome.takeovers += 1;
        }
        Err(ServiceError::Domain(DomainError::AlreadyAssignedTo(a))) => assert_eq!(a, me),
        Err(other) => panic!("take-over failed: {other:?}"),
    }
    outcome
}

async fn twenty_agents_on_one_conversation(log: Arc<dyn EventLog>) {
    let service = CommandService::new(log.clone());
    let id = ConversationId(Uuid::now_v7());
    let customer = CustomerId(Uuid::from_u128(1));
    let metadata = Metadata::default();
    let stream = start_conversation(
        &service,
        id,
        customer,
        Channel::Whatsapp,
        "Where is my parcel?",
    )
    .await;
    service
        .execute::<Conversation>(
            &stream,
            C::Assign {
                agent: agent(0),
                by: Actor::System,
                at: AT,
            },
            &metadata,
        )
        .await
        .unwrap();

    let tasks: Vec<_> = (0..AGENTS)
        .map(|n| tokio::spawn(agent_acts(service.clone(), stream.clone(), n)))
        .collect();
    let mut accepted = 2;
    let mut takeovers = 0;
    for task in tasks {
        let outcome = task.await.unwrap();
        accepted += outcome.accepted_events;
        takeovers += outcome.takeovers;
    }

    let (state, version, _) = service.load::<Conversation>(&stream).await.unwrap();
    assert_eq!(
        version.0 as usize, accepted,
        "every accepted event is stored once"
    );
    let recorded = log
        .read_stream(&stream, Default::default(), 10_000)
        .await
        .unwrap();
    let mut messages = HashSet::new();
    let mut stored_takeovers = 0;
    for event in &recorded {
        if event.event_type == "MessageSent" {
            let sent: MessageSent = rmp_serde::from_slice(&event.payload).unwrap();
            assert!(messages.insert(sent.message_id), "no message twice");
        }
        if event.event_type == "ConversationTakenOver" {
            stored_takeovers += 1;
        }
    }
    assert_eq!(messages.len() as u128, AGENTS * MESSAGES_PER_AGENT);
    assert_eq!(stored_takeovers, takeovers);
    assert_eq!(state.followers.len() as u128, AGENTS);
    assert_eq!(state.messages.len() as u128, AGENTS * MESSAGES_PER_AGENT);
}

/// Two services on one log, as two server processes: each caches aggregates, and neither
/// acts on a stale copy.
async fn a_cached_aggregate_never_decides_on_stale_state(log: Arc<dyn EventLog>) {
    let first = CommandService::new(log.clone());
    let second = CommandService::new(log.clone());
    let metadata = Metadata::default();
    let id = ConversationId(Uuid::now_v7());
    let customer = CustomerId(Uuid::from_u128(1));
    let stream = start_conversation(&first, id, customer, Channel::Widget, "Stale?").await;
    // `first` caches the conversation as closed.
    first
        .execute::<Conversation>(
            &stream,
            C::Close {
                by: Actor::System,
                at: AT,
            },
            &metadata,
        )
        .await
        .unwrap();
    // `second` reopens it behind `first`'s back.
    second
        .execute::<Conversation>(
            &stream,
            C::Reopen {
                by: Actor::System,
                at: AT,
            },
            &metadata,
        )
        .await
        .unwrap();
    // From its cache `first` would refuse (closed); it checks the log and accepts.
    let reply = SendMessage {
        message_id: MessageId(Uuid::now_v7()),
        author: Actor::Agent(agent(1)),
        body: "We're back on it".into(),
        visibility: Visibility::Public,
        attachments: vec![],
        mentions: vec![],
        quote_of: None,
        at: AT,
    };
    first
        .execute::<Conversation>(&stream, C::SendMessage(reply), &metadata)
        .await
        .expect("decided on fresh state");
    // And an append decided on a stale copy conflicts, then succeeds on fresh state.
    second
        .execute::<Conversation>(
            &stream,
            C::Rename {
                subject: "Fresh".into(),
                by: Actor::System,
                at: AT,
            },
            &metadata,
        )
        .await
        .unwrap();
    let (state, version, _) = first.load::<Conversation>(&stream).await.unwrap();
    assert_eq!(
        version.0, 6,
        "started, closed, rating requested, reopened, message, renamed"
    );
    assert_eq!(state.subject, "Fresh");
    assert_eq!(state.status, parley_domain::conversation::Status::Open);
}

/// A keyed request run again (its node died before answering) on a fresh service, as after a
/// restart: each command its first attempt appended is answered as it was, nothing is appended
/// again, and what the first attempt did not reach is done now.
async fn a_keyed_request_run_again_acts_only_where_the_first_attempt_did_not(
    log: Arc<dyn EventLog>,
) {
    use parley_api::ids::{IdSource, new_id};
    let customer = CustomerId(Uuid::from_u128(0xc1));
    let source = || IdSource::new("scope", "retry-key", 1_700_000_000_000_000);
    let first_service = CommandService::new(log.clone());
    // The first attempt starts the conversation and sends one message, then dies.
    let (stream, first) = source()
        .scope(async {
            let id = ConversationId(new_id("conversation"));
            let stream =
                start_conversation(&first_service, id, customer, Channel::Widget, "Help").await;
            let message = MessageId(new_id("message"));
            let sent = send_public(
                &first_service,
                &stream,
                message,
                Actor::Customer(customer),
                "Hello".into(),
            )
            .await;
            (stream, sent)
        })
        .await;
    let head = log.head().await.unwrap();

    // The retry, on a fresh service: the same ids, the same answers, nothing appended; then
    // the step the first attempt never reached.
    let retry_service = CommandService::new(log.clone());
    let (again, second) = source()
        .scope(async {
            // Handlers that check the state before their first command ask this first.
            assert!(retry_service.acted_before(&stream).await.unwrap());
            let id = ConversationId(new_id("conversation"));
            let stream =
                start_conversation(&retry_service, id, customer, Channel::Widget, "Help").await;
            let message = MessageId(new_id("message"));
            let again = send_public(
                &retry_service,
                &stream,
                message,
                Actor::Customer(customer),
                "Hello".into(),
            )
            .await;
            let message = MessageId(new_id("message"));
            let second = send_public(
                &retry_service,
                &stream,
                message,
                Actor::Customer(customer),
                "More".into(),
            )
            .await;
            (again, second)
        })
        .await;
    assert!(
        !retry_service.acted_before(&stream).await.unwrap(),
        "outside the request"
    );
    assert!(again.replayed);
    assert_eq!(
        (again.stream_version, again.position),
        (first.stream_version, first.position)
    );
    assert!(!second.replayed);
    assert_eq!(
        second.position.0,
        head.0 + 1,
        "only the new message was appended"
    );
    let stored = log
        .read_stream(&stream, parley_eventlog::StreamVersion::NONE, 100)
        .await
        .unwrap();
    assert_eq!(stored.len(), 3, "started, Hello, More: {stored:?}");
}

on_both_backends!(
    twenty_agents_on_one_conversation,
    a_cached_aggregate_never_decides_on_stale_state,
    a_keyed_request_run_again_acts_only_where_the_first_attempt_did_not,
);
