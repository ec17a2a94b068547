//! Files, `/api/v1/files` for staff and `/widget/v1/files` for widget visitors: uploading a
//! file to attach to messages, and fetching one back.
//!
//! - An upload is the request's raw body, streamed to the file store
//!   ([`crate::files::FileStore`]) while it is hashed, never held whole in memory; it is exempt
//!   from the JSON bodies' limit and has its own (`--max-file-bytes`, 413 beyond, nothing
//!   kept). Its name comes from `?name=` or `Content-Disposition: attachment; filename=...`;
//!   its type is sniffed from its bytes, whatever the client says.
//! - A download streams the content back in chunks, as an attachment the browser must not
//!   sniff, with the digest as its `ETag`.
//! - Who may fetch a file: whoever uploaded it (the same token; for a visitor, the same
//!   visitor), and whoever may see what it is attached to (the `files` read model says where):
//!   a message of a conversation the caller may see ([`super::conversations::may_see`]; for a
//!   visitor, a public message of one of its own conversations), or a ticket (staff). Anyone
//!   else is answered 404, exactly as for a file that does not exist.
//! - Messages and ticket comments attach an upload by its id (`{"file_id": ...}`,
//!   [`attachments`]), the uploader only: the log then holds the file's id, name, type, size and
//!   digest, never its bytes.

use super::auth::Caller;
use super::conversations::{AttachmentDto, FileRef};
use super::extract::{Json, Path, Query};
use super::{AppState, AtLeast};
use crate::files::{FileError, StoredFile};
use crate::problem::Problem;
use crate::service::CommandService;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use parley_domain::access::Role;
use parley_domain::conversation::{Attachment, Conversation, MAX_ATTACHMENTS};
use parley_projections::files::{self, Holder};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(upload))
        .routes(routes!(download))
        .routes(routes!(widget_upload))
        .routes(routes!(widget_download))
        .routes(routes!(linked_download))
        // Uploads stream under their own limit, not the one of JSON bodies.
        .layer(DefaultBodyLimit::disable())
}

/// Whether a request is a file upload, whose body streams to the file store (the
/// `Idempotency-Key` middleware leaves it unread).
pub(crate) fn is_upload(method: &axum::http::Method, path: &str) -> bool {
    method == axum::http::Method::POST && matches!(path, "/api/v1/files" | "/widget/v1/files")
}

/// How long a client may keep a file it fetched before asking again (with `If-None-Match`).
const CACHE_CONTROL: &str = "private, max-age=3600";
/// Most conversations and tickets looked at to decide whether a caller may fetch a file.
const MAX_HOLDERS: usize = 50;

// ---------------------------------------------------------------------------------------------
// DTOs.

/// The name of an upload (else `Content-Disposition: attachment; filename=...` gives it).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UploadParams {
    /// The file's name: 1 to 255 characters, without path separators or control characters.
    pub name: Option<String>,
}

/// A stored upload: attach it to a message or a ticket comment as `{"file_id": "<id>"}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadedFile {
    pub id: Uuid,
    pub name: String,
    /// Sniffed from the content (`text/plain; charset=utf-8` for text it does not recognise,
    /// else `application/octet-stream`); what the client said is not used.
    pub content_type: String,
    /// In bytes.
    pub size: u64,
    /// SHA-256 of the content, lower-case hex (also the download's `ETag`).
    pub sha256: String,
}

impl From<StoredFile> for UploadedFile {
    fn from(file: StoredFile) -> UploadedFile {
        UploadedFile {
            id: file.id,
            name: file.name,
            content_type: file.content_type,
            size: file.size,
            sha256: file.sha256,
        }
    }
}

/// A file's bytes, as they are.
#[derive(Debug, ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct FileBytes(pub Vec<u8>);

/// The file a route reads.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct FilePath {
    /// The file's id, as its upload answered.
    pub file_id: Uuid,
}

/// `If-None-Match`: the `ETag` of a copy the client holds.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
pub struct Revalidation {
    /// The `ETag` a previous download answered: 304 without a body while it is still the file.
    #[param(rename = "If-None-Match")]
    pub if_none_match: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Who uploads, who may fetch, what may be attached.

/// The key an upload records its uploader by: the token (`token:<id>`), or, for a widget
/// visitor, the visitor (`customer:<id>`).
pub(crate) fn uploader(caller: &Caller) -> String {
    match caller.role {
        Role::Visitor { customer } => format!("customer:{customer}"),
        _ => format!("token:{}", caller.token_id),
    }
}

/// The domain's attachments for a message or a comment: references to files stored
/// elsewhere as they are; uploads (`{"file_id": ...}`) looked up, the caller's own only (422
/// otherwise).
pub(crate) async fn attachments(
    state: &AppState,
    caller: &Caller,
    dtos: Vec<AttachmentDto>,
) -> Result<Vec<Attachment>, Problem> {
    let uploads = dtos
        .iter()
        .filter(|dto| matches!(dto, AttachmentDto::Upload(_)))
        .count();
    at_most_attachments(uploads)?;
    let owner = uploader(caller);
    let mut attached = Vec::with_capacity(dtos.len());
    for dto in dtos {
        attached.push(match dto {
            AttachmentDto::Upload(upload) => state.files.attachment(upload.file_id, &owner).await?,
            AttachmentDto::Reference(reference) => reference.into(),
        });
    }
    Ok(attached)
}

/// [`attachments`] for the widget, whose visitors attach their uploads only.
pub(crate) async fn uploads(
    state: &AppState,
    caller: &Caller,
    uploads: Vec<FileRef>,
) -> Result<Vec<Attachment>, Problem> {
    at_most_attachments(uploads.len())?;
    let owner = uploader(caller);
    let mut attached = Vec::with_capacity(uploads.len());
    for upload in uploads {
        attached.push(state.files.attachment(upload.file_id, &owner).await?);
    }
    Ok(attached)
}

/// 422 beyond the attachments a message may carry, before any of them is looked up.
fn at_most_attachments(count: usize) -> Result<(), Problem> {
    if count > MAX_ATTACHMENTS {
        return Err(Problem::invalid(format!(
            "attachments: at most {MAX_ATTACHMENTS} files"
        )));
    }
    Ok(())
}

/// Whether `caller` may fetch `file`: its uploader, or one who may see what it is attached to.
async fn may_fetch(state: &AppState, caller: &Caller, file: &StoredFile) -> Result<bool, Problem> {
    if file.uploaded_by == uploader(caller) {
        return Ok(true);
    }
    let id = file.id;
    let holders = state
        .models
        .query(files::NAME, move |tx, t| {
            files::holders(tx, t, id, MAX_HOLDERS)
        })
        .await?;
    let visitor = match caller.role {
        Role::Visitor { customer } => Some(customer),
        _ => None,
    };
    for holder in holders {
        match holder {
            // Staff see tickets; visitors never do.
            Holder::Ticket { .. } => {
                if visitor.is_none() {
                    return Ok(true);
                }
            }
            Holder::Conversation { id, public } => {
                if visitor.is_some() && !public {
                    continue;
                }
                let stream = CommandService::stream::<Conversation>(id)?;
                let (conversation, _, _) = state.service.load::<Conversation>(&stream).await?;
                let sees = match visitor {
                    Some(customer) => super::widget::is_own(&conversation, customer),
                    None => super::conversations::may_see(caller, &conversation),
                };
                if sees {
                    return Ok(true);
                }
            }
        }
    }
    Ok(false)
}

// ---------------------------------------------------------------------------------------------
// Handlers.

/// Uploads a file to attach to messages and ticket comments (`{"file_id": "<id>"}`). The body
/// is the file's bytes, streamed; its name is `?name=` or the `Content-Disposition` header's
/// `filename`. Its type is sniffed from its bytes. Any staff token.
#[utoipa::path(post, path = "/api/v1/files", tag = "files", operation_id = "upload_file",
    params(UploadParams),
    request_body(content = inline(FileBytes), content_type = "application/octet-stream",
        description = "The file's bytes (at most `--max-file-bytes`, 25 MiB by default). \
                       `Content-Disposition: attachment; filename=...` may name it."),
    responses((status = 201, body = UploadedFile, description = "Stored"),
              (status = 400, body = Problem, description = "The upload broke off"),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 413, body = Problem, description = "Larger than the limit: nothing kept"),
              (status = 422, body = Problem, description = "Empty, or no usable name"),
              (status = 503, body = Problem)))]
async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<UploadParams>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<UploadedFile>), Problem> {
    caller.require_staff()?;
    receive(&state, &caller, params, &headers, body).await
}

/// Uploads a file, as a widget visitor, to attach to its messages (`{"file_id": "<id>"}`); as
/// `POST /api/v1/files`, with the same limits.
#[utoipa::path(post, path = "/widget/v1/files", tag = "widget",
    operation_id = "widget_upload_file",
    params(UploadParams),
    request_body(content = inline(FileBytes), content_type = "application/octet-stream",
        description = "The file's bytes (at most `--max-file-bytes`, 25 MiB by default). \
                       `Content-Disposition: attachment; filename=...` may name it."),
    responses((status = 201, body = UploadedFile, description = "Stored"),
              (status = 400, body = Problem, description = "The upload broke off"),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 413, body = Problem, description = "Larger than the limit: nothing kept"),
              (status = 422, body = Problem, description = "Empty, or no usable name"),
              (status = 503, body = Problem)))]
async fn widget_upload(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<UploadParams>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<UploadedFile>), Problem> {
    caller.require_visitor()?;
    receive(&state, &caller, params, &headers, body).await
}

/// Stores an upload: its name checked, refused at once when it says it is too large, then
/// streamed to the store.
async fn receive(
    state: &AppState,
    caller: &Caller,
    params: UploadParams,
    headers: &HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<UploadedFile>), Problem> {
    let name = match params.name {
        Some(name) => name,
        None => headers
            .get(header::CONTENT_DISPOSITION)
            .and_then(|value| disposition_filename(value.as_bytes()))
            .ok_or_else(|| {
                Problem::invalid(
                    "name: give the file's name as `?name=` or in \
                     `Content-Disposition: attachment; filename=...`",
                )
            })?,
    };
    crate::files::valid_name(&name)?;
    let limit = state.files.max_bytes();
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|length| length > limit) {
        return Err(FileError::TooLarge { limit }.into());
    }
    let stored = state
        .files
        .upload(body.into_data_stream(), &name, None, &uploader(caller))
        .await?;
    Ok((StatusCode::CREATED, Json(stored.into())))
}

/// Downloads a file: its uploader, or staff who may see a conversation message or a ticket it
/// is attached to. Streamed, as an attachment (`Content-Disposition`), with `ETag` (304 for a
/// matching `If-None-Match`).
#[utoipa::path(get, path = "/api/v1/files/{file_id}", tag = "files",
    operation_id = "download_file",
    params(FilePath, AtLeast, Revalidation),
    responses((status = 200, description = "The file's bytes, of the sniffed `Content-Type`",
                content_type = "application/octet-stream", body = inline(FileBytes),
                headers(("ETag" = String, description = "The SHA-256 of the content, quoted"),
                        ("Content-Disposition" = String,
                         description = "`attachment; filename*=UTF-8''<name, percent-encoded>`"))),
              (status = 304, description = "The copy the client holds (`If-None-Match`) is the file"),
              (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem),
              (status = 404, body = Problem, description = "No such file, or not one the caller may see"),
              (status = 503, body = Problem)))]
async fn download(
    State(state): State<AppState>,
    caller: Caller,
    Path(FilePath { file_id }): Path<FilePath>,
    Query(params): Query<AtLeast>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    caller.require_staff()?;
    send(&state, &caller, file_id, params, &headers).await
}

/// Downloads a file as a widget visitor: its own upload, or one attached to a public message of
/// one of its conversations; as `GET /api/v1/files/{file_id}`.
#[utoipa::path(get, path = "/widget/v1/files/{file_id}", tag = "widget",
    operation_id = "widget_download_file",
    params(FilePath, AtLeast, Revalidation),
    responses((status = 200, description = "The file's bytes, of the sniffed `Content-Type`",
                content_type = "application/octet-stream", body = inline(FileBytes),
                headers(("ETag" = String, description = "The SHA-256 of the content, quoted"),
                        ("Content-Disposition" = String,
                         description = "`attachment; filename*=UTF-8''<name, percent-encoded>`"))),
              (status = 304, description = "The copy the client holds (`If-None-Match`) is the file"),
              (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem),
              (status = 404, body = Problem, description = "No such file, or not one the visitor may see"),
              (status = 503, body = Problem)))]
async fn widget_download(
    State(state): State<AppState>,
    caller: Caller,
    Path(FilePath { file_id }): Path<FilePath>,
    Query(params): Query<AtLeast>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    caller.require_visitor()?;
    send(&state, &caller, file_id, params, &headers).await
}

/// A signed link to a file, as the dispatcher gives a platform for a reply's file.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FileLink {
    /// When the link stops working, in seconds since the Unix epoch.
    pub expires: i64,
    /// HMAC-SHA256 of the file's id and `expires`, hex, under the server's key.
    pub signature: String,
}

/// Downloads a file through a signed link (no token): how a platform fetches the files of a
/// reply Parley sends (WhatsApp, Messenger and LINE take a URL). 404 for a link this server did
/// not sign, or that expired.
#[utoipa::path(get, path = "/public/files/{file_id}", tag = "files", security(()),
    params(FilePath, FileLink, Revalidation),
    responses((status = 200, description = "The file's bytes, of the sniffed `Content-Type`",
                content_type = "application/octet-stream", body = inline(FileBytes)),
              (status = 304, description = "The copy the client holds (`If-None-Match`) is the file"),
              (status = 400, body = Problem),
              (status = 404, body = Problem, description = "No such file, or a link that is wrong or expired"),
              (status = 503, body = Problem)))]
async fn linked_download(
    State(state): State<AppState>,
    Path(FilePath { file_id }): Path<FilePath>,
    Query(link): Query<FileLink>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let not_found = || Problem::not_found("no such file, or the link is wrong or expired");
    let links = state.channels.file_links().await?;
    let now = parley_eventlog::Timestamp::now().as_micros() / 1_000_000;
    if !links.verify(file_id, link.expires, &link.signature, now) {
        return Err(not_found());
    }
    let file = state.files.find(file_id).await?.ok_or_else(not_found)?;
    stream_file(&state, file, &headers).await
}

/// Answers file `id` if `caller` may fetch it (404 otherwise), streamed or as 304.
async fn send(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    params: AtLeast,
    headers: &HeaderMap,
) -> Result<Response, Problem> {
    state.caught_up(files::NAME, params.position).await?;
    let not_found = || Problem::not_found("no such file");
    let file = state.files.find(id).await?.ok_or_else(not_found)?;
    if !may_fetch(state, caller, &file).await? {
        return Err(not_found());
    }
    stream_file(state, file, headers).await
}

/// A file's bytes, streamed in chunks, or 304 when the client holds it.
async fn stream_file(
    state: &AppState,
    file: StoredFile,
    headers: &HeaderMap,
) -> Result<Response, Problem> {
    let etag = format!("\"{}\"", file.sha256);
    let cached = [
        (header::ETAG, header_value(&etag)),
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static(CACHE_CONTROL),
        ),
    ];
    if holds_current(headers, &etag) {
        return Ok((StatusCode::NOT_MODIFIED, cached).into_response());
    }
    let chunks = state.files.read(&file).await?;
    let file_id = file.id;
    let body = Body::from_stream(chunks.inspect_err(move |error| {
        // The status and length are sent already: the connection is cut short.
        tracing::error!(%error, %file_id, "a file's content failed while it was sent");
    }));
    let content_type = HeaderValue::from_str(&file.content_type)
        .unwrap_or(HeaderValue::from_static(crate::files::BINARY));
    let disposition = format!(
        "attachment; filename*=UTF-8''{}",
        percent_encode(&file.name)
    );
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_LENGTH, HeaderValue::from(file.size)),
            (header::CONTENT_DISPOSITION, header_value(&disposition)),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            // Even a page (HTML is sniffed as such) opened from here runs nothing.
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'none'; sandbox"),
            ),
        ],
        cached,
        body,
    )
        .into_response())
}

/// A header value of text known to be visible ASCII.
fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or(HeaderValue::from_static(""))
}

/// Whether `If-None-Match` names `etag` (weakly compared, as RFC 9110 says for it) or is `*`.
fn holds_current(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.trim_start_matches("W/") == etag)
}

/// `name` as RFC 8187's `value-chars`: UTF-8, every byte but `attr-char`s percent-encoded.
fn percent_encode(name: &str) -> String {
    let mut encoded = String::with_capacity(name.len());
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// The file name a `Content-Disposition` header gives: its `filename*` (RFC 8187: UTF-8 or
/// ISO-8859-1, percent-encoded), which RFC 6266 prefers, else its `filename` (a token or a
/// quoted string).
fn disposition_filename(header: &[u8]) -> Option<String> {
    let header = std::str::from_utf8(header).ok()?;
    let (_disposition, mut rest) = header.split_once(';')?;
    let (mut extended, mut plain) = (None, None);
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            break;
        }
        let (key, after) = rest.split_once('=')?;
        let after = after.trim_start();
        let (value, next) = match after.strip_prefix('"') {
            Some(quoted) => {
                let mut value = String::new();
                let mut chars = quoted.char_indices();
                let mut end = None;
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => value.extend(chars.next().map(|(_, escaped)| escaped)),
                        '"' => {
                            end = Some(i + 1);
                            break;
                        }
                        c => value.push(c),
                    }
                }
                let after_quote = quoted.get(end?..)?.trim_start();
                (value, after_quote.strip_prefix(';').unwrap_or(""))
            }
            None => {
                let (value, next) = after.split_once(';').unwrap_or((after, ""));
                (value.trim().to_owned(), next)
            }
        };
        match key.trim().to_ascii_lowercase().as_str() {
            "filename*" => extended = extended_value(&value),
            "filename" => plain = Some(value),
            _ => {}
        }
        rest = next;
    }
    extended.or(plain)
}

/// An RFC 8187 extended value (`UTF-8''%e2%82%ac%20rates.pdf`), decoded.
fn extended_value(value: &str) -> Option<String> {
    let mut parts = value.splitn(3, '\'');
    let (charset, _language, encoded) = (parts.next()?, parts.next()?, parts.next()?);
    let mut bytes = Vec::with_capacity(encoded.len());
    let mut input = encoded.bytes();
    while let Some(byte) = input.next() {
        if byte == b'%' {
            let high = char::from(input.next()?).to_digit(16)?;
            let low = char::from(input.next()?).to_digit(16)?;
            bytes.push(u8::try_from(high * 16 + low).ok()?);
        } else {
            bytes.push(byte);
        }
    }
    if charset.eq_ignore_ascii_case("utf-8") {
        String::from_utf8(bytes).ok()
    } else if charset.eq_ignore_ascii_case("iso-8859-1") {
        Some(bytes.into_iter().map(char::from).collect())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_content_disposition_preferring_the_extended_one() {
        let name = |header: &str| disposition_filename(header.as_bytes());
        assert_eq!(
            name("attachment; filename=report.pdf").as_deref(),
            Some("report.pdf")
        );
        assert_eq!(
            name(r#"attachment; filename="q3 \"final\"; v2.pdf"; size=10"#).as_deref(),
            Some(r#"q3 "final"; v2.pdf"#)
        );
        assert_eq!(
            name("attachment; filename=\"rates.pdf\"; filename*=UTF-8''%e2%82%ac%20rates.pdf")
                .as_deref(),
            Some("€ rates.pdf")
        );
        assert_eq!(
            name("attachment; filename*=iso-8859-1'fr'caf%E9.txt").as_deref(),
            Some("café.txt")
        );
        assert_eq!(name("attachment"), None);
        assert_eq!(name("attachment; size=10"), None);
        assert_eq!(name("attachment; filename=\"unterminated"), None);
    }

    #[test]
    fn names_are_sent_back_percent_encoded() {
        assert_eq!(percent_encode("a b€.pdf"), "a%20b%E2%82%AC.pdf");
        assert_eq!(percent_encode("x\"y;z"), "x%22y%3Bz");
        let encoded = percent_encode("été 2026 (copie).png");
        assert_eq!(
            extended_value(&format!("UTF-8''{encoded}")).as_deref(),
            Some("été 2026 (copie).png")
        );
    }

    #[test]
    fn if_none_match_names_the_current_copy() {
        let etag = "\"abc\"";
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static(value));
            holds_current(&headers, etag)
        };
        assert!(with("\"abc\""));
        assert!(with("W/\"abc\""));
        assert!(with("\"old\", \"abc\""));
        assert!(with("*"));
        assert!(!with("\"old\""));
        assert!(!holds_current(&HeaderMap::new(), etag));
    }
}
