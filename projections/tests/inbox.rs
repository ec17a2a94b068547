//! The agent inbox: given events, the expected pages and counts.

mod support;

use parley_domain::Actor;
use parley_domain::conversation::*;
use parley_projections::inbox::{self, Filter, Inbox, Section};
use std::collections::BTreeMap;
use std::sync::Arc;
use support::*;

fn started(id: u128, kind: ConversationKind, by: Actor, secs: i64) -> ConversationEvent {
    ConversationStarted {
        conversation_id: conversation(id),
        kind,
        channel: if kind == ConversationKind::Customer {
            Channel::Widget
        } else {
            Channel::Internal
        },
        queue: Some(queue(1)),
        subject: format!("conversation {id}"),
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
        at: at(secs),
    }
    .into()
}

fn sent(msg: u128, author: Actor, visibility: Visibility, secs: i64) -> ConversationEvent {
    MessageSent {
        message_id: message(msg),
        author,
        body: format!("message {msg}"),
        visibility,
        attachments: vec![],
        mentions: vec![],
        quote_of: None,
        at: at(secs),
    }
    .into()
}

async fn world(backend: Backend) -> Option<World> {
    World::new(backend, vec![Arc::new(Inbox) as _]).await
}

async fn page(w: &World, who: u128, section: Section, filter: Filter) -> Vec<String> {
    let agent = agent(who).to_string();
    w.query(inbox::NAME, move |tx, t| {
        inbox::page(tx, t, &agent, section, &filter, None, 50)
    })
    .await
    .items
    .into_iter()
    .map(|i| i.conversation_id)
    .collect()
}

async fn counts(w: &World, who: u128, section: Section) -> BTreeMap<String, i64> {
    let agent = agent(who).to_string();
    let all = w
        .query(inbox::NAME, move |tx, t| {
            inbox::counts(tx, t, &agent, section)
        })
        .await;
    all.into_iter().filter(|(_, n)| *n != 0).collect()
}

fn map(pairs: &[(&str, i64)]) -> BTreeMap<String, i64> {
    pairs.iter().map(|(k, n)| (k.to_string(), *n)).collect()
}

/// Maintained counts equal counts recomputed by scanning the rows.
async fn counts_are_exact(w: &World) {
    let (kept, scanned) = w
        .query(inbox::NAME, |tx, t| {
            Ok((inbox::all_counts(tx, t)?, inbox::counts_by_scanning(tx, t)?))
        })
        .await;
    assert_eq!(kept, scanned);
}

async fn sections_filters_and_counts(backend: Backend) {
    let Some(w) = world(backend).await else {
        return;
    };
    let customer_actor = Actor::Customer(customer(1));
    let a1 = Actor::Agent(agent(1));
    // 1: a customer chat, waiting for a first response, unassigned.
    w.conversation(
        conversation(1),
        vec![
            started(1, ConversationKind::Customer, customer_actor, 0),
            sent(1, customer_actor, Visibility::Public, 1),
        ],
    )
    .await;
    // 2: a customer chat agent 1 is assigned to and answered.
    w.conversation(
        conversation(2),
        vec![
            started(2, ConversationKind::Customer, customer_actor, 2),
            sent(2, customer_actor, Visibility::Public, 3),
            ConversationAssigned {
                agent: agent(1),
                by: a1,
                at: at(4),
            }
            .into(),
            sent(3, a1, Visibility::Public, 5),
        ],
    )
    .await;
    // 3: an internal conversation agent 1 started with agent 2.
    w.conversation(
        conversation(3),
        vec![
            started(3, ConversationKind::Internal, a1, 6),
            sent(4, a1, Visibility::Internal, 7),
        ],
    )
    .await;

    let c = |n| conversation(n).to_string();
    assert_eq!(
        page(&w, 0, Section::FromCustomers, Filter::default()).await,
        vec![c(2), c(1)]
    );
    assert_eq!(
        page(
            &w,
            0,
            Section::FromCustomers,
            Filter {
                awaiting: true,
                ..Filter::default()
            }
        )
        .await,
        vec![c(1)]
    );
    assert_eq!(
        page(&w, 1, Section::Mine, Filter::default()).await,
        vec![c(3), c(2)]
    );
    assert_eq!(
        page(&w, 2, Section::Mine, Filter::default()).await,
        vec![c(3)]
    );
    assert_eq!(
        counts(&w, 0, Section::FromCustomers).await,
        map(&[("all", 2), ("open", 2), ("unassigned", 1), ("awaiting", 1)])
    );
    // Agent 2 has agent 1's note unread; agent 1 has the customer's first message unread.
    assert_eq!(
        counts(&w, 2, Section::Mine).await,
        map(&[("all", 1), ("open", 1), ("unread", 1)])
    );
    counts_are_exact(&w).await;

    // Agent 2 reads; agent 1 closes conversation 2; conversation 1 is marked spam.
    w.conversation(
        conversation(3),
        vec![ConversationEvent::from(ConversationRead {
            reader: Participant::Agent(agent(2)),
            through: message(4),
            at: at(8),
        })],
    )
    .await;
    w.conversation(
        conversation(2),
        vec![ConversationEvent::from(ConversationClosed {
            by: a1,
            at: at(9),
        })],
    )
    .await;
    w.conversation(
        conversation(1),
        vec![ConversationEvent::from(ConversationMarkedSpam {
            by: a1,
            at: at(10),
        })],
    )
    .await;
    assert_eq!(
        counts(&w, 2, Section::Mine).await,
        map(&[("all", 1), ("open", 1)])
    );
    assert_eq!(
        counts(&w, 0, Section::FromCustomers).await,
        map(&[("all", 2), ("closed", 1), ("spam", 1)])
    );
    assert_eq!(
        page(
            &w,
            1,
            Section::Mine,
            Filter {
                status: Some("closed".into()),
                ..Filter::default()
            }
        )
        .await,
        vec![c(2)]
    );
    assert_eq!(
        page(
            &w,
            0,
            Section::FromCustomers,
            Filter {
                status: Some("spam".into()),
                ..Filter::default()
            }
        )
        .await,
        vec![c(1)]
    );
    counts_are_exact(&w).await;
}

async fn unread_follows_reads_deletions_and_marks(backend: Backend) {
    let Some(w) = world(backend).await else {
        return;
    };
    let cust = Actor::Customer(customer(1));
    let a1 = Actor::Agent(agent(1));
    w.conversation(
        conversation(1),
        vec![
            started(1, ConversationKind::Customer, cust, 0),
            ConversationAssigned {
                agent: agent(1),
                by: a1,
                at: at(1),
            }
            .into(),
            sent(1, cust, Visibility::Public, 2),
            sent(2, cust, Visibility::Public, 3),
            sent(3, cust, Visibility::Public, 4),
        ],
    )
    .await;
    assert_eq!(unread(&w, 1).await, 3);
    w.conversation(
        conversation(1),
        vec![ConversationEvent::from(ConversationRead {
            reader: Participant::Agent(agent(1)),
            through: message(2),
            at: at(5),
        })],
    )
    .await;
    assert_eq!(unread(&w, 1).await, 1);
    w.conversation(
        conversation(1),
        vec![ConversationEvent::from(MessageDeleted {
            message_id: message(3),
            by: cust,
            at: at(6),
        })],
    )
    .await;
    assert_eq!(unread(&w, 1).await, 0);
    w.conversation(
        conversation(1),
        vec![ConversationEvent::from(MessageMarkedUnread {
            reader: Participant::Agent(agent(1)),
            message_id: message(1),
            at: at(7),
        })],
    )
    .await;
    assert_eq!(unread(&w, 1).await, 2);
    // "From customers" shows each agent its own count: agent 1's, and 0 to one who is not a
    // member of the conversation.
    assert_eq!(unread_from_customers(&w, 1).await, 2);
    assert_eq!(unread_from_customers(&w, 2).await, 0);
    counts_are_exact(&w).await;
}

async fn cursor_pages_cover_everything_once(backend: Backend) {
    let Some(w) = world(backend).await else {
        return;
    };
    let cust = Actor::Customer(customer(1));
    for n in 0..25u128 {
        // Equal activity times for pairs: the id breaks the tie.
        w.conversation(
            conversation(n),
            vec![started(n, ConversationKind::Customer, cust, (n / 2) as i64)],
        )
        .await;
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let c = cursor.clone();
        let page = w
            .query(inbox::NAME, move |tx, t| {
                inbox::page(
                    tx,
                    t,
                    "",
                    Section::FromCustomers,
                    &Filter::default(),
                    c.as_ref(),
                    7,
                )
            })
            .await;
        seen.extend(page.items.into_iter().map(|i| i.conversation_id));
        match page.next_cursor {
            Some(next) => cursor = Some(inbox::parse_cursor(&next).unwrap()),
            None => break,
        }
    }
    let mut expected: Vec<String> = (0..25u128).map(|n| conversation(n).to_string()).collect();
    expected.sort_by_key(|id| std::cmp::Reverse(id.clone()));
    expected.sort_by_key(|id| {
        let n = (0..25u128)
            .find(|n| conversation(*n).to_string() == *id)
            .unwrap();
        std::cmp::Reverse(n / 2)
    });
    assert_eq!(seen, expected);
    assert!(inbox::parse_cursor("nonsense").is_err());
}

async fn assignment_changes_move_conversations_between_agents(backend: Backend) {
    let Some(w) = world(backend).await else {
        return;
    };
    let cust = Actor::Customer(customer(1));
    let a1 = Actor::Agent(agent(1));
    w.conversation(
        conversation(1),
        vec![
            started(1, ConversationKind::Customer, cust, 0),
            ConversationAssigned {
                agent: agent(1),
                by: a1,
                at: at(1),
            }
            .into(),
            ConversationPinned {
                agent: agent(1),
                auto_close_at: at(100),
                at: at(2),
            }
            .into(),
        ],
    )
    .await;
    assert_eq!(
        counts(&w, 1, Section::Mine).await,
        map(&[("all", 1), ("open", 1), ("awaiting", 1), ("pinned", 1)])
    );
    w.conversation(
        conversation(1),
        vec![
            ConversationEvent::from(ConversationUnpinned {
                agent: agent(1),
                at: at(3),
            }),
            ConversationTransferred {
                from: Some(agent(1)),
                to: agent(3),
                by: a1,
                at: at(4),
            }
            .into(),
        ],
    )
    .await;
    assert!(
        page(&w, 1, Section::Mine, Filter::default())
            .await
            .is_empty()
    );
    assert_eq!(
        page(&w, 3, Section::Mine, Filter::default()).await,
        vec![conversation(1).to_string()]
    );
    w.conversation(
        conversation(1),
        vec![ConversationEvent::from(ConversationQueueChanged {
            from: Some(queue(1)),
            to: queue(2),
            by: a1,
            at: at(5),
        })],
    )
    .await;
    assert!(
        page(&w, 3, Section::Mine, Filter::default())
            .await
            .is_empty()
    );
    assert_eq!(
        page(
            &w,
            0,
            Section::FromCustomers,
            Filter {
                queue: Some(queue(2).to_string()),
                unassigned: true,
                ..Filter::default()
            }
        )
        .await,
        vec![conversation(1).to_string()]
    );
    counts_are_exact(&w).await;
}

on_both_backends! {
    sections_filters_and_counts => super::sections_filters_and_counts;
    unread_follows_reads_deletions_and_marks => super::unread_follows_reads_deletions_and_marks;
    cursor_pages_cover_everything_once => super::cursor_pages_cover_everything_once;
    assignment_changes_move_conversations_between_agents => super::assignment_changes_move_conversations_between_agents;
}

/// The unread count on the first item of agent `who`'s page of `section`.
async fn unread_in(w: &World, who: u128, section: Section) -> i64 {
    let agent = agent(who).to_string();
    w.query(inbox::NAME, move |tx, t| {
        inbox::page(tx, t, &agent, section, &Filter::default(), None, 10)
    })
    .await
    .items[0]
        .unread
}

async fn unread(w: &World, who: u128) -> i64 {
    unread_in(w, who, Section::Mine).await
}

async fn unread_from_customers(w: &World, who: u128) -> i64 {
    unread_in(w, who, Section::FromCustomers).await
}
