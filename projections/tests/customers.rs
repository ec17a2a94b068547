//! Customer history, identity lookup and message search: given events, what is found.

mod support;

use parley_domain::Actor;
use parley_domain::contact::SocialProfile;
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
            account: None,
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
            reply_token: None,
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
                    account: None,
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
                    account: None,
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
                    account: None,
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

/// A channel account's id as the log names it.
fn account(n: u128) -> String {
    format!("channel-{}", uuid::Uuid::from_u128(0x5000 + n))
}

fn through(channel: Channel, value: &str, account: Option<String>) -> ChannelIdentity {
    ChannelIdentity {
        channel,
        value: value.into(),
        account,
    }
}

fn created_as(
    who: u128,
    identity: ChannelIdentity,
    name: Option<&str>,
    email: Option<&str>,
) -> CustomerEvent {
    CustomerCreated {
        customer_id: customer(who),
        identity,
        name: name.map(Into::into),
        email: email.map(Into::into),
        at: at(0),
    }
    .into()
}

fn profile(
    on: u128,
    channel: Channel,
    user_id: &str,
    name: &str,
    phone: Option<&str>,
    username: Option<&str>,
    secs: i64,
) -> CustomerEvent {
    CustomerSocialProfileRecorded {
        account: account(on),
        channel,
        profile: SocialProfile {
            user_id: user_id.into(),
            name: Some(name.into()),
            phone: phone.map(Into::into),
            username: username.map(Into::into),
            locale: Some("pt_BR".into()),
        },
        at: at(secs),
    }
    .into()
}

fn merge(into: u128, secs: i64) -> CustomerEvent {
    CustomerMergedInto {
        survivor: customer(into),
        by: Actor::Agent(agent(1)),
        at: at(secs),
    }
    .into()
}

fn unmerge(from: u128, secs: i64) -> CustomerEvent {
    CustomerUnmerged {
        survivor: customer(from),
        by: Actor::Agent(agent(1)),
        at: at(secs),
    }
    .into()
}

async fn view_of(w: &World, who: u128) -> customers::CustomerView {
    let id = customer(who).to_string();
    w.query(customers::NAME, move |tx, t| {
        customers::customer_view(tx, t, &id)
    })
    .await
    .expect("the customer is known")
}

async fn found_by(w: &World, identity: ChannelIdentity) -> Option<String> {
    w.query(customers::NAME, move |tx, t| {
        customers::find_by_identity(tx, t, &identity)
    })
    .await
}

async fn two_accounts_meeting_one_number_keep_two_customers(backend: Backend) {
    let Some(w) = world(backend).await else {
        return;
    };
    let number = "+55 11 91234-0001";
    w.customer(
        customer(1),
        vec![created_as(
            1,
            through(Channel::Whatsapp, number, Some(account(1))),
            Some("Ana"),
            None,
        )],
    )
    .await;
    w.customer(
        customer(2),
        vec![created_as(
            2,
            through(Channel::Whatsapp, number, Some(account(2))),
            Some("Ana"),
            None,
        )],
    )
    .await;
    // Each account's identity finds its own customer, however the number is written.
    let written = "+5511912340001";
    assert_eq!(
        found_by(&w, through(Channel::Whatsapp, written, Some(account(1)))).await,
        Some(customer(1).to_string())
    );
    assert_eq!(
        found_by(&w, through(Channel::Whatsapp, written, Some(account(2)))).await,
        Some(customer(2).to_string())
    );
    // Neither is the number met without an account, nor through a third account.
    assert_eq!(
        found_by(&w, through(Channel::Whatsapp, written, None)).await,
        None
    );
    assert_eq!(
        found_by(&w, through(Channel::Whatsapp, written, Some(account(3)))).await,
        None
    );
    let view = view_of(&w, 2).await;
    assert_eq!(
        view.identities,
        vec![customers::IdentityView {
            channel: "whatsapp".into(),
            value: written.into(),
            account: Some(account(2)),
        }]
    );
    // A number met without an account is a third identity, of a third customer.
    w.customer(
        customer(3),
        vec![created_as(
            3,
            through(Channel::Whatsapp, number, None),
            None,
            None,
        )],
    )
    .await;
    assert_eq!(
        found_by(&w, through(Channel::Whatsapp, written, None)).await,
        Some(customer(3).to_string())
    );
    assert_eq!(view_of(&w, 3).await.identities[0].account, None);
}

async fn social_profiles_are_the_latest_per_account_and_follow_merges(backend: Backend) {
    let Some(w) = world(backend).await else {
        return;
    };
    w.customer(
        customer(1),
        vec![
            created_as(
                1,
                through(Channel::Line, "U1", Some(account(1))),
                None,
                None,
            ),
            profile(1, Channel::Line, "U1", "Ana", None, None, 10),
        ],
    )
    .await;
    let social = view_of(&w, 1).await.social;
    assert_eq!(
        social,
        vec![customers::SocialProfileView {
            account: account(1),
            channel: "line".into(),
            user_id: "U1".into(),
            name: Some("Ana".into()),
            phone: None,
            username: None,
            locale: Some("pt_BR".into()),
            recorded_at: at(10).0,
        }]
    );
    // A newer profile from the same account replaces it.
    w.customer(
        customer(1),
        vec![profile(
            1,
            Channel::Line,
            "U1",
            "Ana Souza",
            None,
            Some("anasouza"),
            20,
        )],
    )
    .await;
    let social = view_of(&w, 1).await.social;
    assert_eq!(social.len(), 1);
    assert_eq!(
        (
            social[0].name.as_deref(),
            social[0].username.as_deref(),
            social[0].recorded_at
        ),
        (Some("Ana Souza"), Some("anasouza"), at(20).0)
    );

    // Another customer, met through another account; merged into the first, its profile shows
    // on the survivor, and goes back with it on the unmerge.
    w.customer(
        customer(2),
        vec![
            created_as(
                2,
                through(Channel::Whatsapp, "+15550002", Some(account(2))),
                None,
                None,
            ),
            profile(
                2,
                Channel::Whatsapp,
                "15550002",
                "Ana S.",
                Some("+1 555 0002"),
                None,
                30,
            ),
        ],
    )
    .await;
    w.customer(customer(2), vec![merge(1, 40)]).await;
    let survivor = view_of(&w, 1).await;
    assert_eq!(
        survivor
            .social
            .iter()
            .map(|p| (p.account.clone(), p.user_id.as_str()))
            .collect::<Vec<_>>(),
        vec![(account(1), "U1"), (account(2), "15550002")]
    );
    assert_eq!(survivor.merged, vec![customer(2).to_string()]);
    w.customer(customer(2), vec![unmerge(1, 50)]).await;
    let survivor = view_of(&w, 1).await;
    assert_eq!(survivor.social.len(), 1);
    assert_eq!(survivor.social[0].account, account(1));
    assert_eq!(view_of(&w, 2).await.social[0].user_id, "15550002");
}

/// The customers a search for `q` finds, page by page of `limit`, as ids; every cursor is
/// followed.
async fn search_all(w: &World, q: &str, limit: usize) -> Vec<String> {
    let key = customers::search_key(q).unwrap();
    let mut found = Vec::new();
    let mut after = None;
    loop {
        let (key, cursor) = (key.clone(), after.clone());
        let page = w
            .query(customers::NAME, move |tx, t| {
                customers::search(tx, t, &key, cursor.as_ref(), limit)
            })
            .await;
        assert!(page.items.len() <= limit);
        found.extend(page.items.into_iter().map(|c| c.customer_id));
        match page.next_cursor {
            Some(cursor) => after = Some(customers::parse_search_cursor(&cursor).unwrap()),
            None => break,
        }
    }
    found
}

async fn customers_are_found_by_the_beginning_of_what_is_known_of_them(backend: Backend) {
    let Some(w) = world(backend).await else {
        return;
    };
    let id = |n| customer(n).to_string();
    w.customer(
        customer(1),
        vec![created_as(
            1,
            through(Channel::Email, "Ana.Souza@Example.com", None),
            Some("Ana Maria Souza"),
            Some("ana.souza@example.com"),
        )],
    )
    .await;
    w.customer(
        customer(2),
        vec![
            created_as(
                2,
                through(Channel::Whatsapp, "+55 11 91234-0002", Some(account(1))),
                Some("Bruno Alves"),
                None,
            ),
            profile(
                1,
                Channel::Whatsapp,
                "5511912340002",
                "Bruno",
                Some("+55 11 91234-0002"),
                None,
                10,
            ),
        ],
    )
    .await;
    w.customer(
        customer(3),
        vec![
            created_as(
                3,
                through(Channel::Line, "U3", Some(account(2))),
                Some("Anabela"),
                None,
            ),
            profile(2, Channel::Line, "U3", "Bela", None, Some("@belinha"), 10),
        ],
    )
    .await;

    // A word of the name, or the start of the whole name; in any case.
    assert_eq!(search_all(&w, "ana", 10).await, vec![id(1), id(3)]);
    assert_eq!(search_all(&w, "SOUZ", 10).await, vec![id(1)]);
    assert_eq!(search_all(&w, "ana m", 10).await, vec![id(1)]);
    assert_eq!(
        search_all(&w, "maria souza", 10).await,
        Vec::<String>::new()
    );
    // The e-mail address (the customer's, and its e-mail identity, count once).
    assert_eq!(search_all(&w, "ana.souza@", 10).await, vec![id(1)]);
    // The phone number, with or without its punctuation and plus sign.
    assert_eq!(search_all(&w, "5511", 10).await, vec![id(2)]);
    assert_eq!(search_all(&w, "+55 11 9123", 10).await, vec![id(2)]);
    assert_eq!(search_all(&w, "11 91234", 10).await, Vec::<String>::new());
    // The social profile: a username with or without its @, a platform name.
    assert_eq!(search_all(&w, "belin", 10).await, vec![id(3)]);
    assert_eq!(search_all(&w, "@belinha", 10).await, vec![id(3)]);
    assert_eq!(search_all(&w, "bela", 10).await, vec![id(3)]);
    assert_eq!(search_all(&w, "u3", 10).await, vec![id(3)]);
    // A renamed customer is found by its new name only.
    w.customer(
        customer(3),
        vec![CustomerEvent::from(CustomerDetailsChanged {
            name: Some("Ana Isabela".into()),
            email: None,
            by: Actor::Agent(agent(1)),
            at: at(20),
        })],
    )
    .await;
    assert_eq!(search_all(&w, "anab", 10).await, Vec::<String>::new());
    assert_eq!(search_all(&w, "isa", 10).await, vec![id(3)]);
    assert_eq!(search_all(&w, "ana", 1).await, vec![id(1), id(3)]);

    // Merged, customer 3 answers as customer 1, once, whichever of them matched.
    w.customer(customer(3), vec![merge(1, 30)]).await;
    assert_eq!(search_all(&w, "belin", 10).await, vec![id(1)]);
    assert_eq!(search_all(&w, "isa", 10).await, vec![id(1)]);
    assert_eq!(search_all(&w, "ana", 1).await, vec![id(1)]);
    assert_eq!(search_all(&w, "a", 1).await, vec![id(2), id(1)]);
    let page = {
        let key = customers::search_key("ana").unwrap();
        w.query(customers::NAME, move |tx, t| {
            customers::search(tx, t, &key, None, 10)
        })
        .await
    };
    assert_eq!((page.items.len(), page.next_cursor), (1, None));
    let ana = &page.items[0];
    assert_eq!(
        (ana.customer_id.as_str(), ana.name.as_deref()),
        (id(1).as_str(), Some("Ana Maria Souza"))
    );
    assert_eq!(
        ana.social
            .iter()
            .map(|p| p.user_id.as_str())
            .collect::<Vec<_>>(),
        vec!["U3"]
    );
    // Unmerged, it is found as itself again.
    w.customer(customer(3), vec![unmerge(1, 40)]).await;
    assert_eq!(search_all(&w, "belin", 10).await, vec![id(3)]);
    assert_eq!(search_all(&w, "ana", 1).await, vec![id(1), id(3)]);
    assert_eq!(search_all(&w, "a", 1).await, vec![id(2), id(1), id(3)]);

    // Queries a search does not take.
    assert!(customers::search_key("").is_err());
    assert!(customers::search_key("   ").is_err());
    assert!(customers::search_key(&"a".repeat(101)).is_err());
    assert!(customers::search_key(&"a".repeat(100)).is_ok());
    assert!(customers::parse_search_cursor("not a cursor").is_err());
}

on_both_backends! {
    two_accounts_meeting_one_number_keep_two_customers => super::two_accounts_meeting_one_number_keep_two_customers;
    social_profiles_are_the_latest_per_account_and_follow_merges => super::social_profiles_are_the_latest_per_account_and_follow_merges;
    customers_are_found_by_the_beginning_of_what_is_known_of_them => super::customers_are_found_by_the_beginning_of_what_is_known_of_them;
    history_follows_merges_and_identities => super::history_follows_merges_and_identities;
    details_are_what_the_last_change_left => super::details_are_what_the_last_change_left;
    search_by_keyword_and_date_within_what_the_searcher_may_see => super::search_by_keyword_and_date_within_what_the_searcher_may_see;
}
