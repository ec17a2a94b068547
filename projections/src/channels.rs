//! Channel accounts as admins list them (never their secrets: only which are set), and the
//! replies each platform accepted, by the id the platform gave them: how a delivery receipt
//! finds its ticket and reply.

use crate::feed::{Envelope, Event};
use crate::runner::{Projection, Tables};
use crate::store::{Dialect, Row, StoreError, Tx};
use parley_domain::channel::ChannelEvent;
use parley_domain::ticket::TicketEvent;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

pub const NAME: &str = "channels";

pub struct Channels;

const TABLES: &[&str] = &["accounts", "sent"];

const SCHEMA: &[&str] = &[
    "CREATE TABLE {p}accounts (
        channel_id TEXT PRIMARY KEY,
        platform TEXT NOT NULL,
        name TEXT NOT NULL,
        platform_ids TEXT NOT NULL,
        api_base TEXT,
        secrets TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        removed_at BIGINT
    )",
    "CREATE TABLE {p}sent (
        platform_message_id TEXT PRIMARY KEY,
        ticket_id TEXT NOT NULL,
        reply_id TEXT NOT NULL
    ){clustered}",
];

impl Projection for Channels {
    fn name(&self) -> &'static str {
        NAME
    }
    fn version(&self) -> i64 {
        1
    }
    fn tables(&self) -> &'static [&'static str] {
        TABLES
    }
    fn schema(&self, _dialect: Dialect) -> Vec<&'static str> {
        SCHEMA.to_vec()
    }
    fn wants(&self, stream: &str, event_type: &str) -> bool {
        stream.starts_with("channel-")
            || (stream.starts_with("ticket-") && event_type == "OutboundReplyDelivered")
    }
    fn apply(&self, tx: &mut dyn Tx, t: &Tables, events: &[Envelope]) -> Result<(), StoreError> {
        for envelope in events {
            match &envelope.event {
                Event::Channel(id, event) => account(tx, t, &id.to_string(), event)?,
                Event::Ticket(id, TicketEvent::OutboundReplyDelivered(e)) => {
                    let Some(platform_id) = &e.platform_message_id else {
                        continue;
                    };
                    tx.execute(
                        &t.sql(
                            "INSERT INTO {p}sent (platform_message_id, ticket_id, reply_id)
                             VALUES ($1, $2, $3) ON CONFLICT (platform_message_id) DO NOTHING",
                        ),
                        &[
                            platform_id.as_str().into(),
                            id.to_string().into(),
                            e.reply_id.to_string().into(),
                        ],
                    )?;
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn json<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(NAME, e.to_string()))
}

fn account(tx: &mut dyn Tx, t: &Tables, id: &str, event: &ChannelEvent) -> Result<(), StoreError> {
    match event {
        ChannelEvent::ChannelAccountRegistered(e) => {
            tx.execute(
                &t.sql(
                    "INSERT INTO {p}accounts (channel_id, platform, name, platform_ids, api_base,
                        secrets, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, '[]', $6, $6) ON CONFLICT DO NOTHING",
                ),
                &[
                    id.into(),
                    e.channel.name().into(),
                    e.name.as_str().into(),
                    json(&e.platform_ids)?.into(),
                    e.api_base.clone().into(),
                    e.at.0.into(),
                ],
            )?;
        }
        ChannelEvent::ChannelAccountChanged(e) => {
            tx.execute(
                &t.sql(
                    "UPDATE {p}accounts SET name = $2, platform_ids = $3, api_base = $4,
                        updated_at = $5 WHERE channel_id = $1",
                ),
                &[
                    id.into(),
                    e.name.as_str().into(),
                    json(&e.platform_ids)?.into(),
                    e.api_base.clone().into(),
                    e.at.0.into(),
                ],
            )?;
        }
        ChannelEvent::ChannelSecretsRotated(e) => {
            let Some(row) = tx.query_opt(
                &t.sql("SELECT secrets FROM {p}accounts WHERE channel_id = $1"),
                &[id.into()],
            )?
            else {
                return Ok(());
            };
            let mut set: BTreeSet<String> = serde_json::from_str(&row.text(0)?)
                .map_err(|e| StoreError::Corrupt(NAME, e.to_string()))?;
            set.extend(e.changed.iter().cloned());
            for name in &e.cleared {
                set.remove(name);
            }
            tx.execute(
                &t.sql(
                    "UPDATE {p}accounts SET secrets = $2, updated_at = $3 WHERE channel_id = $1",
                ),
                &[id.into(), json(&set)?.into(), e.at.0.into()],
            )?;
        }
        ChannelEvent::ChannelAccountRemoved(e) => {
            tx.execute(
                &t.sql("UPDATE {p}accounts SET removed_at = $2 WHERE channel_id = $1"),
                &[id.into(), e.at.0.into()],
            )?;
        }
    }
    Ok(())
}

/// A channel account as admins see it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AccountView {
    pub channel_id: String,
    /// `whatsapp`, `facebook` (Messenger), `line`, `wechat` or `twitter` (X).
    pub platform: String,
    pub name: String,
    pub platform_ids: BTreeMap<String, String>,
    pub api_base: Option<String>,
    /// The secrets that are set (their values are never shown).
    pub secrets_set: BTreeSet<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str =
    "channel_id, platform, name, platform_ids, api_base, secrets, created_at, updated_at";

fn account_view(row: &Row) -> Result<AccountView, StoreError> {
    let corrupt = |e: serde_json::Error| StoreError::Corrupt(NAME, e.to_string());
    Ok(AccountView {
        channel_id: row.text(0)?,
        platform: row.text(1)?,
        name: row.text(2)?,
        platform_ids: serde_json::from_str(&row.text(3)?).map_err(corrupt)?,
        api_base: row.opt_text(4)?,
        secrets_set: serde_json::from_str(&row.text(5)?).map_err(corrupt)?,
        created_at: row.i64(6)?,
        updated_at: row.i64(7)?,
    })
}

/// Every account not removed, oldest first (a help desk has a handful).
pub fn list(tx: &mut dyn Tx, t: &Tables) -> Result<Vec<AccountView>, StoreError> {
    tx.query(
        &t.sql(&format!(
            "SELECT {COLUMNS} FROM {{p}}accounts WHERE removed_at IS NULL
             ORDER BY created_at, channel_id"
        )),
        &[],
    )?
    .iter()
    .map(account_view)
    .collect()
}

/// The account, unless removed.
pub fn get(tx: &mut dyn Tx, t: &Tables, id: &str) -> Result<Option<AccountView>, StoreError> {
    tx.query_opt(
        &t.sql(&format!(
            "SELECT {COLUMNS} FROM {{p}}accounts WHERE channel_id = $1 AND removed_at IS NULL"
        )),
        &[id.into()],
    )?
    .as_ref()
    .map(account_view)
    .transpose()
}

/// The ticket and reply a platform's message id names, if a reply was sent with it.
pub fn sent(
    tx: &mut dyn Tx,
    t: &Tables,
    platform_message_id: &str,
) -> Result<Option<(uuid::Uuid, uuid::Uuid)>, StoreError> {
    match tx.query_opt(
        &t.sql("SELECT ticket_id, reply_id FROM {p}sent WHERE platform_message_id = $1"),
        &[platform_message_id.into()],
    )? {
        Some(row) => Ok(Some((row.uuid(0)?, row.uuid(1)?))),
        None => Ok(None),
    }
}
