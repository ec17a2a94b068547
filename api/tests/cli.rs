//! The `parley` binary as an operator runs it: the first start on a new log prints an admin token
//! once, `parley token create` mints more while the server is stopped, and `parley rebuild
//! --verify` rebuilds every read model into rows equal to the ones it replaces.

use std::process::{Output, Stdio};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

/// Runs `parley args…` to its end.
fn parley(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_parley"))
        .args(args)
        .env("PARLEY_LOG", "warn")
        .output()
        .expect("parley runs")
}

/// A `parley serve` child on `url`, with the address it serves on.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    /// Starts the server and reads its log until it says where it serves.
    async fn start(url: &str) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_parley"))
            .args(["serve", "--bind", "127.0.0.1:0", "--database-url", url])
            .env("PARLEY_LOG", "info")
            .env_remove("PARLEY_ADMIN_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("parley serve starts");
        let mut log = BufReader::new(child.stderr.take().unwrap()).lines();
        let serving = async {
            while let Some(line) = log.next_line().await.unwrap() {
                if line.contains("parley is serving")
                    && let Some(addr) = line.split("addr=").nth(1)
                {
                    let addr = addr.split_whitespace().next().unwrap();
                    return format!("http://{addr}");
                }
            }
            panic!("the server exited before serving");
        };
        let base = tokio::time::timeout(Duration::from_secs(30), serving)
            .await
            .expect("serving within 30 s");
        // Keep reading its log, so that the server never writes into a closed pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = log.next_line().await {} });
        Server { child, base }
    }

    /// The role `token` has, as `GET /api/v1/tokens/me` answers.
    async fn role_of(&self, token: &str) -> String {
        let me: serde_json::Value = reqwest::Client::new()
            .get(format!("{}/api/v1/tokens/me", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        me["role"].as_str().unwrap_or_default().to_owned()
    }

    /// Stops the server and answers what it printed on standard output.
    async fn stop(mut self) -> String {
        self.child.start_kill().unwrap();
        let mut out = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .await
            .unwrap();
        self.child.wait().await.unwrap();
        out
    }
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
    let server = Server::start(&url).await;
    assert_eq!(server.role_of(&agent_token).await, "agent");
    let stdout = server.stop().await;
    let admin = announced_admin(&stdout).expect("an admin token printed on the first start");
    let server = Server::start(&url).await;
    assert_eq!(server.role_of(&admin).await, "admin");
    // Answered, so the start-up check for an admin is over: nothing new was printed.
    let stdout = server.stop().await;
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
