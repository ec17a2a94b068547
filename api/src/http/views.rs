//! Every read model over HTTP: the agent inbox, the social notifier, conversation and ticket
//! detail, customers and their history, search, reports, and audits of any stream.
//!
//! Conventions of every route here:
//! - staff only (admins, agents, integrations); widget visitors are refused;
//! - `?position=<global position>` (the `position` a command answered) makes the read wait
//!   until the read model has applied it, so a client reads its own writes;
//! - timestamps are **microseconds since the Unix epoch**, as the read models store them, both
//!   in answers and in query parameters (`from`, `to`, `at`); report days are `YYYY-MM-DD`;
//! - lists are paged by opaque cursors (`?cursor=` in, `next_cursor` out) with a bounded
//!   `limit`; a parameter that does not parse, or that no route knows, is a 400.
//!
//! Who sees what: the "from customers" section, customers and customer conversations outside
//! one's own are for support agents, admins and integrations (`Caller::sees_from_customers`);
//! internal conversations only for their participants (anyone else gets 404, as for a
//! conversation that does not exist); audits for admins and integrations.

use super::auth::Caller;
use super::extract::{Encoded, Json, Path, Query};
use super::{AppState, AtLeast, DetailParams};
use crate::problem::Problem;
use axum::extract::State;
use parley_domain::Aggregate;
use parley_domain::access::Role;
use parley_domain::conversation::Channel;
use parley_domain::conversation::Conversation;
use parley_domain::customer::{ChannelIdentity, Customer};
use parley_domain::helpdesk::{BusinessHours, HelpDesk};
use parley_domain::ticket::{ChannelInfo, Ticket, TicketSource};
use parley_eventlog::{ActorKind, AsOf, EventLog, Position, StreamId, StreamVersion};
use parley_projections::audit::{self, AuditEntry, AuditError};
use parley_projections::detail::{self, ConversationView, TicketView, Viewer};
use parley_projections::inbox::{self, Section};
use parley_projections::keys::{actor_key, participant_key};
use parley_projections::notifier;
use parley_projections::{StoreError, Tables, Tx};
use parley_projections::{customers, reports, search};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(inbox_mine))
        .routes(routes!(inbox_from_customers))
        .routes(routes!(inbox_counts))
        .routes(routes!(notifier_assigned_to_me))
        .routes(routes!(notifier_unassigned))
        .routes(routes!(notifier_your_tickets))
        .routes(routes!(notifier_summary))
        .routes(routes!(conversation_detail))
        .routes(routes!(ticket_detail))
        .routes(routes!(customer_lookup))
        .routes(routes!(customer_detail))
        .routes(routes!(customer_history))
        .routes(routes!(search_messages))
        .routes(routes!(report))
        .routes(routes!(social_report))
        .routes(routes!(audit_history))
        .routes(routes!(ticket_events))
        .routes(routes!(audit_state))
}

// ---------------------------------------------------------------------------------------------
// Shared steps.

/// Waits for read model `name` to reach `position` (when given), then runs `work` on it.
async fn read<T, F>(
    state: &AppState,
    name: &'static str,
    position: Option<u64>,
    work: F,
) -> Result<T, Problem>
where
    T: Send + 'static,
    F: Fn(&mut dyn Tx, &Tables) -> Result<T, StoreError> + Send + Sync + 'static,
{
    state.caught_up(name, position).await?;
    Ok(state.models.query(name, work).await?)
}

/// [`read`] for one bounded page, with `work`'s answer encoded as JSON where it was built (see
/// [`Encoded`]). A page that reads one index range is `short`: on SQLite it runs on this
/// task's thread (`ReadModels::query_short`).
async fn read_page<T, F>(
    state: &AppState,
    name: &'static str,
    position: Option<u64>,
    short: bool,
    work: F,
) -> Result<Encoded<T>, Problem>
where
    T: Serialize + 'static,
    F: Fn(&mut dyn Tx, &Tables) -> Result<T, StoreError> + Send + Sync + 'static,
{
    state.caught_up(name, position).await?;
    let encoded = move |tx: &mut dyn Tx, t: &Tables| {
        Encoded::new(&work(tx, t)?)
            .map_err(|e| StoreError::Corrupt(name, format!("encoding an answer: {e}")))
    };
    Ok(if short {
        state.models.query_short(name, encoded).await?
    } else {
        state.models.query(name, encoded).await?
    })
}

/// `limit` checked against `1..=max`, `default` when absent.
fn page_size(limit: Option<usize>, default: usize, max: usize) -> Result<usize, Problem> {
    let limit = limit.unwrap_or(default);
    if (1..=max).contains(&limit) {
        Ok(limit)
    } else {
        Err(Problem::bad_request(format!(
            "limit must be between 1 and {max}"
        )))
    }
}

/// The agent the caller reads as; admins without an agent id and integrations read as nobody
/// in particular (they see customer conversations, and no internal ones).
fn viewer(caller: &Caller) -> Uuid {
    caller.agent().map_or(Uuid::nil(), |agent| agent.0)
}

/// The section "from customers" and customers' records: support agents, admins, integrations.
fn require_customer_support(caller: &Caller) -> Result<(), Problem> {
    caller.require_staff()?;
    if caller.sees_from_customers() {
        Ok(())
    } else {
        Err(Problem::forbidden(
            "only customer-support agents see conversations from customers and customer records",
        ))
    }
}

fn not_found(what: &str) -> Problem {
    Problem::not_found(format!("no such {what}"))
}

// ---------------------------------------------------------------------------------------------
// Inbox.

/// A conversation's status, as filters name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConversationStatus {
    Open,
    Closed,
    Spam,
}

impl ConversationStatus {
    fn name(self) -> &'static str {
        match self {
            ConversationStatus::Open => "open",
            ConversationStatus::Closed => "closed",
            ConversationStatus::Spam => "spam",
        }
    }
}

/// Filters and paging of an inbox section; every filter is optional and they combine.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct InboxParams {
    /// Wait until the inbox reflects this log position (read-your-writes).
    pub position: Option<u64>,
    /// Only conversations in this status.
    #[param(inline)]
    pub status: Option<ConversationStatus>,
    /// Only open customer conversations assigned to nobody.
    #[serde(default)]
    pub unassigned: bool,
    /// Only pinned conversations: by the caller in "mine", by anyone in "from customers".
    #[serde(default)]
    pub pinned: bool,
    /// Only open conversations awaiting an agent's first public response.
    #[serde(default)]
    pub awaiting_first_response: bool,
    /// Only conversations with messages the caller has not read ("mine" only).
    #[serde(default)]
    pub unread: bool,
    /// Only this channel: `widget`, `email`, `api`, `whatsapp`, `line`, `wechat`, `facebook`,
    /// `twitter` or `internal`.
    #[param(value_type = Option<String>)]
    pub channel: Option<Channel>,
    /// Only this queue.
    pub queue: Option<Uuid>,
    /// From a previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// At most this many conversations (1..=100, default 25).
    pub limit: Option<usize>,
}

/// Conversations per inbox page when the caller names no limit.
const INBOX_PAGE: usize = 25;
/// The largest inbox page.
const INBOX_MAX_PAGE: usize = 100;

/// One page of an inbox section for `agent` (ignored for "from customers").
async fn inbox_page(
    state: &AppState,
    agent: String,
    section: Section,
    params: InboxParams,
) -> Result<Encoded<inbox::Page>, Problem> {
    let limit = page_size(params.limit, INBOX_PAGE, INBOX_MAX_PAGE)?;
    let cursor = params
        .cursor
        .as_deref()
        .map(inbox::parse_cursor)
        .transpose()
        .map_err(|e| Problem::bad_request(e.to_string()))?;
    let filter = inbox::Filter {
        status: params.status.map(|s| s.name().to_owned()),
        unassigned: params.unassigned,
        pinned: params.pinned,
        awaiting: params.awaiting_first_response,
        unread: params.unread,
        channel: params.channel.map(|c| c.name().to_owned()),
        queue: params.queue.map(|q| q.to_string()),
    };
    let short = filter.reads_one_index_range();
    read_page(state, inbox::NAME, params.position, short, move |tx, t| {
        inbox::page(tx, t, &agent, section, &filter, cursor.as_ref(), limit)
    })
    .await
}

/// "My conversations": those the calling agent started, is assigned to, follows, took part in
/// or was invited to; newest activity first. Needs an agent's token.
#[utoipa::path(get, path = "/api/v1/inbox/mine", tag = "inbox", params(InboxParams),
    responses((status = 200, body = inbox::Page), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 503, body = Problem)))]
async fn inbox_mine(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<InboxParams>,
) -> Result<Encoded<inbox::Page>, Problem> {
    let agent = caller.require_agent()?;
    inbox_page(&state, agent.to_string(), Section::Mine, params).await
}

/// "From customers": every customer conversation, newest activity first. Support agents,
/// admins and integrations only; `unread` does not apply here.
#[utoipa::path(get, path = "/api/v1/inbox/from-customers", tag = "inbox", params(InboxParams),
    responses((status = 200, body = inbox::Page), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 503, body = Problem)))]
async fn inbox_from_customers(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<InboxParams>,
) -> Result<Encoded<inbox::Page>, Problem> {
    require_customer_support(&caller)?;
    if params.unread {
        return Err(Problem::bad_request(
            "`unread` filters \"mine\" only: unread marks are per agent",
        ));
    }
    let agent = caller.agent().map(|a| a.to_string()).unwrap_or_default();
    inbox_page(&state, agent, Section::FromCustomers, params).await
}

/// The inbox's badge numbers, maintained as events arrive (never counted on request).
#[derive(Debug, Serialize, ToSchema)]
pub struct InboxCounts {
    /// "Mine" (callers acting as an agent): `all`, `open`, `closed`, `spam`, `unassigned`,
    /// `awaiting`, `pinned` and `unread` conversations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mine: Option<BTreeMap<String, i64>>,
    /// "From customers" (support agents, admins and integrations only): the same keys but
    /// `unread`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_customers: Option<BTreeMap<String, i64>>,
}

/// Counts of the inbox sections the caller may see: "mine" for agents, "from customers" for
/// support agents (absent for the others).
#[utoipa::path(get, path = "/api/v1/inbox/counts", tag = "inbox", params(AtLeast),
    responses((status = 200, body = InboxCounts), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 503, body = Problem)))]
async fn inbox_counts(
    State(state): State<AppState>,
    caller: Caller,
    Query(at): Query<AtLeast>,
) -> Result<Json<InboxCounts>, Problem> {
    caller.require_staff()?;
    let agent = caller.agent().map(|a| a.to_string());
    let support = caller.sees_from_customers();
    let counts = read(&state, inbox::NAME, at.position, move |tx, t| {
        let mine = agent
            .as_deref()
            .map(|agent| inbox::counts(tx, t, agent, Section::Mine))
            .transpose()?;
        let from_customers = if support {
            let mut counts = inbox::counts(tx, t, "", Section::FromCustomers)?;
            counts.remove("unread");
            Some(counts)
        } else {
            None
        };
        Ok(InboxCounts {
            mine,
            from_customers,
        })
    })
    .await?;
    Ok(Json(counts))
}

// ---------------------------------------------------------------------------------------------
// Social notifier.

/// Paging of a notifier tab.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct NotifierParams {
    /// Wait until the notifier reflects this log position (read-your-writes).
    pub position: Option<u64>,
    /// From a previous page's `next_cursor` ("load more").
    pub cursor: Option<String>,
    /// At most this many tickets (1..=100, default 20).
    pub limit: Option<usize>,
}

/// Which list of social tickets.
#[derive(Debug, Clone, Copy)]
enum Tab {
    AssignedToMe,
    Unassigned,
    YourTickets,
}

/// One page of a notifier list.
async fn notifier_page(
    state: &AppState,
    agent: String,
    tab: Tab,
    params: NotifierParams,
) -> Result<Encoded<notifier::Page>, Problem> {
    let limit = page_size(params.limit, notifier::PAGE_SIZE, notifier::MAX_PAGE_SIZE)?;
    let cursor = params
        .cursor
        .as_deref()
        .map(notifier::parse_cursor)
        .transpose()
        .map_err(|e| Problem::bad_request(e.to_string()))?;
    // Each tab is one range of an index of its own.
    read_page(
        state,
        notifier::NAME,
        params.position,
        true,
        move |tx, t| {
            let (cursor, limit) = (cursor.as_ref(), Some(limit));
            match tab {
                Tab::AssignedToMe => notifier::assigned_to_me(tx, t, &agent, cursor, limit),
                Tab::Unassigned => notifier::unassigned(tx, t, cursor, limit),
                Tab::YourTickets => notifier::your_tickets(tx, t, &agent, cursor, limit),
            }
        },
    )
    .await
}

/// The tab "assigned to me": the calling agent's social messaging tickets that are new or
/// open, newest customer activity first, 20 per page. Needs an agent's token.
#[utoipa::path(get, path = "/api/v1/notifier/assigned-to-me", tag = "notifier",
    params(NotifierParams),
    responses((status = 200, body = notifier::Page), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 503, body = Problem)))]
async fn notifier_assigned_to_me(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<NotifierParams>,
) -> Result<Encoded<notifier::Page>, Problem> {
    let agent = caller.require_agent()?;
    notifier_page(&state, agent.to_string(), Tab::AssignedToMe, params).await
}

/// The tab "unassigned" (also the view "unassigned social messaging tickets"): social
/// messaging tickets assigned to nobody, whatever their status, 20 per page.
#[utoipa::path(get, path = "/api/v1/notifier/unassigned", tag = "notifier",
    params(NotifierParams),
    responses((status = 200, body = notifier::Page), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 503, body = Problem)))]
async fn notifier_unassigned(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<NotifierParams>,
) -> Result<Encoded<notifier::Page>, Problem> {
    caller.require_staff()?;
    notifier_page(&state, String::new(), Tab::Unassigned, params).await
}

/// The view "your social messaging tickets": every social messaging ticket assigned to the
/// calling agent, whatever its status. Needs an agent's token.
#[utoipa::path(get, path = "/api/v1/notifier/your-tickets", tag = "notifier",
    params(NotifierParams),
    responses((status = 200, body = notifier::Page), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 503, body = Problem)))]
async fn notifier_your_tickets(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<NotifierParams>,
) -> Result<Encoded<notifier::Page>, Problem> {
    let agent = caller.require_agent()?;
    notifier_page(&state, agent.to_string(), Tab::YourTickets, params).await
}

/// The notifier's badge numbers for the calling agent, and the attention flag (the red dot:
/// some unassigned social ticket is new). Needs an agent's token.
#[utoipa::path(get, path = "/api/v1/notifier/summary", tag = "notifier", params(AtLeast),
    responses((status = 200, body = notifier::Summary), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 503, body = Problem)))]
async fn notifier_summary(
    State(state): State<AppState>,
    caller: Caller,
    Query(at): Query<AtLeast>,
) -> Result<Json<notifier::Summary>, Problem> {
    let agent = caller.require_agent()?.to_string();
    let summary = read(&state, notifier::NAME, at.position, move |tx, t| {
        notifier::summary(tx, t, &agent)
    })
    .await?;
    Ok(Json(summary))
}

// ---------------------------------------------------------------------------------------------
// Conversation and ticket detail.

/// A conversation with its messages (edits and deletions applied, internal notes included and
/// marked), participants, linked tickets, status and rating. Internal conversations answer 404
/// to anyone but their participants; customer conversations to agents without the support
/// flag who do not take part in them.
#[utoipa::path(get, path = "/api/v1/conversations/{conversation_id}", tag = "conversations",
    params(("conversation_id" = Uuid, Path, description = "The conversation's id"), DetailParams),
    responses((status = 200, body = ConversationView), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 503, body = Problem)))]
async fn conversation_detail(
    State(state): State<AppState>,
    caller: Caller,
    Path(conversation_id): Path<Uuid>,
    Query(params): Query<DetailParams>,
) -> Result<Json<ConversationView>, Problem> {
    caller.require_staff()?;
    let page = params.page()?;
    let me = viewer(&caller);
    let id = conversation_id.to_string();
    let found = read(&state, detail::NAME, params.position, move |tx, t| {
        detail::conversation(tx, t, &id, Viewer::Agent(me), page)
    })
    .await?;
    let key = format!("agent:{me}");
    found
        .filter(|view| {
            caller.sees_from_customers() || view.participants.iter().any(|p| p.participant == key)
        })
        .map(Json)
        .ok_or_else(|| not_found("conversation"))
}

/// A ticket or task with its comments, customer messages and replies (with their delivery),
/// followers, tags, source, channel info and linked conversations.
#[utoipa::path(get, path = "/api/v1/tickets/{ticket_id}", tag = "tickets",
    params(("ticket_id" = Uuid, Path, description = "The ticket's id"), DetailParams),
    responses((status = 200, body = TicketView), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 503, body = Problem)))]
async fn ticket_detail(
    State(state): State<AppState>,
    caller: Caller,
    Path(ticket_id): Path<Uuid>,
    Query(params): Query<DetailParams>,
) -> Result<Json<TicketView>, Problem> {
    caller.require_staff()?;
    let page = params.page()?;
    let me = viewer(&caller);
    let id = ticket_id.to_string();
    read(&state, detail::NAME, params.position, move |tx, t| {
        detail::ticket(tx, t, &id, Viewer::Agent(me), page)
    })
    .await?
    .map(Json)
    .ok_or_else(|| not_found("ticket"))
}

// ---------------------------------------------------------------------------------------------
// Customers.

/// A channel identity to look a customer up by (`channel` and `value`), or the beginning of
/// what is known of customers to search for (`q`, paged).
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CustomersParams {
    /// Wait until the customers read model reflects this log position (read-your-writes).
    pub position: Option<u64>,
    /// With `value`, instead of `q`: the identity's channel: `widget`, `email`, `api`,
    /// `whatsapp`, `line`, `wechat`, `facebook` or `twitter`.
    #[param(value_type = Option<String>)]
    pub channel: Option<Channel>,
    /// With `channel`: the address on that channel (phone number, LINE id, e-mail address...),
    /// compared as the domain normalises it (e-mail in lower case, phone numbers without
    /// punctuation). Finds identities met without a channel account.
    pub value: Option<String>,
    /// Search, instead of `channel` and `value` (1 to 100 characters, else 422): customers
    /// whose name (any word of it, or the whole), e-mail address, identity, or social profile
    /// (platform user id, name, phone number, username) starts with this, in any case; a phone
    /// number is compared without spaces, dashes, dots, parentheses or plus sign too.
    pub q: Option<String>,
    /// With `q`: from a previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// With `q`: at most this many customers (1..=100, default 20).
    pub limit: Option<usize>,
}

/// What `GET /api/v1/customers` answers: the customer of an identity, or a page of customers
/// found by `q`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum CustomersAnswer {
    Customer(customers::CustomerView),
    Found(customers::CustomerPage),
}

/// Customers a search answers when the caller names no limit.
const CUSTOMERS_PAGE: usize = 20;

/// With `channel` and `value`: the customer that channel identity belongs to now (after
/// merges, the survivor), with every identity, social profile and the customers merged into
/// it; 404 when none. With `q`: the customers whose name, e-mail address, identities or social
/// profiles start with `q`, as summaries, ordered by the text that matched (the first of the
/// customer's that does, alphabetically), then by id; a merged customer is found as its
/// survivor, once. Support agents, admins and integrations.
#[utoipa::path(get, path = "/api/v1/customers", tag = "customers", params(CustomersParams),
    responses((status = 200, body = CustomersAnswer), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 422, body = Problem),
              (status = 503, body = Problem)))]
async fn customer_lookup(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<CustomersParams>,
) -> Result<Json<CustomersAnswer>, Problem> {
    require_customer_support(&caller)?;
    let (channel, value) = match (params.q, params.channel, params.value) {
        (Some(q), None, None) => {
            let key = customers::search_key(&q).map_err(|e| Problem::invalid(format!("q {e}")))?;
            let limit = page_size(params.limit, CUSTOMERS_PAGE, customers::MAX_SEARCH_PAGE)?;
            let cursor = params
                .cursor
                .as_deref()
                .map(customers::parse_search_cursor)
                .transpose()
                .map_err(|e| Problem::bad_request(e.to_string()))?;
            // One range of the search terms' index, from the cursor on.
            let page = read(&state, customers::NAME, params.position, move |tx, t| {
                customers::search(tx, t, &key, cursor.as_ref(), limit)
            })
            .await?;
            return Ok(Json(CustomersAnswer::Found(page)));
        }
        (None, Some(channel), Some(value)) => (channel, value),
        _ => {
            return Err(Problem::bad_request(
                "give either `q`, or `channel` and `value`",
            ));
        }
    };
    if params.cursor.is_some() || params.limit.is_some() {
        return Err(Problem::bad_request(
            "`cursor` and `limit` page a search (`q`)",
        ));
    }
    let identity = ChannelIdentity {
        channel,
        value,
        account: None,
    };
    read(
        &state,
        customers::NAME,
        params.position,
        move |tx, t| match customers::find_by_identity(tx, t, &identity)? {
            Some(id) => customers::customer_view(tx, t, &id),
            None => Ok(None),
        },
    )
    .await?
    .map(|view| Json(CustomersAnswer::Customer(view)))
    .ok_or_else(|| not_found("customer with this identity"))
}

/// A customer with every identity and social profile (those of the customers merged into it
/// included), the customer it was merged into, if any, and the customers merged into it.
/// Support agents, admins and integrations.
#[utoipa::path(get, path = "/api/v1/customers/{customer_id}", tag = "customers",
    params(("customer_id" = Uuid, Path, description = "The customer's id"), AtLeast),
    responses((status = 200, body = customers::CustomerView), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 503, body = Problem)))]
async fn customer_detail(
    State(state): State<AppState>,
    caller: Caller,
    Path(customer_id): Path<Uuid>,
    Query(at): Query<AtLeast>,
) -> Result<Json<customers::CustomerView>, Problem> {
    require_customer_support(&caller)?;
    let id = customer_id.to_string();
    read(&state, customers::NAME, at.position, move |tx, t| {
        customers::customer_view(tx, t, &id)
    })
    .await?
    .map(Json)
    .ok_or_else(|| not_found("customer"))
}

/// A customer's history: a date range, and keywords to look for in the messages.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryParams {
    /// Wait until the read models reflect this log position (read-your-writes).
    pub position: Option<u64>,
    /// Only conversations and tickets with activity at or after this time (microseconds since
    /// the Unix epoch); with `q`, only messages sent at or after it.
    pub from: Option<i64>,
    /// Only conversations and tickets started before this time (microseconds since the Unix
    /// epoch); with `q`, only messages sent before it.
    pub to: Option<i64>,
    /// Keywords (every one must match): only conversations with a matching message, and the
    /// matching messages in `matches`.
    pub q: Option<String>,
    /// At most this many items (1..=500, default 100).
    pub limit: Option<usize>,
    /// From a previous answer's `next_cursor`: the next (older) items.
    pub cursor: Option<String>,
}

/// A customer's conversations and tickets, newest activity first.
#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerHistory {
    pub customer_id: Uuid,
    /// Conversations and tickets of the customer and of the customers merged into it.
    pub items: Vec<customers::HistoryItem>,
    /// With `q`: the matching messages, newest first (at most 200).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matches: Option<Vec<search::Hit>>,
    /// Pass as `cursor` for older items; absent when there are none.
    pub next_cursor: Option<String>,
}

/// Items of a history answer when the caller names no limit.
const HISTORY_PAGE: usize = 100;

/// Most messages a keyword search answers.
const SEARCH_MAX: usize = 200;

/// Every conversation and ticket of a customer across channels (merged customers' included),
/// newest activity first; searchable by date range and keywords. Support agents, admins and
/// integrations.
#[utoipa::path(get, path = "/api/v1/customers/{customer_id}/history", tag = "customers",
    params(("customer_id" = Uuid, Path, description = "The customer's id"), HistoryParams),
    responses((status = 200, body = CustomerHistory), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 503, body = Problem)))]
async fn customer_history(
    State(state): State<AppState>,
    caller: Caller,
    Path(customer_id): Path<Uuid>,
    Query(params): Query<HistoryParams>,
) -> Result<Json<CustomerHistory>, Problem> {
    require_customer_support(&caller)?;
    let limit = page_size(params.limit, HISTORY_PAGE, customers::MAX_HISTORY)?;
    let words = params.q.as_deref().map(keywords).transpose()?;
    let after = params
        .cursor
        .as_deref()
        .map(super::parse_time_id_cursor)
        .transpose()?;
    let (from, to) = (params.from, params.to);
    let id = customer_id.to_string();
    let Some(words) = words else {
        // One page of the history, read from the cursor on.
        let query = customers::HistoryQuery {
            from,
            to,
            after,
            limit: limit + 1,
            ..Default::default()
        };
        let items = read(&state, customers::NAME, params.position, move |tx, t| {
            if customers::customer_view(tx, t, &id)?.is_none() {
                return Ok(None);
            }
            customers::history(tx, t, &id, &query).map(Some)
        })
        .await?
        .ok_or_else(|| not_found("customer"))?;
        return Ok(Json(history_page(customer_id, items, None, limit)));
    };
    // With keywords: the messages that match (at most [`SEARCH_MAX`]), and the conversations
    // they are in.
    let set = read(&state, customers::NAME, params.position, move |tx, t| {
        if customers::customer_view(tx, t, &id)?.is_none() {
            return Ok(None);
        }
        customers::merged_set(tx, t, &id).map(Some)
    })
    .await?
    .ok_or_else(|| not_found("customer"))?;
    let query = search::SearchQuery {
        keywords: words.join(" "),
        from,
        to,
        customers: set.clone(),
        before: None,
        limit: SEARCH_MAX,
    };
    let (hits, _) = search_visible(&state, &caller, params.position, query, words).await?;
    let mut seen = std::collections::HashSet::new();
    let ids: Vec<String> = hits
        .iter()
        .filter(|hit| seen.insert(hit.conversation_id.as_str()))
        .map(|hit| hit.conversation_id.clone())
        .collect();
    let mut items = read(&state, customers::NAME, params.position, move |tx, t| {
        customers::history_conversations(tx, t, &set, &ids)
    })
    .await?;
    if let Some((at, id)) = &after {
        items.retain(|item| (item.last_activity_at, item.id.as_str()) < (*at, id.as_str()));
    }
    Ok(Json(history_page(customer_id, items, Some(hits), limit)))
}

/// A history answer of at most `limit` of `items` (in the history's order), with the cursor
/// of the next page when there are more.
fn history_page(
    customer_id: Uuid,
    mut items: Vec<customers::HistoryItem>,
    matches: Option<Vec<search::Hit>>,
    limit: usize,
) -> CustomerHistory {
    let next_cursor = super::next_page(&mut items, limit, |last| {
        super::time_key_cursor(last.last_activity_at, &last.id)
    });
    CustomerHistory {
        customer_id,
        items,
        matches,
        next_cursor,
    }
}

// ---------------------------------------------------------------------------------------------
// Search.

/// What to look for.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// Wait until the search index reflects this log position (read-your-writes).
    pub position: Option<u64>,
    /// Keywords: runs of letters and digits, every one must match (at most 20 words and 500
    /// characters; no query syntax).
    pub q: String,
    /// Only messages sent at or after this time (microseconds since the Unix epoch).
    pub from: Option<i64>,
    /// Only messages sent before this time (microseconds since the Unix epoch).
    pub to: Option<i64>,
    /// At most this many messages (1..=200, default 50).
    pub limit: Option<usize>,
    /// From a previous answer's `next_cursor`: the next (older) page.
    pub cursor: Option<String>,
}

/// Messages found, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchResults {
    pub hits: Vec<search::Hit>,
    /// Pass as `cursor` for older messages; absent when there are none.
    pub next_cursor: Option<String>,
}

/// Messages a search answers when the caller names no limit.
const SEARCH_PAGE: usize = 50;

/// Keywords as the search index takes them; a 400 for none or too many.
fn keywords(q: &str) -> Result<Vec<String>, Problem> {
    search::words(q).map_err(|e| Problem::bad_request(format!("q: {e}")))
}

/// Full-text search of conversation messages (internal notes included), newest first, in what
/// the caller may see: customer conversations (support agents, admins and integrations; other
/// agents only those they take part in) and the internal conversations the caller takes part
/// in. Narrow a long answer with `from` and `to`.
#[utoipa::path(get, path = "/api/v1/search", tag = "search", params(SearchParams),
    responses((status = 200, body = SearchResults), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 503, body = Problem)))]
async fn search_messages(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<SearchParams>,
) -> Result<Json<SearchResults>, Problem> {
    caller.require_staff()?;
    let limit = page_size(params.limit, SEARCH_PAGE, SEARCH_MAX)?;
    let words = keywords(&params.q)?;
    let query = search::SearchQuery {
        keywords: params.q,
        from: params.from,
        to: params.to,
        customers: Vec::new(),
        before: params
            .cursor
            .as_deref()
            .map(super::parse_time_key_cursor)
            .transpose()?,
        // One more than asked: whether there is a next page.
        limit: limit + 1,
    };
    let (mut hits, scanned_to) =
        search_visible(&state, &caller, params.position, query, words).await?;
    let next_cursor = if hits.len() > limit {
        hits.truncate(limit);
        hits.last().map(search::Hit::key)
    } else {
        scanned_to
    };
    Ok(Json(SearchResults {
        hits,
        next_cursor: next_cursor.map(|(sent_at, doc)| super::time_key_cursor(sent_at, doc)),
    }))
}

/// Runs `query` as the caller: agents without the support flag keep only the conversations
/// they take part in (the search is then asked for its largest answer, cut to the limit after).
/// With the hits comes, when that filtering left fewer than asked although the index had more,
/// the key the next page must start before (the last message scanned).
async fn search_visible(
    state: &AppState,
    caller: &Caller,
    position: Option<u64>,
    mut query: search::SearchQuery,
    words: Vec<String>,
) -> Result<(Vec<search::Hit>, Option<(i64, i64)>), Problem> {
    let searcher = search::Searcher::Agent(viewer(caller));
    let limit = query.limit;
    let member_only = !caller.sees_from_customers();
    if member_only {
        query.limit = SEARCH_MAX;
    }
    let participant = format!("agent:{}", viewer(caller));
    read(state, search::NAME, position, move |tx, t| {
        let mut hits = search::search(tx, t, &searcher, &query, &words)?;
        let mut scanned_to = None;
        if member_only {
            if hits.len() >= SEARCH_MAX {
                scanned_to = hits.last().map(search::Hit::key);
            }
            let mine = taking_part(tx, t, &participant, &hits)?;
            hits.retain(|hit| mine.contains(&hit.conversation_id));
            hits.truncate(limit);
        }
        Ok((hits, scanned_to))
    })
    .await
}

/// Which conversations of `hits` `participant` takes part in, from the search index's own
/// participant rows (so the answer is as of the same position as the hits).
fn taking_part(
    tx: &mut dyn Tx,
    t: &Tables,
    participant: &str,
    hits: &[search::Hit],
) -> Result<std::collections::BTreeSet<String>, StoreError> {
    let mut ids: Vec<&str> = hits.iter().map(|h| h.conversation_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(Default::default());
    }
    let mut params: Vec<parley_projections::Value> = vec![participant.into()];
    params.extend(ids.iter().map(|id| (*id).into()));
    let list = (2..=params.len())
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ");
    tx.query(
        &t.sql(&format!(
            "SELECT conversation_id FROM {{p}}participants
             WHERE participant = $1 AND conversation_id IN ({list})"
        )),
        &params,
    )?
    .iter()
    .map(|row| row.text(0))
    .collect()
}

// ---------------------------------------------------------------------------------------------
// Reports.

/// What the rows of a report stand for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    /// One row per day of the range, empty days included.
    #[default]
    Day,
    Channel,
    Agent,
    Queue,
}

impl From<GroupBy> for reports::GroupBy {
    fn from(group: GroupBy) -> reports::GroupBy {
        match group {
            GroupBy::Day => reports::GroupBy::Day,
            GroupBy::Channel => reports::GroupBy::Channel,
            GroupBy::Agent => reports::GroupBy::Agent,
            GroupBy::Queue => reports::GroupBy::Queue,
        }
    }
}

/// A report's range, grouping and filters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReportParams {
    /// Wait until the reports reflect this log position (read-your-writes).
    pub position: Option<u64>,
    /// First day of the range, `YYYY-MM-DD` (UTC), inclusive.
    pub from: String,
    /// Last day of the range, `YYYY-MM-DD` (UTC), inclusive; at most 731 days after `from`.
    pub to: String,
    /// Rows per `day` (the default), `channel`, `agent` or `queue`.
    #[param(inline)]
    pub group_by: Option<GroupBy>,
    /// Only this channel.
    #[param(value_type = Option<String>)]
    pub channel: Option<Channel>,
    /// Only this agent's figures.
    pub agent: Option<Uuid>,
    /// Only this queue.
    pub queue: Option<Uuid>,
}

/// What the support team did over a range of days.
#[derive(Debug, Serialize, ToSchema)]
pub struct Report {
    pub from: String,
    pub to: String,
    pub group_by: GroupBy,
    /// Ordered by group; the row without an agent or queue (`group` null) first.
    pub rows: Vec<reports::ReportRow>,
}

fn bad_report(error: reports::BadReportQuery) -> Problem {
    Problem::bad_request(error.to_string())
}

/// Customer conversations per day, channel, agent or queue: new, closed, reopened, spam,
/// transfers, first response and resolution times (median and p90, seconds), messages per
/// conversation and ratings.
#[utoipa::path(get, path = "/api/v1/reports", tag = "reports", params(ReportParams),
    responses((status = 200, body = Report), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 503, body = Problem)))]
async fn report(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<ReportParams>,
) -> Result<Json<Report>, Problem> {
    caller.require_staff()?;
    let group_by = params.group_by.unwrap_or_default();
    let mut query =
        reports::ReportQuery::new(&params.from, &params.to, group_by.into()).map_err(bad_report)?;
    query.channel = params.channel.map(|c| c.name().to_owned());
    query.agent = params.agent.map(|a| a.to_string());
    query.queue = params.queue.map(|q| q.to_string());
    let (from, to) = (query.from_day.to_string(), query.to_day.to_string());
    let rows = read(&state, reports::NAME, params.position, move |tx, t| {
        reports::report(tx, t, &query)
    })
    .await?;
    Ok(Json(Report {
        from,
        to,
        group_by,
        rows,
    }))
}

/// A social report's range and channel.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SocialReportParams {
    /// Wait until the reports reflect this log position (read-your-writes).
    pub position: Option<u64>,
    /// First day of the range, `YYYY-MM-DD` (UTC), inclusive.
    pub from: String,
    /// Last day of the range, `YYYY-MM-DD` (UTC), inclusive; at most 731 days after `from`.
    pub to: String,
    /// Only this channel.
    #[param(value_type = Option<String>)]
    pub channel: Option<Channel>,
}

/// New and solved social messaging tickets.
#[derive(Debug, Serialize, ToSchema)]
pub struct SocialReport {
    pub from: String,
    pub to: String,
    /// The days and channels with any, by day then channel.
    pub rows: Vec<reports::SocialRow>,
}

/// New and solved social messaging tickets per day and channel.
#[utoipa::path(get, path = "/api/v1/reports/social", tag = "reports", params(SocialReportParams),
    responses((status = 200, body = SocialReport), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 503, body = Problem)))]
async fn social_report(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<SocialReportParams>,
) -> Result<Json<SocialReport>, Problem> {
    caller.require_staff()?;
    let mut query = reports::SocialQuery::new(&params.from, &params.to).map_err(bad_report)?;
    query.channel = params.channel.map(|c| c.name().to_owned());
    let (from, to) = (query.from_day.to_string(), query.to_day.to_string());
    let rows = read(&state, reports::NAME, params.position, move |tx, t| {
        reports::social_report(tx, t, &query)
    })
    .await?;
    Ok(Json(SocialReport { from, to, rows }))
}

// ---------------------------------------------------------------------------------------------
// Audit.

/// Audits read the log itself: admins and integrations only.
fn require_auditor(caller: &Caller) -> Result<(), Problem> {
    if caller.is_admin() || matches!(caller.role, Role::Integration) {
        Ok(())
    } else {
        Err(Problem::forbidden("audits are for admins and integrations"))
    }
}

/// The stream named in the path; a 400 for a name the log would refuse.
fn stream_id(stream: String) -> Result<StreamId, Problem> {
    StreamId::new(stream).map_err(|e| Problem::bad_request(format!("stream: {e}")))
}

/// Paging of a stream's history.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// From a previous page's `next_cursor` (the stream version the next page follows).
    pub cursor: Option<String>,
    /// At most this many events (1..=500, default 100).
    pub limit: Option<usize>,
}

/// Who caused an event.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditActor {
    /// The agent's or customer's id; for integrations, the id of the token they used.
    pub id: String,
    /// `agent`, `customer`, `integration` or `system`.
    #[schema(value_type = String)]
    pub kind: ActorKind,
}

/// One event of a stream's history, as its envelope records it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntryView {
    /// Global log position.
    pub position: u64,
    /// Version of the stream after this event (1 for its first event).
    pub version: u64,
    /// When the log recorded it, in microseconds since the Unix epoch.
    pub recorded_at: i64,
    /// What happened, e.g. `MessageSent`.
    pub event_type: String,
    pub event_id: Uuid,
    pub actor: Option<AuditActor>,
    /// Through which client: `api`, `widget`, ...
    pub channel: Option<String>,
    /// The id of the HTTP request that caused it (the `x-request-id` header).
    pub request_id: Option<String>,
    /// The API token it came through.
    pub token_id: Option<String>,
    pub correlation_id: Option<Uuid>,
    pub causation_id: Option<Uuid>,
}

impl From<AuditEntry> for AuditEntryView {
    fn from(entry: AuditEntry) -> AuditEntryView {
        AuditEntryView {
            position: entry.position.0,
            version: entry.version.0,
            recorded_at: entry.recorded_at.0,
            event_type: entry.event_type,
            event_id: entry.event_id,
            actor: entry.actor.map(|actor| AuditActor {
                id: actor.id,
                kind: actor.kind,
            }),
            channel: entry.channel,
            request_id: entry.request_id,
            token_id: entry.token_id,
            correlation_id: entry.correlation_id,
            causation_id: entry.causation_id,
        }
    }
}

/// A page of a stream's history, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub stream: String,
    pub entries: Vec<AuditEntryView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Events per audit page when the caller names no limit.
const AUDIT_PAGE: usize = 100;
/// The largest audit page.
const AUDIT_MAX_PAGE: usize = 500;

/// Any stream's full history, oldest first, paged by stream version: what happened, when, who
/// did it, through which channel, request and token. Streams are named `<kind>-<id>`, e.g.
/// `conversation-<uuid>`, `ticket-<uuid>`, `customer-<uuid>`, `helpdesk-main`. Admins and
/// integrations only.
#[utoipa::path(get, path = "/api/v1/audit/{stream}", tag = "audit",
    params(("stream" = String, Path, description = "The stream, e.g. `conversation-<uuid>`"),
           AuditParams),
    responses((status = 200, body = AuditPage), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 503, body = Problem)))]
async fn audit_history(
    State(state): State<AppState>,
    caller: Caller,
    Path(stream): Path<String>,
    Query(params): Query<AuditParams>,
) -> Result<Json<AuditPage>, Problem> {
    require_auditor(&caller)?;
    let stream = stream_id(stream)?;
    let limit = page_size(params.limit, AUDIT_PAGE, AUDIT_MAX_PAGE)?;
    let after = match params.cursor.as_deref() {
        Some(cursor) => StreamVersion(
            cursor
                .parse()
                .map_err(|_| Problem::bad_request("cursor is not one this server gave"))?,
        ),
        None => StreamVersion::NONE,
    };
    let mut entries = audit::history(state.log.as_ref(), &stream, after, limit + 1).await?;
    if entries.is_empty() && after == StreamVersion::NONE {
        return Err(not_found("stream"));
    }
    let next_cursor = super::next_page(&mut entries, limit, |last| last.version.0.to_string());
    Ok(Json(AuditPage {
        stream: stream.to_string(),
        entries: entries.into_iter().map(AuditEntryView::from).collect(),
        next_cursor,
    }))
}

/// One event of a ticket, with what it changed.
#[derive(Debug, Serialize, ToSchema)]
pub struct TicketEventView {
    #[serde(flatten)]
    pub entry: AuditEntryView,
    /// The event's fields: a reply's text and where it goes, a status and by whom, the
    /// platform's id of a delivered reply, a failure's code and reason, a receipt...
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

/// A page of a ticket's events, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct TicketEventsPage {
    pub ticket_id: Uuid,
    pub events: Vec<TicketEventView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A ticket's events, oldest first, paged by stream version: each with its time, who did it
/// (an agent, the customer, an integration, or the system: a reaction such as the dispatcher,
/// with `causation_id` naming the event it reacted to and `correlation_id` the request that
/// began it), its type and what it changed — e.g. `OutboundReplyRequested` with the reply's
/// text, then `OutboundReplyDelivered` with the platform's message id, or
/// `OutboundReplyFailed` with the platform's error code and reason. Staff only, like the
/// ticket itself.
#[utoipa::path(get, path = "/api/v1/tickets/{ticket_id}/events", tag = "tickets",
    params(("ticket_id" = Uuid, Path, description = "The ticket"), AuditParams),
    responses((status = 200, body = TicketEventsPage), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 503, body = Problem)))]
async fn ticket_events(
    State(state): State<AppState>,
    caller: Caller,
    Path(ticket_id): Path<Uuid>,
    Query(params): Query<AuditParams>,
) -> Result<Json<TicketEventsPage>, Problem> {
    caller.require_staff()?;
    let stream = stream_id(format!("ticket-{ticket_id}"))?;
    let limit = page_size(params.limit, AUDIT_PAGE, AUDIT_MAX_PAGE)?;
    let after = match params.cursor.as_deref() {
        Some(cursor) => StreamVersion(
            cursor
                .parse()
                .map_err(|_| Problem::bad_request("cursor is not one this server gave"))?,
        ),
        None => StreamVersion::NONE,
    };
    let mut recorded = state.log.read_stream(&stream, after, limit + 1).await?;
    if recorded.is_empty() && after == StreamVersion::NONE {
        return Err(not_found("ticket"));
    }
    let next_cursor = super::next_page(&mut recorded, limit, |last| last.version.0.to_string());
    let mut events = Vec::with_capacity(recorded.len());
    for event in recorded {
        let decoded: parley_domain::ticket::TicketEvent =
            parley_projections::events::from_recorded(&event).map_err(|e| Problem::internal(&e))?;
        let data = super::live::fields(&decoded).map_err(|e| Problem::internal(&e))?;
        events.push(TicketEventView {
            entry: AuditEntryView {
                position: event.position.0,
                version: event.version.0,
                recorded_at: event.recorded_at.as_micros(),
                event_type: event.event_type,
                event_id: event.event_id,
                actor: event.metadata.actor.map(|actor| AuditActor {
                    id: actor.id,
                    kind: actor.kind,
                }),
                channel: event.metadata.channel,
                request_id: event.metadata.request_id,
                token_id: event.metadata.token_id,
                correlation_id: event.metadata.correlation_id,
                causation_id: event.metadata.causation_id,
            },
            data,
        });
    }
    Ok(Json(TicketEventsPage {
        ticket_id,
        events,
        next_cursor,
    }))
}

/// When to fold a stream up to: a global position or a time (neither: now).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StateParams {
    /// The state after the stream's events at or before this global log position.
    pub position: Option<u64>,
    /// The state after the stream's events recorded at or before this time (microseconds since
    /// the Unix epoch).
    pub at: Option<i64>,
}

/// An aggregate's state as of a position or a time.
#[derive(Debug, Serialize, ToSchema)]
pub struct StateView {
    pub stream: String,
    /// The stream's version then: how many of its events the state folds.
    pub version: u64,
    pub state: AggregateState,
}

/// The folded state, by the stream's kind.
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "aggregate", rename_all = "snake_case")]
pub enum AggregateState {
    Conversation(ConversationState),
    Ticket(TicketState),
    Customer(CustomerState),
    Helpdesk(HelpDeskState),
}

/// The log's largest position as a bound that every backend stores.
const LATEST: Position = Position(i64::MAX as u64);

/// The state of a conversation, ticket, customer or help-desk stream as it was at a global
/// position or a time (or now), folded from the log: what an auditor replays. Admins and
/// integrations only.
#[utoipa::path(get, path = "/api/v1/audit/{stream}/state", tag = "audit",
    params(("stream" = String, Path,
            description = "A `conversation-`, `ticket-`, `customer-` or `helpdesk-` stream"),
           StateParams),
    responses((status = 200, body = StateView), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 503, body = Problem)))]
async fn audit_state(
    State(state): State<AppState>,
    caller: Caller,
    Path(stream): Path<String>,
    Query(params): Query<StateParams>,
) -> Result<Json<StateView>, Problem> {
    require_auditor(&caller)?;
    let stream = stream_id(stream)?;
    let as_of = match (params.position, params.at) {
        (Some(_), Some(_)) => {
            return Err(Problem::bad_request("give `position` or `at`, not both"));
        }
        (Some(position), None) => AsOf::Position(Position(position).min(LATEST)),
        (None, Some(at)) => AsOf::Time(parley_eventlog::Timestamp(at)),
        (None, None) => AsOf::Position(LATEST),
    };
    let log = state.log.as_ref();
    let kind = stream.as_str().split_once('-').map_or("", |(kind, _)| kind);
    let (folded, version) = match kind {
        Conversation::STREAM_PREFIX => fold::<Conversation>(log, &stream, as_of)
            .await
            .map(|(s, v)| (AggregateState::Conversation(s.into()), v))?,
        Ticket::STREAM_PREFIX => fold::<Ticket>(log, &stream, as_of)
            .await
            .map(|(s, v)| (AggregateState::Ticket(s.into()), v))?,
        Customer::STREAM_PREFIX => fold::<Customer>(log, &stream, as_of)
            .await
            .map(|(s, v)| (AggregateState::Customer(s.into()), v))?,
        HelpDesk::STREAM_PREFIX => fold::<HelpDesk>(log, &stream, as_of)
            .await
            .map(|(s, v)| (AggregateState::Helpdesk(s.into()), v))?,
        _ => {
            return Err(Problem::bad_request(
                "states are answered for conversation-, ticket-, customer- and helpdesk- streams",
            ));
        }
    };
    if version == StreamVersion::NONE {
        return Err(Problem::not_found("the stream had no events then"));
    }
    Ok(Json(StateView {
        stream: stream.to_string(),
        version: version.0,
        state: folded,
    }))
}

/// Folds `stream` as aggregate `A` up to `as_of`.
async fn fold<A: Aggregate>(
    log: &dyn EventLog,
    stream: &StreamId,
    as_of: AsOf,
) -> Result<(A, StreamVersion), Problem> {
    audit::state_as_of::<A>(log, stream, as_of)
        .await
        .map_err(|error| match error {
            AuditError::Log(error) => error.into(),
            AuditError::Codec(error) => Problem::internal(&error),
        })
}

/// The lower-case name a unit enum of the domain serialises to (`whatsapp`, `urgent`, ...).
fn name_of<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => String::new(),
    }
}

/// A conversation as its events leave it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationState {
    pub conversation_id: Option<Uuid>,
    /// `customer` or `internal`.
    pub kind: Option<String>,
    pub channel: Option<String>,
    pub queue: Option<Uuid>,
    pub subject: String,
    /// `new` (not started), `open`, `closed` or `spam`.
    pub status: String,
    pub customers: Vec<Uuid>,
    /// Agents taking part: started, invited, wrote, were assigned.
    pub members: Vec<Uuid>,
    pub followers: Vec<Uuid>,
    pub assignee: Option<Uuid>,
    pub pinned_by: Option<Uuid>,
    /// Microseconds since the Unix epoch.
    pub auto_close_at: Option<i64>,
    pub awaiting_first_response: bool,
    pub messages: Vec<MessageState>,
    /// Per reader, the sequence number of the last message read.
    pub read_through: Vec<ReadMark>,
    pub rating_requested: bool,
    pub rating: Option<u8>,
    pub tickets: Vec<Uuid>,
    /// Conversations started from this one's messages.
    pub branches: Vec<Uuid>,
    /// The message this conversation was started from, if any.
    pub origin: Option<OriginState>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessageState {
    pub message_id: Uuid,
    /// 1 for the first message of the conversation, and so on.
    pub seq: u64,
    /// `agent:<id>`, `customer:<id>` or `system`.
    pub author: String,
    /// `public` or `internal`.
    pub visibility: String,
    pub deleted: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReadMark {
    /// `agent:<id>` or `customer:<id>`.
    pub reader: String,
    pub through_seq: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OriginState {
    pub conversation_id: Uuid,
    pub message_id: Uuid,
}

impl From<Conversation> for ConversationState {
    fn from(c: Conversation) -> ConversationState {
        use parley_domain::conversation::Status;
        ConversationState {
            conversation_id: c.id.map(|id| id.0),
            kind: c.kind.as_ref().map(name_of),
            channel: c.channel.map(|channel| channel.name().to_owned()),
            queue: c.queue.map(|q| q.0),
            subject: c.subject,
            status: match c.status {
                Status::New => "new",
                Status::Open => "open",
                Status::Closed => "closed",
                Status::Spam => "spam",
            }
            .to_owned(),
            customers: c.customers.iter().map(|id| id.0).collect(),
            members: c.members.iter().map(|id| id.0).collect(),
            followers: c.followers.iter().map(|id| id.0).collect(),
            assignee: c.assignee.map(|a| a.0),
            pinned_by: c.pinned_by.map(|a| a.0),
            auto_close_at: c.auto_close_at.map(|at| at.0),
            awaiting_first_response: c.awaiting_first_response,
            messages: c
                .messages
                .iter()
                .map(|(id, m)| MessageState {
                    message_id: id.0,
                    seq: m.seq,
                    author: actor_key(&m.author),
                    visibility: name_of(&m.visibility),
                    deleted: m.deleted,
                })
                .collect(),
            read_through: c
                .read_through
                .iter()
                .map(|(reader, seq)| ReadMark {
                    reader: participant_key(reader),
                    through_seq: *seq,
                })
                .collect(),
            rating_requested: c.rating_requested,
            rating: c.rating,
            tickets: c.tickets.iter().map(|id| id.0).collect(),
            branches: c.branches.iter().map(|id| id.0).collect(),
            origin: c.origin.map(|o| OriginState {
                conversation_id: o.conversation_id.0,
                message_id: o.message_id.0,
            }),
        }
    }
}

/// A ticket as its events leave it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TicketState {
    pub ticket_id: Option<Uuid>,
    /// `ticket` or `task`.
    pub ticket_type: Option<String>,
    pub title: String,
    pub description: String,
    /// `low`, `normal`, `high` or `urgent`.
    pub priority: Option<String>,
    /// `new`, `open`, `pending`, `solved` or `closed`.
    pub status: String,
    pub requester: Option<Uuid>,
    pub assignee: Option<Uuid>,
    pub followers: Vec<Uuid>,
    pub tags: Vec<String>,
    /// Which account of which social channel the ticket talks through.
    #[schema(value_type = Option<Object>)]
    pub channel_info: Option<ChannelInfo>,
    /// Microseconds since the Unix epoch.
    pub last_customer_message_at: Option<i64>,
    /// Outbound replies and their delivery: `pending`, `delivered` or `failed`.
    pub replies: BTreeMap<Uuid, String>,
    pub comments: usize,
    /// Where the ticket came from (`{"kind": "api"}`, `{"kind": "conversation", ...}`,
    /// `{"kind": "social", "channel": ...}`).
    #[schema(value_type = Option<Object>)]
    pub source: Option<TicketSource>,
}

impl From<Ticket> for TicketState {
    fn from(t: Ticket) -> TicketState {
        use parley_domain::ticket::ReplyState;
        TicketState {
            ticket_id: t.id.map(|id| id.0),
            ticket_type: t.ticket_type.as_ref().map(name_of),
            title: t.title,
            description: t.description,
            priority: t.priority.as_ref().map(name_of),
            status: t.status.name().to_owned(),
            requester: t.requester.map(|c| c.0),
            assignee: t.assignee.map(|a| a.0),
            followers: t.followers.iter().map(|id| id.0).collect(),
            tags: t.tags.into_iter().collect(),
            channel_info: t.channel_info,
            last_customer_message_at: t.last_customer_message_at.map(|at| at.0),
            replies: t
                .replies
                .into_iter()
                .map(|(id, state)| {
                    let state = match state {
                        ReplyState::Pending => "pending",
                        ReplyState::Delivered => "delivered",
                        ReplyState::Failed => "failed",
                    };
                    (id, state.to_owned())
                })
                .collect(),
            comments: t.comments,
            source: t.source,
        }
    }
}

/// A customer as its events leave it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerState {
    pub customer_id: Option<Uuid>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub identities: Vec<customers::IdentityView>,
    /// Set while this customer is merged into another.
    pub merged_into: Option<Uuid>,
    /// The survivor of the last merge that was undone.
    pub unmerged_from: Option<Uuid>,
    /// Customers merged into this one, with the identities they brought.
    pub absorbed: Vec<AbsorbedCustomer>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AbsorbedCustomer {
    pub customer_id: Uuid,
    pub identities: Vec<customers::IdentityView>,
}

fn identity_views<'a>(
    identities: impl IntoIterator<Item = &'a ChannelIdentity>,
) -> Vec<customers::IdentityView> {
    identities
        .into_iter()
        .map(|identity| customers::IdentityView {
            account: None,
            channel: identity.channel.name().to_owned(),
            value: identity.value.clone(),
        })
        .collect()
}

impl From<Customer> for CustomerState {
    fn from(c: Customer) -> CustomerState {
        CustomerState {
            customer_id: c.id.map(|id| id.0),
            name: c.name,
            email: c.email,
            identities: identity_views(&c.identities),
            merged_into: c.merged_into.map(|id| id.0),
            unmerged_from: c.unmerged_from.map(|id| id.0),
            absorbed: c
                .absorbed
                .iter()
                .map(|(id, identities)| AbsorbedCustomer {
                    customer_id: id.0,
                    identities: identity_views(identities),
                })
                .collect(),
        }
    }
}

/// The help desk's settings as its events leave them.
#[derive(Debug, Serialize, ToSchema)]
pub struct HelpDeskState {
    pub online: bool,
    pub online_message: String,
    pub offline_message: String,
    /// The opening hours (`utc_offset_minutes` and `days` of `weekday`, `opens`, `closes`
    /// in minutes after local midnight), once set.
    #[schema(value_type = Option<Object>)]
    pub business_hours: Option<BusinessHours>,
    /// Whether report durations count business hours only.
    pub business_hours_only: bool,
}

impl From<HelpDesk> for HelpDeskState {
    fn from(h: HelpDesk) -> HelpDeskState {
        HelpDeskState {
            online: h.online,
            online_message: h.online_message,
            offline_message: h.offline_message,
            business_hours: h.business_hours,
            business_hours_only: h.business_hours_only,
        }
    }
}
