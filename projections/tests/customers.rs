//! Customer history, identity lookup and message search: given events, what is found.

mod support;

use parley_domain::Actor;
use parley_domain::conversation::*;
use parley_domain::customer::*;
use parley_domain::ticket::*;
use parley_projections::customers::{self, Customers};
use parley_projections::search::{self, Search, SearchQuery, Searcher};
use std::sync::Arc;
use support::*;

fn start(n: u128, who: u128, channel: Channel, secs: i64) -> ConversationEvent {
    ConversationStarted {
        conversation_id: conversation(n),
        kind: ConversationKind::Customer,
        channel,
        queue: None,
        subject: format!("subject {n}"),
        started_by: Actor::Customer(customer(who)),
        customers: vec![customer(who)],
        members: vec![],
        origin: None,
        at: at(secs),
    }
    .into()
}

fn say(n: u128, author: Actor, body: &str, visibility: Visibility, secs: i64) -> ConversationEvent {
    MessageSent {
        message_id: message(n),
        author,
        body: body.into(),
        visibility,
        attachments: vec![],
        mentions: vec![],
        quote_of: None,
        at: at(secs),
    }
    .into()
}

fn created(who: u128, channel: Channel, value: &str) -> CustomerEvent {
    CustomerCreated {
        customer_id: customer(who),
        identity: ChannelIdentity {
            channel,
            value: value.into(),
        },
        name: Some(format!("customer {who}")),
        email: None,
        at: at(0),
    }
    .into()
}

async fn world(backend: Backend) -> Option<World> {
    World::new(
        backend,
        vec![Arc::new(Customers) as _, Arc::new(Search) as _],
    )
    .await
}

async fn history_follows_merges_and_identities(backend: Backend) {
    let Some(w) = world(backend).await else {
        return;
    };
    let admin = Actor::Agent(agent(1));
    w.customer(
        customer(1),
        vec![created(1, Channel::Whatsapp, "+1 (555) 010-0001")],
    )
    .await;
    w.customer(customer(2), vec![created(2, Channel::Line, "line-user-2")])
        .await;
    w.conversation(conversation(1), vec![start(1, 1, Channel::Whatsapp, 10)])
        .await;
    w.conversation(conversation(2), vec![start(2, 2, Channel::Line, 20)])
        .await;
    w.ticket(
        ticket(1),
        vec![TicketEvent::from(TicketCreated {
            ticket_id: ticket(1),
            ticket_type: TicketType::Ticket,
            title: "refund".into(),
            description: String::new(),
            priority: Priority::Normal,
            requester: Some(customer(2)),
            source: TicketSource::Social {
                channel: Channel::Line,
            },
            tags: vec![],
            channel_info: None,
            created_by: Actor::System,
            at: at(30),
        })],
    )
    .await;
    w.conversation(
        conversation(1),
        vec![ConversationEvent::from(ConversationClosed {
            by: admin,
            at: at(40),
        })],
    )
    .await;

    let history_of = |id: u128, query: customers::HistoryQuery| {
        let id = customer(id).to_string();
        move |tx: &mut dyn parley_projections::Tx, t: &parley_projections::Tables| {
            customers::history(tx, t, &id, &query)
        }
    };
    let history = |id: u128| {
        history_of(
            id,
            customers::HistoryQuery {
                limit: 50,
                ..Default::default()
            },
        )
    };
    let items = w.query(customers::NAME, history(1)).await;
    assert_eq!(items.len(), 1);
    assert_eq!(
        (items[0].status.as_str(), items[0].last_activity_at),
        ("closed", at(40).0)
    );

    // Merge 2 into 1: customer 1's history now holds both; the LINE identity finds customer 1.
    w.customer(
        customer(2),
        vec![CustomerEvent::from(CustomerMergedInto {
            survivor: customer(1),
            by: admin,
            at: at(50),
        })],
    )
    .await;
    let items = w.query(customers::NAME, history(1)).await;
    let ids: Vec<_> = items.iter().map(|i| i.id.clone()).collect();
    assert_eq!(
        ids,
        vec![
            conversation(1).to_string(),
            ticket(1).to_string(),
            conversation(2).to_string()
        ]
    );
    // Page by page from a cursor, the same items; the customer's own conversations alone.
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = w
            .query(
                customers::NAME,
                history_of(
                    1,
                    customers::HistoryQuery {
                        after: after.clone(),
                        limit: 1,
                        ..Default::default()
                    },
                ),
            )
            .await;
        let Some(last) = page.last() else { break };
        after = Some((last.last_activity_at, last.id.clone()));
        paged.extend(page.into_iter().map(|i| i.id));
    }
    assert_eq!(paged, ids);
    let own = w
        .query(
            customers::NAME,
            history_of(
                1,
                customers::HistoryQuery {
                    conversations_only: true,
                    own_only: true,
                    limit: 50,
                    ..Default::default()
                },
            ),
        )
        .await;
    assert_eq!(
        own.iter().map(|i| i.id.clone()).collect::<Vec<_>>(),
        vec![conversation(1).to_string()]
    );
    let found = w
        .query(customers::NAME, |tx, t| {
            customers::find_by_identity(
                tx,
                t,
                &ChannelIdentity {
                    channel: Channel::Line,
                    value: " line-user-2 ".into(),
                },
            )
        })
        .await;
    assert_eq!(found, Some(customer(1).to_string()));
    // The phone number is found however it is written.
    let found = w
        .query(customers::NAME, |tx, t| {
            customers::find_by_identity(
                tx,
                t,
                &ChannelIdentity {
                    channel: Channel::Whatsapp,
                    value: "+15550100001".into(),
                },
            )
        })
        .await;
    assert_eq!(found, Some(customer(1).to_string()));

    // Unmerge: back to separate histories.
    w.customer(
        customer(2),
        vec![CustomerEvent::from(CustomerUnmerged {
            survivor: customer(1),
            by: admin,
            at: at(60),
        })],
    )
    .await;
    assert_eq!(w.query(customers::NAME, history(1)).await.len(), 1);
    let found = w
        .query(customers::NAME, |tx, t| {
            customers::find_by_identity(
                tx,
                t,
                &ChannelIdentity {
                    channel: Channel::Line,
                    value: "line-user-2".into(),
                },
            )
        })
        .await;
    assert_eq!(found, Some(customer(2).to_string()));
}

async fn details_are_what_the_last_change_left(backend: Backend) {
    let Some(w) = world(backend).await else {
        return;
    };
    let details = |name: Option<&str>, email: Option<&str>, secs| {
        CustomerEvent::from(CustomerDetailsChanged {
            name: name.map(Into::into),
            email: email.map(Into::into),
            by: Actor::Agent(agent(1)),
            at: at(secs),
        })
    };
    let view = || {
        let id = customer(1).to_string();
        move |tx: &mut dyn parley_projections::Tx, t: &parley_projections::Tables| {
            customers::customer_view(tx, t, &id)
        }
    };
    w.customer(
        customer(1),
        vec![
            created(1, Channel::Email, "ana@example.com"),
            details(Some("Ana"), Some("ana@example.com"), 10),
        ],
    )
    .await;
    let found = w.query(customers::NAME, view()).await.unwrap();
    assert_eq!(
        (found.name.as_deref(), found.email.as_deref()),
        (Some("Ana"), Some("ana@example.com"))
    );

    // The customer asks that their address be forgotten: the change holds no e-mail.
    w.customer(customer(1), vec![details(Some("Ana"), None, 20)])
        .await;
    let found = w.query(customers::NAME, view()).await.unwrap();
    assert_eq!((found.name.as_deref(), found.email), (Some("Ana"), None));

    // And the name too, in one change with a new address.
    w.customer(
        customer(1),
        vec![details(None, Some("a.silva@example.com"), 30)],
    )
    .await;
    let found = w.query(customers::NAME, view()).await.unwrap();
    assert_eq!(
        (found.name, found.email.as_deref()),
        (None, Some("a.silva@example.com"))
    );
}

async fn find(w: &World, searcher: Searcher, keywords: &str, from: Option<i64>) -> Vec<String> {
    let words = search::words(keywords).unwrap();
    let query = SearchQuery {
        keywords: keywords.into(),
        from,
        limit: 50,
        ..SearchQuery::default()
    };
    w.query(search::NAME, move |tx, t| {
        search::search(tx, t, &searcher, &query, &words)
    })
    .await
    .into_iter()
    .map(|h| h.message_id)
    .collect()
}

async fn search_by_keyword_and_date_within_what_the_searcher_may_see(backend: Backend) {
    let Some(w) = world(backend).await else {
        return;
    };
    let c1 = Actor::Customer(customer(1));
    let a1 = Actor::Agent(agent(1));
    w.conversation(
        conversation(1),
        vec![
            start(1, 1, Channel::Widget, 0),
            say(1, c1, "My printer is jammed", Visibility::Public, 1),
            say(
                2,
                a1,
                "printer firmware bug, see internal wiki",
                Visibility::Internal,
                2,
            ),
            say(3, a1, "Try turning the printer off", Visibility::Public, 3),
            say(4, c1, "Printer still jammed!", Visibility::Public, 4),
        ],
    )
    .await;
    w.conversation(
        conversation(2),
        vec![
            start(2, 2, Channel::Widget, 5),
            say(
                5,
                Actor::Customer(customer(2)),
                "printer question",
                Visibility::Public,
                6,
            ),
        ],
    )
    .await;
    let m = |n| message(n).to_string();
    assert_eq!(
        find(&w, Searcher::Agent(agent(9).0), "printer", None).await,
        vec![m(5), m(4), m(3), m(2), m(1)]
    );
    assert_eq!(
        find(&w, Searcher::Agent(agent(9).0), "printer jammed", None).await,
        vec![m(4), m(1)]
    );
    assert_eq!(
        find(&w, Searcher::Agent(agent(9).0), "printer", Some(at(3).0)).await,
        vec![m(5), m(4), m(3)]
    );
    // A customer finds only public messages of their own conversations.
    assert_eq!(
        find(&w, Searcher::Customer(customer(1).0), "printer", None).await,
        vec![m(4), m(3), m(1)]
    );
    // Edits and deletions reach the index.
    w.conversation(
        conversation(1),
        vec![
            ConversationEvent::from(MessageEdited {
                message_id: message(3),
                body: "Try a reboot".into(),
                by: a1,
                at: at(7),
            }),
            MessageDeleted {
                message_id: message(4),
                by: c1,
                at: at(8),
            }
            .into(),
        ],
    )
    .await;
    assert_eq!(
        find(&w, Searcher::Customer(customer(1).0), "printer", None).await,
        vec![m(1)]
    );
    assert_eq!(
        find(&w, Searcher::Customer(customer(1).0), "reboot", None).await,
        vec![m(3)]
    );
    // Within one batch: a message sent then edited is found by its last text only, and one
    // sent then deleted is never found.
    let c2 = Actor::Customer(customer(2));
    w.conversation(
        conversation(2),
        vec![
            say(7, c2, "scanner offline", Visibility::Public, 9),
            ConversationEvent::from(MessageEdited {
                message_id: message(7),
                body: "scanner online again".into(),
                by: c2,
                at: at(10),
            }),
            say(8, c2, "scanner spare parts", Visibility::Public, 11),
            MessageDeleted {
                message_id: message(8),
                by: c2,
                at: at(12),
            }
            .into(),
        ],
    )
    .await;
    let agent9 = || Searcher::Agent(agent(9).0);
    assert_eq!(find(&w, agent9(), "scanner", None).await, vec![m(7)]);
    assert_eq!(find(&w, agent9(), "online", None).await, vec![m(7)]);
    assert!(find(&w, agent9(), "offline", None).await.is_empty());
    assert!(find(&w, agent9(), "parts", None).await.is_empty());
    // Query syntax in keywords is just text.
    assert_eq!(
        find(
            &w,
            Searcher::Agent(agent(9).0),
            "\"printer\" OR NEAR(",
            None
        )
        .await
        .len(),
        0
    );
    assert!(search::words("  !!  ").is_err());
    // Both backends split addresses into words and keep accents.
    w.conversation(
        conversation(3),
        vec![
            start(3, 1, Channel::Email, 20),
            say(
                6,
                c1,
                "write to bob@example.com about the café",
                Visibility::Public,
                21,
            ),
        ],
    )
    .await;
    assert_eq!(
        find(&w, Searcher::Agent(agent(9).0), "example", None).await,
        vec![m(6)]
    );
    assert_eq!(
        find(&w, Searcher::Agent(agent(9).0), "bob@example.com", None).await,
        vec![m(6)]
    );
    assert_eq!(
        find(&w, Searcher::Agent(agent(9).0), "café", None).await,
        vec![m(6)]
    );
    assert!(
        find(&w, Searcher::Agent(agent(9).0), "cafe", None)
            .await
            .is_empty()
    );
}

on_both_backends! {
    history_follows_merges_and_identities => super::history_follows_merges_and_identities;
    details_are_what_the_last_change_left => super::details_are_what_the_last_change_left;
    search_by_keyword_and_date_within_what_the_searcher_may_see => super::search_by_keyword_and_date_within_what_the_searcher_may_see;
}
