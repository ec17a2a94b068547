//! Conversation and ticket detail: given events, what each viewer sees.

mod support;

use parley_domain::Actor;
use parley_domain::conversation::*;
use parley_domain::ticket::*;
use parley_projections::detail::{self, Detail, Viewer};
use std::sync::Arc;
use support::*;
use uuid::Uuid;

fn msg(n: u128, author: Actor, visibility: Visibility, secs: i64) -> ConversationEvent {
    MessageSent {
        message_id: message(n),
        author,
        body: format!("body {n}"),
        visibility,
        attachments: vec![],
        mentions: vec![],
        quote_of: None,
        at: at(secs),
    }
    .into()
}

fn start(n: u128, kind: ConversationKind, by: Actor) -> ConversationEvent {
    ConversationStarted {
        conversation_id: conversation(n),
        kind,
        channel: Channel::Widget,
        queue: None,
        subject: "help".into(),
        started_by: by,
        customers: if kind == ConversationKind::Customer {
            vec![customer(1)]
        } else {
            vec![]
        },
        members: if kind == ConversationKind::Internal {
            vec![agent(2)]
        } else {
            vec![]
        },
        origin: None,
        at: at(0),
    }
    .into()
}

async fn view(w: &World, n: u128, viewer: Viewer) -> Option<detail::ConversationView> {
    view_page(w, n, viewer, detail::Page::default()).await
}

async fn view_page(
    w: &World,
    n: u128,
    viewer: Viewer,
    page: detail::Page,
) -> Option<detail::ConversationView> {
    let id = conversation(n).to_string();
    w.query(detail::NAME, move |tx, t| {
        detail::conversation(tx, t, &id, viewer, page)
    })
    .await
}

async fn messages_edits_deletions_and_visibility(backend: Backend) {
    let Some(w) = World::new(backend, vec![Arc::new(Detail) as _]).await else {
        return;
    };
    let cust = Actor::Customer(customer(1));
    let a1 = Actor::Agent(agent(1));
    w.conversation(
        conversation(1),
        vec![
            start(1, ConversationKind::Customer, cust),
            msg(1, cust, Visibility::Public, 1),
            msg(2, a1, Visibility::Internal, 2),
            msg(3, a1, Visibility::Public, 3),
            MessageEdited {
                message_id: message(3),
                body: "edited".into(),
                by: a1,
                at: at(4),
            }
            .into(),
            msg(4, cust, Visibility::Public, 5),
            MessageDeleted {
                message_id: message(4),
                by: cust,
                at: at(6),
            }
            .into(),
            ConversationClosed { by: a1, at: at(7) }.into(),
            ConversationRated {
                customer: customer(1),
                score: 5,
                comment: Some("great".into()),
                at: at(8),
            }
            .into(),
            TicketLinked {
                ticket_id: ticket(1),
                by: a1,
                at: at(9),
            }
            .into(),
        ],
    )
    .await;

    let agent_view = view(&w, 1, Viewer::Agent(agent(9).0)).await.unwrap();
    let bodies: Vec<_> = agent_view
        .messages
        .iter()
        .map(|m| (m.body.as_str(), m.visibility.as_str()))
        .collect();
    assert_eq!(
        bodies,
        vec![
            ("body 1", "public"),
            ("body 2", "internal"),
            ("edited", "public"),
            ("", "public")
        ]
    );
    assert!(agent_view.messages[2].edited_at.is_some());
    assert!(agent_view.messages[3].deleted_at.is_some());
    assert_eq!(agent_view.status, "closed");
    assert_eq!(agent_view.rating.as_ref().map(|r| r.score), Some(5));
    assert_eq!(agent_view.tickets, vec![ticket(1).to_string()]);
    assert!(
        agent_view
            .participants
            .iter()
            .any(|p| p.participant == format!("agent:{}", agent(1)))
    );

    assert!(agent_view.next_cursor.is_none());
    assert_eq!(
        agent_view.last_public_activity_at, None,
        "told to customers only"
    );

    // Two messages at a time: the same messages, in the same order, then no cursor.
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = detail::Page { after, limit: 2 };
        let view = view_page(&w, 1, Viewer::Agent(agent(9).0), page)
            .await
            .unwrap();
        paged.extend(view.messages.into_iter().map(|m| m.message_id));
        match view.next_cursor {
            Some(cursor) => after = detail::Page::parse_cursor(&cursor),
            None => break,
        }
    }
    let all: Vec<_> = agent_view
        .messages
        .iter()
        .map(|m| m.message_id.clone())
        .collect();
    assert_eq!(paged, all);

    // The customer never sees the internal note, nor which (possibly internal) ticket is linked.
    let customer_view = view(&w, 1, Viewer::Customer(customer(1).0)).await.unwrap();
    assert!(customer_view.tickets.is_empty());
    assert_eq!(customer_view.messages.len(), 3);
    // The last public change: the deletion of message 4.
    assert_eq!(customer_view.last_public_activity_at, Some(at(6).0));
    // A page that holds only the first message still knows the conversation's latest change.
    let first = view_page(
        &w,
        1,
        Viewer::Customer(customer(1).0),
        detail::Page {
            after: None,
            limit: 1,
        },
    )
    .await
    .unwrap();
    assert_eq!(first.messages.len(), 1);
    assert!(first.next_cursor.is_some());
    assert_eq!(first.last_public_activity_at, Some(at(6).0));
    assert!(
        customer_view
            .messages
            .iter()
            .all(|m| m.visibility == "public")
    );
    // Another customer sees nothing.
    assert!(view(&w, 1, Viewer::Customer(customer(2).0)).await.is_none());
}

async fn internal_conversations_are_for_their_members(backend: Backend) {
    let Some(w) = World::new(backend, vec![Arc::new(Detail) as _]).await else {
        return;
    };
    let a1 = Actor::Agent(agent(1));
    w.conversation(
        conversation(2),
        vec![
            start(2, ConversationKind::Internal, a1),
            msg(1, a1, Visibility::Internal, 1),
        ],
    )
    .await;
    assert!(view(&w, 2, Viewer::Agent(agent(1).0)).await.is_some());
    assert!(view(&w, 2, Viewer::Agent(agent(2).0)).await.is_some());
    assert!(view(&w, 2, Viewer::Agent(agent(3).0)).await.is_none());
    assert!(view(&w, 2, Viewer::Customer(customer(1).0)).await.is_none());
    assert!(view(&w, 99, Viewer::Agent(agent(1).0)).await.is_none());
    // A follower who is removed, then unfollows, stays out.
    w.conversation(
        conversation(2),
        vec![
            ConversationEvent::from(ConversationFollowed {
                agent: agent(2),
                at: at(2),
            }),
            ParticipantRemoved {
                participant: Participant::Agent(agent(2)),
                by: a1,
                at: at(3),
            }
            .into(),
            ConversationUnfollowed {
                agent: agent(2),
                at: at(4),
            }
            .into(),
        ],
    )
    .await;
    assert!(view(&w, 2, Viewer::Agent(agent(2).0)).await.is_none());
}

async fn tickets_show_entries_deliveries_and_hide_internal_comments(backend: Backend) {
    let Some(w) = World::new(backend, vec![Arc::new(Detail) as _]).await else {
        return;
    };
    let a1 = Actor::Agent(agent(1));
    let info = ChannelInfo {
        channel: Channel::Whatsapp,
        account_id: "acct".into(),
        customer_handle: "+100".into(),
    };
    let reply = Uuid::from_u128(77);
    w.ticket(
        ticket(1),
        vec![
            TicketEvent::from(TicketCreated {
                reply_token: None,
                ticket_id: ticket(1),
                ticket_type: TicketType::Ticket,
                title: "Printer".into(),
                description: "It is broken".into(),
                priority: Priority::High,
                requester: Some(customer(1)),
                source: TicketSource::Social {
                    channel: Channel::Whatsapp,
                },
                tags: vec!["messaging_support".into(), "whatsapp".into()],
                channel_info: Some(info.clone()),
                created_by: Actor::System,
                at: at(0),
            }),
            TicketCommented {
                comment_id: Uuid::from_u128(1),
                author: a1,
                body: "note".into(),
                visibility: Visibility::Internal,
                attachments: vec![],
                at: at(1),
            }
            .into(),
            TicketTagRemoved {
                tag: "whatsapp".into(),
                by: a1,
                at: at(2),
            }
            .into(),
            OutboundReplyRequested {
                attachments: vec![],
                reply_id: reply,
                body: "hello".into(),
                channel_info: info,
                by: a1,
                at: at(3),
            }
            .into(),
            OutboundReplyFailed {
                attempts: 0,
                code: None,
                reply_id: reply,
                reason: "outside the 24-hour window".into(),
                at: at(4),
            }
            .into(),
            TicketStatusChanged {
                from: TicketStatus::New,
                to: TicketStatus::Open,
                by: a1,
                at: at(5),
            }
            .into(),
        ],
    )
    .await;
    let id = ticket(1).to_string();
    let agent_view = w
        .query(detail::NAME, move |tx, t| {
            detail::ticket(
                tx,
                t,
                &id,
                Viewer::Agent(agent(1).0),
                detail::Page::default(),
            )
        })
        .await
        .unwrap();
    assert_eq!(agent_view.status, "open");
    assert_eq!(agent_view.priority, "high");
    assert_eq!(agent_view.tags, vec!["messaging_support".to_string()]);
    assert_eq!(agent_view.entries.len(), 2);
    assert_eq!(agent_view.entries[1].delivery.as_deref(), Some("failed"));
    assert_eq!(
        agent_view.entries[1].failure.as_deref(),
        Some("outside the 24-hour window")
    );
    let id = ticket(1).to_string();
    let customer_view = w
        .query(detail::NAME, move |tx, t| {
            detail::ticket(
                tx,
                t,
                &id,
                Viewer::Customer(customer(1).0),
                detail::Page::default(),
            )
        })
        .await
        .unwrap();
    assert_eq!(customer_view.entries.len(), 1);
    assert_eq!(customer_view.entries[0].kind, "reply");
    let id = ticket(1).to_string();
    assert!(
        w.query(detail::NAME, move |tx, t| detail::ticket(
            tx,
            t,
            &id,
            Viewer::Customer(customer(2).0),
            detail::Page::default()
        ))
        .await
        .is_none()
    );
}

on_both_backends! {
    messages_edits_deletions_and_visibility => super::messages_edits_deletions_and_visibility;
    internal_conversations_are_for_their_members => super::internal_conversations_are_for_their_members;
    tickets_show_entries_deliveries_and_hide_internal_comments => super::tickets_show_entries_deliveries_and_hide_internal_comments;
}
