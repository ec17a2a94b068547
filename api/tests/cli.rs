//! The `parley` binary as an operator runs it: the first start on a new log prints an admin token
//! once, `parley token create` mints more while the server is stopped, and `parley rebuild
//! --verify` rebuilds every read model into rows equal to the ones it replaces.

use std::process::Output;

/// Runs `parley args…` to its end.
fn parley(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_parley"))
        .args(args)
        .env("PARLEY_LOG", "warn")
        .output()
        .expect("parley runs")
}

mod process;
use process::ServerProcess;

/// The role `token` has on `server`, as `GET /api/v1/tokens/me` answers.
async fn role_of(server: &ServerProcess, token: &str) -> String {
    let me: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/api/v1/tokens/me", server.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    me["role"].as_str().unwrap_or_default().to_owned()
}

/// The secret on the line after the announcement of a new admin token.
fn announced_admin(stdout: &str) -> Option<String> {
    let mut lines = stdout.lines();
    lines.find(|line| line.contains("no admin token existed"))?;
    lines
        .map(str::trim)
        .find(|line| !line.is_empty())
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_starts_parley_mints_tokens_and_rebuilds_the_read_models() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("parley.db").display());

    // Before the first start: an agent token from the command line (the server is stopped).
    let agent = uuid::Uuid::now_v7().to_string();
    let minted = parley(&[
        "token",
        "create",
        "--role",
        "agent",
        "--agent",
        &agent,
        "--support",
        "--database-url",
        &url,
    ]);
    assert!(minted.status.success(), "{minted:?}");
    let agent_token = String::from_utf8(minted.stdout).unwrap().trim().to_owned();
    assert!(!agent_token.is_empty());
    let refused = parley(&["token", "create", "--role", "agent", "--database-url", &url]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--agent"));

    // The first start finds no admin and prints one, once.
    let server = ServerProcess::start(&url, None, &[]).await;
    assert_eq!(role_of(&server, &agent_token).await, "agent");
    let stdout = server.kill().await;
    let admin = announced_admin(&stdout).expect("an admin token printed on the first start");
    let server = ServerProcess::start(&url, None, &[]).await;
    assert_eq!(role_of(&server, &admin).await, "admin");
    // Answered, so the start-up check for an admin is over: nothing new was printed.
    let stdout = server.kill().await;
    assert_eq!(announced_admin(&stdout), None, "{stdout}");

    // With the server stopped, every read model rebuilt equals what it replaces.
    let rebuilt = parley(&["rebuild", "all", "--verify", "--database-url", &url]);
    let report = String::from_utf8_lossy(&rebuilt.stderr);
    assert!(rebuilt.status.success(), "{report}");
    for name in ["inbox", "access", "detail"] {
        assert!(
            report.contains(&format!(
                "{name}: the rebuilt rows equal the rows they replace"
            )),
            "{report}"
        );
    }
    let unknown = parley(&["rebuild", "inboxes", "--database-url", &url]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no projection is called"));
}
