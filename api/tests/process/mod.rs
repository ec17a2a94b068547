//! A real `parley serve` process for the tests that run the binary as an operator does, or
//! kill it: started on port 0, with the address it logs.

use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

/// A `parley serve` child, killed when dropped.
pub struct ServerProcess {
    pub child: Child,
    /// `http://<address>` it serves on.
    pub base: String,
}

impl ServerProcess {
    /// Starts `parley serve` on `url` with `extra` arguments; with `admin`, that secret as its
    /// admin token (without, none configured), and reads its log until it serves.
    pub async fn start(url: &str, admin: Option<&str>, extra: &[&str]) -> ServerProcess {
        let mut command = Command::new(env!("CARGO_BIN_EXE_parley"));
        command
            .args(["serve", "--bind", "127.0.0.1:0", "--database-url", url])
            .args(extra)
            .env("PARLEY_LOG", "warn,parley_api::cli=info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        match admin {
            Some(admin) => command.env("PARLEY_ADMIN_TOKEN", admin),
            None => command.env_remove("PARLEY_ADMIN_TOKEN"),
        };
        let mut child = command.spawn().expect("parley serve starts");
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
        let base = tokio::time::timeout(Duration::from_secs(60), serving)
            .await
            .expect("serving within a minute");
        // Keep reading its log, so that the server never writes into a closed pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = log.next_line().await {} });
        ServerProcess { child, base }
    }

    /// SIGKILLs the server and answers what it printed on standard output.
    pub async fn kill(mut self) -> String {
        self.child.start_kill().unwrap();
        let mut out = String::new();
        if let Some(mut stdout) = self.child.stdout.take() {
            stdout.read_to_string(&mut out).await.unwrap();
        }
        self.child.wait().await.unwrap();
        out
    }
}
