//! `parley bench http`: the real server, in a process of its own, driven over HTTP/1.1 by
//! `--connections` keep-alive connections (one client task each, one request at a time):
//! first "post a message" (`POST /api/v1/conversations/{id}/messages`), then "read an inbox
//! page" (`GET /api/v1/inbox/from-customers`). Each connection is a support agent with a token
//! of its own, working through conversations of its own, so the figures are those of many
//! agents at once, not of one hot stream. Rate limiting is off in the measured server.

use crate::bench::{
    BenchArgs, BenchError, Store, backend_name, cpu_secs_of, peak_rss_mb, peak_rss_mb_of,
    percentile_ms, round2,
};
use axum::http::{HeaderValue, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Conversations each connection posts into, in turn.
const CONVERSATIONS_PER_CONNECTION: usize = 8;

/// A running `parley serve` child, killed when dropped.
pub(crate) struct Server {
    pub(crate) child: tokio::process::Child,
    pub(crate) base: String,
    pub(crate) addr: std::net::SocketAddr,
    pub(crate) admin: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// What `parley serve` logs once its listener is bound; requests sent from then on wait in the
/// listener's backlog until it serves (after its admin token is loaded).
const SERVING: &str = "parley is serving";

/// Starts `parley serve` on `url`, with `extra` arguments.
pub(crate) async fn start_server(url: &str, extra: &[&str]) -> Result<Server, BenchError> {
    use tokio::io::AsyncBufReadExt;

    // A free port: bind, read it, release it for the child.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let admin = crate::http::auth::new_secret()
        .map_err(|e| BenchError::Invalid(format!("no random numbers: {e}")))?;
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .args(["--database-url", url, "--rate-limit", "0"])
        .args(extra)
        .env("PARLEY_ADMIN_TOKEN", &admin)
        // Warnings, and the command line's own lines ("parley is serving").
        .env("PARLEY_LOG", "warn,parley_api::cli=info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stderr = child
        .stderr
        .take()
        .ok_or_else(|| BenchError::Invalid("the server's standard error is not piped".into()))?;
    // Passes the server's log lines on, and tells when it is serving.
    let (serving, started) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut serving = Some(serving);
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            eprintln!("{line}");
            if line.contains(SERVING)
                && let Some(serving) = serving.take()
            {
                let _ = serving.send(());
            }
        }
    });
    if started.await.is_err() {
        return Err(BenchError::Invalid(
            "the server stopped before serving".into(),
        ));
    }
    Ok(Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
        addr: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        admin,
    })
}

/// Waits until the inbox read model has applied the whole log: a read with `?position=` at
/// the log's head, which the server answers once it has (or with 503 `lagging` after waiting
/// a few seconds, and then it is asked again).
async fn wait_until_caught_up(server: &Server, agent: &Agent) -> Result<(), BenchError> {
    let client = reqwest::Client::new();
    let head = health(server, &client).await?["log_head"]
        .as_u64()
        .unwrap_or_default();
    let url = format!(
        "{}/api/v1/inbox/from-customers?limit=1&position={head}",
        server.base
    );
    for _ in 0..120 {
        let response = client
            .get(&url)
            .bearer_auth(&agent.token)
            .send()
            .await
            .map_err(http_error)?;
        if response.status() != reqwest::StatusCode::SERVICE_UNAVAILABLE {
            return expect(response, "waiting for the inbox").await.map(drop);
        }
    }
    Err(BenchError::Invalid(
        "the inbox did not catch up with the log".into(),
    ))
}

/// Waits until every read model has applied the whole log, as `/health` tells, and answers how
/// long that took. No read asks for the head here, so lingering read models are not hurried: this
/// is when the work the messages left behind is done. `/health` has no way to wait on, so it is
/// asked every few milliseconds (for at most a minute).
async fn wait_until_all_applied(server: &Server) -> Result<Duration, BenchError> {
    let client = reqwest::Client::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        let health = health(server, &client).await?;
        let head = health["log_head"].as_u64().unwrap_or(u64::MAX);
        let behind = health["read_models"]
            .as_object()
            .is_none_or(|models| models.values().any(|p| p.as_u64().unwrap_or(0) < head));
        if !behind {
            return Ok(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Err(BenchError::Invalid(
        "the read models did not apply the log within a minute".into(),
    ))
}

/// What `/health` answers now.
async fn health(server: &Server, client: &reqwest::Client) -> Result<Value, BenchError> {
    let response = client
        .get(format!("{}/health", server.base))
        .send()
        .await
        .map_err(http_error)?;
    expect(response, "reading /health").await
}

/// One connection's identity and conversations.
pub(crate) struct Agent {
    pub(crate) token: String,
    pub(crate) conversations: Vec<String>,
}

pub(crate) async fn expect(response: reqwest::Response, what: &str) -> Result<Value, BenchError> {
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if !status.is_success() {
        return Err(BenchError::Invalid(format!("{what}: {status} {body}")));
    }
    serde_json::from_str(&body).map_err(|e| BenchError::Invalid(format!("{what}: {e}")))
}

/// Mints a support agent's token as the admin; its secret.
pub(crate) async fn support_agent(
    server: &Server,
    client: &reqwest::Client,
    label: &str,
) -> Result<String, BenchError> {
    let minted = expect(
        client
            .post(format!("{}/api/v1/tokens", server.base))
            .bearer_auth(&server.admin)
            .json(&json!({"role": "agent", "agent": uuid::Uuid::now_v7(), "support": true, "label": label}))
            .send()
            .await
            .map_err(http_error)?,
        "minting a token",
    )
    .await?;
    Ok(minted["secret"].as_str().unwrap_or_default().to_owned())
}

/// A customer arrives through the widget as `name` and starts a chat with `body`: the
/// visitor's token and the conversation's id.
pub(crate) async fn visitor_chat(
    server: &Server,
    client: &reqwest::Client,
    name: &str,
    body: &str,
) -> Result<(String, String), BenchError> {
    let visitor = expect(
        client
            .post(format!("{}/widget/v1/visitors", server.base))
            .json(&json!({"name": name}))
            .send()
            .await
            .map_err(http_error)?,
        "creating a widget visitor",
    )
    .await?;
    let token = visitor["token"].as_str().unwrap_or_default().to_owned();
    let started = expect(
        client
            .post(format!("{}/widget/v1/conversations", server.base))
            .bearer_auth(&token)
            .json(&json!({"body": body}))
            .send()
            .await
            .map_err(http_error)?,
        "starting a conversation",
    )
    .await?;
    Ok((token, started["id"].as_str().unwrap_or_default().to_owned()))
}

pub(crate) async fn set_up(server: &Server, connections: usize) -> Result<Vec<Agent>, BenchError> {
    let client = reqwest::Client::new();
    let mut agents = Vec::with_capacity(connections);
    for n in 0..connections {
        let token = support_agent(server, &client, &format!("bench {n}")).await?;
        let mut conversations = Vec::new();
        for c in 0..CONVERSATIONS_PER_CONNECTION {
            let (_, chat) = visitor_chat(
                server,
                &client,
                &format!("Customer {n}-{c}"),
                &format!("Order {n}-{c} has not arrived"),
            )
            .await?;
            conversations.push(chat);
        }
        agents.push(Agent {
            token,
            conversations,
        });
    }
    Ok(agents)
}

pub(crate) fn http_error(error: reqwest::Error) -> BenchError {
    BenchError::Invalid(format!("HTTP: {error}"))
}

/// What one phase measured.
pub(crate) struct Phase {
    pub(crate) latencies_us: Vec<u64>,
    pub(crate) failures: u64,
    pub(crate) elapsed: Duration,
}

impl Phase {
    /// The phase's figures; `server_cpu_secs` and `client_cpu_secs` are the CPU time the
    /// server and this process (the load generator) used for it.
    pub(crate) fn report(
        mut self,
        name: &str,
        server_cpu_secs: f64,
        client_cpu_secs: f64,
    ) -> Value {
        let ok = self.latencies_us.len() as f64;
        json!({
            format!("{name}_requests"): self.latencies_us.len() as u64 + self.failures,
            format!("{name}_failures"): self.failures,
            format!("{name}_per_sec"): (ok / self.elapsed.as_secs_f64()).round(),
            format!("{name}_p50_ms"): percentile_ms(&mut self.latencies_us, 50.0),
            format!("{name}_p99_ms"): percentile_ms(&mut self.latencies_us, 99.0),
            format!("{name}_server_cpu_us"): (server_cpu_secs * 1e6 / ok.max(1.0)).round(),
            format!("{name}_client_cpu_us"): (client_cpu_secs * 1e6 / ok.max(1.0)).round(),
        })
    }
}

/// A request of a measured phase: its method, path and JSON body (empty for a GET), and
/// headers of its own (a webhook's signature).
pub(crate) struct Call {
    pub(crate) method: hyper::Method,
    pub(crate) path: String,
    pub(crate) body: Bytes,
    pub(crate) headers: Vec<(header::HeaderName, HeaderValue)>,
}

/// Runs `requests` requests spread over one task per agent; `call(agent, n)` gives the n-th
/// request of an agent. Each task drives one keep-alive HTTP/1.1 connection through hyper's
/// connection API, with the agent's headers built once: the load generator shares the two
/// cores with the server, so it should cost as little as a dedicated tool (wrk, oha) would.
pub(crate) async fn phase<F>(
    server: &Server,
    agents: &[Agent],
    requests: u64,
    call: F,
) -> Result<Phase, BenchError>
where
    F: Fn(&Agent, u64) -> Call + Send + Sync + Clone + 'static,
{
    let per_agent = requests.div_ceil(agents.len() as u64);
    let addr = server.addr;
    let host = HeaderValue::from_str(&addr.to_string()).map_err(header_error)?;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for agent in agents {
        let agent = Agent {
            token: agent.token.clone(),
            conversations: agent.conversations.clone(),
        };
        let bearer =
            HeaderValue::from_str(&format!("Bearer {}", agent.token)).map_err(header_error)?;
        let (call, host) = (call.clone(), host.clone());
        tasks.spawn(async move {
            let mut sender = connect(addr).await?;
            let mut latencies = Vec::with_capacity(per_agent as usize);
            let mut failures = 0;
            for n in 0..per_agent {
                let Call {
                    method,
                    path,
                    body,
                    headers: own,
                } = call(&agent, n);
                let json = !body.is_empty();
                let mut request = hyper::Request::new(Full::new(body));
                *request.method_mut() = method;
                *request.uri_mut() = path
                    .parse()
                    .map_err(|e| BenchError::Invalid(format!("request path {path}: {e}")))?;
                let headers = request.headers_mut();
                headers.insert(header::HOST, host.clone());
                headers.insert(header::AUTHORIZATION, bearer.clone());
                if json {
                    headers.insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    );
                }
                for (name, value) in own {
                    headers.insert(name, value);
                }
                let sent = Instant::now();
                let response = match sender.ready().await {
                    Ok(()) => sender.send_request(request).await,
                    Err(error) => Err(error),
                };
                let Ok(response) = response else {
                    // The connection failed (or the server closed it): a failed request, and
                    // a new connection for the next one.
                    failures += 1;
                    sender = connect(addr).await?;
                    continue;
                };
                let ok = response.status().is_success();
                // Read the body: the request is over when the client has it all.
                let read = response.into_body().collect().await;
                match read {
                    Ok(_) if ok => latencies.push(sent.elapsed().as_micros() as u64),
                    _ => failures += 1,
                }
            }
            Ok::<_, BenchError>((latencies, failures))
        });
    }
    let mut latencies_us = Vec::new();
    let mut failures = 0;
    while let Some(done) = tasks.join_next().await {
        let (latencies, failed) = done??;
        latencies_us.extend(latencies);
        failures += failed;
    }
    Ok(Phase {
        latencies_us,
        failures,
        elapsed: started.elapsed(),
    })
}

/// A keep-alive HTTP/1.1 connection to the server.
async fn connect(
    addr: std::net::SocketAddr,
) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, BenchError> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(hyper_error)?;
    tokio::spawn(connection);
    Ok(sender)
}

fn hyper_error(error: hyper::Error) -> BenchError {
    BenchError::Invalid(format!("HTTP: {error}"))
}

pub(crate) fn header_error(error: axum::http::header::InvalidHeaderValue) -> BenchError {
    BenchError::Invalid(format!("a header: {error}"))
}

pub(crate) async fn http(args: &BenchArgs) -> Result<Value, BenchError> {
    let connections = args.writers as usize;
    let store = Store::fresh(args).await?;
    let server = start_server(store.url(), &[]).await?;
    let agents = set_up(&server, connections).await?;
    let pid = server
        .child
        .id()
        .map(|pid| pid.to_string())
        .unwrap_or_default();
    let before_posts = cpu_secs_of(&pid);
    let client_before_posts = cpu_secs_of("self");

    let message = Bytes::from(
        json!({"body": "Thanks, the parcel left the warehouse this morning."}).to_string(),
    );
    let posted = phase(&server, &agents, args.events, move |agent, n| {
        let conversation = &agent.conversations[n as usize % agent.conversations.len()];
        Call {
            method: hyper::Method::POST,
            path: format!("/api/v1/conversations/{conversation}/messages"),
            body: message.clone(),
            headers: Vec::new(),
        }
    })
    .await?;
    // A message's CPU includes every read model's live work: the phase ends when all of them
    // have applied every message (they trail under load, lingering at a lower priority).
    let all_applied = wait_until_all_applied(&server).await?;
    // Reads are measured on an inbox that has applied every message (it has by now; this read
    // checks it through the API).
    wait_until_caught_up(&server, &agents[0]).await?;
    let before_reads = cpu_secs_of(&pid);
    let client_before_reads = cpu_secs_of("self");
    let read = phase(&server, &agents, args.events, move |_, _| Call {
        method: hyper::Method::GET,
        path: "/api/v1/inbox/from-customers?limit=20".to_owned(),
        body: Bytes::new(),
        headers: Vec::new(),
    })
    .await?;
    let after_reads = cpu_secs_of(&pid);
    let client_after_reads = cpu_secs_of("self");

    let mut report = json!({
        "benchmark": "http",
        "backend": backend_name(args.backend),
        "connections": connections,
        "conversations": connections * CONVERSATIONS_PER_CONNECTION,
    });
    let posted = posted.report(
        "post_message",
        before_reads - before_posts,
        client_before_reads - client_before_posts,
    );
    let read = read.report(
        "get_inbox",
        after_reads - before_reads,
        client_after_reads - client_before_reads,
    );
    for (key, value) in [posted, read].iter().filter_map(Value::as_object).flatten() {
        report[key] = value.clone();
    }
    report["server_peak_rss_mb"] = json!(peak_rss_mb_of(&pid));
    report["all_applied_secs"] = json!(round2(all_applied.as_secs_f64()));
    report["client_peak_rss_mb"] = json!(peak_rss_mb());
    drop(server);
    Ok(report)
}
