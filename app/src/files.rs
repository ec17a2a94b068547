//! Files people send with their messages: uploads through the API and the widget, and (for the
//! channels' reactions) media fetched from the platforms. Files are not events: a message's
//! [`Attachment`] holds the file's id, name, type, size and digest; the bytes live here.
//!
//! - Content is addressed by its SHA-256, so identical content is stored once however many
//!   uploads name it. On SQLite, in a folder beside the log (`parley.db` →
//!   `parley.files/<first two hex digits>/<sha256>`): each upload is written to a temporary
//!   file in that folder, synced, then renamed into place, and the folder synced. On
//!   PostgreSQL, where several servers share the database and each must serve every file, in
//!   `parley_file_chunks` (256 KiB per row): an upload's chunks are written under a temporary
//!   key as they arrive, and take its digest in one transaction at the end (or are dropped, if
//!   that content is already there).
//! - Each upload is a record ([`StoredFile`]: id → digest, name, type, size, who uploaded it and
//!   when) in a side store of the read models (`parley_files`).
//! - Uploads stream: the body is hashed and written as it arrives, never held whole in memory;
//!   an upload beyond the size limit, or one that breaks off, leaves nothing behind.
//! - The type is sniffed from the first bytes (`infer`), never taken from the client: what it
//!   does not recognise is `text/plain; charset=utf-8` when the bytes are UTF-8 text, else
//!   `application/octet-stream` (or a type the caller claims, for binary types no browser runs).
//! - An upload's id is minted by [`crate::ids::new_id`]: the retry of a request sent with an
//!   `Idempotency-Key` meets the same id, and finds the record its first attempt made.
//!
//! Files are never deleted; content whose every upload was abandoned stays (it is small next to
//! what is attached, and may be attached again).

use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use parley_domain::conversation::Attachment;
use parley_projections::{ReadModels, Row, Store, StoreError, Tx, ViewError};
use sha2::{Digest, Sha256};
use sqlx::postgres::PgPool;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

/// The default size limit of one file, in bytes (25 MiB).
pub const DEFAULT_MAX_BYTES: u64 = 25 * 1024 * 1024;
/// Bytes per stored chunk (PostgreSQL) and per piece read back (both backends).
pub const CHUNK_BYTES: usize = 256 * 1024;
/// Longest file name, in characters.
pub const MAX_NAME_CHARS: usize = 255;
/// What UTF-8 text that `infer` does not recognise is served as.
pub const TEXT: &str = "text/plain; charset=utf-8";
/// What other unrecognised bytes are served as.
pub const BINARY: &str = "application/octet-stream";

/// How many first bytes the type is sniffed from.
const SNIFF_BYTES: usize = 64 * 1024;
/// The side store's name (on SQLite, `<views dir>/files.db`).
const STORE_NAME: &str = "files";
/// Temporary content older than this is a crashed upload's, swept when the store opens.
const LEFTOVER_AGE: Duration = Duration::from_secs(24 * 60 * 60);
/// The name every temporary file begins with (SQLite).
const TEMPORARY_FILE: &str = ".upload-";
/// The key every temporary chunk's `sha256` column begins with (PostgreSQL); a UUIDv7 follows,
/// so the keys sort by the time their upload began.
const TEMPORARY_KEY: &str = "upload:";
/// The first of the two keys of the advisory locks that serialise placing content
/// (PostgreSQL); the second comes from the digest.
const PLACE_LOCK_CLASS: i32 = 0x7066;

const RECORDS: &str = "CREATE TABLE IF NOT EXISTS parley_files (
    file_id TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    name TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size BIGINT NOT NULL,
    uploaded_by TEXT NOT NULL,
    created_at BIGINT NOT NULL
)";
const CHUNKS: &str = "CREATE TABLE IF NOT EXISTS parley_file_chunks (
    sha256 TEXT NOT NULL,
    n INT NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (sha256, n)
)";
const SQLITE_SCHEMA: &[&str] = &[RECORDS];
const POSTGRES_SCHEMA: &[&str] = &[RECORDS, CHUNKS];

/// Why a file could not be stored or read. How an HTTP client sees each is said on it.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The upload holds no bytes (HTTP 422).
    #[error("the file is empty")]
    Empty,
    /// The upload is larger than the limit (HTTP 413); nothing of it was kept.
    #[error("the file is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    /// Not a usable file name (HTTP 422).
    #[error("name: {0}")]
    InvalidName(String),
    /// An attachment names no file the caller uploaded: another's, or none (HTTP 422; one
    /// answer for both, so that nobody learns of another's files).
    #[error("attachments: file {0} is not one of your uploads")]
    NotYours(Uuid),
    /// The upload's id already names another file: the retry of a keyed upload brought other
    /// content, or another name, than its first attempt (HTTP 422).
    #[error("file {0} was uploaded with other content or another name")]
    IdTaken(Uuid),
    /// The upload could not be read to its end: the client stopped sending (HTTP 400).
    #[error("the upload could not be read: {0}")]
    Read(Box<dyn std::error::Error + Send + Sync>),
    /// A recorded file's content is missing or damaged (HTTP 500).
    #[error("file store: {0}")]
    Corrupt(String),
    /// The file system failed (HTTP 503).
    #[error("file store: {0}")]
    Io(#[from] std::io::Error),
    /// The database failed (HTTP 503).
    #[error("file store: {0}")]
    Postgres(#[from] sqlx::Error),
    /// The records' store failed (as the read models' failures).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The records' store could not be opened.
    #[error(transparent)]
    View(#[from] ViewError),
}

/// An upload's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFile {
    pub id: Uuid,
    /// SHA-256 of the content, lower-case hex: where the content is.
    pub sha256: String,
    pub name: String,
    /// Sniffed from the content.
    pub content_type: String,
    /// In bytes.
    pub size: u64,
    /// Who uploaded it, as the caller's key: `token:<id>` for an API token, `customer:<id>`
    /// for a widget visitor (any text the caller chooses for other uploaders).
    pub uploaded_by: String,
    /// Microseconds since the Unix epoch.
    pub created_at: i64,
}

impl StoredFile {
    /// The file as a message's attachment (`storage_ref` is `file:<id>`).
    pub fn attachment(&self) -> Attachment {
        Attachment {
            name: self.name.clone(),
            content_type: self.content_type.clone(),
            size: self.size,
            storage_ref: format!("file:{}", self.id),
            file_id: Some(self.id),
            sha256: Some(self.sha256.clone()),
            unavailable: None,
        }
    }
}

/// A stored file's content, in pieces of at most [`CHUNK_BYTES`].
pub type FileChunks = BoxStream<'static, Result<Vec<u8>, FileError>>;

/// Where content lives.
enum Content {
    /// SQLite: a folder beside the log.
    Folder(PathBuf),
    /// PostgreSQL: `parley_file_chunks` in the log's database.
    Chunks(PgPool),
}

/// Uploads' records and their content-addressed bytes.
pub struct FileStore {
    records: Store,
    content: Content,
    max_bytes: u64,
}

impl FileStore {
    /// Opens (creating if needed) the files of the log at `url`, beside the read models opened
    /// from it, with files of at most `max_bytes`. What crashed uploads left is swept.
    pub async fn new(
        models: &ReadModels,
        url: &str,
        max_bytes: u64,
    ) -> Result<FileStore, FileError> {
        let folder = parley_projections::runner::sqlite_path(url).map(|log| files_dir(&log));
        let schema = match folder {
            Some(_) => SQLITE_SCHEMA,
            None => POSTGRES_SCHEMA,
        };
        let records = models.side_store(url, STORE_NAME, schema).await?;
        let content = match (&records, folder) {
            (Store::Sqlite(_), Some(folder)) => {
                let swept = folder.clone();
                tokio::task::spawn_blocking(move || sweep_folder(&swept))
                    .await
                    .map_err(|e| std::io::Error::other(e.to_string()))??;
                Content::Folder(folder)
            }
            (Store::Postgres(pool), None) => {
                sweep_chunks(pool).await?;
                Content::Chunks(pool.clone())
            }
            _ => {
                return Err(FileError::Corrupt(format!(
                    "no place for files beside {url}"
                )));
            }
        };
        Ok(FileStore {
            records,
            content,
            max_bytes,
        })
    }

    /// The largest file accepted, in bytes.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Stores an upload arriving as `body`, hashing and writing it piece by piece: `name` is
    /// checked first ([`valid_name`]), the type sniffed ([`content_type`]; `claimed_type` is
    /// what the sender says, used only as that function allows). Beyond [`FileStore::max_bytes`]
    /// the upload is refused and nothing is kept, as when `body` fails.
    pub async fn upload<S, B, E>(
        &self,
        body: S,
        name: &str,
        claimed_type: Option<&str>,
        uploaded_by: &str,
    ) -> Result<StoredFile, FileError>
    where
        S: Stream<Item = Result<B, E>> + Send,
        B: AsRef<[u8]> + Send,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let name = valid_name(name)?;
        let id = crate::ids::new_id("file");
        let mut pending = self.content.pending().await?;
        let written = self.write(body, &mut pending).await;
        let seen = match written {
            Ok(seen) => seen,
            Err(error) => {
                pending.discard().await;
                return Err(error);
            }
        };
        let (sha256, content_type) = seen.finish(claimed_type);
        pending.place(&sha256).await?;
        self.record(StoredFile {
            id,
            sha256,
            name,
            content_type,
            size: seen.size,
            uploaded_by: uploaded_by.to_owned(),
            created_at: parley_eventlog::Timestamp::now().as_micros(),
        })
        .await
    }

    /// [`FileStore::upload`] of bytes already in memory (media a reaction fetched).
    pub async fn store_bytes(
        &self,
        bytes: &[u8],
        name: &str,
        claimed_type: Option<&str>,
        uploaded_by: &str,
    ) -> Result<StoredFile, FileError> {
        let body = futures::stream::iter([Ok::<_, std::convert::Infallible>(bytes)]);
        self.upload(body, name, claimed_type, uploaded_by).await
    }

    /// Writes `body` to `pending`, within the limit; what was seen of it.
    async fn write<S, B, E>(&self, body: S, pending: &mut Pending) -> Result<Seen, FileError>
    where
        S: Stream<Item = Result<B, E>> + Send,
        B: AsRef<[u8]> + Send,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let mut body = std::pin::pin!(body);
        let mut seen = Seen::new();
        while let Some(piece) = body.next().await {
            let piece = piece.map_err(|error| FileError::Read(error.into()))?;
            let bytes = piece.as_ref();
            if seen.size.saturating_add(bytes.len() as u64) > self.max_bytes {
                return Err(FileError::TooLarge {
                    limit: self.max_bytes,
                });
            }
            seen.feed(bytes);
            pending.write(bytes).await?;
        }
        if seen.size == 0 {
            return Err(FileError::Empty);
        }
        Ok(seen)
    }

    /// Records an upload whose content is in place. A retry of a keyed upload finds its first
    /// attempt's record, which must name the same file.
    async fn record(&self, file: StoredFile) -> Result<StoredFile, FileError> {
        self.records
            .write(move |tx| {
                tx.execute(
                    "INSERT INTO parley_files
                        (file_id, sha256, name, content_type, size, uploaded_by, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (file_id) DO NOTHING",
                    &[
                        file.id.into(),
                        file.sha256.as_str().into(),
                        file.name.as_str().into(),
                        file.content_type.as_str().into(),
                        i64::try_from(file.size).unwrap_or(i64::MAX).into(),
                        file.uploaded_by.as_str().into(),
                        file.created_at.into(),
                    ],
                )?;
                let found = find(tx, file.id)?
                    .ok_or_else(|| FileError::Corrupt(format!("record {} vanished", file.id)))?;
                if found.sha256 != file.sha256
                    || found.name != file.name
                    || found.uploaded_by != file.uploaded_by
                {
                    return Err(FileError::IdTaken(file.id));
                }
                Ok(found)
            })
            .await
    }

    /// The record of upload `id`, if there is one.
    pub async fn find(&self, id: Uuid) -> Result<Option<StoredFile>, FileError> {
        self.records.read_short(move |tx| find(tx, id)).await
    }

    /// Upload `id` as an attachment, if `uploaded_by` uploaded it ([`FileError::NotYours`]
    /// otherwise, and for an id that names nothing).
    pub async fn attachment(&self, id: Uuid, uploaded_by: &str) -> Result<Attachment, FileError> {
        match self.find(id).await? {
            Some(file) if file.uploaded_by == uploaded_by => Ok(file.attachment()),
            _ => Err(FileError::NotYours(id)),
        }
    }

    /// Upload `id`'s record and its content, read piece by piece as the stream is polled.
    pub async fn open(&self, id: Uuid) -> Result<Option<(StoredFile, FileChunks)>, FileError> {
        let Some(file) = self.find(id).await? else {
            return Ok(None);
        };
        let chunks = self.read(&file).await?;
        Ok(Some((file, chunks)))
    }

    /// The content of a file found with [`FileStore::find`], read piece by piece as the stream
    /// is polled ([`FileError::Corrupt`] at once when it is missing).
    pub async fn read(&self, file: &StoredFile) -> Result<FileChunks, FileError> {
        self.content.read(file).await
    }
}

/// Where a SQLite log's files live: a folder next to the log file (`parley.db` →
/// `parley.files`).
pub fn files_dir(log_path: &Path) -> PathBuf {
    log_path.with_extension("files")
}

/// Checks a file's name: 1 to [`MAX_NAME_CHARS`] characters, no path separator (`/`, `\`), no
/// control character, not blank, `.` or `..`. Refusals say why.
pub fn valid_name(name: &str) -> Result<String, FileError> {
    let invalid = |why: &str| Err(FileError::InvalidName(why.to_owned()));
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS {
        return invalid("a file name has 1 to 255 characters");
    }
    if name
        .chars()
        .any(|c| c == '/' || c == '\\' || c.is_control())
    {
        return invalid("a file name has no path separators or control characters");
    }
    if name.trim().is_empty() || name == "." || name == ".." {
        return invalid("a file name is not blank, `.` or `..`");
    }
    Ok(name.to_owned())
}

/// The type content is served as: what `infer` recognises in its first bytes (`head`); else
/// [`TEXT`] when it is UTF-8 text (`utf8_text`); else `claimed` when it is a well-formed binary
/// type no browser runs as a page or a script (audio, video, images but SVG, fonts, models,
/// `application/*` but HTML, XML and scripts), as a platform names the media it delivers; else
/// [`BINARY`].
pub fn content_type(head: &[u8], utf8_text: bool, claimed: Option<&str>) -> String {
    if let Some(kind) = infer::get(head) {
        return kind.mime_type().to_owned();
    }
    if utf8_text {
        return TEXT.to_owned();
    }
    claimed
        .and_then(binary_type)
        .unwrap_or_else(|| BINARY.to_owned())
}

/// `claimed`'s essence (`type/subtype`, lower case), if [`content_type`] may serve it.
fn binary_type(claimed: &str) -> Option<String> {
    let essence = claimed.split(';').next()?.trim().to_ascii_lowercase();
    let (kind, subtype) = essence.split_once('/')?;
    let token = |part: &str| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
    };
    let runs = ["html", "xml", "svg", "script"];
    let binary = matches!(
        kind,
        "audio" | "video" | "image" | "font" | "model" | "application"
    );
    (binary && token(kind) && token(subtype) && !runs.iter().any(|r| subtype.contains(r)))
        .then_some(essence)
}

/// What an upload's bytes were: their digest, size, first bytes and whether they are text.
struct Seen {
    hasher: Sha256,
    size: u64,
    head: Vec<u8>,
    text: Utf8Text,
}

impl Seen {
    fn new() -> Seen {
        Seen {
            hasher: Sha256::new(),
            size: 0,
            head: Vec::new(),
            text: Utf8Text::default(),
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        self.size += bytes.len() as u64;
        let room = SNIFF_BYTES.saturating_sub(self.head.len());
        self.head.extend_from_slice(&bytes[..room.min(bytes.len())]);
        self.text.feed(bytes);
    }

    /// The digest (hex) and the type.
    fn finish(&self, claimed_type: Option<&str>) -> (String, String) {
        let digest = format!("{:x}", self.hasher.clone().finalize());
        let content_type = content_type(&self.head, self.text.is_text(), claimed_type);
        (digest, content_type)
    }
}

/// Whether bytes arriving in pieces are UTF-8 text (no NUL), a character possibly split
/// between two pieces.
#[derive(Debug)]
struct Utf8Text {
    valid: bool,
    /// The beginning of a character whose end is in the next piece (3 bytes at most).
    carry: Vec<u8>,
}

impl Default for Utf8Text {
    fn default() -> Self {
        Utf8Text {
            valid: true,
            carry: Vec::new(),
        }
    }
}

impl Utf8Text {
    fn feed(&mut self, mut bytes: &[u8]) {
        if !self.valid {
            return;
        }
        if bytes.contains(&0) {
            self.valid = false;
            return;
        }
        // First complete the character the last piece began.
        while !self.carry.is_empty() {
            let Some((&byte, rest)) = bytes.split_first() else {
                return;
            };
            self.carry.push(byte);
            bytes = rest;
            match std::str::from_utf8(&self.carry) {
                Ok(_) => self.carry.clear(),
                Err(e) if e.error_len().is_none() && self.carry.len() < 4 => {}
                Err(_) => {
                    self.valid = false;
                    return;
                }
            }
        }
        match std::str::from_utf8(bytes) {
            Ok(_) => {}
            Err(e) if e.error_len().is_none() => {
                self.carry.extend_from_slice(&bytes[e.valid_up_to()..]);
            }
            Err(_) => self.valid = false,
        }
    }

    fn is_text(&self) -> bool {
        self.valid && self.carry.is_empty()
    }
}

// ---------------------------------------------------------------------------------------------
// Content.

/// An upload's content being written; dropped unfinished (an error, or the request gone), it
/// leaves nothing behind.
struct Pending {
    target: Target,
    placed: bool,
}

enum Target {
    /// A temporary file in `folder`.
    File {
        folder: PathBuf,
        path: PathBuf,
        file: Option<tokio::io::BufWriter<tokio::fs::File>>,
    },
    /// Chunks under a temporary key; `buffer` holds the next chunk's bytes.
    Chunks {
        pool: PgPool,
        key: String,
        next: i32,
        buffer: Vec<u8>,
    },
}

impl Content {
    /// Somewhere to write a new upload.
    async fn pending(&self) -> Result<Pending, FileError> {
        let target = match self {
            Content::Folder(folder) => {
                tokio::fs::create_dir_all(folder).await?;
                let path = folder.join(format!("{TEMPORARY_FILE}{}", Uuid::now_v7()));
                let file = tokio::fs::File::create(&path).await?;
                Target::File {
                    folder: folder.clone(),
                    path,
                    file: Some(tokio::io::BufWriter::with_capacity(CHUNK_BYTES, file)),
                }
            }
            Content::Chunks(pool) => Target::Chunks {
                pool: pool.clone(),
                key: format!("{TEMPORARY_KEY}{}", Uuid::now_v7()),
                next: 0,
                buffer: Vec::with_capacity(CHUNK_BYTES),
            },
        };
        Ok(Pending {
            target,
            placed: false,
        })
    }

    /// `file`'s content, read as the stream is polled.
    async fn read(&self, file: &StoredFile) -> Result<FileChunks, FileError> {
        let missing = || FileError::Corrupt(format!("the content of file {} is missing", file.id));
        match self {
            Content::Folder(folder) => {
                let path = content_path(folder, &file.sha256);
                let opened = match tokio::fs::File::open(&path).await {
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                        return Err(missing());
                    }
                    other => other?,
                };
                if opened.metadata().await?.len() != file.size {
                    return Err(FileError::Corrupt(format!(
                        "the content of file {} has another size than recorded",
                        file.id
                    )));
                }
                Ok(
                    futures::stream::try_unfold(opened, |mut opened| async move {
                        let mut piece = vec![0u8; CHUNK_BYTES];
                        let read = opened.read(&mut piece).await?;
                        if read == 0 {
                            return Ok(None);
                        }
                        piece.truncate(read);
                        Ok(Some((piece, opened)))
                    })
                    .boxed(),
                )
            }
            Content::Chunks(pool) => {
                let first = chunk(pool, &file.sha256, 0).await?.ok_or_else(missing)?;
                let start = (pool.clone(), file.sha256.clone(), 0, Some(first));
                Ok(
                    futures::stream::try_unfold(start, |(pool, sha256, n, first)| async move {
                        let data = match first {
                            Some(data) => Some(data),
                            None => chunk(&pool, &sha256, n).await?,
                        };
                        Ok(data.map(|data| (data, (pool, sha256, n + 1, None))))
                    })
                    .boxed(),
                )
            }
        }
    }
}

impl Pending {
    async fn write(&mut self, mut bytes: &[u8]) -> Result<(), FileError> {
        match &mut self.target {
            Target::File { file, .. } => {
                let file = file
                    .as_mut()
                    .ok_or_else(|| FileError::Corrupt("an upload written after its end".into()))?;
                file.write_all(bytes).await?;
            }
            Target::Chunks {
                pool,
                key,
                next,
                buffer,
            } => {
                while !bytes.is_empty() {
                    let room = CHUNK_BYTES - buffer.len();
                    let (now, later) = bytes.split_at(room.min(bytes.len()));
                    buffer.extend_from_slice(now);
                    bytes = later;
                    if buffer.len() == CHUNK_BYTES {
                        insert_chunk(pool, key, *next, buffer).await?;
                        *next += 1;
                        buffer.clear();
                    }
                }
            }
        }
        Ok(())
    }

    /// Puts the written content in its place as `sha256` (unless that content is there
    /// already, which is then kept as it is).
    async fn place(&mut self, sha256: &str) -> Result<(), FileError> {
        match &mut self.target {
            Target::File { folder, path, file } => {
                if let Some(mut file) = file.take() {
                    file.flush().await?;
                    file.into_inner().sync_all().await?;
                }
                let (folder, path, sha256) = (folder.clone(), path.clone(), sha256.to_owned());
                tokio::task::spawn_blocking(move || place_file(&folder, &path, &sha256))
                    .await
                    .map_err(|e| std::io::Error::other(e.to_string()))??;
            }
            Target::Chunks {
                pool,
                key,
                next,
                buffer,
            } => {
                if !buffer.is_empty() {
                    insert_chunk(pool, key, *next, buffer).await?;
                    buffer.clear();
                }
                place_chunks(pool, key, sha256).await?;
            }
        }
        self.placed = true;
        Ok(())
    }

    /// Removes what was written (an upload refused or broken off).
    async fn discard(mut self) {
        self.placed = true;
        let removed = match &mut self.target {
            Target::File { path, file, .. } => {
                drop(file.take());
                tokio::fs::remove_file(&path).await.map_err(FileError::from)
            }
            Target::Chunks { pool, key, .. } => delete_chunks(pool, key).await,
        };
        if let Err(error) = removed {
            tracing::warn!(%error, "cannot remove an unfinished upload; it is swept on restart");
        }
    }
}

impl Drop for Pending {
    /// An upload dropped before its end (the request went away).
    fn drop(&mut self) {
        if self.placed {
            return;
        }
        match &mut self.target {
            Target::File { path, file, .. } => {
                drop(file.take());
                let _ = std::fs::remove_file(path);
            }
            Target::Chunks { pool, key, .. } => {
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    let (pool, key) = (pool.clone(), std::mem::take(key));
                    runtime.spawn(async move {
                        if let Err(error) = delete_chunks(&pool, &key).await {
                            tracing::warn!(%error, "cannot remove an unfinished upload");
                        }
                    });
                }
            }
        }
    }
}

/// Where content `sha256` lives in `folder`.
fn content_path(folder: &Path, sha256: &str) -> PathBuf {
    folder.join(sha256.get(..2).unwrap_or("00")).join(sha256)
}

/// Renames the synced temporary file `path` to its content's place (or removes it when that
/// content is already there), and syncs the folders whose entries changed.
fn place_file(folder: &Path, path: &Path, sha256: &str) -> std::io::Result<()> {
    let target = content_path(folder, sha256);
    let Some(dir) = target.parent() else {
        return Err(std::io::Error::other("content has no folder"));
    };
    if !dir.exists() {
        std::fs::create_dir_all(dir)?;
        sync_dir(folder)?;
    }
    if target.exists() {
        std::fs::remove_file(path)?;
    } else {
        std::fs::rename(path, &target)?;
        sync_dir(dir)?;
    }
    sync_dir(folder)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Removes the temporary files of uploads that a crash interrupted (older than a day: a
/// process serving uploads now has newer ones).
fn sweep_folder(folder: &Path) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(folder) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        other => other?,
    };
    for entry in entries {
        let entry = entry?;
        let temporary = entry
            .file_name()
            .to_str()
            .is_some_and(|name| name.starts_with(TEMPORARY_FILE));
        let old = entry
            .metadata()?
            .modified()?
            .elapsed()
            .is_ok_and(|age| age > LEFTOVER_AGE);
        if temporary && old {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

async fn insert_chunk(pool: &PgPool, key: &str, n: i32, data: &[u8]) -> Result<(), FileError> {
    sqlx::query("INSERT INTO parley_file_chunks (sha256, n, data) VALUES ($1, $2, $3)")
        .bind(key)
        .bind(n)
        .bind(data)
        .execute(pool)
        .await?;
    Ok(())
}

async fn chunk(pool: &PgPool, sha256: &str, n: i32) -> Result<Option<Vec<u8>>, FileError> {
    Ok(
        sqlx::query_scalar("SELECT data FROM parley_file_chunks WHERE sha256 = $1 AND n = $2")
            .bind(sha256)
            .bind(n)
            .fetch_optional(pool)
            .await?,
    )
}

async fn delete_chunks(pool: &PgPool, key: &str) -> Result<(), FileError> {
    sqlx::query("DELETE FROM parley_file_chunks WHERE sha256 = $1")
        .bind(key)
        .execute(pool)
        .await?;
    Ok(())
}

/// Gives the chunks written under `key` the digest of their content, in one transaction, or
/// drops them when that content is already stored. Uploads of the same content take turns.
async fn place_chunks(pool: &PgPool, key: &str, sha256: &str) -> Result<(), FileError> {
    let mut tx = pool.begin().await?;
    // The digest's first 32 bits, as PostgreSQL's signed key.
    let digest_key = u32::from_str_radix(sha256.get(..8).unwrap_or("0"), 16).unwrap_or(0) as i32;
    sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
        .bind(PLACE_LOCK_CLASS)
        .bind(digest_key)
        .execute(&mut *tx)
        .await?;
    let stored = sqlx::query("SELECT 1 FROM parley_file_chunks WHERE sha256 = $1 AND n = 0")
        .bind(sha256)
        .fetch_optional(&mut *tx)
        .await?
        .is_some();
    if stored {
        sqlx::query("DELETE FROM parley_file_chunks WHERE sha256 = $1")
            .bind(key)
            .execute(&mut *tx)
            .await?;
    } else {
        sqlx::query("UPDATE parley_file_chunks SET sha256 = $1 WHERE sha256 = $2")
            .bind(sha256)
            .bind(key)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Removes the chunks of uploads that a crash interrupted (begun more than a day ago).
async fn sweep_chunks(pool: &PgPool) -> Result<(), FileError> {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .saturating_sub(LEFTOVER_AGE);
    let millis = u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX);
    let before = uuid::Builder::from_unix_timestamp_millis(millis, &[0; 10]).into_uuid();
    sqlx::query("DELETE FROM parley_file_chunks WHERE sha256 >= $1 AND sha256 < $2")
        .bind(TEMPORARY_KEY)
        .bind(format!("{TEMPORARY_KEY}{before}"))
        .execute(pool)
        .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Records.

const COLUMNS: &str = "file_id, sha256, name, content_type, size, uploaded_by, created_at";

fn find(tx: &mut dyn Tx, id: Uuid) -> Result<Option<StoredFile>, FileError> {
    let found = tx.query_opt(
        &format!("SELECT {COLUMNS} FROM parley_files WHERE file_id = $1"),
        &[id.into()],
    )?;
    Ok(found.map(stored_file).transpose()?)
}

fn stored_file(mut row: Row) -> Result<StoredFile, StoreError> {
    Ok(StoredFile {
        id: row.uuid(0)?,
        sha256: row.take_text(1)?,
        name: row.take_text(2)?,
        content_type: row.take_text(3)?,
        size: u64::try_from(row.i64(4)?)
            .map_err(|_| StoreError::Corrupt(STORE_NAME, "a negative size".into()))?,
        uploaded_by: row.take_text(5)?,
        created_at: row.i64(6)?,
    })
}

#[cfg(test)]
mod tests;
