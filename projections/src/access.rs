//! API tokens by the digest of their secret: what the server checks on every request, and
//! the list admins manage.

use crate::feed::{Envelope, Event};
use crate::runner::{Projection, Tables};
use crate::store::{Dialect, Row, StoreError, Tx};
use parley_domain::access::{Role, TokenEvent, TokenId};
use serde::Serialize;

pub const NAME: &str = "access";

pub struct Access;

const TABLES: &[&str] = &["tokens"];

const SCHEMA: &[&str] = &["CREATE TABLE {p}tokens (
        secret_sha256 TEXT PRIMARY KEY,
        token_id TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL,
        label TEXT NOT NULL,
        issued_at BIGINT NOT NULL,
        revoked_at BIGINT
    )"];

impl Projection for Access {
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
    fn wants(&self, stream: &str, _event_type: &str) -> bool {
        stream.starts_with("token-")
    }
    fn apply(&self, tx: &mut dyn Tx, t: &Tables, events: &[Envelope]) -> Result<(), StoreError> {
        for envelope in events {
            let Event::Token(_, event) = &envelope.event else {
                continue;
            };
            match event {
                TokenEvent::TokenIssued(e) => {
                    let role = serde_json::to_string(&e.role)
                        .map_err(|error| StoreError::Corrupt(NAME, error.to_string()))?;
                    tx.execute(
                        &t.sql(
                            "INSERT INTO {p}tokens (secret_sha256, token_id, role, label, issued_at)
                             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                        ),
                        &[
                            e.secret_sha256.as_str().into(),
                            e.token_id.to_string().into(),
                            role.into(),
                            e.label.as_str().into(),
                            e.at.0.into(),
                        ],
                    )?;
                }
                TokenEvent::TokenRevoked(e) => {
                    tx.execute(
                        &t.sql("UPDATE {p}tokens SET revoked_at = $2 WHERE token_id = $1"),
                        &[e.token_id.to_string().into(), e.at.0.into()],
                    )?;
                }
            }
        }
        Ok(())
    }
}

/// A token as admins see it (never its secret).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenView {
    pub token_id: TokenId,
    #[serde(flatten)]
    pub role: Role,
    pub label: String,
    /// Microseconds since the Unix epoch.
    pub issued_at: i64,
    pub revoked_at: Option<i64>,
}

fn token_view(row: &Row) -> Result<TokenView, StoreError> {
    let corrupt = |what: String| StoreError::Corrupt(NAME, what);
    Ok(TokenView {
        token_id: TokenId(row.uuid(0)?),
        role: serde_json::from_str(&row.text(1)?).map_err(|e| corrupt(e.to_string()))?,
        label: row.text(2)?,
        issued_at: row.i64(3)?,
        revoked_at: row.opt_i64(4)?,
    })
}

const COLUMNS: &str = "token_id, role, label, issued_at, revoked_at";

/// The token whose secret has this digest, revoked or not.
pub fn by_digest(
    tx: &mut dyn Tx,
    t: &Tables,
    secret_sha256: &str,
) -> Result<Option<TokenView>, StoreError> {
    tx.query_opt(
        &t.sql(&format!(
            "SELECT {COLUMNS} FROM {{p}}tokens WHERE secret_sha256 = $1"
        )),
        &[secret_sha256.into()],
    )?
    .as_ref()
    .map(token_view)
    .transpose()
}

/// The token with this id, revoked or not.
pub fn by_id(tx: &mut dyn Tx, t: &Tables, token_id: &str) -> Result<Option<TokenView>, StoreError> {
    tx.query_opt(
        &t.sql(&format!(
            "SELECT {COLUMNS} FROM {{p}}tokens WHERE token_id = $1"
        )),
        &[token_id.into()],
    )?
    .as_ref()
    .map(token_view)
    .transpose()
}

/// Every token, oldest first, at most `limit` after the token issued at `after` (a cursor).
pub fn list(
    tx: &mut dyn Tx,
    t: &Tables,
    after: Option<(i64, String)>,
    limit: usize,
) -> Result<Vec<TokenView>, StoreError> {
    let (at, id) = after.unwrap_or((i64::MIN, String::new()));
    tx.query(
        &t.sql(&format!(
            "SELECT {COLUMNS} FROM {{p}}tokens WHERE (issued_at, token_id) > ($1, $2)
             ORDER BY issued_at, token_id LIMIT $3"
        )),
        &[at.into(), id.into(), (limit as i64).into()],
    )?
    .iter()
    .map(token_view)
    .collect()
}

/// Whether any admin token is still valid.
pub fn has_admin(tx: &mut dyn Tx, t: &Tables) -> Result<bool, StoreError> {
    Ok(tx
        .query_opt(
            &t.sql(
                "SELECT 1 FROM {p}tokens WHERE revoked_at IS NULL AND role LIKE '{\"role\":\"admin\"%'",
            ),
            &[],
        )?
        .is_some())
}
