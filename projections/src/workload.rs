//! A realistic, reproducible log: customers on every channel, chats with replies, notes, edits,
//! deletions, reads, transfers, pins, spam, closing and rating, tickets from chats (sometimes
//! unlinked again), conversations started from a message, internal conversations between
//! agents, social tickets with replies that are delivered or fail (outside WhatsApp's window),
//! tag removals, customer details and identities, customer merges and their undoing; and, rarely,
//! what admins do: the help desk's widget messages, business hours and report rules, API tokens
//! issued and revoked; connected channel accounts (registered, renamed, their secrets rotated,
//! removed) and the contacts whose webhooks open and continue social tickets, with receipts. The help desk goes online and offline with its business hours.
//!
//! The history begins as a new help desk does: the first admin token, then the help desk's
//! settings. Every event comes out of the domain's own `decide`, so the history is valid by
//! construction. A fixed number of lives run interleaved, as on a busy help desk; memory stays
//! bounded however long the log grows. Used by `parley bench rebuild` and by the read models'
//! property and crash tests.

use crate::events::to_new_event;
use parley_domain::access::{Role, Token, TokenCommand, TokenId};
use parley_domain::channel::{ChannelAccount, ChannelCommand, ChannelId};
use parley_domain::contact::{
    Contact, ContactCommand, ContactId, SocialContactFollowed, SocialMedia, SocialMessageReceived,
    SocialProfile,
};
use parley_domain::conversation::{
    Channel, Conversation, ConversationCommand as C, ConversationKind, MAX_SUBJECT_CHARS, Origin,
    Participant, SendMessage, Start, Visibility,
};
use parley_domain::customer::{ChannelIdentity, Customer, CustomerCommand};
use parley_domain::helpdesk::{
    BusinessHours, HELP_DESK_ID, HelpDesk, HelpDeskCommand, OpeningHours, business_seconds,
};
use parley_domain::ids::{AgentId, ConversationId, CustomerId, MessageId, QueueId, TicketId};
use parley_domain::ticket::{
    ChannelInfo, CreateTicket, MESSAGING_SUPPORT_TAG, Priority, ReceiptStatus, ReplyState, Ticket,
    TicketCommand as T, TicketSource, TicketStatus, TicketType, channel_tag,
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

impl Append {
    /// Appends it to `log`; when it changes the help desk's rules, reports (if among `models`)
    /// are rebuilt right after, as an operator does (`parley rebuild reports`): reports follow
    /// the rules their generation was created with, so only from then on do they equal a
    /// rebuild. Answers whether they were rebuilt.
    pub async fn append_as_an_operator(
        self,
        log: &dyn EventLog,
        models: &crate::ReadModels,
    ) -> Result<bool, crate::ViewError> {
        let changes_rules = models.names().contains(&crate::reports::NAME)
            && self
                .events
                .iter()
                .any(|e| crate::reports::changes_rules(&self.stream, &e.event_type));
        log.append(
            &StreamId::new(self.stream)?,
            ExpectedVersion::Any,
            self.events,
        )
        .await?;
        if changes_rules {
            models.rebuild(crate::reports::NAME, |_| {}).await?;
        }
        Ok(changes_rules)
    }
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

/// Percent of new lives that are internal conversations between agents (of those that are not
/// social tickets).
const INTERNAL_PERCENT: u64 = 3;

/// Rare actions, per 100,000 actions of the help desk: admins changing the business hours, the
/// report rules and the widget's messages; API tokens issued and revoked.
const BUSINESS_HOURS_PER_100K: u64 = 3;
const REPORT_RULES_PER_100K: u64 = 2;
const WIDGET_MESSAGES_PER_100K: u64 = 4;
const TOKEN_ISSUES_PER_100K: u64 = 40;
const TOKEN_REVOCATIONS_PER_100K: u64 = 40;
const ADMIN_PER_100K: u64 = BUSINESS_HOURS_PER_100K
    + REPORT_RULES_PER_100K
    + WIDGET_MESSAGES_PER_100K
    + TOKEN_ISSUES_PER_100K
    + TOKEN_REVOCATIONS_PER_100K;

/// Per mille of new customers with which an earlier merge is undone.
const UNMERGE_PER_MILLE: u64 = 5;

/// How many schedules admins choose from.
const SCHEDULES: u64 = 3;

/// The business hours admins choose from (the first is the help desk's first schedule).
fn schedule(choice: u64) -> BusinessHours {
    let range = |weekday, opens, closes| OpeningHours {
        weekday,
        opens,
        closes,
    };
    let days = match choice {
        // Monday to Friday, 08:00 to 18:00.
        0 => (1..=5).map(|d| range(d, 8 * 60, 18 * 60)).collect(),
        // Weekdays with a lunch break, and Saturday mornings.
        1 => (1..=5)
            .flat_map(|d| [range(d, 8 * 60, 12 * 60), range(d, 13 * 60, 18 * 60)])
            .chain([range(6, 9 * 60, 13 * 60)])
            .collect(),
        // Every day, 07:00 to 22:00.
        _ => (1..=7).map(|d| range(d, 7 * 60, 22 * 60)).collect(),
    };
    BusinessHours {
        utc_offset_minutes: 120,
        days,
    }
}

enum Life {
    Chat {
        id: ConversationId,
        state: Conversation,
        customer: CustomerId,
        messages: Vec<(MessageId, Actor)>,
        steps: u32,
    },
    /// A conversation between agents.
    Internal {
        id: ConversationId,
        state: Conversation,
        steps: u32,
    },
    Social {
        id: TicketId,
        state: Ticket,
        steps: u32,
        /// Through a connected channel account: the contact its webhooks land on.
        contact: Option<Box<(ContactId, Contact)>>,
    },
}

/// Generates appends until told to stop; call [`Workload::next_append`] repeatedly.
pub struct Workload {
    rng: Rng,
    shape: Shape,
    clock: i64,
    lives: Vec<Life>,
    /// Recently created customers (bounded), for returning customers and merges.
    customers: Vec<(CustomerId, Customer)>,
    /// Recent merges (merged, survivor), bounded, some of which are undone.
    merges: Vec<(CustomerId, CustomerId)>,
    help_desk: HelpDesk,
    /// Tokens issued and not revoked (bounded; the first admin's is never revoked).
    tokens: Vec<(TokenId, Token)>,
    /// The help desk's connected channel accounts, one per platform at a time.
    accounts: Vec<(ChannelId, ChannelAccount)>,
    pending: std::collections::VecDeque<Append>,
}

impl Workload {
    pub fn new(seed: u64, shape: Shape) -> Self {
        let mut workload = Workload {
            rng: Rng::new(seed),
            shape,
            clock: 1_780_000_000_000_000,
            lives: Vec::new(),
            customers: Vec::new(),
            merges: Vec::new(),
            help_desk: HelpDesk::default(),
            tokens: Vec::new(),
            accounts: Vec::new(),
            pending: Default::default(),
        };
        workload.first_start();
        workload
    }

    /// What a new help desk begins with: the first admin token (as `parley serve` mints it on
    /// its first start), then the admin's settings: widget messages, business hours, and
    /// reports that count durations in those hours.
    fn first_start(&mut self) {
        let token_id = TokenId(self.id());
        let secret_sha256 = self.digest();
        let at = self.at();
        let mut token = Token::default();
        self.run(
            format!("token-{token_id}"),
            &mut token,
            TokenCommand::Issue {
                token_id,
                role: Role::Admin { agent: None },
                label: "first admin".into(),
                secret_sha256,
                by: Actor::System,
                at,
            },
        );
        self.widget_messages();
        let by = Actor::Agent(self.agent());
        let at = self.at();
        self.help_desk(HelpDeskCommand::SetBusinessHours {
            schedule: schedule(0),
            by,
            at,
        });
        let at = self.at();
        self.help_desk(HelpDeskCommand::ChangeReportRules {
            business_hours_only: true,
            by,
            at,
        });
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

    /// An agent other than `agent` (the same one only on a help desk of one agent).
    fn other_agent(&mut self, agent: AgentId) -> AgentId {
        let n = self.shape.agents.max(1);
        let index = u64::try_from(agent.0.as_u128().wrapping_sub(0xA9E0_0000)).unwrap_or(0);
        let other = (index + 1 + self.rng.below(n - 1)) % n;
        AgentId(Uuid::from_u128(0xA9E0_0000 + u128::from(other)))
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

    /// The SHA-256 digest of a token's secret, as the log keeps it (64 lower-case hex digits).
    fn digest(&mut self) -> String {
        self.rng
            .bytes::<32>()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn email(&mut self) -> String {
        format!("user{}@example.com", self.rng.below(1_000_000_000))
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
    /// Whether it was accepted.
    fn run<A: Aggregate>(&mut self, stream: String, state: &mut A, command: A::Command) -> bool
    where
        A::Event: DomainEvent,
    {
        match state.decide(command) {
            Ok(events) => {
                for e in &events {
                    *state = std::mem::take(state).evolve(e);
                }
                self.push(stream, &events);
                true
            }
            Err(_) => false,
        }
    }

    fn help_desk(&mut self, command: HelpDeskCommand) {
        let mut state = std::mem::take(&mut self.help_desk);
        self.run(format!("helpdesk-{HELP_DESK_ID}"), &mut state, command);
        self.help_desk = state;
    }

    /// Runs `command` on a recent customer's stream (nothing if it is no longer among them).
    fn on_customer(&mut self, customer: CustomerId, command: CustomerCommand) {
        let Some(i) = self.customers.iter().position(|(id, _)| *id == customer) else {
            return;
        };
        let mut state = std::mem::take(&mut self.customers[i].1);
        self.run(format!("customer-{customer}"), &mut state, command);
        self.customers[i].1 = state;
    }

    /// A customer for a new life: a returning one or a first contact.
    fn customer(&mut self, channel: Channel) -> CustomerId {
        if !self.customers.is_empty() && self.rng.chance(30) {
            let i = self.rng.below(self.customers.len() as u64) as usize;
            return self.customers[i].0;
        }
        let value = match channel {
            Channel::Whatsapp => format!("+1 555 {:07}", self.rng.below(10_000_000)),
            Channel::Email | Channel::Widget => self.email(),
            _ => format!("{}-{}", channel.name(), self.rng.below(1_000_000_000)),
        };
        // Who writes by e-mail is known by that address.
        let email = (channel == Channel::Email).then(|| value.clone());
        let identity = ChannelIdentity {
            channel,
            value,
            account: None,
        };
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
                email,
                at,
            },
        );
        // An occasional merge of the previous customer into this one, as the API does it:
        // the merged customer points to the survivor, which takes over its identities.
        if let Some((other, mut other_state)) = self.customers.last().cloned()
            && other != id
            && self.rng.chance(3)
        {
            let by = Actor::Agent(self.agent());
            let at = self.at();
            let identities = other_state.identities.iter().cloned().collect();
            if self.run(
                format!("customer-{other}"),
                &mut other_state,
                CustomerCommand::MergeInto {
                    survivor: id,
                    by,
                    at,
                },
            ) {
                self.run(
                    format!("customer-{id}"),
                    &mut state,
                    CustomerCommand::Absorb {
                        merged: other,
                        identities,
                        by,
                        at,
                    },
                );
                self.merges.push((other, id));
                if self.merges.len() > 100 {
                    self.merges.remove(0);
                }
            }
            if let Some(last) = self.customers.last_mut() {
                last.1 = other_state;
            }
        }
        self.customers.push((id, state));
        if self.customers.len() > 1_000 {
            self.customers.remove(0);
        }
        // Now and then, a merge made by mistake is undone: both customers record it.
        if !self.merges.is_empty() && self.rng.below(1_000) < UNMERGE_PER_MILLE {
            let k = self.rng.below(self.merges.len() as u64) as usize;
            let (merged, survivor) = self.merges.swap_remove(k);
            let by = Actor::Agent(self.agent());
            let at = self.at();
            self.on_customer(merged, CustomerCommand::Unmerge { by, at });
            self.on_customer(survivor, CustomerCommand::Release { merged, by, at });
        }
        id
    }

    fn new_life(&mut self) -> Life {
        if self.rng.chance(self.shape.social_percent) {
            let channel = SOCIAL[self.rng.below(SOCIAL.len() as u64) as usize];
            if self.rng.chance(50) {
                return self.social_through_account(channel);
            }
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
                    reply_token: None,
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
                contact: None,
            }
        } else if self.rng.chance(INTERNAL_PERCENT) {
            // Agents talking among themselves: two or three of them.
            let starter = self.agent();
            let mut members = vec![self.other_agent(starter)];
            if self.rng.chance(40) {
                let third = self.other_agent(starter);
                if !members.contains(&third) {
                    members.push(third);
                }
            }
            let id = ConversationId(self.id());
            let mut state = Conversation::default();
            let at = self.at();
            let subject = self.text(4);
            self.run(
                format!("conversation-{id}"),
                &mut state,
                C::Start(Start {
                    conversation_id: id,
                    kind: ConversationKind::Internal,
                    channel: Channel::Internal,
                    queue: None,
                    subject,
                    started_by: Actor::Agent(starter),
                    customers: vec![],
                    members,
                    origin: None,
                    at,
                }),
            );
            Life::Internal {
                id,
                state,
                steps: 3 + self.rng.below(12) as u32,
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
            self.follow_business_hours();
            self.admin();
            if !self.pending.is_empty() {
                continue;
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

    /// The help desk goes online when its business hours begin and offline when they end.
    fn follow_business_hours(&mut self) {
        let Some(schedule) = &self.help_desk.business_hours else {
            return;
        };
        let now = Timestamp(self.clock);
        let open = business_seconds(schedule, now, now.plus_secs(1)) > 0;
        if open != self.help_desk.online {
            let by = Actor::Agent(self.agent());
            let at = self.at();
            self.help_desk(if open {
                HelpDeskCommand::GoOnline { by, at }
            } else {
                HelpDeskCommand::GoOffline { by, at }
            });
        }
    }

    /// What admins rarely do: the help desk's settings, API tokens.
    fn admin(&mut self) {
        let mut roll = self.rng.below(100_000);
        if roll >= ADMIN_PER_100K {
            return;
        }
        let by = Actor::Agent(self.agent());
        if roll < BUSINESS_HOURS_PER_100K {
            let current = (0..SCHEDULES)
                .find(|c| self.help_desk.business_hours.as_ref() == Some(&schedule(*c)));
            let mut choice = self.rng.below(SCHEDULES);
            if Some(choice) == current {
                choice = (choice + 1) % SCHEDULES;
            }
            let at = self.at();
            self.help_desk(HelpDeskCommand::SetBusinessHours {
                schedule: schedule(choice),
                by,
                at,
            });
            return;
        }
        roll -= BUSINESS_HOURS_PER_100K;
        if roll < REPORT_RULES_PER_100K {
            let at = self.at();
            self.help_desk(HelpDeskCommand::ChangeReportRules {
                business_hours_only: !self.help_desk.business_hours_only,
                by,
                at,
            });
            return;
        }
        roll -= REPORT_RULES_PER_100K;
        if roll < WIDGET_MESSAGES_PER_100K {
            self.widget_messages();
            return;
        }
        roll -= WIDGET_MESSAGES_PER_100K;
        if roll < TOKEN_ISSUES_PER_100K {
            self.issue_token(by);
            return;
        }
        roll -= TOKEN_ISSUES_PER_100K;
        if roll < TOKEN_REVOCATIONS_PER_100K && !self.tokens.is_empty() {
            let k = self.rng.below(self.tokens.len() as u64) as usize;
            let (token_id, mut token) = self.tokens.swap_remove(k);
            let at = self.at();
            self.run(
                format!("token-{token_id}"),
                &mut token,
                TokenCommand::Revoke { by, at },
            );
        }
    }

    fn widget_messages(&mut self) {
        let by = Actor::Agent(self.agent());
        let online_message = format!("Hello! {}", self.text(8));
        let offline_message = format!("We are away. {}", self.text(8));
        let at = self.at();
        self.help_desk(HelpDeskCommand::SetWidgetMessages {
            online_message,
            offline_message,
            by,
            at,
        });
    }

    /// A token for an agent's device, an integration, a widget visitor or another admin.
    fn issue_token(&mut self, by: Actor) {
        let (role, label) = match self.rng.below(20) {
            0..=11 => {
                let agent = self.agent();
                let support = self.rng.chance(70);
                (
                    Role::Agent { agent, support },
                    format!("{} laptop", self.text(1)),
                )
            }
            12..=14 => (Role::Integration, format!("{} sync", self.text(1))),
            15..=17 if !self.customers.is_empty() => {
                let i = self.rng.below(self.customers.len() as u64) as usize;
                let customer = self.customers[i].0;
                (Role::Visitor { customer }, "widget visitor".into())
            }
            _ => {
                let agent = self.agent();
                (Role::Admin { agent: Some(agent) }, "admin".into())
            }
        };
        let token_id = TokenId(self.id());
        let secret_sha256 = self.digest();
        let at = self.at();
        let mut token = Token::default();
        if self.run(
            format!("token-{token_id}"),
            &mut token,
            TokenCommand::Issue {
                token_id,
                role,
                label,
                secret_sha256,
                by,
                at,
            },
        ) {
            self.tokens.push((token_id, token));
            if self.tokens.len() > 1_000 {
                self.tokens.remove(0);
            }
        }
    }

    /// Starts a conversation from `message_id` of `origin` (same kind, customers, channel and
    /// queue; an internal one keeps its members), then records the branch on `origin`, as the
    /// API's workflow does. The new conversation, if it started.
    fn branch(
        &mut self,
        origin_id: ConversationId,
        origin: &mut Conversation,
        message_id: MessageId,
        by: Actor,
    ) -> Option<(ConversationId, Conversation)> {
        let (kind, channel) = (origin.kind?, origin.channel?);
        let id = ConversationId(self.id());
        let mut state = Conversation::default();
        let at = self.at();
        let members = match kind {
            ConversationKind::Internal => origin.members.iter().copied().collect(),
            ConversationKind::Customer => Vec::new(),
        };
        let started = self.run(
            format!("conversation-{id}"),
            &mut state,
            C::Start(Start {
                conversation_id: id,
                kind,
                channel,
                queue: origin.queue,
                subject: format!("Re: {}", origin.subject)
                    .chars()
                    .take(MAX_SUBJECT_CHARS)
                    .collect(),
                started_by: by,
                customers: origin.customers.iter().copied().collect(),
                members,
                origin: Some(Origin {
                    conversation_id: origin_id,
                    message_id,
                }),
                at,
            }),
        );
        if !started {
            return None;
        }
        self.run(
            format!("conversation-{origin_id}"),
            origin,
            C::RecordBranch {
                message_id,
                new_conversation_id: id,
                by,
                at,
            },
        );
        Some((id, state))
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
            } => self.step_chat(*id, state, *customer, messages, steps),
            Life::Internal { id, state, steps } => self.step_internal(*id, state, steps),
            Life::Social {
                id,
                state,
                steps,
                contact,
            } => self.step_social(*id, state, steps, contact),
        }
    }

    fn step_chat(
        &mut self,
        id: ConversationId,
        state: &mut Conversation,
        customer: CustomerId,
        messages: &mut Vec<(MessageId, Actor)>,
        steps: &mut u32,
    ) -> bool {
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
                            customer,
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
                    let command = plain_message(
                        message_id,
                        Actor::Customer(customer),
                        body,
                        Visibility::Public,
                        at,
                    );
                    self.run(stream, state, command);
                }
            }
            return false;
        }
        *steps -= 1;
        let roll = self.rng.below(1_000);
        let command = match roll {
            0..=299 => {
                let body = self.text(12);
                let message_id = MessageId(self.id());
                messages.push((message_id, Actor::Customer(customer)));
                plain_message(
                    message_id,
                    Actor::Customer(customer),
                    body,
                    Visibility::Public,
                    at,
                )
            }
            300..=579 => {
                let body = self.text(16);
                let message_id = MessageId(self.id());
                let visibility = if self.rng.chance(15) {
                    Visibility::Internal
                } else {
                    Visibility::Public
                };
                messages.push((message_id, by));
                plain_message(message_id, by, body, visibility, at)
            }
            // An agent who was asked in leaves (or is taken off) the conversation.
            580..=583 => match state
                .members
                .iter()
                .copied()
                .find(|m| Some(*m) != state.assignee)
            {
                Some(member) => C::RemoveParticipant {
                    participant: Participant::Agent(member),
                    by: Actor::Agent(member),
                    at,
                },
                None => C::Follow { agent, at },
            },
            584..=586 => match state.tickets.iter().next() {
                Some(ticket_id) => C::UnlinkTicket {
                    ticket_id: *ticket_id,
                    by,
                    at,
                },
                None => C::Follow { agent, at },
            },
            // A new conversation started from a customer's message.
            587..=591 => {
                let origin = messages.iter().rev().map(|(m, _)| *m).find(|m| {
                    state
                        .messages
                        .get(m)
                        .is_some_and(|s| !s.deleted && s.visibility == Visibility::Public)
                });
                if let Some(message_id) = origin
                    && let Some((new_id, new_state)) = self.branch(id, state, message_id, by)
                {
                    self.lives.push(Life::Chat {
                        id: new_id,
                        state: new_state,
                        customer,
                        messages: Vec::new(),
                        steps: 2 + self.rng.below(8) as u32,
                    });
                }
                return true;
            }
            // The customer gives an e-mail address, corrects their name or asks that their
            // address be forgotten.
            592..=595 => {
                if let Some((_, known)) = self.customers.iter().find(|(c, _)| *c == customer) {
                    let (name, email) = (known.name.clone(), known.email.clone());
                    let (name, email) = match self.rng.below(10) {
                        6..=8 => (Some(self.text(2)), email),
                        9 if email.is_some() => (name, None),
                        _ => (name, Some(self.email())),
                    };
                    self.on_customer(
                        customer,
                        CustomerCommand::ChangeDetails {
                            name,
                            email,
                            by,
                            at,
                        },
                    );
                }
                return true;
            }
            // The customer is also reachable through another channel.
            596..=599 => {
                let identity = if self.rng.chance(50) {
                    ChannelIdentity {
                        channel: Channel::Email,
                        value: self.email(),
                        account: None,
                    }
                } else {
                    ChannelIdentity {
                        channel: Channel::Whatsapp,
                        value: format!("+1 555 {:07}", self.rng.below(10_000_000)),
                        account: None,
                    }
                };
                self.on_customer(customer, CustomerCommand::AddIdentity { identity, at });
                return true;
            }
            600..=679 if state.assignee.is_none() => C::Assign { agent, by, at },
            600..=679 => match messages.last() {
                Some((through, _)) => C::MarkRead {
                    reader: Participant::Agent(agent),
                    through: *through,
                    at,
                },
                None => C::Follow { agent, at },
            },
            680..=719 => C::Transfer {
                to: self.agent(),
                by,
                at,
            },
            720..=739 => C::ChangeQueue {
                queue: self.queue(),
                by,
                at,
            },
            740..=769 => C::Follow {
                agent: self.agent(),
                at,
            },
            770..=789 => C::Invite {
                agent: self.agent(),
                by,
                at,
            },
            790..=809 => C::Pin {
                agent,
                auto_close_at: Timestamp(at.0 + 86_400_000_000),
                at,
            },
            810..=819 => C::Unpin { agent, at },
            820..=839 => C::TakeOver {
                agent: self.agent(),
                at,
            },
            840..=849 => C::ReturnToQueue { agent, at },
            850..=879 => match messages.last() {
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
            880..=899 => match messages.pop() {
                Some((message_id, author)) => C::DeleteMessage {
                    message_id,
                    by: author,
                    at,
                },
                None => C::Follow { agent, at },
            },
            900..=919 => match messages.first() {
                Some((message_id, _)) => C::MarkUnread {
                    reader: Participant::Agent(agent),
                    message_id: *message_id,
                    at,
                },
                None => C::Follow { agent, at },
            },
            920..=939 => C::Rename {
                subject: self.text(3),
                by,
                at,
            },
            940..=969 => {
                // A ticket created from the chat, linked to it.
                let ticket = TicketId(self.id());
                let mut ticket_state = Ticket::default();
                let title = self.text(4);
                self.run(
                    format!("ticket-{ticket}"),
                    &mut ticket_state,
                    T::Create(CreateTicket {
                        reply_token: None,
                        ticket_id: ticket,
                        ticket_type: TicketType::Task,
                        title,
                        description: String::new(),
                        priority: Priority::High,
                        requester: Some(customer),
                        source: TicketSource::Conversation {
                            conversation_id: id,
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
            970..=979 => C::Close { by, at },
            980..=989 => C::Reopen { by, at },
            _ => C::Unfollow { agent, at },
        };
        self.run(stream, state, command);
        true
    }

    fn step_internal(
        &mut self,
        id: ConversationId,
        state: &mut Conversation,
        steps: &mut u32,
    ) -> bool {
        let stream = format!("conversation-{id}");
        let at = self.at();
        let members: Vec<AgentId> = state.members.iter().copied().collect();
        let Some(&member) = members.get(self.rng.below(members.len() as u64) as usize) else {
            return false;
        };
        let by = Actor::Agent(member);
        if *steps == 0 {
            self.run(stream, state, C::Close { by, at });
            return false;
        }
        *steps -= 1;
        let last = state
            .messages
            .iter()
            .filter(|(_, m)| !m.deleted)
            .max_by_key(|(_, m)| m.seq)
            .map(|(message_id, m)| (*message_id, m.author));
        let command = match self.rng.below(100) {
            0..=54 => {
                // Agents mention each other and quote earlier messages.
                let mentions = if self.rng.chance(20) {
                    members
                        .iter()
                        .copied()
                        .filter(|m| *m != member)
                        .take(1)
                        .collect()
                } else {
                    vec![]
                };
                let quote_of = last.filter(|_| self.rng.chance(10)).map(|(m, _)| m);
                let message_id = MessageId(self.id());
                C::SendMessage(SendMessage {
                    message_id,
                    author: by,
                    body: self.text(14),
                    visibility: Visibility::Public,
                    attachments: stored_files(message_id),
                    mentions,
                    quote_of,
                    at,
                })
            }
            55..=64 => match last {
                Some((through, _)) => C::MarkRead {
                    reader: Participant::Agent(member),
                    through,
                    at,
                },
                None => C::Follow { agent: member, at },
            },
            65..=72 => C::Invite {
                agent: self.agent(),
                by,
                at,
            },
            73..=78 => match members.iter().copied().find(|m| *m != member) {
                Some(other) if members.len() > 2 => C::RemoveParticipant {
                    participant: Participant::Agent(other),
                    by,
                    at,
                },
                _ => C::Invite {
                    agent: self.agent(),
                    by,
                    at,
                },
            },
            79..=83 => C::Follow { agent: member, at },
            84..=86 => match state.followers.iter().next() {
                Some(follower) => C::Unfollow {
                    agent: *follower,
                    at,
                },
                None => C::Follow { agent: member, at },
            },
            87..=90 => C::Rename {
                subject: self.text(3),
                by,
                at,
            },
            91..=93 => match last {
                Some((message_id, author)) => C::EditMessage {
                    message_id,
                    body: self.text(10),
                    by: author,
                    at,
                },
                None => C::Follow { agent: member, at },
            },
            94..=95 => match last {
                Some((message_id, author)) => C::DeleteMessage {
                    message_id,
                    by: author,
                    at,
                },
                None => C::Follow { agent: member, at },
            },
            96..=97 => {
                if let Some((message_id, _)) = last
                    && let Some((new_id, new_state)) = self.branch(id, state, message_id, by)
                {
                    self.lives.push(Life::Internal {
                        id: new_id,
                        state: new_state,
                        steps: 2 + self.rng.below(6) as u32,
                    });
                }
                return true;
            }
            _ => match state.messages.iter().find(|(_, m)| m.seq == 1) {
                Some((message_id, _)) => C::MarkUnread {
                    reader: Participant::Agent(member),
                    message_id: *message_id,
                    at,
                },
                None => C::Follow { agent: member, at },
            },
        };
        self.run(stream, state, command);
        true
    }

    /// The account of `channel` webhooks arrive through: registered on first use; now and then
    /// renamed, its secrets rotated, or removed and another registered.
    fn account(&mut self, channel: Channel) -> ChannelId {
        let by = Actor::Agent(self.agent());
        if let Some(i) = self
            .accounts
            .iter()
            .position(|(_, a)| a.channel == Some(channel))
        {
            let (id, mut state) = self.accounts[i].clone();
            let stream = format!("channel-{id}");
            let at = self.at();
            match self.rng.below(100) {
                0..=2 => {
                    self.run(stream, &mut state, ChannelCommand::Remove { by, at });
                    self.accounts.remove(i);
                    return self.account(channel);
                }
                3..=6 => {
                    let name = self.text(3);
                    let platform_ids = state.platform_ids.clone();
                    self.run(
                        stream,
                        &mut state,
                        ChannelCommand::Change {
                            name,
                            platform_ids,
                            api_base: None,
                            by,
                            at,
                        },
                    );
                }
                7..=9 => {
                    self.run(
                        stream,
                        &mut state,
                        ChannelCommand::RotateSecrets {
                            changed: ["access_token".to_owned()].into(),
                            cleared: Default::default(),
                            by,
                            at,
                        },
                    );
                }
                _ => {}
            }
            self.accounts[i].1 = state;
            return id;
        }
        let id = ChannelId(self.id());
        let mut state = ChannelAccount::default();
        let at = self.at();
        let name = self.text(3);
        let platform_ids = [("account_id".to_owned(), self.rng.below(1 << 40).to_string())].into();
        self.run(
            format!("channel-{id}"),
            &mut state,
            ChannelCommand::Register {
                channel_id: id,
                channel,
                name,
                platform_ids,
                api_base: None,
                by,
                at,
            },
        );
        self.run(
            format!("channel-{id}"),
            &mut state,
            ChannelCommand::RotateSecrets {
                changed: ["access_token".to_owned(), "app_secret".to_owned()].into(),
                cleared: Default::default(),
                by,
                at,
            },
        );
        self.accounts.push((id, state));
        id
    }

    /// A message that came through `contact`'s account, as its webhook records it.
    fn social_message(
        &mut self,
        contact: &mut (ContactId, Contact),
        account: ChannelId,
        user: &str,
    ) -> String {
        let at = self.at();
        let text = self.text(10);
        let media = if self.rng.chance(10) {
            vec![SocialMedia {
                kind: "image".into(),
                source: "url".into(),
                reference: format!("https://media.example/{}", self.rng.below(1 << 30)),
                name: None,
                content_type: Some("image/jpeg".into()),
            }]
        } else {
            vec![]
        };
        let received = SocialMessageReceived {
            contact_id: contact.0,
            channel_id: account,
            platform_message_id: format!("m-{}", self.rng.next_u64()),
            profile: SocialProfile {
                user_id: user.to_owned(),
                name: Some(self.text(2)),
                ..SocialProfile::default()
            },
            kind: if media.is_empty() { "text" } else { "image" }.into(),
            text: text.clone(),
            media,
            reply_token: None,
            sent_at: at,
            at,
        };
        let id = received.platform_message_id.clone();
        self.run(
            format!("contact-{}", contact.0),
            &mut contact.1,
            ContactCommand::Receive(received),
        );
        id
    }

    /// A social ticket opened by a webhook of a connected account: the contact's message, the
    /// customer met through that account (with what the platform told of them), the ticket,
    /// and the contact now continuing it.
    fn social_through_account(&mut self, channel: Channel) -> Life {
        let account = self.account(channel);
        let user = format!("user-{}", self.rng.below(1_000_000));
        let mut contact = (ContactId::of(account, &user), Contact::default());
        if channel == Channel::Line {
            let at = self.at();
            self.run(
                format!("contact-{}", contact.0),
                &mut contact.1,
                ContactCommand::Follow(SocialContactFollowed {
                    contact_id: contact.0,
                    channel_id: account,
                    profile: SocialProfile {
                        user_id: user.clone(),
                        ..SocialProfile::default()
                    },
                    followed: true,
                    at,
                }),
            );
        }
        let opened_by = self.social_message(&mut contact, account, &user);
        let identity = ChannelIdentity {
            channel,
            value: user.clone(),
            account: Some(account.to_string()),
        };
        let customer = CustomerId::for_identity(&identity);
        let mut customer_state = Customer::default();
        let at = self.at();
        let name = Some(self.text(2));
        self.run(
            format!("customer-{customer}"),
            &mut customer_state,
            CustomerCommand::Create {
                customer_id: customer,
                identity,
                name: name.clone(),
                email: None,
                at,
            },
        );
        self.run(
            format!("customer-{customer}"),
            &mut customer_state,
            CustomerCommand::RecordSocialProfile {
                account: account.to_string(),
                channel,
                profile: SocialProfile {
                    user_id: user.clone(),
                    name,
                    ..SocialProfile::default()
                },
                at,
            },
        );
        let id = TicketId(self.id());
        let mut state = Ticket::default();
        let title = self.text(4);
        let description = self.text(10);
        self.run(
            format!("ticket-{id}"),
            &mut state,
            T::Create(CreateTicket {
                reply_token: None,
                ticket_id: id,
                ticket_type: TicketType::Ticket,
                title,
                description,
                priority: Priority::Normal,
                requester: Some(customer),
                source: TicketSource::Social { channel },
                tags: vec![MESSAGING_SUPPORT_TAG.into(), channel_tag(channel).into()],
                channel_info: Some(ChannelInfo {
                    channel,
                    account_id: account.to_string(),
                    customer_handle: user,
                }),
                created_by: Actor::System,
                at,
            }),
        );
        self.run(
            format!("contact-{}", contact.0),
            &mut contact.1,
            ContactCommand::Route {
                platform_message_id: opened_by,
                ticket_id: id,
                opens_ticket: true,
                at,
            },
        );
        Life::Social {
            id,
            state,
            steps: 3 + self.rng.below(10) as u32,
            contact: Some(Box::new(contact)),
        }
    }

    fn step_social(
        &mut self,
        id: TicketId,
        state: &mut Ticket,
        steps: &mut u32,
        contact: &mut Option<Box<(ContactId, Contact)>>,
    ) -> bool {
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
            self.run(stream.clone(), state, T::ChangeStatus { to, by, at });
            if to == TicketStatus::Solved && self.rng.chance(25) {
                let at = self.at();
                self.run(
                    stream,
                    state,
                    T::ChangeStatus {
                        to: TicketStatus::Closed,
                        by,
                        at,
                    },
                );
            }
            return false;
        }
        *steps -= 1;
        let pending_reply = state
            .replies
            .iter()
            .find(|(_, s)| **s == ReplyState::Pending)
            .map(|(reply_id, _)| *reply_id);
        let delivered_reply = state
            .replies
            .iter()
            .find(|(reply_id, s)| {
                **s == ReplyState::Delivered && !state.receipts.contains_key(reply_id)
            })
            .map(|(reply_id, _)| *reply_id);
        let follower = state.followers.iter().next().copied();
        let roll = self.rng.below(1_000);
        // A connected account's webhook records the customer's message on the contact first.
        if roll < 300
            && let Some(contact) = contact
            && let (Some(account), Some(info)) = (contact.1.channel_id, state.channel_info.clone())
        {
            self.social_message(contact, account, &info.customer_handle);
        }
        let command = match (roll, pending_reply, follower) {
            (0..=299, ..) => T::ReceiveCustomerMessage {
                reply_token: None,
                message_id: self.id(),
                body: self.text(12),
                attachments: vec![],
                at,
            },
            (300..=449, ..) if state.assignee.is_none() => T::Assign { agent, by, at },
            (300..=559, ..) => T::RequestReply {
                attachments: vec![],
                reply_id: self.id(),
                body: self.text(12),
                by,
                at,
            },
            // The channel reports a reply delivered.
            (620..=699, Some(reply_id), _) => T::MarkReplyDelivered {
                attempts: 0,
                platform_message_id: None,
                reply_id,
                at,
            },
            (560..=699, ..) => T::Comment {
                comment_id: self.id(),
                author: by,
                body: self.text(10),
                visibility: Visibility::Internal,
                attachments: vec![],
                at,
            },
            // The platform reports a delivered reply read.
            (700..=739, ..) if delivered_reply.is_some() => T::RecordReceipt {
                reply_id: delivered_reply.unwrap_or_default(),
                status: ReceiptStatus::Read,
                code: None,
                text: None,
                at,
            },
            (700..=749, ..) => T::ChangeStatus {
                to: TicketStatus::Pending,
                by,
                at,
            },
            (750..=799, ..) => T::ChangeStatus {
                to: TicketStatus::Open,
                by,
                at,
            },
            (800..=829, ..) => T::RemoveTag {
                tag: MESSAGING_SUPPORT_TAG.into(),
                by,
                at,
            },
            (830..=849, ..) => T::AddTag {
                tag: MESSAGING_SUPPORT_TAG.into(),
                by,
                at,
            },
            (850..=879, ..) => T::Unassign { by, at },
            (880..=929, ..) => T::ChangePriority {
                priority: Priority::Urgent,
                by,
                at,
            },
            (965..=979, _, Some(follower)) => T::Unfollow {
                agent: follower,
                at,
            },
            (980..=984, ..) => T::ChangeTitle {
                title: self.text(4),
                by,
                at,
            },
            (985..=989, ..) => T::ChangeDescription {
                description: self.text(20),
                by,
                at,
            },
            (990..=992, ..) => T::ChangeType {
                ticket_type: match state.ticket_type {
                    Some(TicketType::Ticket) => TicketType::Task,
                    _ => TicketType::Ticket,
                },
                by,
                at,
            },
            // The customer writes from another handle (the account stays the same).
            (993..=995, ..) if state.channel_info.is_some() => {
                let handle = format!("handle-{}", self.rng.below(1_000_000));
                T::SetChannelInfo {
                    channel_info: state.channel_info.clone().map(|info| ChannelInfo {
                        customer_handle: handle,
                        ..info
                    }),
                    by,
                    at,
                }
            }
            // The channel refuses a reply.
            (996..=999, Some(reply_id), _) => T::MarkReplyFailed {
                attempts: 0,
                code: None,
                reply_id,
                reason: "the channel refused the message".into(),
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

/// A message without mentions or a quote (now and then with a stored file).
fn plain_message(
    message_id: MessageId,
    author: Actor,
    body: String,
    visibility: Visibility,
    at: Timestamp,
) -> C {
    C::SendMessage(SendMessage {
        message_id,
        author,
        body,
        visibility,
        attachments: stored_files(message_id),
        mentions: vec![],
        quote_of: None,
        at,
    })
}

/// One message in eight carries a file of Parley's file store, chosen by the message's id, so
/// that the history's other draws stay what they were.
fn stored_files(message_id: MessageId) -> Vec<parley_domain::conversation::Attachment> {
    let id = message_id.0;
    if !id.as_bytes()[15].is_multiple_of(8) {
        return Vec::new();
    }
    let file_id = Uuid::new_v5(&id, b"file");
    vec![parley_domain::conversation::Attachment {
        name: "photo.jpg".into(),
        content_type: "image/jpeg".into(),
        size: 48_213,
        storage_ref: format!("file:{file_id}"),
        file_id: Some(file_id),
        sha256: Some(file_id.simple().to_string().repeat(2)),
        unavailable: None,
    }]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::families;
    use std::collections::{BTreeMap, BTreeSet};

    /// Event types seen per stream prefix in the first `events` events of `seed`'s history.
    fn seen(seed: u64, events: usize) -> BTreeMap<String, BTreeMap<String, u64>> {
        let mut workload = Workload::new(seed, Shape::default());
        let mut seen: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        let mut written = 0;
        while written < events {
            let append = workload.next_append();
            let prefix = append
                .stream
                .split('-')
                .next()
                .unwrap_or_default()
                .to_owned();
            for event in &append.events {
                *seen
                    .entry(prefix.clone())
                    .or_default()
                    .entry(event.event_type.clone())
                    .or_default() += 1;
            }
            written += append.events.len();
        }
        seen
    }

    /// Every type of every family (as `DomainEvent::event_types` lists them, see
    /// [`families`]) occurs in thirty thousand events of the default shape: the read models'
    /// tests and the benchmark see them all.
    #[test]
    fn a_history_of_thirty_thousand_events_holds_every_event_type() {
        for seed in [1, 42] {
            let seen = seen(seed, 30_000);
            for prefix in seen.keys() {
                assert!(
                    families().iter().any(|(family, _)| family == prefix),
                    "{prefix} streams belong to no family"
                );
            }
            let mut missing = Vec::new();
            for (prefix, types) in families() {
                let found = seen.get(prefix).cloned().unwrap_or_default();
                missing.extend(
                    types
                        .iter()
                        .filter(|t| !found.contains_key(**t))
                        .map(|t| format!("{prefix}: {t}")),
                );
                let unknown: BTreeSet<_> = found
                    .keys()
                    .filter(|t| !types.contains(&t.as_str()))
                    .collect();
                assert!(unknown.is_empty(), "{prefix} streams hold {unknown:?}");
            }
            assert!(
                missing.is_empty(),
                "seed {seed} never generates {missing:?}"
            );
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_history_with_time_ordered_ids() {
        let history = |seed| {
            let mut workload = Workload::new(seed, Shape::default());
            (0..2_000)
                .map(|_| {
                    let append = workload.next_append();
                    let ids: Vec<_> = append.events.iter().map(|e| e.event_id).collect();
                    (append.stream, ids)
                })
                .collect::<Vec<_>>()
        };
        let first = history(3);
        assert_eq!(first, history(3));
        assert_ne!(first, history(4));
        let millis: Vec<u64> = first
            .iter()
            .flat_map(|(_, ids)| ids)
            .map(|id| {
                let (secs, nanos) = id.get_timestamp().expect("a UUIDv7").to_unix();
                secs * 1_000 + u64::from(nanos / 1_000_000)
            })
            .collect();
        assert!(
            millis.windows(2).all(|w| w[0] <= w[1]),
            "ids go back in time"
        );
    }
}
