//! The connection loop: accepts TCP connections, serves HTTP/1.1 on each with hyper, and keeps
//! every connection in check, so that clients that never speak, never read or never finish
//! cannot hold the server's file descriptors or memory.
//!
//! - At most [`ConnectionLimits::max_connections`] are served at once; the next waits in the
//!   listen backlog until one closes.
//! - Each connection has a watchdog ([`watch`]) that closes it when
//!   - no request head has come within the header-read timeout of connecting, or of the first
//!     byte of a later request;
//!   - it has waited idle for its next request longer than the keep-alive timeout;
//!   - a request is in flight and no byte has moved either way for the send timeout: a client
//!     that stopped reading its live stream, or that never sends the body it announced.
//! - A connection's write buffer holds at most [`WRITE_BUFFER`] bytes: a response body (a live
//!   stream) is asked for more only when what it gave before could be sent.
//!
//! The watchdog reads what the connection's socket ([`Watched`]) and its requests ([`Busy`])
//! record in a few atomics; it wakes a few times per timeout and costs nothing per byte.

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// How connections are kept in check (`parley serve --header-read-timeout-secs` and the
/// others).
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub keep_alive_timeout: Duration,
    pub send_timeout: Duration,
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(30),
            max_connections: 4096,
        }
    }
}

/// The most a connection buffers for writing (and for reading a request's head) before it
/// waits for its socket.
pub const WRITE_BUFFER: usize = 16 * 1024;

/// Serves `router` on `listener` until `shutdown` resolves, then waits for the requests in
/// flight (live streams end on their own when the server stops).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (socket, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors or a connection reset before it was accepted: the
                    // listener itself is fine; give the system a moment.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if let Err(error) = socket.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        let activity = Arc::new(Activity::new());
        let service = {
            let (router, activity) = (router.clone(), activity.clone());
            hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                let busy = Busy::begin(&activity);
                let mut request = request.map(Body::new);
                request.extensions_mut().insert(ConnectInfo(remote));
                let router = router.clone();
                async move {
                    let response = tower::ServiceExt::oneshot(router, request).await?;
                    // The request counts as in flight until its whole answer was handed over.
                    Ok::<_, std::convert::Infallible>(response.map(|body| {
                        Body::new(body.map_frame(move |frame| {
                            let _in_flight = &busy;
                            frame
                        }))
                    }))
                }
            })
        };
        let io = TokioIo::new(Watched {
            socket,
            activity: activity.clone(),
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .max_buf_size(WRITE_BUFFER)
            .serve_connection(io, service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _permit = permit;
            tokio::select! {
                served = connection => {
                    if let Err(error) = served {
                        tracing::debug!(%error, %remote, "a connection ended with an error");
                    }
                }
                reason = watch(&activity, limits) => {
                    metrics::counter!("parley_connections_closed_total", "reason" => reason)
                        .increment(1);
                    tracing::debug!(%remote, reason, "closing a connection");
                }
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Milliseconds since the process's first use of this clock (never 0, so 0 means "unset").
fn now_ms() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let start = *START.get_or_init(|| Instant::now() - Duration::from_millis(1));
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// What one connection's socket and requests did last, for its watchdog.
struct Activity {
    /// Requests whose answer is not yet wholly handed over.
    busy: AtomicUsize,
    /// Requests begun on this connection.
    requests: AtomicU64,
    /// When the connection was accepted, or last became idle.
    idle_since: AtomicU64,
    /// The first byte read while idle (a request's head begins), or 0.
    head_since: AtomicU64,
    /// The last time a byte moved either way.
    moved_at: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        let now = now_ms();
        Activity {
            busy: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            idle_since: AtomicU64::new(now),
            head_since: AtomicU64::new(0),
            moved_at: AtomicU64::new(now),
        }
    }

    fn moved(&self, read: bool) {
        let now = now_ms();
        self.moved_at.store(now, Ordering::Relaxed);
        if read && self.busy.load(Ordering::Relaxed) == 0 {
            let _ = self
                .head_since
                .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
        }
    }
}

/// A request in flight on a connection.
struct Busy(Arc<Activity>);

impl Busy {
    fn begin(activity: &Arc<Activity>) -> Busy {
        activity.busy.fetch_add(1, Ordering::Relaxed);
        activity.requests.fetch_add(1, Ordering::Relaxed);
        activity.head_since.store(0, Ordering::Relaxed);
        Busy(activity.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        if self.0.busy.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.0.idle_since.store(now_ms(), Ordering::Relaxed);
            self.0.head_since.store(0, Ordering::Relaxed);
        }
    }
}

/// Resolves, naming why, when the connection must be closed.
async fn watch(activity: &Activity, limits: ConnectionLimits) -> &'static str {
    let shortest = limits
        .header_read_timeout
        .min(limits.keep_alive_timeout)
        .min(limits.send_timeout);
    let tick = (shortest / 4).clamp(Duration::from_millis(50), Duration::from_secs(2));
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let mut every = tokio::time::interval_at(tokio::time::Instant::now() + tick, tick);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if let Some(reason) = overdue(activity, limits, now_ms(), ms) {
            return reason;
        }
    }
}

/// Why the connection is overdue at `now`, if it is.
fn overdue(
    activity: &Activity,
    limits: ConnectionLimits,
    now: u64,
    ms: impl Fn(Duration) -> u64,
) -> Option<&'static str> {
    let since = |at: &AtomicU64| now.saturating_sub(at.load(Ordering::Relaxed));
    if activity.busy.load(Ordering::Relaxed) > 0 {
        return (since(&activity.moved_at) > ms(limits.send_timeout)).then_some("send-timeout");
    }
    if activity.head_since.load(Ordering::Relaxed) != 0 {
        return (since(&activity.head_since) > ms(limits.header_read_timeout))
            .then_some("header-read-timeout");
    }
    if activity.requests.load(Ordering::Relaxed) == 0 {
        return (since(&activity.idle_since) > ms(limits.header_read_timeout))
            .then_some("header-read-timeout");
    }
    (since(&activity.idle_since) > ms(limits.keep_alive_timeout)).then_some("keep-alive-timeout")
}

/// A connection's socket, recording when bytes move.
struct Watched {
    socket: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.socket).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.moved(true);
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.socket).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.moved(false);
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.socket).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.moved(false);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.socket.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.socket).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.socket).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ConnectionLimits = ConnectionLimits {
        header_read_timeout: Duration::from_secs(10),
        keep_alive_timeout: Duration::from_secs(60),
        send_timeout: Duration::from_secs(30),
        max_connections: 8,
    };

    fn ms(d: Duration) -> u64 {
        d.as_millis() as u64
    }

    fn at(activity: &Activity, now: u64) -> Option<&'static str> {
        overdue(activity, LIMITS, now, ms)
    }

    fn activity_at(t: u64) -> Activity {
        let activity = Activity::new();
        activity.idle_since.store(t, Ordering::Relaxed);
        activity.moved_at.store(t, Ordering::Relaxed);
        activity
    }

    #[test]
    fn a_connection_that_never_speaks_gets_the_header_read_timeout() {
        let activity = activity_at(1_000);
        assert_eq!(at(&activity, 10_000), None);
        assert_eq!(at(&activity, 11_001), Some("header-read-timeout"));
    }

    #[test]
    fn an_idle_kept_alive_connection_gets_the_keep_alive_timeout() {
        let activity = Arc::new(activity_at(1_000));
        drop(Busy::begin(&activity));
        let idle = activity.idle_since.load(Ordering::Relaxed);
        assert_eq!(at(&activity, idle + 59_000), None);
        assert_eq!(at(&activity, idle + 60_001), Some("keep-alive-timeout"));
        // A request's head that began and never ended: the header-read timeout again.
        activity.head_since.store(idle + 30_000, Ordering::Relaxed);
        assert_eq!(at(&activity, idle + 40_001), Some("header-read-timeout"));
    }

    #[test]
    fn a_request_in_flight_waits_for_bytes_to_move_for_the_send_timeout() {
        let activity = Arc::new(activity_at(1_000));
        let busy = Busy::begin(&activity);
        activity.moved_at.store(5_000, Ordering::Relaxed);
        assert_eq!(at(&activity, 34_000), None, "an answer may take its time");
        assert_eq!(at(&activity, 35_001), Some("send-timeout"));
        drop(busy);
        assert_eq!(activity.busy.load(Ordering::Relaxed), 0);
    }
}
