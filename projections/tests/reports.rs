//! Reports: given events, the expected figures per day, channel, agent and queue; social
//! tickets; and the rules of a generation, which change only with a rebuild.

mod support;

use parley_domain::conversation::*;
use parley_domain::helpdesk::{
    BusinessHours, BusinessHoursSet, HelpDeskEvent, OpeningHours, ReportRulesChanged,
};
use parley_domain::ids::{AgentId, QueueId};
use parley_domain::ticket::*;
use parley_domain::{Actor, Timestamp};
use parley_projections::reports::{
    self, Durations, GroupBy, ReportQuery, ReportRow, ReportRules, Reports, SocialQuery, SocialRow,
};
use parley_projections::workload::{Shape, Workload};
use std::sync::Arc;
use support::*;

/// Monday 2026-05-25 00:00 UTC.
const MONDAY: i64 = 1_779_667_200;
const HOUR: i64 = 3_600;
const DAY: i64 = 24 * HOUR;

/// `day` days after Monday 2026-05-25, at `hh:mm` UTC.
fn t(day: i64, hh: i64, mm: i64) -> Timestamp {
    Timestamp::from_secs(MONDAY + day * DAY + hh * HOUR + mm * 60)
}

const MON: &str = "2026-05-25";
const TUE: &str = "2026-05-26";
const WED: &str = "2026-05-27";
const FRI: &str = "2026-05-29";
const NEXT_MON: &str = "2026-06-01";

fn started(
    n: u128,
    channel: Channel,
    queue_id: Option<QueueId>,
    at: Timestamp,
) -> ConversationEvent {
    ConversationStarted {
        conversation_id: conversation(n),
        kind: ConversationKind::Customer,
        channel,
        queue: queue_id,
        subject: format!("conversation {n}"),
        started_by: Actor::Customer(customer(1)),
        customers: vec![customer(1)],
        members: vec![],
        origin: None,
        at,
    }
    .into()
}

fn sent(n: u128, author: Actor, visibility: Visibility, at: Timestamp) -> ConversationEvent {
    MessageSent {
        message_id: message(n),
        author,
        body: format!("message {n}"),
        visibility,
        attachments: vec![],
        mentions: vec![],
        quote_of: None,
        at,
    }
    .into()
}

fn from_customer(n: u128, at: Timestamp) -> ConversationEvent {
    sent(n, Actor::Customer(customer(1)), Visibility::Public, at)
}

fn reply(n: u128, by: AgentId, at: Timestamp) -> ConversationEvent {
    sent(n, Actor::Agent(by), Visibility::Public, at)
}

fn assigned(to: AgentId, at: Timestamp) -> ConversationEvent {
    ConversationAssigned {
        agent: to,
        by: Actor::Agent(to),
        at,
    }
    .into()
}

fn closed(by: AgentId, at: Timestamp) -> ConversationEvent {
    ConversationClosed {
        by: Actor::Agent(by),
        at,
    }
    .into()
}

fn rated(score: u8, at: Timestamp) -> ConversationEvent {
    ConversationRated {
        customer: customer(1),
        score,
        comment: None,
        at,
    }
    .into()
}

async fn world(backend: Backend) -> Option<World> {
    World::new(backend, vec![Arc::new(Reports) as _]).await
}

async fn report(w: &World, q: ReportQuery) -> Vec<ReportRow> {
    w.query(reports::NAME, move |tx, t| reports::report(tx, t, &q))
        .await
}

fn query(from: &str, to: &str, group_by: GroupBy) -> ReportQuery {
    ReportQuery::new(from, to, group_by).unwrap()
}

/// The row of `group`; a missing row is an empty one.
fn row(rows: &[ReportRow], group: Option<&str>) -> ReportRow {
    rows.iter()
        .find(|r| r.group.as_deref() == group)
        .cloned()
        .unwrap_or_else(|| ReportRow {
            group: group.map(str::to_owned),
            ..ReportRow::default()
        })
}

fn groups(rows: &[ReportRow]) -> Vec<Option<String>> {
    rows.iter().map(|r| r.group.clone()).collect()
}

fn durations(count: i64, median: i64, p90: i64) -> Durations {
    Durations {
        count,
        median_secs: Some(median),
        p90_secs: Some(p90),
    }
}

fn close_to(value: Option<f64>, expected: f64) -> bool {
    value.is_some_and(|v| (v - expected).abs() < 1e-9)
}

async fn counts_medians_and_groups(backend: Backend) {
    let Some(w) = world(backend).await else {
        return;
    };
    let (a1, a2) = (agent(1), agent(2));
    // 1: widget, queue 1; answered by agent 1 after 10 minutes, closed after an hour.
    w.conversation(
        conversation(1),
        vec![
            started(1, Channel::Widget, Some(queue(1)), t(0, 9, 0)),
            from_customer(1, t(0, 9, 0)),
            assigned(a1, t(0, 9, 1)),
            reply(2, a1, t(0, 9, 10)),
            sent(3, Actor::Agent(a1), Visibility::Internal, t(0, 9, 11)),
            from_customer(4, t(0, 9, 20)),
            closed(a1, t(0, 10, 0)),
        ],
    )
    .await;
    // 2: widget, queue 1; an automated message is no response; agent 1 answers after 30
    // minutes, closes after two hours.
    w.conversation(
        conversation(2),
        vec![
            started(2, Channel::Widget, Some(queue(1)), t(0, 11, 0)),
            sent(5, Actor::System, Visibility::Public, t(0, 11, 1)),
            assigned(a1, t(0, 11, 2)),
            reply(6, a1, t(0, 11, 30)),
            from_customer(7, t(0, 11, 40)),
            closed(a1, t(0, 13, 0)),
        ],
    )
    .await;
    // 3: WhatsApp, queue 2; agent 2 answers after 5 minutes, closes after 20.
    w.conversation(
        conversation(3),
        vec![
            started(3, Channel::Whatsapp, Some(queue(2)), t(0, 12, 0)),
            from_customer(8, t(0, 12, 0)),
            assigned(a2, t(0, 12, 1)),
            reply(9, a2, t(0, 12, 5)),
            closed(a2, t(0, 12, 20)),
        ],
    )
    .await;
    // 4: widget, no queue, still waiting.
    w.conversation(
        conversation(4),
        vec![
            started(4, Channel::Widget, None, t(0, 14, 0)),
            from_customer(10, t(0, 14, 0)),
        ],
    )
    .await;
    // 5: internal conversations are not reported.
    w.conversation(
        conversation(5),
        vec![
            ConversationEvent::from(ConversationStarted {
                conversation_id: conversation(5),
                kind: ConversationKind::Internal,
                channel: Channel::Internal,
                queue: None,
                subject: "between us".into(),
                started_by: Actor::Agent(a1),
                customers: vec![],
                members: vec![a2],
                origin: None,
                at: t(0, 15, 0),
            }),
            reply(11, a1, t(0, 15, 1)),
            closed(a1, t(0, 15, 2)),
        ],
    )
    .await;

    let by_day = report(&w, query(MON, TUE, GroupBy::Day)).await;
    assert_eq!(
        groups(&by_day),
        vec![Some(MON.to_owned()), Some(TUE.to_owned())]
    );
    let monday = row(&by_day, Some(MON));
    assert_eq!(monday.new_conversations, 4);
    assert_eq!(monday.closed, 3);
    assert_eq!((monday.reopened, monday.spam, monday.transfers), (0, 0, 0));
    // 300, 600, 1800 seconds.
    assert_eq!(monday.first_response, durations(3, 600, 1_800));
    // 1200, 3600, 7200 seconds.
    assert_eq!(monday.resolution, durations(3, 3_600, 7_200));
    // 3 (conversation 1: internal notes aside), 2 (2: automations aside), 2 (3).
    assert!(close_to(monday.messages_per_conversation, 7.0 / 3.0));
    assert_eq!(monday.ratings, 0);
    assert_eq!(monday.rating_average, None);
    assert_eq!(
        row(&by_day, Some(TUE)),
        ReportRow {
            group: Some(TUE.to_owned()),
            ..ReportRow::default()
        }
    );

    let by_channel = report(&w, query(MON, MON, GroupBy::Channel)).await;
    assert_eq!(
        groups(&by_channel),
        vec![Some("whatsapp".to_owned()), Some("widget".to_owned())]
    );
    let widget = row(&by_channel, Some("widget"));
    assert_eq!((widget.new_conversations, widget.closed), (3, 2));
    assert_eq!(widget.first_response, durations(2, 600, 1_800));
    assert_eq!(widget.resolution, durations(2, 3_600, 7_200));
    assert!(close_to(widget.messages_per_conversation, 2.5));
    let whatsapp = row(&by_channel, Some("whatsapp"));
    assert_eq!((whatsapp.new_conversations, whatsapp.closed), (1, 1));
    assert_eq!(whatsapp.first_response, durations(1, 300, 300));

    // Conversation 4 was never assigned: it belongs to no agent and no queue.
    let by_agent = report(&w, query(MON, MON, GroupBy::Agent)).await;
    assert_eq!(
        groups(&by_agent),
        vec![None, Some(a1.to_string()), Some(a2.to_string())]
    );
    assert_eq!(row(&by_agent, None).new_conversations, 1);
    let first = row(&by_agent, Some(&a1.to_string()));
    assert_eq!((first.new_conversations, first.closed), (2, 2));
    assert_eq!(first.first_response, durations(2, 600, 1_800));
    let by_queue = report(&w, query(MON, MON, GroupBy::Queue)).await;
    assert_eq!(
        groups(&by_queue),
        vec![None, Some(queue(1).to_string()), Some(queue(2).to_string())]
    );
    assert_eq!(row(&by_queue, Some(&queue(2).to_string())).closed, 1);

    // Filters.
    let mut whatsapp_only = query(MON, TUE, GroupBy::Day);
    whatsapp_only.channel = Some("whatsapp".into());
    let rows = report(&w, whatsapp_only).await;
    let monday = row(&rows, Some(MON));
    assert_eq!((monday.new_conversations, monday.closed), (1, 1));
    assert_eq!(monday.resolution, durations(1, 1_200, 1_200));
    let mut agent_two = query(MON, MON, GroupBy::Channel);
    agent_two.agent = Some(a2.to_string());
    let rows = report(&w, agent_two).await;
    assert_eq!(groups(&rows), vec![Some("whatsapp".to_owned())]);
    let mut queue_one = query(MON, MON, GroupBy::Agent);
    queue_one.queue = Some(queue(1).to_string());
    let rows = report(&w, queue_one).await;
    assert_eq!(groups(&rows), vec![Some(a1.to_string())]);
    assert_eq!(row(&rows, Some(&a1.to_string())).closed, 2);

    // A range with nothing in it.
    let rows = report(&w, query(WED, WED, GroupBy::Channel)).await;
    assert!(rows.is_empty());
}

async fn spam_reopening_and_transfers(backend: Backend) {
    let Some(w) = world(backend).await else {
        return;
    };
    let (a1, a2, a3) = (agent(1), agent(2), agent(3));
    let (q1, q2) = (queue(1), queue(2));
    w.conversation(
        conversation(1),
        vec![
            started(1, Channel::Widget, Some(q1), t(0, 9, 0)),
            from_customer(1, t(0, 9, 0)),
            assigned(a1, t(0, 9, 1)),
            reply(2, a1, t(0, 9, 2)),
            closed(a1, t(0, 10, 0)),
        ],
    )
    .await;
    // Spam after an answer: counted as spam, left out of the durations.
    w.conversation(
        conversation(2),
        vec![
            started(2, Channel::Widget, Some(q1), t(0, 9, 30)),
            from_customer(3, t(0, 9, 30)),
            assigned(a1, t(0, 9, 31)),
            reply(4, a1, t(0, 9, 40)),
            ConversationMarkedSpam {
                by: Actor::Agent(a1),
                at: t(0, 11, 0),
            }
            .into(),
        ],
    )
    .await;
    let monday = row(&report(&w, query(MON, MON, GroupBy::Day)).await, Some(MON));
    assert_eq!(
        (monday.new_conversations, monday.closed, monday.spam),
        (2, 1, 1)
    );
    assert_eq!(monday.first_response, durations(1, 120, 120));
    assert_eq!(monday.resolution, durations(1, 3_600, 3_600));

    // Tuesday: the customer writes again (reopening it), then it moves around and is closed.
    w.conversation(
        conversation(1),
        vec![
            ConversationReopened {
                by: Actor::Customer(customer(1)),
                automatically: true,
                at: t(1, 8, 0),
            }
            .into(),
            from_customer(5, t(1, 8, 0)),
            ConversationTransferred {
                from: Some(a1),
                to: a2,
                by: Actor::Agent(a1),
                at: t(1, 9, 0),
            }
            .into(),
            ConversationQueueChanged {
                from: Some(q1),
                to: q2,
                by: Actor::Agent(a2),
                at: t(1, 10, 0),
            }
            .into(),
            assigned(a3, t(1, 10, 30)),
            ConversationTakenOver {
                from: a3,
                to: a2,
                at: t(1, 11, 0),
            }
            .into(),
            ConversationReturnedToQueue {
                agent: a2,
                at: t(1, 12, 0),
            }
            .into(),
            closed(a1, t(1, 13, 0)),
        ],
    )
    .await;

    let by_day = report(&w, query(MON, TUE, GroupBy::Day)).await;
    let monday = row(&by_day, Some(MON));
    assert_eq!((monday.closed, monday.spam, monday.reopened), (1, 1, 0));
    // The first response stays; the Monday resolution was undone by the reopening.
    assert_eq!(monday.first_response, durations(1, 120, 120));
    assert_eq!(monday.resolution, Durations::default());
    assert_eq!(monday.messages_per_conversation, None);
    let tuesday = row(&by_day, Some(TUE));
    assert_eq!(tuesday.new_conversations, 0);
    assert_eq!(
        (tuesday.reopened, tuesday.transfers, tuesday.closed),
        (1, 4, 1)
    );
    // Monday 09:00 to Tuesday 13:00; three public messages.
    assert_eq!(tuesday.resolution, durations(1, 28 * HOUR, 28 * HOUR));
    assert!(close_to(tuesday.messages_per_conversation, 3.0));

    // Each event figure goes to the agent and queue the conversation had just before it; the
    // last close to agent 2, who had it last (nobody had it after the return to the queue).
    let by_agent = report(&w, query(MON, TUE, GroupBy::Agent)).await;
    assert_eq!(
        groups(&by_agent),
        vec![
            Some(a1.to_string()),
            Some(a2.to_string()),
            Some(a3.to_string())
        ]
    );
    let first = row(&by_agent, Some(&a1.to_string()));
    assert_eq!(
        (first.closed, first.reopened, first.spam, first.transfers),
        (1, 1, 1, 1)
    );
    assert_eq!(first.first_response, durations(1, 120, 120));
    assert_eq!(first.new_conversations, 1);
    let second = row(&by_agent, Some(&a2.to_string()));
    assert_eq!((second.closed, second.transfers), (1, 2));
    assert_eq!(second.resolution, durations(1, 28 * HOUR, 28 * HOUR));
    assert_eq!(second.new_conversations, 1);
    assert_eq!(second.first_response, Durations::default());
    let third = row(&by_agent, Some(&a3.to_string()));
    assert_eq!((third.closed, third.transfers), (0, 1));

    let by_queue = report(&w, query(MON, TUE, GroupBy::Queue)).await;
    let first = row(&by_queue, Some(&q1.to_string()));
    assert_eq!(
        (first.closed, first.reopened, first.spam, first.transfers),
        (1, 1, 1, 2)
    );
    let second = row(&by_queue, Some(&q2.to_string()));
    assert_eq!((second.closed, second.transfers), (1, 2));
    assert_eq!(second.resolution.count, 1);

    // Rebuilding from the log (one large batch instead of many small ones) gives the same.
    w.models.rebuild(reports::NAME, |_| {}).await.unwrap();
    assert_eq!(report(&w, query(MON, TUE, GroupBy::Agent)).await, by_agent);
    assert_eq!(report(&w, query(MON, TUE, GroupBy::Day)).await, by_day);
}

async fn ratings_per_day_and_agent(backend: Backend) {
    let Some(w) = world(backend).await else {
        return;
    };
    let (a1, a2) = (agent(1), agent(2));
    for (n, by, score, day) in [(1, a1, 5, 0), (2, a2, 3, 0), (3, a1, 4, 1)] {
        w.conversation(
            conversation(n),
            vec![
                started(n, Channel::Email, None, t(0, 8, 0)),
                from_customer(n * 10, t(0, 8, 0)),
                assigned(by, t(0, 8, 1)),
                reply(n * 10 + 1, by, t(0, 8, 2)),
                closed(by, t(0, 9, 0)),
                RatingRequested { at: t(0, 9, 0) }.into(),
                rated(score, t(day, 18, 0)),
            ],
        )
        .await;
    }
    let by_day = report(&w, query(MON, TUE, GroupBy::Day)).await;
    let monday = row(&by_day, Some(MON));
    assert_eq!(monday.ratings, 2);
    assert!(close_to(monday.rating_average, 4.0));
    let tuesday = row(&by_day, Some(TUE));
    assert_eq!(tuesday.ratings, 1);
    assert!(close_to(tuesday.rating_average, 4.0));

    let by_agent = report(&w, query(MON, TUE, GroupBy::Agent)).await;
    let first = row(&by_agent, Some(&a1.to_string()));
    assert_eq!(first.ratings, 2);
    assert!(close_to(first.rating_average, 4.5));
    let second = row(&by_agent, Some(&a2.to_string()));
    assert_eq!(second.ratings, 1);
    assert!(close_to(second.rating_average, 3.0));

    let mut email = query(TUE, TUE, GroupBy::Channel);
    email.agent = Some(a1.to_string());
    let rows = report(&w, email).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].group.as_deref(), Some("email"));
    assert_eq!(rows[0].ratings, 1);
}

fn social_ticket(n: u128, channel: Channel, at: Timestamp) -> TicketEvent {
    TicketCreated {
        reply_token: None,
        ticket_id: ticket(n),
        ticket_type: TicketType::Ticket,
        title: format!("ticket {n}"),
        description: String::new(),
        priority: Priority::Normal,
        requester: Some(customer(1)),
        source: TicketSource::Social { channel },
        tags: vec![MESSAGING_SUPPORT_TAG.into(), channel.name().into()],
        channel_info: Some(ChannelInfo {
            channel,
            account_id: "acct".into(),
            customer_handle: "+15550100".into(),
        }),
        created_by: Actor::System,
        at,
    }
    .into()
}

fn status(from: TicketStatus, to: TicketStatus, at: Timestamp) -> TicketEvent {
    TicketStatusChanged {
        from,
        to,
        by: Actor::Agent(agent(1)),
        at,
    }
    .into()
}

fn tag(added: bool, at: Timestamp) -> TicketEvent {
    let (tag, by) = (MESSAGING_SUPPORT_TAG.to_owned(), Actor::Agent(agent(1)));
    if added {
        TicketTagAdded { tag, by, at }.into()
    } else {
        TicketTagRemoved { tag, by, at }.into()
    }
}

fn social(day: &str, channel: Option<&str>, new_tickets: i64, solved: i64) -> SocialRow {
    SocialRow {
        day: day.to_owned(),
        channel: channel.map(str::to_owned),
        new_tickets,
        solved,
    }
}

async fn social_figures(w: &World) -> Vec<SocialRow> {
    let q = SocialQuery::new(MON, FRI).unwrap();
    w.query(reports::NAME, move |tx, t| {
        reports::social_report(tx, t, &q)
    })
    .await
}

async fn social_tickets_follow_their_tag(backend: Backend) {
    let Some(w) = world(backend).await else {
        return;
    };
    w.ticket(
        ticket(1),
        vec![
            social_ticket(1, Channel::Whatsapp, t(0, 9, 0)),
            status(TicketStatus::New, TicketStatus::Solved, t(1, 9, 0)),
        ],
    )
    .await;
    w.ticket(
        ticket(2),
        vec![social_ticket(2, Channel::Line, t(0, 10, 0))],
    )
    .await;
    // Not social: no tag.
    w.ticket(
        ticket(3),
        vec![TicketEvent::from(TicketCreated {
            reply_token: None,
            ticket_id: ticket(3),
            ticket_type: TicketType::Task,
            title: "internal".into(),
            description: String::new(),
            priority: Priority::Low,
            requester: None,
            source: TicketSource::Api,
            tags: vec!["billing".into()],
            channel_info: None,
            created_by: Actor::Agent(agent(1)),
            at: t(0, 11, 0),
        })],
    )
    .await;
    let everything = vec![
        social(MON, Some("line"), 1, 0),
        social(MON, Some("whatsapp"), 1, 0),
        social(TUE, Some("whatsapp"), 0, 1),
    ];
    assert_eq!(social_figures(&w).await, everything);

    // Without the tag, ticket 1 leaves every social figure; with it again, it is back.
    w.ticket(ticket(1), vec![tag(false, t(2, 9, 0))]).await;
    assert_eq!(
        social_figures(&w).await,
        vec![social(MON, Some("line"), 1, 0)]
    );
    w.ticket(ticket(1), vec![tag(true, t(3, 9, 0))]).await;
    assert_eq!(social_figures(&w).await, everything);

    // A tag on a ticket without a channel makes it social, on the day it was created.
    w.ticket(ticket(3), vec![tag(true, t(2, 9, 0))]).await;
    let mut with_task = vec![social(MON, None, 1, 0)];
    with_task.extend(everything.clone());
    assert_eq!(social_figures(&w).await, with_task);
    w.ticket(ticket(3), vec![tag(false, t(2, 10, 0))]).await;
    assert_eq!(social_figures(&w).await, everything);

    // Reopened, it is no longer solved on Tuesday; solved again, it is on Thursday; closing it
    // keeps it there.
    w.ticket(
        ticket(1),
        vec![status(
            TicketStatus::Solved,
            TicketStatus::Open,
            t(3, 10, 0),
        )],
    )
    .await;
    assert_eq!(
        social_figures(&w).await,
        vec![
            social(MON, Some("line"), 1, 0),
            social(MON, Some("whatsapp"), 1, 0),
        ]
    );
    w.ticket(
        ticket(1),
        vec![
            status(TicketStatus::Open, TicketStatus::Solved, t(3, 11, 0)),
            status(TicketStatus::Solved, TicketStatus::Closed, t(4, 11, 0)),
        ],
    )
    .await;
    let thursday = "2026-05-28";
    assert_eq!(
        social_figures(&w).await,
        vec![
            social(MON, Some("line"), 1, 0),
            social(MON, Some("whatsapp"), 1, 0),
            social(thursday, Some("whatsapp"), 0, 1),
        ]
    );

    // Filtered by channel, and limited to a range.
    let mut q = SocialQuery::new(MON, WED).unwrap();
    q.channel = Some("whatsapp".into());
    let rows = w
        .query(reports::NAME, move |tx, t| {
            reports::social_report(tx, t, &q)
        })
        .await;
    assert_eq!(rows, vec![social(MON, Some("whatsapp"), 1, 0)]);
}

/// Monday to Friday, 09:00 to 17:00 UTC.
fn office_hours() -> BusinessHours {
    BusinessHours {
        utc_offset_minutes: 0,
        days: (1..=5)
            .map(|weekday| OpeningHours {
                weekday,
                opens: 9 * 60,
                closes: 17 * 60,
            })
            .collect(),
    }
}

async fn rules_of(w: &World) -> ReportRules {
    w.query(reports::NAME, |tx, t| reports::rules(tx, t)).await
}

async fn business_hours_apply_from_the_next_rebuild(backend: Backend) {
    let Some(w) = world(backend).await else {
        return;
    };
    let a1 = agent(1);
    // Started on Friday 16:00; answered on Monday 09:30; closed on Monday 10:00.
    w.conversation(
        conversation(1),
        vec![
            started(1, Channel::Widget, None, t(4, 16, 0)),
            from_customer(1, t(4, 16, 0)),
            assigned(a1, t(4, 16, 1)),
            reply(2, a1, t(7, 9, 30)),
            closed(a1, t(7, 10, 0)),
        ],
    )
    .await;
    let wall_response = 65 * HOUR + 30 * 60;
    let wall_resolution = 66 * HOUR;
    let figures = |rows: Vec<ReportRow>| {
        let monday = row(&rows, Some(NEXT_MON));
        (monday.first_response, monday.resolution)
    };
    let wall = (
        durations(1, wall_response, wall_response),
        durations(1, wall_resolution, wall_resolution),
    );
    assert_eq!(
        figures(report(&w, query(FRI, NEXT_MON, GroupBy::Day)).await),
        wall
    );
    assert_eq!(rules_of(&w).await, ReportRules::default());

    // The help desk switches to business hours: the serving figures do not change...
    let admin = Actor::Agent(agent(9));
    w.append(
        "helpdesk-main".to_owned(),
        vec![
            HelpDeskEvent::from(BusinessHoursSet {
                schedule: office_hours(),
                by: admin,
                at: t(8, 9, 0),
            }),
            HelpDeskEvent::from(ReportRulesChanged {
                business_hours_only: true,
                by: admin,
                at: t(8, 9, 0),
            }),
        ],
    )
    .await;
    assert_eq!(
        figures(report(&w, query(FRI, NEXT_MON, GroupBy::Day)).await),
        wall
    );
    assert_eq!(rules_of(&w).await, ReportRules::default());

    // ...until the reports are rebuilt: then all of history is measured in business hours.
    // Friday 16:00–17:00 and Monday 09:00–09:30 (10:00).
    w.models.rebuild(reports::NAME, |_| {}).await.unwrap();
    let business = (
        durations(1, HOUR + 30 * 60, HOUR + 30 * 60),
        durations(1, 2 * HOUR, 2 * HOUR),
    );
    assert_eq!(
        figures(report(&w, query(FRI, NEXT_MON, GroupBy::Day)).await),
        business
    );
    assert_eq!(
        rules_of(&w).await,
        ReportRules {
            business_hours_only: true,
            business_hours: Some(office_hours()),
        }
    );

    // New conversations are measured the same way as the rest of the generation.
    w.conversation(
        conversation(2),
        vec![
            started(2, Channel::Widget, None, t(6, 12, 0)),
            from_customer(3, t(6, 12, 0)),
            reply(4, a1, t(7, 9, 10)),
        ],
    )
    .await;
    let measured = (durations(2, 600, 5_400), business.1);
    // 600 s (Sunday counts nothing) and 5400 s.
    assert_eq!(
        figures(report(&w, query(FRI, NEXT_MON, GroupBy::Day)).await),
        measured
    );

    // Back to wall-clock time: again only after a rebuild.
    w.append(
        "helpdesk-main".to_owned(),
        vec![HelpDeskEvent::from(ReportRulesChanged {
            business_hours_only: false,
            by: admin,
            at: t(8, 10, 0),
        })],
    )
    .await;
    assert_eq!(
        figures(report(&w, query(FRI, NEXT_MON, GroupBy::Day)).await),
        measured
    );
    w.models.rebuild(reports::NAME, |_| {}).await.unwrap();
    let monday = row(
        &report(&w, query(NEXT_MON, NEXT_MON, GroupBy::Day)).await,
        Some(NEXT_MON),
    );
    // Sunday 12:00 to Monday 09:10 is 21 h 10 min.
    assert_eq!(
        monday.first_response,
        durations(2, 21 * HOUR + 10 * 60, wall_response)
    );
    assert_eq!(
        monday.resolution,
        durations(1, wall_resolution, wall_resolution)
    );
    assert!(!rules_of(&w).await.business_hours_only);
}

/// Applied live, in batches that end anywhere, a realistic history leaves exactly the rows a
/// rebuild from zero leaves (under the same rules: business hours, set as the history begins).
async fn live_figures_equal_a_rebuild(backend: Backend) {
    let Some(w) = world(backend).await else {
        return;
    };
    let mut workload = Workload::new(
        11,
        Shape {
            concurrent: 12,
            agents: 4,
            queues: 2,
            social_percent: 30,
        },
    );
    for i in 0..600 {
        // Rebuilt after a change of the help desk's rules, as an operator does.
        append_as_an_operator(w.log.as_ref(), &w.models, workload.next_append()).await;
        if i % 37 == 0 {
            w.settle().await;
        }
    }
    w.settle().await;
    let live = w.models.dump(reports::NAME).await.unwrap();
    for table in ["rules", "conversations", "counts", "tickets", "social"] {
        assert!(
            live.iter().any(|l| l.starts_with(&format!("{table}: "))),
            "{table} is empty"
        );
    }
    w.models.rebuild(reports::NAME, |_| {}).await.unwrap();
    assert_eq!(w.models.dump(reports::NAME).await.unwrap(), live);
}

#[test]
fn report_queries_refuse_bad_ranges() {
    use reports::BadReportQuery;
    assert_eq!(
        ReportQuery::new("2026-02-30", TUE, GroupBy::Day),
        Err(BadReportQuery::BadDay("2026-02-30".into()))
    );
    assert_eq!(
        ReportQuery::new(MON, "26-05-26", GroupBy::Day),
        Err(BadReportQuery::BadDay("26-05-26".into()))
    );
    assert!(matches!(
        ReportQuery::new(TUE, MON, GroupBy::Agent),
        Err(BadReportQuery::Reversed { .. })
    ));
    assert!(matches!(
        SocialQuery::new("2020-01-01", MON),
        Err(BadReportQuery::TooLong { .. })
    ));
}

on_both_backends! {
    counts_medians_and_groups => super::counts_medians_and_groups;
    spam_reopening_and_transfers => super::spam_reopening_and_transfers;
    ratings_per_day_and_agent => super::ratings_per_day_and_agent;
    social_tickets_follow_their_tag => super::social_tickets_follow_their_tag;
    business_hours_apply_from_the_next_rebuild => super::business_hours_apply_from_the_next_rebuild;
    live_figures_equal_a_rebuild => super::live_figures_equal_a_rebuild;
}
