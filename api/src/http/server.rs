//! The HTTP server: the accept loop and hyper's HTTP/1 connections, with
//! the limits `axum::serve` does not set. A client cannot hold a connection
//! it does not use:
//!
//! - a request's head (request line and headers) must arrive within the
//!   header timeout, counted from its first byte, or from the accept for a
//!   new connection, however slowly its bytes trickle in (slowloris);
//! - a kept-alive connection is closed when no next request starts within
//!   the idle timeout;
//! - one client address (the TCP peer, proxies notwithstanding) holds at
//!   most a fixed number of open connections; a connection beyond them gets
//!   a 429 and is closed;
//! - a request line longer than [`MAX_REQUEST_LINE`] gets a 414 (hyper's
//!   own answer, past 64 KiB, has no body; this one has the JSON error
//!   every other refusal has).
//!
//! While a request is being served, including a response that streams (a
//! display's event stream), neither timeout runs: the connection is busy,
//! not idle. hyper's own header timer is off because it also runs between
//! requests, which would make the idle timeout the header timeout.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tower_service::Service as _;

use crate::http::hardening::API_CSP;
use crate::settings::HttpSettings;

/// What a connection may cost the server.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time to send a request head, from its first byte.
    pub header_read: Duration,
    /// Time a kept-alive connection may wait for its next request.
    pub idle: Duration,
    /// Open connections per client address.
    pub per_ip: usize,
}

impl Limits {
    /// The limits `settings` set (each at least 1).
    pub fn new(settings: &HttpSettings) -> Self {
        Self {
            header_read: Duration::from_secs(settings.header_read_timeout_seconds.max(1)),
            idle: Duration::from_secs(settings.idle_timeout_seconds.max(1)),
            per_ip: settings.max_connections_per_ip.max(1),
        }
    }
}

/// Longest request line (method, target and version) read; a longer one is
/// answered 414 before hyper parses it.
pub const MAX_REQUEST_LINE: usize = 16 * 1024;

/// Most bytes of a refused request head read (and dropped) before the
/// connection is closed: reading to its end lets the client see the answer
/// (closing a socket with unread input resets it).
const MAX_DISCARD: usize = 1024 * 1024;

/// A complete error response, written to the socket directly where hyper
/// does not answer: the JSON body of every other error, the security
/// headers, and `connection: close`.
fn raw_error(status: StatusCode, code: &str, message: &str, extra: &str) -> Vec<u8> {
    let body = serde_json::json!({"error": {"code": code, "message": message}}).to_string();
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n\
         content-security-policy: {API_CSP}\r\nx-content-type-options: nosniff\r\n\
         x-frame-options: DENY\r\nreferrer-policy: no-referrer\r\n{extra}\
         connection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The answer to a connection over the per-address cap, written without
/// waiting (a client that does not read it just does not get it).
fn over_cap() -> Vec<u8> {
    raw_error(
        StatusCode::TOO_MANY_REQUESTS,
        "RATE_LIMITED",
        "too many open connections from this address",
        "retry-after: 1\r\n",
    )
}

/// The answer to a request line over [`MAX_REQUEST_LINE`].
fn uri_too_long() -> Vec<u8> {
    raw_error(
        StatusCode::URI_TOO_LONG,
        "URI_TOO_LONG",
        &format!("the request line is longer than {MAX_REQUEST_LINE} bytes"),
        "",
    )
}

/// Serves `router` on `listener` until `shutdown` completes; then stops
/// accepting, lets every connection finish its current response and
/// returns when all are closed.
pub async fn serve(
    mut listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send,
) {
    let (stop, stopped) = watch::channel(false);
    let slots = Slots::default();
    let mut shutdown = pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = axum::serve::Listener::accept(&mut listener) => accepted,
            () = &mut shutdown => break,
        };
        let Some(slot) = slots.take(peer.ip(), limits.per_ip) else {
            metrics::counter!("herald_http_connections_refused_total").increment(1);
            tracing::debug!(%peer, "connection over the per-address cap refused");
            let _ = stream.try_write(&over_cap());
            continue;
        };
        tokio::spawn(connection(
            stream,
            peer,
            router.clone(),
            limits,
            stopped.clone(),
            slot,
        ));
    }
    drop(listener);
    stop.send_replace(true);
    drop(stopped);
    // Every connection task holds a receiver until it ends.
    stop.closed().await;
}

/// Serves one connection until the client or a timeout closes it.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
    _slot: Slot,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: activity.clone(),
        refusing: None,
    });
    let service = hyper::service::service_fn({
        let activity = activity.clone();
        move |mut request: Request<Incoming>| {
            // Handlers read the peer (per-IP rate limits) as axum's
            // `ConnectInfo` would give it.
            request.extensions_mut().insert(ConnectInfo(peer));
            let busy = Busy::begin(&activity);
            let response = router.clone().call(request.map(Body::new));
            async move {
                let response = response.await.unwrap_or_else(|never| match never {});
                Ok::<_, Infallible>(response.map(|body| Tracked { body, _busy: busy }))
            }
        }
    });
    let mut conn = pin!(
        http1::Builder::new()
            // Off: it also runs between requests (see the module comment).
            .header_read_timeout(None)
            .serve_connection(io, service)
            .with_upgrades()
    );
    let mut stopping = false;
    loop {
        let deadline = activity.deadline(&limits);
        let changed = activity.changed.notified();
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%peer, %error, "connection ended with an error");
                }
                return;
            }
            () = tokio::time::sleep_until(deadline.unwrap_or_else(far_future)), if deadline.is_some() => {
                if activity.deadline(&limits).is_some_and(|d| d <= Instant::now()) {
                    tracing::debug!(%peer, "closing a connection that sent no request in time");
                    return;
                }
            }
            () = changed => {}
            _ = stop.wait_for(|s| *s), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400)
}

/// What a connection is doing, for its timeouts.
struct Activity {
    clock: Mutex<Clock>,
    /// Woken when a deadline may have moved.
    changed: Notify,
}

struct Clock {
    /// Requests being served (their responses not yet sent in full).
    busy: usize,
    /// When the connection last became idle (accepted, or a response ended).
    idle_since: Instant,
    /// Whether it has served a request: a new connection waits for its
    /// first head, and gets the header timeout for it.
    served: bool,
    /// When the first byte of the next request head arrived.
    head_from: Option<Instant>,
    /// Bytes of the next request's line read so far, until its end.
    line: Option<usize>,
}

impl Activity {
    fn new() -> Self {
        Self {
            clock: Mutex::new(Clock {
                busy: 0,
                idle_since: Instant::now(),
                served: false,
                head_from: None,
                line: None,
            }),
            changed: Notify::new(),
        }
    }

    fn clock(&self) -> std::sync::MutexGuard<'_, Clock> {
        // The clock is plain data: a panic elsewhere cannot leave it torn.
        self.clock.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// When the connection is to be closed unless something happens; `None`
    /// while it is serving a request.
    fn deadline(&self, limits: &Limits) -> Option<Instant> {
        let clock = self.clock();
        if clock.busy > 0 {
            None
        } else if let Some(from) = clock.head_from {
            Some(from + limits.header_read)
        } else if clock.served {
            Some(clock.idle_since + limits.idle)
        } else {
            Some(clock.idle_since + limits.header_read)
        }
    }

    /// `bytes` arrived: between requests, they start a head. Answers
    /// whether they make its request line longer than [`MAX_REQUEST_LINE`].
    fn read(&self, bytes: &[u8]) -> bool {
        let mut clock = self.clock();
        if clock.busy > 0 {
            return false;
        }
        if clock.head_from.is_none() {
            clock.head_from = Some(Instant::now());
            clock.line = Some(0);
            self.changed.notify_one();
        }
        let Some(so_far) = clock.line else {
            return false;
        };
        match bytes.iter().position(|b| *b == b'\n') {
            Some(end) => {
                clock.line = None;
                so_far + end > MAX_REQUEST_LINE
            }
            None => {
                clock.line = Some(so_far + bytes.len());
                so_far + bytes.len() > MAX_REQUEST_LINE
            }
        }
    }
}

/// A request being served; the connection is idle again when the last one
/// is dropped (with its response body, once sent).
struct Busy(Arc<Activity>);

impl Busy {
    fn begin(activity: &Arc<Activity>) -> Self {
        let mut clock = activity.clock();
        clock.busy += 1;
        clock.head_from = None;
        clock.line = None;
        clock.served = true;
        drop(clock);
        activity.changed.notify_one();
        Self(activity.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let mut clock = self.0.clock();
        clock.busy -= 1;
        if clock.busy == 0 {
            clock.idle_since = Instant::now();
        }
        drop(clock);
        self.0.changed.notify_one();
    }
}

/// A response body that keeps its connection busy until it is sent.
struct Tracked {
    body: Body,
    _busy: Busy,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The TCP stream, telling its connection's [`Activity`] when bytes arrive,
/// and refusing a request line that is too long.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
    /// After a refusal: the bytes dropped so far and the last three, to see
    /// the head's end.
    refusing: Option<(usize, [u8; 3])>,
}

impl Watched {
    /// Reads and drops the rest of a refused head; then fails the read, so
    /// hyper closes the connection.
    fn discard(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut scratch = [0u8; 8192];
        loop {
            let Some((dropped, tail)) = self.refusing.as_mut() else {
                return Poll::Ready(Ok(()));
            };
            if *dropped > MAX_DISCARD {
                break;
            }
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut self.inner).poll_read(cx, &mut buf) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) if buf.filled().is_empty() => break,
                Poll::Ready(Ok(())) => {
                    *dropped += buf.filled().len();
                    if ends_head(tail, buf.filled()) {
                        break;
                    }
                }
            }
        }
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "request line too long",
        )))
    }
}

/// Whether `bytes`, following the three bytes `tail`, hold the blank line
/// that ends a request head; updates `tail`.
fn ends_head(tail: &mut [u8; 3], bytes: &[u8]) -> bool {
    let mut window = Vec::with_capacity(tail.len() + bytes.len());
    window.extend_from_slice(tail);
    window.extend_from_slice(bytes);
    tail.copy_from_slice(&window[window.len() - 3..]);
    window.windows(4).any(|w| w == b"\r\n\r\n")
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.refusing.is_some() {
            return self.discard(cx);
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = &buf.filled()[before..];
        if !read.is_empty() && self.activity.read(read) {
            let mut tail = [0u8; 3];
            let ended = ends_head(&mut tail, read);
            // hyper never sees this head.
            buf.set_filled(before);
            let _ = self.inner.try_write(&uri_too_long());
            self.refusing = Some((if ended { MAX_DISCARD + 1 } else { 0 }, tail));
            return self.discard(cx);
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
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
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

/// Open connections per client address.
#[derive(Clone, Default)]
struct Slots(Arc<Mutex<HashMap<IpAddr, usize>>>);

impl Slots {
    /// A place for one more connection from `ip`, if it has fewer than `cap`.
    fn take(&self, ip: IpAddr, cap: usize) -> Option<Slot> {
        let mut open = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(ip).or_default();
        if *count >= cap {
            return None;
        }
        *count += 1;
        Some(Slot {
            slots: self.clone(),
            ip,
        })
    }
}

/// One connection's place, given back when it closes.
struct Slot {
    slots: Slots,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.slots.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_refusals_declare_their_length_and_carry_a_json_error() {
        for (answer, code) in [
            (over_cap(), "RATE_LIMITED"),
            (uri_too_long(), "URI_TOO_LONG"),
        ] {
            let answer = String::from_utf8(answer).unwrap();
            let (head, body) = answer.split_once("\r\n\r\n").unwrap();
            assert!(
                head.contains(&format!("content-length: {}", body.len())),
                "{head}"
            );
            let json: serde_json::Value = serde_json::from_str(body).unwrap();
            assert_eq!(json["error"]["code"], code);
        }
    }

    #[test]
    fn the_end_of_a_head_is_found_across_reads() {
        let mut tail = [0u8; 3];
        assert!(!ends_head(&mut tail, b"GET /x HTTP/1.1\r\nHost: a\r"));
        assert!(ends_head(&mut tail, b"\n\r\n"));
        let mut tail = [0u8; 3];
        assert!(ends_head(&mut tail, b"a\r\n\r\nb"));
        let mut tail = [0u8; 3];
        assert!(!ends_head(&mut tail, b"aaaa"));
        assert!(!ends_head(&mut tail, b"\r\n"));
        assert!(ends_head(&mut tail, b"\r\n"));
    }

    #[test]
    fn a_slot_is_given_back_when_its_connection_closes() {
        let slots = Slots::default();
        let ip = IpAddr::from([127, 0, 0, 1]);
        let first = slots.take(ip, 2).unwrap();
        let _second = slots.take(ip, 2).unwrap();
        assert!(slots.take(ip, 2).is_none());
        assert!(slots.take(IpAddr::from([127, 0, 0, 2]), 2).is_some());
        drop(first);
        assert!(slots.take(ip, 2).is_some());
    }
}
