//! The HTTP/1.1 connection loop with bounds on everything a client controls:
//!   - at most `max_connections` connections at once (more wait in the listen backlog);
//!   - a request head must arrive within `header_timeout` of its first byte;
//!   - a connection with no request in flight and no bytes moving for `idle_timeout` is closed
//!     (kept-alive connections and a new connection that never sends anything alike);
//!   - on shutdown: stop accepting, let requests in flight finish, close idle connections, and
//!     after `shutdown_timeout` close whatever is still open, so the server always exits.
//!
//! Reading a request body within a deadline is the handler's part (see `server::predict`):
//! while a request is in flight the connection is the handler's.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

/// Bounds on what clients may hold on to. The defaults suit a model server behind a load
/// balancer; every one is a `trainyard-serve` flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Longest time from the first byte of a request head to its end.
    pub header_timeout: Duration,
    /// Longest time to receive a whole request body (a stalled client is answered 408 and
    /// its connection closed; its request never reaches the batcher).
    pub body_timeout: Duration,
    /// A connection with no request in flight and no traffic for this long is closed.
    pub idle_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog until one closes.
    pub max_connections: usize,
    /// Instances (rows) one predict request may carry (413 above it).
    pub max_instances: usize,
    /// Bytes one predict answer may take (413 above it).
    pub max_response_bytes: usize,
    /// After a shutdown signal: how long requests in flight may take before their
    /// connections are closed and the server returns.
    pub shutdown_timeout: Duration,
}

pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
pub const DEFAULT_MAX_INSTANCES: usize = 1024;
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 64 << 20;
/// Below Cloud Run's 10 s between SIGTERM and SIGKILL.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(8);

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_instances: DEFAULT_MAX_INSTANCES,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains within
/// `limits.shutdown_timeout` and returns.
pub async fn serve_http(
    listener: TcpListener,
    app: Router,
    limits: &Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            _ = &mut shutdown => break,
        };
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // e.g. out of file descriptors: back off instead of spinning
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        while conns.try_join_next().is_some() {}
        conns.spawn(serve_conn(
            stream,
            app.clone(),
            limits.clone(),
            stop_rx.clone(),
            permit,
        ));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let open = conns.len();
    let drained = tokio::time::timeout(limits.shutdown_timeout, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open_connections = conns.len(),
            deadline_ms = limits.shutdown_timeout.as_millis() as u64,
            "shutdown deadline passed: closing the connections still open"
        );
        conns.shutdown().await;
    } else if open > 0 {
        tracing::info!(connections = open, "drained the open connections");
    }
}

async fn serve_conn(
    stream: TcpStream,
    app: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Tracked {
        inner: stream,
        activity: activity.clone(),
    });
    let svc = Tracking {
        inner: TowerToHyperService::new(app),
        activity: activity.clone(),
    };
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(io, svc);
    tokio::pin!(conn);
    let mut stopping = false;
    loop {
        let wake = activity.deadline(&limits);
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            _ = stop.changed(), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = activity.head_began.notified() => {}
            _ = tokio::time::sleep_until(wake.into()) => {
                if let Some(why) = activity.expired(&limits) {
                    tracing::debug!(reason = why, "closing connection");
                    return; // dropping the connection closes the socket
                }
            }
        }
    }
}

/// What a connection is doing, shared by its IO wrapper, its service and its watchdog.
struct Activity {
    epoch: Instant,
    in_flight: AtomicUsize,
    /// When the connection last became idle or last moved bytes while idle (ms since epoch).
    idle_since_ms: AtomicU64,
    /// First byte of a request head read while idle (ms since epoch), `NONE` when none.
    head_started_ms: AtomicU64,
    /// Wakes the watchdog when a head starts (its deadline moves earlier).
    head_began: tokio::sync::Notify,
}

const NONE: u64 = u64::MAX;

impl Activity {
    fn new() -> Self {
        Activity {
            epoch: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
            head_started_ms: AtomicU64::new(NONE),
            head_began: tokio::sync::Notify::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn at(&self, ms: u64) -> Instant {
        self.epoch + Duration::from_millis(ms)
    }

    fn on_read(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0 {
            let now = self.now_ms();
            let began = self
                .head_started_ms
                .compare_exchange(NONE, now, Ordering::AcqRel, Ordering::Acquire)
                .is_ok();
            if began {
                self.head_began.notify_one();
            }
        }
    }

    fn on_write(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0 {
            self.idle_since_ms.store(self.now_ms(), Ordering::Release);
        }
    }

    fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_started_ms.store(NONE, Ordering::Release);
    }

    fn request_done(&self) {
        self.idle_since_ms.store(self.now_ms(), Ordering::Release);
        self.head_started_ms.store(NONE, Ordering::Release);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    /// When the next limit could expire (a recheck time while a request is in flight).
    fn deadline(&self, limits: &Limits) -> Instant {
        let recheck = Instant::now() + limits.idle_timeout.min(limits.header_timeout);
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return recheck;
        }
        match self.head_started_ms.load(Ordering::Acquire) {
            NONE => self.at(self.idle_since_ms.load(Ordering::Acquire)) + limits.idle_timeout,
            started => self.at(started) + limits.header_timeout,
        }
    }

    /// Which limit the connection has passed, if any.
    fn expired(&self, limits: &Limits) -> Option<&'static str> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let now = Instant::now();
        match self.head_started_ms.load(Ordering::Acquire) {
            NONE => {
                let idle = self.at(self.idle_since_ms.load(Ordering::Acquire));
                (now >= idle + limits.idle_timeout).then_some("idle timeout")
            }
            started => {
                (now >= self.at(started) + limits.header_timeout).then_some("header timeout")
            }
        }
    }
}

/// The socket, noting reads and writes in the connection's [`Activity`].
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.on_read();
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.on_write();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.on_write();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The app, counting the requests in flight on its connection.
#[derive(Clone)]
struct Tracking {
    inner: TowerToHyperService<Router>,
    activity: Arc<Activity>,
}

impl hyper::service::Service<hyper::Request<Incoming>> for Tracking {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn call(&self, req: hyper::Request<Incoming>) -> Self::Future {
        struct Done(Arc<Activity>);
        impl Drop for Done {
            fn drop(&mut self) {
                self.0.request_done();
            }
        }
        self.activity.request_started();
        let done = Done(self.activity.clone());
        let fut = self.inner.call(req);
        Box::pin(async move {
            let r = fut.await;
            drop(done);
            r
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::{get, post};
    use std::io::{Read, Write};

    fn limits() -> Limits {
        Limits {
            header_timeout: Duration::from_millis(400),
            idle_timeout: Duration::from_millis(600),
            max_connections: 2,
            shutdown_timeout: Duration::from_millis(800),
            ..Limits::default()
        }
    }

    fn app() -> Router {
        Router::new()
            .route("/ok", get(|| async { "ok" }))
            // a handler that takes 300 ms (a request in flight at shutdown)
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    "slow"
                }),
            )
            // reads its body with no deadline of its own (the shutdown deadline must still hold)
            .route("/body", post(|body: String| async move { body }))
    }

    struct Running {
        addr: std::net::SocketAddr,
        stop: Option<tokio::sync::oneshot::Sender<()>>,
        done: tokio::task::JoinHandle<()>,
    }

    async fn start(limits: Limits) -> Running {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let done = tokio::spawn(async move {
            serve_http(listener, app(), &limits, async {
                let _ = rx.await;
            })
            .await
        });
        Running {
            addr,
            stop: Some(tx),
            done,
        }
    }

    /// Blocking: reads until EOF or error; returns what came and how long it took.
    fn read_to_close(s: &mut std::net::TcpStream) -> (String, Duration) {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let started = Instant::now();
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
        (
            String::from_utf8_lossy(&out).into_owned(),
            started.elapsed(),
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn idle_and_half_sent_connections_are_closed_after_their_timeouts() {
        let srv = start(limits()).await;
        let addr = srv.addr;
        tokio::task::spawn_blocking(move || {
            // a kept-alive connection: answered, then closed once idle for 600 ms
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let (got, took) = read_to_close(&mut s);
            assert!(got.starts_with("HTTP/1.1 200"), "{got}");
            assert!(got.ends_with("ok"), "{got}");
            assert!(
                took >= Duration::from_millis(500) && took < Duration::from_millis(2000),
                "idle connection closed after {took:?}, limit 600 ms"
            );
            // half a request head: closed after the 400 ms header timeout (before idle's 600)
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(b"GET /ok HTTP/1.1\r\nHo").unwrap();
            let (got, took) = read_to_close(&mut s);
            assert!(!got.contains("200"), "{got}");
            assert!(
                took >= Duration::from_millis(300) && took < Duration::from_millis(580),
                "half-sent head closed after {took:?}, limit 400 ms"
            );
            // a connection that never sends anything: the idle limit
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            let (_, took) = read_to_close(&mut s);
            assert!(
                took >= Duration::from_millis(500) && took < Duration::from_millis(2000),
                "silent connection closed after {took:?}"
            );
        })
        .await
        .unwrap();
        let mut srv = srv;
        srv.stop.take().unwrap().send(()).unwrap();
        srv.done.await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn connections_beyond_the_cap_wait_until_one_closes() {
        let srv = start(limits()).await;
        let addr = srv.addr;
        tokio::task::spawn_blocking(move || {
            // two silent connections take both slots (max_connections 2)
            let a = std::net::TcpStream::connect(addr).unwrap();
            let b = std::net::TcpStream::connect(addr).unwrap();
            std::thread::sleep(Duration::from_millis(50));
            let started = Instant::now();
            let mut c = std::net::TcpStream::connect(addr).unwrap();
            c.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .unwrap();
            let (got, _) = read_to_close(&mut c);
            let waited = started.elapsed();
            assert!(got.starts_with("HTTP/1.1 200"), "{got}");
            // served only once the idle timeout (600 ms) freed a slot
            assert!(
                waited >= Duration::from_millis(400),
                "third connection served after {waited:?}: the cap of 2 did not hold"
            );
            drop((a, b));
        })
        .await
        .unwrap();
        let mut srv = srv;
        srv.stop.take().unwrap().send(()).unwrap();
        srv.done.await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shutdown_finishes_requests_in_flight_and_exits_by_the_deadline() {
        let mut srv = start(limits()).await;
        let addr = srv.addr;
        // a stalled body (the handler has no deadline of its own) and a slow request in flight
        let stalled = tokio::task::spawn_blocking(move || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(b"POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
                .unwrap();
            read_to_close(&mut s)
        });
        let slow = tokio::task::spawn_blocking(move || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            read_to_close(&mut s)
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = Instant::now();
        srv.stop.take().unwrap().send(()).unwrap();
        srv.done.await.unwrap();
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(700) && took < Duration::from_millis(1500),
            "returned {took:?} after the signal; deadline 800 ms"
        );
        let (got, _) = slow.await.unwrap();
        assert!(
            got.starts_with("HTTP/1.1 200") && got.ends_with("slow"),
            "{got}"
        );
        let (got, _) = stalled.await.unwrap();
        assert!(!got.contains("200"), "{got}");
        // nothing listens any more
        assert!(std::net::TcpStream::connect(addr).is_err());
    }
}
