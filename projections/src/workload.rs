//! A realistic, reproducible log: customers on every channel, chats with replies, notes, edits,
//! deletions, reads, transfers, pins, spam, closing and rating, tickets from chats, social
//! tickets with replies that fail outside WhatsApp's window, tag removals and customer merges.
//!
//! Every event comes out of the domain's own `decide`, so the history is valid by construction.
//! A fixed number of lives run interleaved, as on a busy help desk; memory stays bounded however
//! long the log grows. Used by `parley bench rebuild` and by the read models' property and
//! crash tests.

use crate::events::to_new_event;
use parley_domain::conversation::{
    Channel, Conversation, ConversationCommand as C, ConversationKind, Participant, SendMessage,
    Start, Visibility,
};
use parley_domain::customer::{ChannelIdentity, Customer, CustomerCommand};
use parley_domain::ids::{AgentId, ConversationId, CustomerId, MessageId, QueueId, TicketId};
use parley_domain::ticket::{
    ChannelInfo, CreateTicket, MESSAGING_SUPPORT_TAG, Priority, Ticket, TicketCommand as T,
    TicketSource, TicketStatus, TicketType, channel_tag,
};
use parley_domain::{Actor, Aggregate, DomainEvent, Timestamp};
use parley_eventlog::{EventLog, ExpectedVersion, LogError, Metadata, NewEvent, StreamId};
use uuid::Uuid;

/// A small deterministic generator (SplitMix64): the same seed gives the same log.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut bytes = [0; N];
        for chunk in bytes.chunks_mut(8) {
            chunk.copy_from_slice(&self.next_u64().to_le_bytes()[..chunk.len()]);
        }
        bytes
    }
}

/// Shape of the help desk.
#[derive(Debug, Clone)]
pub struct Shape {
    pub agents: u64,
    pub queues: u64,
    /// Lives (conversations or social tickets) in progress at once.
    pub concurrent: usize,
    /// Percent of lives that are social tickets rather than chats.
    pub social_percent: u64,
}

impl Default for Shape {
    fn default() -> Self {
        Shape {
            agents: 50,
            queues: 5,
            concurrent: 200,
            social_percent: 20,
        }
    }
}

/// One append: a stream and the events one command produced.
pub struct Append {
    pub stream: String,
    pub events: Vec<NewEvent>,
}

const WORDS: &[&str] = &[
    "printer",
    "invoice",
    "refund",
    "password",
    "login",
    "order",
    "delivery",
    "broken",
    "thanks",
    "please",
    "urgent",
    "account",
    "upgrade",
    "billing",
    "error",
    "screen",
    "shipping",
    "address",
    "cancel",
    "subscription",
    "help",
    "hello",
    "question",
    "late",
];

const CHANNELS: &[Channel] = &[
    Channel::Widget,
    Channel::Email,
    Channel::Whatsapp,
    Channel::Line,
    Channel::Wechat,
    Channel::Facebook,
    Channel::Twitter,
];

const SOCIAL: &[Channel] = &[
    Channel::Whatsapp,
    Channel::Line,
    Channel::Wechat,
    Channel::Facebook,
    Channel::Twitter,
];

enum Life {
    Chat {
        id: ConversationId,
        state: Conversation,
        customer: CustomerId,
        messages: Vec<(MessageId, Actor)>,
        steps: u32,
    },
    Social {
        id: TicketId,
        state: Ticket,
        steps: u32,
    },
}

/// Generates appends until told to stop; call [`Workload::next`] repeatedly.
pub struct Workload {
    rng: Rng,
    shape: Shape,
    clock: i64,
    lives: Vec<Life>,
    /// Recently created customers (bounded), for returning customers and merges.
    customers: Vec<(CustomerId, Customer)>,
    pending: std::collections::VecDeque<Append>,
}

impl Workload {
    pub fn new(seed: u64, shape: Shape) -> Self {
        Workload {
            rng: Rng::new(seed),
            shape,
            clock: 1_780_000_000_000_000,
            lives: Vec::new(),
            customers: Vec::new(),
            pending: Default::default(),
        }
    }

    /// A time-ordered id (UUIDv7) at the workload's clock, as the API mints them.
    fn id(&mut self) -> Uuid {
        let millis = u64::try_from(self.clock / 1_000).unwrap_or_default();
        uuid::Builder::from_unix_timestamp_millis(millis, &self.rng.bytes()).into_uuid()
    }

    fn at(&mut self) -> Timestamp {
        self.clock += 1_000_000 + self.rng.below(20_000_000) as i64;
        Timestamp(self.clock)
    }

    fn agent(&mut self) -> AgentId {
        AgentId(Uuid::from_u128(
            0xA9E0_0000 + u128::from(self.rng.below(self.shape.agents)),
        ))
    }

    fn queue(&mut self) -> QueueId {
        QueueId(Uuid::from_u128(
            0x9_0000 + u128::from(self.rng.below(self.shape.queues)),
        ))
    }

    fn text(&mut self, words: u64) -> String {
        let n = 1 + self.rng.below(words);
        (0..n)
            .map(|_| WORDS[self.rng.below(WORDS.len() as u64) as usize])
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn push<E: DomainEvent>(&mut self, stream: String, events: &[E]) {
        if events.is_empty() {
            return;
        }
        let events = events
            .iter()
            .map(|e| {
                to_new_event(self.id(), e, Metadata::default())
                    .expect("domain events always encode")
            })
            .collect();
        self.pending.push_back(Append { stream, events });
    }

    /// Runs `command` on `state`; accepted events are applied and queued for appending.
    fn run<A: Aggregate>(&mut self, stream: String, state: &mut A, command: A::Command)
    where
        A::Event: DomainEvent,
    {
        if let Ok(events) = state.decide(command) {
            for e in &events {
                *state = std::mem::take(state).evolve(e);
            }
            self.push(stream, &events);
        }
    }

    /// A customer for a new life: a returning one or a first contact.
    fn customer(&mut self, channel: Channel) -> CustomerId {
        if !self.customers.is_empty() && self.rng.chance(30) {
            let i = self.rng.below(self.customers.len() as u64) as usize;
            return self.customers[i].0;
        }
        let value = match channel {
            Channel::Whatsapp => format!("+1 555 {:07}", self.rng.below(10_000_000)),
            Channel::Email | Channel::Widget => {
                format!("user{}@example.com", self.rng.below(1_000_000_000))
            }
            _ => format!("{}-{}", channel.name(), self.rng.below(1_000_000_000)),
        };
        let identity = ChannelIdentity { channel, value };
        let id = CustomerId::for_identity(&identity);
        let mut state = Customer::default();
        let at = self.at();
        let name = Some(self.text(2));
        self.run(
            format!("customer-{id}"),
            &mut state,
            CustomerCommand::Create {
                customer_id: id,
                identity,
                name,
                email: None,
                at,
            },
        );
        // An occasional merge of the previous customer into this one.
        if let Some((other, mut other_state)) = self.customers.last().cloned()
            && other != id
            && self.rng.chance(3)
        {
            let by = Actor::Agent(self.agent());
            let at = self.at();
            self.run(
                format!("customer-{other}"),
                &mut other_state,
                CustomerCommand::MergeInto {
                    survivor: id,
                    by,
                    at,
                },
            );
            self.run(
                format!("customer-{id}"),
                &mut state,
                CustomerCommand::Absorb {
                    merged: other,
                    identities: vec![],
                    by,
                    at,
                },
            );
            if let Some(last) = self.customers.last_mut() {
                last.1 = other_state;
            }
        }
        self.customers.push((id, state));
        if self.customers.len() > 1_000 {
            self.customers.remove(0);
        }
        id
    }

    fn new_life(&mut self) -> Life {
        if self.rng.chance(self.shape.social_percent) {
            let channel = SOCIAL[self.rng.below(SOCIAL.len() as u64) as usize];
            let customer = self.customer(channel);
            let id = TicketId(self.id());
            let mut state = Ticket::default();
            let info = ChannelInfo {
                channel,
                account_id: format!("{}-account", channel.name()),
                customer_handle: format!("handle-{}", self.rng.below(1_000_000)),
            };
            let at = self.at();
            let title = self.text(4);
            self.run(
                format!("ticket-{id}"),
                &mut state,
                T::Create(CreateTicket {
                    ticket_id: id,
                    ticket_type: TicketType::Ticket,
                    title,
                    description: String::new(),
                    priority: Priority::Normal,
                    requester: Some(customer),
                    source: TicketSource::Social { channel },
                    tags: vec![MESSAGING_SUPPORT_TAG.into(), channel_tag(channel).into()],
                    channel_info: Some(info),
                    created_by: Actor::System,
                    at,
                }),
            );
            Life::Social {
                id,
                state,
                steps: 3 + self.rng.below(10) as u32,
            }
        } else {
            let channel = CHANNELS[self.rng.below(CHANNELS.len() as u64) as usize];
            let customer = self.customer(channel);
            let id = ConversationId(self.id());
            let mut state = Conversation::default();
            let at = self.at();
            let queue = Some(self.queue());
            let subject = self.text(4);
            self.run(
                format!("conversation-{id}"),
                &mut state,
                C::Start(Start {
                    conversation_id: id,
                    kind: ConversationKind::Customer,
                    channel,
                    queue,
                    subject,
                    started_by: Actor::Customer(customer),
                    customers: vec![customer],
                    members: vec![],
                    origin: None,
                    at,
                }),
            );
            Life::Chat {
                id,
                state,
                customer,
                messages: Vec::new(),
                steps: 4 + self.rng.below(16) as u32,
            }
        }
    }

    /// Appends to `log`, one stream at a time in order, until at least `events` events are
    /// written; returns how many were.
    pub async fn append_to(&mut self, log: &dyn EventLog, events: u64) -> Result<u64, LogError> {
        let mut written = 0;
        while written < events {
            let append = self.next_append();
            written += append.events.len() as u64;
            log.append(
                &StreamId::new(append.stream)?,
                ExpectedVersion::Any,
                append.events,
            )
            .await?;
        }
        Ok(written)
    }

    /// The next append of the log.
    pub fn next_append(&mut self) -> Append {
        loop {
            if let Some(append) = self.pending.pop_front() {
                return append;
            }
            if self.lives.len() < self.shape.concurrent {
                let life = self.new_life();
                self.lives.push(life);
                continue;
            }
            let i = self.rng.below(self.lives.len() as u64) as usize;
            let mut life = self.lives.swap_remove(i);
            if self.step(&mut life) {
                self.lives.push(life);
            }
        }
    }

    /// One action of a life; `false` once it has ended.
    fn step(&mut self, life: &mut Life) -> bool {
        match life {
            Life::Chat {
                id,
                state,
                customer,
                messages,
                steps,
            } => {
                let stream = format!("conversation-{id}");
                let at = self.at();
                let agent = state.assignee.unwrap_or_else(|| self.agent());
                let by = Actor::Agent(agent);
                if *steps == 0 {
                    let roll = self.rng.below(100);
                    if roll < 5 {
                        self.run(stream, state, C::MarkSpam { by, at });
                    } else if roll < 85 {
                        self.run(stream.clone(), state, C::Close { by, at });
                        if self.rng.chance(40) {
                            let score = 1 + self.rng.below(5) as u8;
                            let at = self.at();
                            self.run(
                                stream.clone(),
                                state,
                                C::Rate {
                                    customer: *customer,
                                    score,
                                    comment: None,
                                    at,
                                },
                            );
                        }
                        if self.rng.chance(8) {
                            let at = self.at();
                            let body = self.text(6);
                            let message_id = MessageId(self.id());
                            self.run(
                                stream,
                                state,
                                C::SendMessage(SendMessage {
                                    message_id,
                                    author: Actor::Customer(*customer),
                                    body,
                                    visibility: Visibility::Public,
                                    attachments: vec![],
                                    mentions: vec![],
                                    quote_of: None,
                                    at,
                                }),
                            );
                        }
                    }
                    return false;
                }
                *steps -= 1;
                let roll = self.rng.below(100);
                let command = match roll {
                    0..=29 => {
                        let body = self.text(12);
                        let message_id = MessageId(self.id());
                        messages.push((message_id, Actor::Customer(*customer)));
                        C::SendMessage(SendMessage {
                            message_id,
                            author: Actor::Customer(*customer),
                            body,
                            visibility: Visibility::Public,
                            attachments: vec![],
                            mentions: vec![],
                            quote_of: None,
                            at,
                        })
                    }
                    30..=59 => {
                        let body = self.text(16);
                        let message_id = MessageId(self.id());
                        let visibility = if self.rng.chance(15) {
                            Visibility::Internal
                        } else {
                            Visibility::Public
                        };
                        messages.push((message_id, by));
                        C::SendMessage(SendMessage {
                            message_id,
                            author: by,
                            body,
                            visibility,
                            attachments: vec![],
                            mentions: vec![],
                            quote_of: None,
                            at,
                        })
                    }
                    60..=67 if state.assignee.is_none() => C::Assign { agent, by, at },
                    60..=67 => match messages.last() {
                        Some((through, _)) => C::MarkRead {
                            reader: Participant::Agent(agent),
                            through: *through,
                            at,
                        },
                        None => C::Follow { agent, at },
                    },
                    68..=71 => C::Transfer {
                        to: self.agent(),
                        by,
                        at,
                    },
                    72..=73 => C::ChangeQueue {
                        queue: self.queue(),
                        by,
                        at,
                    },
                    74..=76 => C::Follow {
                        agent: self.agent(),
                        at,
                    },
                    77..=78 => C::Invite {
                        agent: self.agent(),
                        by,
                        at,
                    },
                    79..=80 => C::Pin {
                        agent,
                        auto_close_at: Timestamp(at.0 + 86_400_000_000),
                        at,
                    },
                    81 => C::Unpin { agent, at },
                    82..=83 => C::TakeOver {
                        agent: self.agent(),
                        at,
                    },
                    84 => C::ReturnToQueue { agent, at },
                    85..=87 => match messages.last() {
                        Some((message_id, author)) => C::EditMessage {
                            message_id: *message_id,
                            body: self.text(8),
                            by: *author,
                            at,
                        },
                        None => C::Rename {
                            subject: self.text(3),
                            by,
                            at,
                        },
                    },
                    88..=89 => match messages.pop() {
                        Some((message_id, author)) => C::DeleteMessage {
                            message_id,
                            by: author,
                            at,
                        },
                        None => C::Follow { agent, at },
                    },
                    90..=91 => match messages.first() {
                        Some((message_id, _)) => C::MarkUnread {
                            reader: Participant::Agent(agent),
                            message_id: *message_id,
                            at,
                        },
                        None => C::Follow { agent, at },
                    },
                    92..=93 => C::Rename {
                        subject: self.text(3),
                        by,
                        at,
                    },
                    94..=96 => {
                        // A ticket created from the chat, linked to it.
                        let ticket = TicketId(self.id());
                        let mut ticket_state = Ticket::default();
                        let title = self.text(4);
                        self.run(
                            format!("ticket-{ticket}"),
                            &mut ticket_state,
                            T::Create(CreateTicket {
                                ticket_id: ticket,
                                ticket_type: TicketType::Task,
                                title,
                                description: String::new(),
                                priority: Priority::High,
                                requester: Some(*customer),
                                source: TicketSource::Conversation {
                                    conversation_id: *id,
                                    message_id: None,
                                },
                                tags: vec![],
                                channel_info: None,
                                created_by: by,
                                at,
                            }),
                        );
                        C::LinkTicket {
                            ticket_id: ticket,
                            by,
                            at,
                        }
                    }
                    97 => C::Close { by, at },
                    98 => C::Reopen { by, at },
                    _ => C::Unfollow { agent, at },
                };
                self.run(stream, state, command);
                true
            }
            Life::Social { id, state, steps } => {
                let stream = format!("ticket-{id}");
                let at = self.at();
                let agent = state.assignee.unwrap_or_else(|| self.agent());
                let by = Actor::Agent(agent);
                if *steps == 0 {
                    let to = if self.rng.chance(70) {
                        TicketStatus::Solved
                    } else {
                        TicketStatus::Pending
                    };
                    self.run(stream, state, T::ChangeStatus { to, by, at });
                    return false;
                }
                *steps -= 1;
                let command = match self.rng.below(100) {
                    0..=29 => T::ReceiveCustomerMessage {
                        message_id: self.id(),
                        body: self.text(12),
                        attachments: vec![],
                        at,
                    },
                    30..=44 if state.assignee.is_none() => T::Assign { agent, by, at },
                    30..=59 => T::RequestReply {
                        reply_id: self.id(),
                        body: self.text(12),
                        by,
                        at,
                    },
                    60..=69 => T::Comment {
                        comment_id: self.id(),
                        author: by,
                        body: self.text(10),
                        visibility: Visibility::Internal,
                        attachments: vec![],
                        at,
                    },
                    70..=74 => T::ChangeStatus {
                        to: TicketStatus::Pending,
                        by,
                        at,
                    },
                    75..=79 => T::ChangeStatus {
                        to: TicketStatus::Open,
                        by,
                        at,
                    },
                    80..=82 => T::RemoveTag {
                        tag: MESSAGING_SUPPORT_TAG.into(),
                        by,
                        at,
                    },
                    83..=84 => T::AddTag {
                        tag: MESSAGING_SUPPORT_TAG.into(),
                        by,
                        at,
                    },
                    85..=87 => T::Unassign { by, at },
                    88..=92 => T::ChangePriority {
                        priority: Priority::Urgent,
                        by,
                        at,
                    },
                    _ => T::Follow {
                        agent: self.agent(),
                        at,
                    },
                };
                self.run(stream, state, command);
                true
            }
        }
    }
}
