use super::*;
use parley_eventlog::LogOptions;
use parley_eventlog::scratch::ScratchDatabase;
use std::convert::Infallible;

const PNG: &[u8] = &[
    0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d, b'I', b'H', b'D', b'R',
];

#[test]
fn the_type_comes_from_the_bytes_not_from_the_claim() {
    assert_eq!(content_type(PNG, false, Some("text/plain")), "image/png");
    assert_eq!(content_type(b"hello, world\n", true, None), TEXT);
    let unknown = [0xff, 0xfe, 0x00, 0x01, 0x02];
    assert_eq!(content_type(&unknown, false, None), BINARY);
    // A claim is taken only for binary content infer does not know, and never for what a
    // browser would run.
    assert_eq!(
        content_type(&unknown, false, Some("Audio/AMR; rate=8000")),
        "audio/amr"
    );
    for runnable in [
        "text/html",
        "image/svg+xml",
        "application/xhtml+xml",
        "application/javascript",
        "nonsense",
        "audio/",
    ] {
        assert_eq!(content_type(&unknown, false, Some(runnable)), BINARY);
    }
    assert_eq!(content_type(b"plain", true, Some("audio/ogg")), TEXT);
}

#[test]
fn text_split_between_pieces_is_still_text() {
    let feed = |pieces: &[&[u8]]| {
        let mut text = Utf8Text::default();
        for piece in pieces {
            text.feed(piece);
        }
        text.is_text()
    };
    let words = "é€😀 fin".as_bytes();
    let one_by_one: Vec<&[u8]> = words.chunks(1).collect();
    assert!(feed(&one_by_one));
    assert!(feed(&[&words[..2], &words[2..]]));
    assert!(!feed(&[&[0xc3, 0x28]]), "an invalid sequence");
    assert!(!feed(&[b"ab", &[0xe2, 0x82]]), "ends inside a character");
    assert!(!feed(&[b"a\0b"]), "a NUL is not text");
}

#[test]
fn names_are_one_to_255_characters_without_separators_or_controls() {
    assert!(valid_name("rapport été.pdf").is_ok());
    assert!(valid_name(&"é".repeat(255)).is_ok());
    for bad in [
        String::new(),
        "é".repeat(256),
        "../etc/passwd".into(),
        "a\\b".into(),
        "line\nbreak".into(),
        "   ".into(),
        "..".into(),
    ] {
        assert!(
            matches!(valid_name(&bad), Err(FileError::InvalidName(_))),
            "{bad:?}"
        );
    }
}

/// A file store on a fresh log, and what tells where its content is.
struct Opened {
    files: FileStore,
    folder: Option<PathBuf>,
    _dir: Option<tempfile::TempDir>,
    _db: Option<ScratchDatabase>,
}

impl Opened {
    async fn sqlite(max_bytes: u64) -> Opened {
        let dir = tempfile::tempdir().unwrap();
        let log_path = dir.path().join("parley.db");
        let url = format!("sqlite:{}", log_path.display());
        let files = open(&url, max_bytes).await;
        Opened {
            files,
            folder: Some(files_dir(&log_path)),
            _dir: Some(dir),
            _db: None,
        }
    }

    async fn postgres(max_bytes: u64) -> Option<Opened> {
        let db = parley_eventlog::testing::postgres_database().await?;
        let files = open(&db.url, max_bytes).await;
        Some(Opened {
            files,
            folder: None,
            _dir: None,
            _db: Some(db),
        })
    }

    /// How many contents are stored, and how many unfinished uploads' leftovers are there.
    async fn stored(&self) -> (usize, usize) {
        match (&self.folder, &self.files.content) {
            (Some(folder), _) => {
                let mut contents = 0;
                let mut temporary = 0;
                for entry in std::fs::read_dir(folder).unwrap() {
                    let entry = entry.unwrap();
                    if entry.file_type().unwrap().is_dir() {
                        contents += std::fs::read_dir(entry.path()).unwrap().count();
                    } else {
                        temporary += 1;
                    }
                }
                (contents, temporary)
            }
            (None, Content::Chunks(pool)) => {
                let count = |sql: &'static str| async move {
                    sqlx::query_scalar::<_, i64>(sql)
                        .fetch_one(pool)
                        .await
                        .unwrap() as usize
                };
                (
                    count(
                        "SELECT count(DISTINCT sha256) FROM parley_file_chunks
                         WHERE sha256 NOT LIKE 'upload:%'",
                    )
                    .await,
                    count("SELECT count(*) FROM parley_file_chunks WHERE sha256 LIKE 'upload:%'")
                        .await,
                )
            }
            (None, Content::Folder(_)) => unreachable!("a folder store knows its folder"),
        }
    }
}

async fn open(url: &str, max_bytes: u64) -> FileStore {
    let log = parley_eventlog::open(url, LogOptions::default())
        .await
        .unwrap();
    let models = ReadModels::open(log, url, Vec::new()).await.unwrap();
    FileStore::new(&models, url, max_bytes).await.unwrap()
}

/// `size` bytes that are not text and that infer does not recognise.
fn content(size: usize) -> Vec<u8> {
    (0..size)
        .map(|i| (i.wrapping_mul(31) ^ (i >> 7)) as u8)
        .collect()
}

/// `bytes` arriving in pieces of `piece` bytes, as a request body does.
fn body(
    bytes: &[u8],
    piece: usize,
) -> impl Stream<Item = Result<Vec<u8>, Infallible>> + Send + use<> {
    let pieces: Vec<_> = bytes.chunks(piece).map(|c| Ok(c.to_vec())).collect();
    futures::stream::iter(pieces)
}

async fn read_all(files: &FileStore, id: Uuid) -> Vec<u8> {
    let (_, mut chunks) = files.open(id).await.unwrap().expect("the file exists");
    let mut read = Vec::new();
    while let Some(piece) = chunks.next().await {
        let piece = piece.unwrap();
        assert!(!piece.is_empty() && piece.len() <= CHUNK_BYTES);
        read.extend_from_slice(&piece);
    }
    read
}

async fn uploads_stream_in_and_out_and_identical_content_is_stored_once(opened: Opened) {
    let files = &opened.files;
    // Three chunks' worth on PostgreSQL, arriving in small pieces.
    let bytes = content(2 * CHUNK_BYTES + 70_001);
    let first = files
        .upload(body(&bytes, 7_000), "trace.bin", None, "token:1")
        .await
        .unwrap();
    assert_eq!(first.size, bytes.len() as u64);
    assert_eq!(first.sha256, format!("{:x}", Sha256::digest(&bytes)));
    assert_eq!(first.content_type, BINARY);
    assert_eq!(first.name, "trace.bin");
    assert_eq!(files.find(first.id).await.unwrap(), Some(first.clone()));
    assert_eq!(read_all(files, first.id).await, bytes);
    assert_eq!(opened.stored().await, (1, 0));
    if let Content::Chunks(pool) = &files.content {
        let chunks: i64 =
            sqlx::query_scalar("SELECT count(*) FROM parley_file_chunks WHERE sha256 = $1")
                .bind(&first.sha256)
                .fetch_one(pool)
                .await
                .unwrap();
        assert_eq!(chunks, 3);
    }

    // The same bytes again, another way: a second record, one content.
    let again = files
        .store_bytes(&bytes, "copy.bin", Some("text/html"), "customer:2")
        .await
        .unwrap();
    assert_ne!(again.id, first.id);
    assert_eq!(again.sha256, first.sha256);
    assert_eq!(again.content_type, BINARY);
    assert_eq!(read_all(files, again.id).await, bytes);
    assert_eq!(opened.stored().await, (1, 0));

    // Sniffed, whatever it is called.
    let png = files
        .store_bytes(PNG, "notes.txt", Some("text/plain"), "token:1")
        .await
        .unwrap();
    assert_eq!(png.content_type, "image/png");
    assert_eq!(opened.stored().await, (2, 0));

    // Attached only by whoever uploaded it.
    let attachment = files.attachment(first.id, "token:1").await.unwrap();
    assert_eq!(attachment.file_id, Some(first.id));
    assert_eq!(attachment.sha256.as_deref(), Some(first.sha256.as_str()));
    assert_eq!(attachment.storage_ref, format!("file:{}", first.id));
    assert!(matches!(
        files.attachment(first.id, "token:2").await,
        Err(FileError::NotYours(_))
    ));
    assert!(matches!(
        files.attachment(Uuid::now_v7(), "token:1").await,
        Err(FileError::NotYours(_))
    ));
    assert!(files.open(Uuid::now_v7()).await.unwrap().is_none());
}

async fn refused_and_broken_uploads_leave_nothing(opened: Opened) {
    let files = &opened.files;
    let limit = files.max_bytes() as usize;
    let exactly = files
        .upload(body(&content(limit), 4_096), "full.bin", None, "token:1")
        .await
        .unwrap();
    assert_eq!(exactly.size, limit as u64);
    assert_eq!(opened.stored().await, (1, 0));

    let over = files
        .upload(
            body(&content(limit + 1), 4_096),
            "over.bin",
            None,
            "token:1",
        )
        .await;
    assert!(matches!(over, Err(FileError::TooLarge { limit: l }) if l == limit as u64));
    let empty = files
        .upload(body(&[], 1), "empty.bin", None, "token:1")
        .await;
    assert!(matches!(empty, Err(FileError::Empty)));
    let broken = futures::stream::iter([
        Ok(content(CHUNK_BYTES + 10)),
        Err(std::io::Error::other("connection reset")),
    ]);
    let broken = files.upload(broken, "broken.bin", None, "token:1").await;
    assert!(matches!(broken, Err(FileError::Read(_))));
    let named = files.upload(body(b"x", 1), "a/b", None, "token:1").await;
    assert!(matches!(named, Err(FileError::InvalidName(_))));
    assert_eq!(
        opened.stored().await,
        (1, 0),
        "nothing new, nothing left over"
    );
}

async fn a_retried_keyed_upload_finds_its_first_record(opened: Opened) {
    let files = &opened.files;
    let keyed = || crate::ids::IdSource::new("scope", "key-1", 1_780_000_000_000_000);
    let bytes = content(1_000);
    let first = keyed()
        .scope(files.store_bytes(&bytes, "a.bin", None, "token:1"))
        .await
        .unwrap();
    let retry = keyed()
        .scope(files.store_bytes(&bytes, "a.bin", None, "token:1"))
        .await
        .unwrap();
    assert_eq!(retry, first);
    let other = keyed()
        .scope(files.store_bytes(&content(999), "a.bin", None, "token:1"))
        .await;
    assert!(matches!(other, Err(FileError::IdTaken(id)) if id == first.id));
}

#[tokio::test]
async fn sqlite_streams_and_stores_content_once() {
    uploads_stream_in_and_out_and_identical_content_is_stored_once(
        Opened::sqlite(DEFAULT_MAX_BYTES).await,
    )
    .await;
}

#[tokio::test]
async fn postgres_streams_chunks_and_stores_content_once() {
    if let Some(opened) = Opened::postgres(DEFAULT_MAX_BYTES).await {
        uploads_stream_in_and_out_and_identical_content_is_stored_once(opened).await;
    }
}

#[tokio::test]
async fn sqlite_refused_uploads_leave_nothing() {
    refused_and_broken_uploads_leave_nothing(Opened::sqlite(CHUNK_BYTES as u64 * 2 + 5).await)
        .await;
}

#[tokio::test]
async fn postgres_refused_uploads_leave_nothing() {
    if let Some(opened) = Opened::postgres(CHUNK_BYTES as u64 * 2 + 5).await {
        refused_and_broken_uploads_leave_nothing(opened).await;
    }
}

#[tokio::test]
async fn sqlite_keyed_retries() {
    a_retried_keyed_upload_finds_its_first_record(Opened::sqlite(DEFAULT_MAX_BYTES).await).await;
}

#[tokio::test]
async fn postgres_keyed_retries() {
    if let Some(opened) = Opened::postgres(DEFAULT_MAX_BYTES).await {
        a_retried_keyed_upload_finds_its_first_record(opened).await;
    }
}
