//! The social notifier: given ticket events, the expected tabs, views, counts and flag.

mod support;

use parley_domain::Actor;
use parley_domain::conversation::Channel;
use parley_domain::ticket::*;
use parley_projections::notifier::{self, CustomerStatus, Notifier, Summary};
use std::sync::Arc;
use support::*;

fn by() -> Actor {
    Actor::Agent(agent(9))
}

/// A ticket created from a customer's message on `channel`, as the domain creates them.
fn social(n: u128, channel: Channel, secs: i64) -> TicketEvent {
    TicketCreated {
        reply_token: None,
        ticket_id: ticket(n),
        ticket_type: TicketType::Ticket,
        title: format!("ticket {n}"),
        description: String::new(),
        priority: Priority::Normal,
        requester: Some(customer(n)),
        source: TicketSource::Social { channel },
        tags: vec![
            channel_tag(channel).to_owned(),
            MESSAGING_SUPPORT_TAG.to_owned(),
        ],
        channel_info: Some(ChannelInfo {
            channel,
            account_id: "account-1".into(),
            customer_handle: format!("handle-{n}"),
        }),
        created_by: Actor::Customer(customer(n)),
        at: at(secs),
    }
    .into()
}

/// A ticket created through the API, with `tags`.
fn api(n: u128, tags: &[&str], secs: i64) -> TicketEvent {
    TicketCreated {
        reply_token: None,
        ticket_id: ticket(n),
        ticket_type: TicketType::Ticket,
        title: format!("ticket {n}"),
        description: String::new(),
        priority: Priority::Normal,
        requester: None,
        source: TicketSource::Api,
        tags: tags.iter().map(|t| t.to_string()).collect(),
        channel_info: None,
        created_by: by(),
        at: at(secs),
    }
    .into()
}

fn status(from: TicketStatus, to: TicketStatus, secs: i64) -> TicketEvent {
    TicketStatusChanged {
        from,
        to,
        by: by(),
        at: at(secs),
    }
    .into()
}

/// An assignment as the domain records it for a new ticket: assigned, then opened.
fn assign_new(who: u128, secs: i64) -> Vec<TicketEvent> {
    vec![
        TicketAssigned {
            agent: agent(who),
            by: by(),
            at: at(secs),
        }
        .into(),
        status(TicketStatus::New, TicketStatus::Open, secs),
    ]
}

fn assigned(who: u128, secs: i64) -> TicketEvent {
    TicketAssigned {
        agent: agent(who),
        by: by(),
        at: at(secs),
    }
    .into()
}

fn unassigned(who: u128, secs: i64) -> TicketEvent {
    TicketUnassigned {
        agent: agent(who),
        by: by(),
        at: at(secs),
    }
    .into()
}

fn tag_added(tag: &str, secs: i64) -> TicketEvent {
    TicketTagAdded {
        tag: tag.into(),
        by: by(),
        at: at(secs),
    }
    .into()
}

fn tag_removed(tag: &str, secs: i64) -> TicketEvent {
    TicketTagRemoved {
        tag: tag.into(),
        by: by(),
        at: at(secs),
    }
    .into()
}

fn customer_message(n: u128, secs: i64) -> TicketEvent {
    CustomerMessageReceived {
        reply_token: None,
        message_id: message(n).0,
        body: format!("message {n}"),
        attachments: vec![],
        at: at(secs),
    }
    .into()
}

async fn world(backend: Backend) -> Option<World> {
    World::new(backend, vec![Arc::new(Notifier) as _]).await
}

fn t(n: u128) -> String {
    ticket(n).to_string()
}

#[derive(Clone, Copy)]
enum View {
    AssignedToMe(u128),
    Unassigned,
    Yours(u128),
}

async fn items(w: &World, view: View) -> Vec<notifier::NotifierItem> {
    w.query(notifier::NAME, move |tx, tables| {
        let page = match view {
            View::AssignedToMe(who) => {
                notifier::assigned_to_me(tx, tables, &agent(who).to_string(), None, Some(100))
            }
            View::Unassigned => notifier::unassigned(tx, tables, None, Some(100)),
            View::Yours(who) => {
                notifier::your_tickets(tx, tables, &agent(who).to_string(), None, Some(100))
            }
        }?;
        assert_eq!(page.next_cursor, None);
        Ok(page.items)
    })
    .await
}

async fn ids(w: &World, view: View) -> Vec<String> {
    items(w, view)
        .await
        .into_iter()
        .map(|i| i.ticket_id)
        .collect()
}

async fn summary(w: &World, who: u128) -> Summary {
    let agent = agent(who).to_string();
    w.query(notifier::NAME, move |tx, t| {
        notifier::summary(tx, t, &agent)
    })
    .await
}

fn sums(assigned_to_me: i64, unassigned: i64, your_tickets: i64, attention: bool) -> Summary {
    Summary {
        assigned_to_me,
        unassigned,
        your_tickets,
        attention,
    }
}

/// Maintained counts equal counts recomputed by scanning the rows.
async fn counts_are_exact(w: &World) {
    let (kept, scanned) = w
        .query(notifier::NAME, |tx, t| {
            Ok((
                notifier::all_counts(tx, t)?,
                notifier::counts_by_scanning(tx, t)?,
            ))
        })
        .await;
    assert_eq!(kept, scanned);
}

async fn tabs_follow_assignment_and_status(backend: Backend) {
    let Some(w) = world(backend).await else {
        return;
    };
    // 1: new and unassigned; 2: assigned to agent 1 (and so opened); 3: not social.
    w.ticket(ticket(1), vec![social(1, Channel::Whatsapp, 0)])
        .await;
    let mut two = vec![social(2, Channel::Line, 1)];
    two.extend(assign_new(1, 2));
    w.ticket(ticket(2), two).await;
    let mut three = vec![api(3, &["billing"], 3)];
    three.extend(assign_new(1, 4));
    w.ticket(ticket(3), three).await;

    assert_eq!(ids(&w, View::AssignedToMe(1)).await, vec![t(2)]);
    assert_eq!(ids(&w, View::Unassigned).await, vec![t(1)]);
    assert_eq!(summary(&w, 1).await, sums(1, 1, 1, true));
    assert_eq!(summary(&w, 2).await, sums(0, 1, 0, true));
    counts_are_exact(&w).await;

    // Pending leaves "assigned to me" but stays in "your social messaging tickets".
    w.ticket(
        ticket(2),
        vec![status(TicketStatus::Open, TicketStatus::Pending, 5)],
    )
    .await;
    assert!(ids(&w, View::AssignedToMe(1)).await.is_empty());
    assert_eq!(ids(&w, View::Yours(1)).await, vec![t(2)]);
    assert_eq!(summary(&w, 1).await, sums(0, 1, 1, true));
    counts_are_exact(&w).await;

    // The customer writes again: the ticket reopens and comes back.
    w.ticket(
        ticket(2),
        vec![
            status(TicketStatus::Pending, TicketStatus::Open, 6),
            customer_message(1, 6),
        ],
    )
    .await;
    assert_eq!(ids(&w, View::AssignedToMe(1)).await, vec![t(2)]);
    assert_eq!(summary(&w, 1).await, sums(1, 1, 1, true));

    // Solved and closed leave the tab too.
    w.ticket(
        ticket(2),
        vec![
            status(TicketStatus::Open, TicketStatus::Solved, 7),
            status(TicketStatus::Solved, TicketStatus::Closed, 8),
        ],
    )
    .await;
    assert!(ids(&w, View::AssignedToMe(1)).await.is_empty());
    assert_eq!(
        items(&w, View::Yours(1)).await[0].status,
        TicketStatus::Closed.name()
    );

    // Assigning ticket 1 moves it from "unassigned" to agent 2's tab; the red dot goes out.
    w.ticket(ticket(1), assign_new(2, 9)).await;
    assert!(ids(&w, View::Unassigned).await.is_empty());
    assert_eq!(ids(&w, View::AssignedToMe(2)).await, vec![t(1)]);
    assert_eq!(summary(&w, 2).await, sums(1, 0, 1, false));
    counts_are_exact(&w).await;

    // Moved from agent 2 to agent 1, then back to nobody: open, so still no red dot.
    w.ticket(ticket(1), vec![assigned(1, 10)]).await;
    assert!(ids(&w, View::AssignedToMe(2)).await.is_empty());
    assert_eq!(ids(&w, View::AssignedToMe(1)).await, vec![t(1)]);
    // Ticket 2's customer wrote last (at 6).
    assert_eq!(ids(&w, View::Yours(1)).await, vec![t(2), t(1)]);
    w.ticket(ticket(1), vec![unassigned(1, 11)]).await;
    assert_eq!(ids(&w, View::Unassigned).await, vec![t(1)]);
    assert_eq!(summary(&w, 1).await, sums(0, 1, 1, false));
    counts_are_exact(&w).await;
}

async fn unassigned_tab_keeps_every_status(backend: Backend) {
    let Some(w) = world(backend).await else {
        return;
    };
    w.ticket(
        ticket(1),
        vec![
            social(1, Channel::Facebook, 0),
            status(TicketStatus::New, TicketStatus::Pending, 1),
        ],
    )
    .await;
    w.ticket(
        ticket(2),
        vec![
            social(2, Channel::Facebook, 2),
            status(TicketStatus::New, TicketStatus::Solved, 3),
        ],
    )
    .await;
    assert_eq!(ids(&w, View::Unassigned).await, vec![t(2), t(1)]);
    // Unassigned, but none is new: no red dot.
    assert_eq!(summary(&w, 1).await, sums(0, 2, 0, false));
    w.ticket(ticket(3), vec![social(3, Channel::Twitter, 4)])
        .await;
    assert_eq!(summary(&w, 1).await, sums(0, 3, 0, true));
    w.ticket(
        ticket(3),
        vec![status(TicketStatus::New, TicketStatus::Open, 5)],
    )
    .await;
    assert_eq!(summary(&w, 1).await, sums(0, 3, 0, false));
    counts_are_exact(&w).await;
}

async fn messaging_support_tag_decides_membership(backend: Backend) {
    let Some(w) = world(backend).await else {
        return;
    };
    let mut one = vec![social(1, Channel::Whatsapp, 0)];
    one.extend(assign_new(1, 1));
    w.ticket(ticket(1), one).await;
    w.ticket(ticket(2), vec![social(2, Channel::Whatsapp, 2)])
        .await;
    assert_eq!(summary(&w, 1).await, sums(1, 1, 1, true));

    // Removing the tag takes both out of every view and count.
    w.ticket(ticket(1), vec![tag_removed(MESSAGING_SUPPORT_TAG, 3)])
        .await;
    w.ticket(ticket(2), vec![tag_removed(MESSAGING_SUPPORT_TAG, 3)])
        .await;
    assert!(ids(&w, View::AssignedToMe(1)).await.is_empty());
    assert!(ids(&w, View::Yours(1)).await.is_empty());
    assert!(ids(&w, View::Unassigned).await.is_empty());
    assert_eq!(summary(&w, 1).await, sums(0, 0, 0, false));
    counts_are_exact(&w).await;

    // Changes while out of the notifier still count when the tag comes back.
    w.ticket(
        ticket(1),
        vec![
            status(TicketStatus::Open, TicketStatus::Pending, 4),
            tag_added(MESSAGING_SUPPORT_TAG, 5),
        ],
    )
    .await;
    w.ticket(ticket(2), vec![tag_added(MESSAGING_SUPPORT_TAG, 5)])
        .await;
    assert!(ids(&w, View::AssignedToMe(1)).await.is_empty());
    assert_eq!(ids(&w, View::Yours(1)).await, vec![t(1)]);
    assert_eq!(ids(&w, View::Unassigned).await, vec![t(2)]);
    assert_eq!(summary(&w, 1).await, sums(0, 1, 1, true));
    counts_are_exact(&w).await;

    // A ticket made through the API joins once tagged; its channel comes from its tags.
    w.ticket(ticket(3), vec![api(3, &["line"], 6)]).await;
    assert_eq!(ids(&w, View::Unassigned).await, vec![t(2)]);
    w.ticket(ticket(3), vec![tag_added(MESSAGING_SUPPORT_TAG, 7)])
        .await;
    let listed = items(&w, View::Unassigned).await;
    assert_eq!(listed[0].ticket_id, t(3));
    assert_eq!(listed[0].channel.as_deref(), Some("line"));
    assert_eq!(listed[0].requester, None);
    // Channel info, once set, names the channel.
    w.ticket(
        ticket(3),
        vec![TicketEvent::from(TicketChannelInfoSet {
            channel_info: Some(ChannelInfo {
                channel: Channel::Wechat,
                account_id: "account-2".into(),
                customer_handle: "someone".into(),
            }),
            by: by(),
            at: at(8),
        })],
    )
    .await;
    assert_eq!(
        items(&w, View::Unassigned).await[0].channel.as_deref(),
        Some("wechat")
    );
    assert_eq!(summary(&w, 1).await, sums(0, 2, 1, true));
    counts_are_exact(&w).await;
}

async fn status_line_follows_customer_replies(backend: Backend) {
    let Some(w) = world(backend).await else {
        return;
    };
    w.ticket(ticket(1), vec![social(1, Channel::Whatsapp, 0)])
        .await;
    w.ticket(ticket(2), vec![social(2, Channel::Line, 10)])
        .await;
    let listed = items(&w, View::Unassigned).await;
    assert_eq!(
        listed
            .iter()
            .map(|i| i.ticket_id.clone())
            .collect::<Vec<_>>(),
        vec![t(2), t(1)]
    );
    let first = &listed[1];
    assert_eq!(first.customer_status, CustomerStatus::StartedNewChat);
    assert_eq!(first.customer_status.text(), "started a new chat");
    assert_eq!(first.channel.as_deref(), Some("whatsapp"));
    assert_eq!(first.title, "ticket 1");
    assert_eq!(first.status, "new");
    assert_eq!(first.requester, Some(customer(1).to_string()));
    assert_eq!(first.assignee, None);
    assert_eq!(first.last_activity_at, at(0).0);

    // Ticket 1's customer replies: its line changes and it moves to the top.
    w.ticket(ticket(1), vec![customer_message(1, 20)]).await;
    let listed = items(&w, View::Unassigned).await;
    assert_eq!(listed[0].ticket_id, t(1));
    assert_eq!(listed[0].customer_status, CustomerStatus::Replied);
    assert_eq!(
        listed[0].customer_status.text(),
        "replied to the conversation"
    );
    assert_eq!(listed[0].last_activity_at, at(20).0);
    assert_eq!(listed[1].customer_status, CustomerStatus::StartedNewChat);

    // A late delivery of an older message never moves the ticket back.
    w.ticket(ticket(1), vec![customer_message(2, 5)]).await;
    assert_eq!(
        items(&w, View::Unassigned).await[0].last_activity_at,
        at(20).0
    );

    // The title follows changes.
    w.ticket(
        ticket(2),
        vec![TicketEvent::from(TicketTitleChanged {
            title: "renamed".into(),
            by: by(),
            at: at(21),
        })],
    )
    .await;
    assert_eq!(items(&w, View::Unassigned).await[1].title, "renamed");
    counts_are_exact(&w).await;
}

async fn pages_of_twenty_with_a_cursor(backend: Backend) {
    let Some(w) = world(backend).await else {
        return;
    };
    for n in 0..45u128 {
        // Equal activity times for pairs: the id breaks the tie.
        let mut events = vec![social(n, Channel::Whatsapp, (n / 2) as i64)];
        if n.is_multiple_of(3) {
            events.extend(assign_new(1, 100));
        }
        w.ticket(ticket(n), events).await;
    }
    let mut expected: Vec<u128> = (0..45).collect();
    expected.sort_by_key(|n| std::cmp::Reverse((n / 2, ticket(*n).to_string())));
    let expected_for = |keep: fn(&u128) -> bool| -> Vec<String> {
        expected.iter().copied().filter(keep).map(t).collect()
    };

    // At the default page size: the 30 unassigned tickets in pages of 20 and 10; agent 1's 15
    // (all open) in one page of each of its views.
    for (view, keep, sizes) in [
        (
            View::Unassigned,
            (|n: &u128| !n.is_multiple_of(3)) as fn(&u128) -> bool,
            vec![20, 10],
        ),
        (View::Yours(1), |n: &u128| n.is_multiple_of(3), vec![15]),
        (
            View::AssignedToMe(1),
            |n: &u128| n.is_multiple_of(3),
            vec![15],
        ),
    ] {
        let (seen, got_sizes) = all_pages(&w, view, None).await;
        assert_eq!(seen, expected_for(keep));
        assert_eq!(got_sizes, sizes);
    }
    counts_are_exact(&w).await;
    assert_eq!(summary(&w, 1).await, sums(15, 30, 15, true));

    // Unassigned again: 45 in pages of 20, 20 and 5.
    for n in (0..45u128).filter(|n| n.is_multiple_of(3)) {
        w.ticket(ticket(n), vec![unassigned(1, 200)]).await;
    }
    let (seen, sizes) = all_pages(&w, View::Unassigned, None).await;
    assert_eq!(seen, expected_for(|_| true));
    assert_eq!(sizes, vec![20, 20, 5]);
    // Limits are clamped to 1..=100.
    let (_, sizes) = all_pages(&w, View::Unassigned, Some(0)).await;
    assert_eq!(sizes, vec![1; 45]);
    let (_, sizes) = all_pages(&w, View::Unassigned, Some(1_000)).await;
    assert_eq!(sizes, vec![45]);

    // Cursors round-trip; anything else is refused.
    let cursor = notifier::Cursor {
        last_activity_at: at(3).0,
        ticket_id: t(7),
    };
    assert_eq!(
        notifier::parse_cursor(&cursor.to_string()),
        Ok(cursor.clone())
    );
    for bad in [
        "",
        "nonsense",
        "12.not-a-uuid",
        "x.00000000-0000-0000-0000-00000000f007",
    ] {
        assert_eq!(
            notifier::parse_cursor(bad),
            Err(notifier::BadCursor(bad.to_owned()))
        );
    }
    // A page after that cursor starts right after ticket 7 (time 3): ticket 6, then time 2.
    let after = w
        .query(notifier::NAME, move |tx, t| {
            notifier::unassigned(tx, t, Some(&cursor), Some(3))
        })
        .await;
    let mut rest: Vec<String> = expected_for(|_| true);
    let from = rest.iter().position(|id| *id == t(7)).unwrap() + 1;
    rest = rest[from..from + 3].to_vec();
    assert_eq!(
        after
            .items
            .into_iter()
            .map(|i| i.ticket_id)
            .collect::<Vec<_>>(),
        rest
    );
    counts_are_exact(&w).await;
}

/// Follows the cursor to the end; returns every id seen and each page's size.
async fn all_pages(w: &World, view: View, limit: Option<usize>) -> (Vec<String>, Vec<usize>) {
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let mut cursor: Option<notifier::Cursor> = None;
    loop {
        let c = cursor.clone();
        let page = w
            .query(notifier::NAME, move |tx, t| match view {
                View::AssignedToMe(who) => {
                    notifier::assigned_to_me(tx, t, &agent(who).to_string(), c.as_ref(), limit)
                }
                View::Unassigned => notifier::unassigned(tx, t, c.as_ref(), limit),
                View::Yours(who) => {
                    notifier::your_tickets(tx, t, &agent(who).to_string(), c.as_ref(), limit)
                }
            })
            .await;
        sizes.push(page.items.len());
        seen.extend(page.items.into_iter().map(|i| i.ticket_id));
        match page.next_cursor {
            Some(next) => cursor = Some(notifier::parse_cursor(&next).unwrap()),
            None => break,
        }
    }
    (seen, sizes)
}

on_both_backends! {
    tabs_follow_assignment_and_status => super::tabs_follow_assignment_and_status;
    unassigned_tab_keeps_every_status => super::unassigned_tab_keeps_every_status;
    messaging_support_tag_decides_membership => super::messaging_support_tag_decides_membership;
    status_line_follows_customer_replies => super::status_line_follows_customer_replies;
    pages_of_twenty_with_a_cursor => super::pages_of_twenty_with_a_cursor;
}
