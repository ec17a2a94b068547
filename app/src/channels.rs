//! Connected channel accounts: their settings (from their `channel-<id>` streams) and their
//! secrets (from a side store, never from the log), as the webhooks, the inbound reaction and
//! the dispatcher need them.
//!
//! Secrets live in one table beside the read models (a SQLite file, or a PostgreSQL table that
//! every node shares), a row per (account, secret). They are written before the event that
//! says they changed, so a node that sees the event finds them; each node keeps what it read
//! for [`SECRETS_TTL`], so a rotation reaches every node within that time.

use crate::service::{CommandService, ServiceError};
use parley_channels::{Account, Platform, Secrets};
use parley_domain::channel::{ChannelAccount, ChannelId};
use parley_domain::conversation::Channel;
use parley_projections::{ReadModels, Store, StoreError, ViewError};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a node keeps an account's secrets before reading them again.
pub const SECRETS_TTL: Duration = Duration::from_secs(5);

const STORE_NAME: &str = "channel_secrets";
const SCHEMA: &[&str] = &["CREATE TABLE IF NOT EXISTS parley_channel_secrets (
        channel_id TEXT NOT NULL,
        name TEXT NOT NULL,
        value TEXT NOT NULL,
        updated_at BIGINT NOT NULL,
        PRIMARY KEY (channel_id, name)
    )"];

/// The platform an account of a domain channel is on.
pub fn platform_of(channel: Channel) -> Option<Platform> {
    Some(match channel {
        Channel::Whatsapp => Platform::Whatsapp,
        Channel::Facebook => Platform::Messenger,
        Channel::Line => Platform::Line,
        Channel::Wechat => Platform::Wechat,
        Channel::Twitter => Platform::X,
        _ => return None,
    })
}

/// The domain channel of a platform.
pub fn channel_of(platform: Platform) -> Channel {
    match platform {
        Platform::Whatsapp => Channel::Whatsapp,
        Platform::Messenger => Channel::Facebook,
        Platform::Line => Channel::Line,
        Platform::Wechat => Channel::Wechat,
        Platform::X => Channel::Twitter,
    }
}

/// Why an account could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<parley_eventlog::LogError> for DirectoryError {
    fn from(error: parley_eventlog::LogError) -> Self {
        DirectoryError::Service(error.into())
    }
}

/// An account as the adapters need it.
#[derive(Debug, Clone)]
pub struct Connected {
    pub id: ChannelId,
    pub channel: Channel,
    pub name: String,
    pub account: Account,
    pub secrets: Secrets,
}

/// An account as last read (`None`: unknown or removed), and when.
type Read = (Option<Arc<Connected>>, Instant);

/// The accounts and their secrets.
pub struct Directory {
    store: Store,
    service: CommandService,
    cached: Mutex<HashMap<ChannelId, (Secrets, Instant)>>,
    /// Accounts as last read, each kept for [`SECRETS_TTL`] (every webhook and every message
    /// needs its account; a change made through this node is seen at once, [`Directory::forget`]).
    accounts: Mutex<HashMap<ChannelId, Read>>,
    links: tokio::sync::OnceCell<FileLinks>,
}

/// Links to stored files that a platform can fetch without a token (a reply's files): the
/// file's id and an expiry, signed with HMAC-SHA256 under a key every node shares (made once,
/// kept beside the secrets).
#[derive(Clone)]
pub struct FileLinks {
    key: [u8; 32],
}

impl std::fmt::Debug for FileLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FileLinks")
    }
}

impl FileLinks {
    fn mac(&self, file_id: uuid::Uuid, expires: i64) -> hmac::Hmac<sha2::Sha256> {
        use hmac::Mac;
        let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(&self.key)
            .expect("HMAC takes a key of any length");
        mac.update(format!("{file_id}:{expires}").as_bytes());
        mac
    }

    /// The signature of a link to `file_id` good until `expires` (seconds since the epoch).
    pub fn sign(&self, file_id: uuid::Uuid, expires: i64) -> String {
        use hmac::Mac;
        self.mac(file_id, expires)
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Whether `signature` is this server's for `file_id` and `expires`, and `now` is before it
    /// (constant-time comparison).
    pub fn verify(&self, file_id: uuid::Uuid, expires: i64, signature: &str, now: i64) -> bool {
        use hmac::Mac;
        let Some(bytes) = (0..signature.len())
            .step_by(2)
            .map(|i| {
                signature
                    .get(i..i + 2)
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            })
            .collect::<Option<Vec<u8>>>()
        else {
            return false;
        };
        now < expires && self.mac(file_id, expires).verify_slice(&bytes).is_ok()
    }
}

/// Where the file links' key is kept: a row of the secrets' table of its own.
const LINK_KEY_ROW: (&str, &str) = ("parley", "file_link_key");

impl Directory {
    pub async fn open(
        models: &ReadModels,
        url: &str,
        service: CommandService,
    ) -> Result<Directory, ViewError> {
        Ok(Directory {
            store: models.side_store(url, STORE_NAME, SCHEMA).await?,
            service,
            cached: Mutex::new(HashMap::new()),
            accounts: Mutex::new(HashMap::new()),
            links: tokio::sync::OnceCell::new(),
        })
    }

    /// The signer of file links: its key made on first use by whichever node comes first,
    /// then read by all.
    pub async fn file_links(&self) -> Result<FileLinks, StoreError> {
        let links = self
            .links
            .get_or_try_init(|| async {
                let candidate = format!(
                    "{}{}",
                    uuid::Uuid::new_v4().simple(),
                    uuid::Uuid::new_v4().simple()
                );
                let stored = self
                    .store
                    .write(move |tx| {
                        tx.execute(
                            "INSERT INTO parley_channel_secrets (channel_id, name, value, updated_at)
                             VALUES ($1, $2, $3, 0) ON CONFLICT (channel_id, name) DO NOTHING",
                            &[
                                LINK_KEY_ROW.0.into(),
                                LINK_KEY_ROW.1.into(),
                                candidate.as_str().into(),
                            ],
                        )?;
                        let row = tx.query_opt(
                            "SELECT value FROM parley_channel_secrets
                             WHERE channel_id = $1 AND name = $2",
                            &[LINK_KEY_ROW.0.into(), LINK_KEY_ROW.1.into()],
                        )?;
                        match row {
                            Some(row) => row.text(0),
                            None => Err(StoreError::Corrupt(
                                STORE_NAME,
                                "the file links' key vanished".into(),
                            )),
                        }
                    })
                    .await?;
                let mut key = [0u8; 32];
                let digest = <sha2::Sha256 as sha2::Digest>::digest(stored.as_bytes());
                key.copy_from_slice(&digest);
                Ok::<_, StoreError>(FileLinks { key })
            })
            .await?;
        Ok(links.clone())
    }

    /// The account and its secrets, unless it does not exist or was removed (as read at most
    /// [`SECRETS_TTL`] ago).
    pub async fn get(&self, id: ChannelId) -> Result<Option<Arc<Connected>>, DirectoryError> {
        if let Ok(accounts) = self.accounts.lock()
            && let Some((account, read_at)) = accounts.get(&id)
            && read_at.elapsed() < SECRETS_TTL
        {
            return Ok(account.clone());
        }
        let account = self.read(id).await?.map(Arc::new);
        if let Ok(mut accounts) = self.accounts.lock() {
            accounts.insert(id, (account.clone(), Instant::now()));
        }
        Ok(account)
    }

    /// Forgets what this node read of an account: the next [`Directory::get`] reads it again.
    pub fn forget(&self, id: ChannelId) {
        if let Ok(mut accounts) = self.accounts.lock() {
            accounts.remove(&id);
        }
        if let Ok(mut cached) = self.cached.lock() {
            cached.remove(&id);
        }
    }

    async fn read(&self, id: ChannelId) -> Result<Option<Connected>, DirectoryError> {
        let stream = CommandService::stream::<ChannelAccount>(id)?;
        let (state, _, _) = self.service.load::<ChannelAccount>(&stream).await?;
        let (Some(channel), false) = (state.channel, state.removed) else {
            return Ok(None);
        };
        let Some(platform) = platform_of(channel) else {
            return Ok(None);
        };
        let secrets = self.secrets(id).await?;
        Ok(Some(Connected {
            id,
            channel,
            name: state.name.clone(),
            account: Account {
                platform,
                ids: state.platform_ids.clone(),
                api_base: state
                    .api_base
                    .clone()
                    .unwrap_or_else(|| platform.default_api_base().to_owned())
                    .trim_end_matches('/')
                    .to_owned(),
            },
            secrets,
        }))
    }

    /// The account's secrets (kept for [`SECRETS_TTL`]).
    pub async fn secrets(&self, id: ChannelId) -> Result<Secrets, StoreError> {
        if let Ok(cached) = self.cached.lock()
            && let Some((secrets, read_at)) = cached.get(&id)
            && read_at.elapsed() < SECRETS_TTL
        {
            return Ok(secrets.clone());
        }
        let key = id.to_string();
        let values = self
            .store
            .read(move |tx| {
                let mut values = BTreeMap::new();
                for row in tx.query(
                    "SELECT name, value FROM parley_channel_secrets WHERE channel_id = $1",
                    &[key.as_str().into()],
                )? {
                    values.insert(row.text(0)?, row.text(1)?);
                }
                Ok::<_, StoreError>(values)
            })
            .await?;
        let secrets = Secrets(values);
        if let Ok(mut cached) = self.cached.lock() {
            cached.insert(id, (secrets.clone(), Instant::now()));
        }
        Ok(secrets)
    }

    /// Sets (a value) or clears (`None`) secrets of an account, in one transaction.
    pub async fn set_secrets(
        &self,
        id: ChannelId,
        changes: BTreeMap<String, Option<String>>,
        at_micros: i64,
    ) -> Result<(), StoreError> {
        let key = id.to_string();
        self.store
            .write(move |tx| {
                for (name, value) in &changes {
                    match value {
                        Some(value) => tx.execute(
                            "INSERT INTO parley_channel_secrets (channel_id, name, value, updated_at)
                             VALUES ($1, $2, $3, $4) ON CONFLICT (channel_id, name)
                             DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                            &[
                                key.as_str().into(),
                                name.as_str().into(),
                                value.as_str().into(),
                                at_micros.into(),
                            ],
                        )?,
                        None => tx.execute(
                            "DELETE FROM parley_channel_secrets WHERE channel_id = $1 AND name = $2",
                            &[key.as_str().into(), name.as_str().into()],
                        )?,
                    };
                }
                Ok::<_, StoreError>(())
            })
            .await?;
        self.forget(id);
        Ok(())
    }

    /// Forgets every secret of a removed account.
    pub async fn drop_secrets(&self, id: ChannelId) -> Result<(), StoreError> {
        let key = id.to_string();
        self.store
            .write(move |tx| {
                tx.execute(
                    "DELETE FROM parley_channel_secrets WHERE channel_id = $1",
                    &[key.as_str().into()],
                )?;
                Ok::<_, StoreError>(())
            })
            .await?;
        self.forget(id);
        Ok(())
    }
}

/// A shared directory.
pub type SharedDirectory = Arc<Directory>;
