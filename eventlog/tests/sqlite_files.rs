//! Where an SQLite log lives: a first run creates the file and the directories it is to live in.

use parley_eventlog::{LogOptions, Position};

#[tokio::test]
async fn a_first_run_creates_the_missing_directories() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("support").join("desk").join("parley.db");
    let url = format!("sqlite://{}", path.display());
    let log = parley_eventlog::open(&url, LogOptions::default())
        .await
        .expect("the log opens");
    assert_eq!(log.head().await.expect("its head"), Position::START);
    log.close().await;
    assert!(path.exists());
}
