//! Where stored files are attached: given messages, comments and deletions, which
//! conversations and tickets hold each file.

mod support;

use parley_domain::Actor;
use parley_domain::conversation::*;
use parley_domain::ticket::*;
use parley_projections::files::{self, Files, Holder};
use std::sync::Arc;
use support::*;
use uuid::Uuid;

fn file(n: u128) -> Uuid {
    Uuid::from_u128(0xF11E_0000 + n)
}

/// An attachment of stored file `n`, or of a file stored elsewhere (`None`).
fn attachment(n: Option<u128>) -> Attachment {
    Attachment {
        name: "photo.png".into(),
        content_type: "image/png".into(),
        size: 2048,
        storage_ref: n.map_or_else(
            || "s3://bucket/photo.png".into(),
            |n| format!("file:{}", file(n)),
        ),
        file_id: n.map(file),
        sha256: n.map(|_| "ab".repeat(32)),
        unavailable: None,
    }
}

fn say(n: u128, visibility: Visibility, files: &[Option<u128>], secs: i64) -> ConversationEvent {
    MessageSent {
        message_id: message(n),
        author: Actor::Agent(agent(1)),
        body: format!("message {n}"),
        visibility,
        attachments: files.iter().copied().map(attachment).collect(),
        mentions: vec![],
        quote_of: None,
        at: at(secs),
    }
    .into()
}

async fn holders(w: &World, n: u128, limit: usize) -> Vec<Holder> {
    w.query(files::NAME, move |tx, t| {
        files::holders(tx, t, file(n), limit)
    })
    .await
}

async fn files_are_found_where_they_are_attached(backend: Backend) {
    let Some(w) = World::new(backend, vec![Arc::new(Files) as _]).await else {
        return;
    };
    w.conversation(
        conversation(1),
        vec![
            say(1, Visibility::Public, &[Some(1), None], 10),
            say(2, Visibility::Internal, &[Some(2)], 20),
            say(3, Visibility::Public, &[Some(2)], 30),
            say(4, Visibility::Internal, &[Some(4)], 40),
        ],
    )
    .await;
    w.conversation(
        conversation(2),
        vec![
            say(5, Visibility::Public, &[Some(1)], 50),
            MessageDeleted {
                message_id: message(5),
                by: Actor::Agent(agent(1)),
                at: at(60),
            }
            .into(),
        ],
    )
    .await;
    w.ticket(
        ticket(1),
        vec![
            TicketEvent::from(TicketCommented {
                comment_id: Uuid::from_u128(0xC0),
                author: Actor::Agent(agent(1)),
                body: String::new(),
                visibility: Visibility::Internal,
                attachments: vec![attachment(Some(3))],
                at: at(70),
            }),
            TicketEvent::from(CustomerMessageReceived {
                message_id: Uuid::from_u128(0xC1),
                body: "here it is".into(),
                attachments: vec![attachment(Some(1))],
                at: at(80),
                reply_token: None,
            }),
        ],
    )
    .await;

    let in_conversation = |n: u128, public: bool| Holder::Conversation {
        id: conversation(n),
        public,
    };
    // Attached publicly in a conversation and on a ticket; its deleted message holds it no more.
    assert_eq!(
        holders(&w, 1, 10).await,
        [
            in_conversation(1, true),
            Holder::Ticket {
                id: ticket(1),
                public: true
            }
        ]
    );
    assert_eq!(holders(&w, 1, 1).await, [in_conversation(1, true)]);
    // In a note and in a public message of the same conversation: public.
    assert_eq!(holders(&w, 2, 10).await, [in_conversation(1, true)]);
    assert_eq!(
        holders(&w, 3, 10).await,
        [Holder::Ticket {
            id: ticket(1),
            public: false
        }]
    );
    assert_eq!(holders(&w, 4, 10).await, [in_conversation(1, false)]);
    assert_eq!(holders(&w, 9, 10).await, []);
    assert_eq!(
        w.models.dump(files::NAME).await.unwrap().len(),
        6,
        "one row per stored file per message"
    );
}

on_both_backends! {
    files_are_found_where_they_are_attached => super::files_are_found_where_they_are_attached;
}
