//! Shared by the application-layer tests: fresh logs on both backends, and a started
//! conversation.
#![allow(dead_code)]

use parley_api::service::CommandService;
use parley_api::service::Executed;
use parley_domain::conversation::{
    Channel, Conversation, ConversationCommand, ConversationKind, SendMessage, Start, Visibility,
};
use parley_domain::ids::{ConversationId, CustomerId, MessageId};
use parley_domain::{Actor, Timestamp};
use parley_eventlog::{Metadata, StreamId};

pub const AT: Timestamp = Timestamp::from_secs(1_700_000_000);

/// Instantiates each `async fn(Arc<dyn EventLog>)` once per backend, on a fresh database.
macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let dir = tempfile::tempdir().unwrap();
                    let url = format!("sqlite://{}", dir.path().join("log.db").display());
                    let log = parley_eventlog::open(&url, parley_eventlog::LogOptions::default())
                        .await
                        .unwrap();
                    super::$test(log.clone()).await;
                    log.close().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let Some(db) = parley_eventlog::testing::postgres_database().await else {
                        return;
                    };
                    let options = parley_eventlog::LogOptions {
                        pool_size: 6,
                        ..parley_eventlog::LogOptions::default()
                    };
                    let log = parley_eventlog::open(&db.url, options).await.unwrap();
                    super::$test(log.clone()).await;
                    log.close().await;
                }
            )*
        }
    };
}
pub(crate) use on_both_backends;

/// Starts a customer conversation through `service`; returns its stream.
pub async fn start_conversation(
    service: &CommandService,
    id: ConversationId,
    customer: CustomerId,
    channel: Channel,
    subject: &str,
) -> StreamId {
    let stream = CommandService::stream::<Conversation>(id).unwrap();
    service
        .execute::<Conversation>(
            &stream,
            ConversationCommand::Start(Start {
                conversation_id: id,
                kind: ConversationKind::Customer,
                channel,
                queue: None,
                subject: subject.into(),
                started_by: Actor::Customer(customer),
                customers: vec![customer],
                members: vec![],
                origin: None,
                at: AT,
            }),
            &Metadata::default(),
        )
        .await
        .unwrap();
    stream
}

/// Sends a public message through `service`.
pub async fn send_public(
    service: &CommandService,
    stream: &StreamId,
    message_id: MessageId,
    author: Actor,
    body: String,
) -> Executed {
    service
        .execute::<Conversation>(
            stream,
            ConversationCommand::SendMessage(SendMessage {
                message_id,
                author,
                body,
                visibility: Visibility::Public,
                attachments: vec![],
                mentions: vec![],
                quote_of: None,
                at: AT,
            }),
            &Metadata::default(),
        )
        .await
        .expect("the message is accepted")
}
