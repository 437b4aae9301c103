//! The event stream a display keeps open (`GET /display/v1/events`): a
//! `hello` event on connect, then every push of its [`Subscription`] as it
//! comes, and a comment line as keep-alive so proxies and the browser do not
//! drop an idle connection. It ends when the hub ends the subscription; the
//! player then reconnects and fetches its manifest.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use futures_util::{StreamExt, stream};
use projections::push::Subscription;
use tokio::time::{Instant, MissedTickBehavior};

/// How long a stream stays silent before a keep-alive comment.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

const HELLO: &[u8] = b"event: hello\ndata: {}\n\n";
const COMMENT: &[u8] = b": keep-alive\n\n";

/// The `text/event-stream` response carrying `sub`'s pushes.
pub fn sse_response(sub: Subscription) -> Response {
    stream_with(sub, KEEP_ALIVE)
}

fn stream_with(sub: Subscription, keep_alive: Duration) -> Response {
    let mut ticks = tokio::time::interval_at(Instant::now() + keep_alive, keep_alive);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let pushes = stream::unfold((sub, ticks), |(mut sub, mut ticks)| async move {
        let frame = tokio::select! {
            // Pushes first: a comment never delays one.
            biased;
            frame = sub.next() => {
                // A push is as good as a comment for keeping the line open.
                ticks.reset();
                frame?
            }
            _ = ticks.tick() => Bytes::from_static(COMMENT),
        };
        Some((Ok::<_, Infallible>(frame), (sub, ticks)))
    });
    let body = stream::iter([Ok(Bytes::from_static(HELLO))]).chain(pushes);
    let mut response = Response::new(Body::from_stream(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // nginx would otherwise hold pushes back in its response buffer.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

#[cfg(test)]
mod tests {
    use projections::push::{Hub, PushMessage, PushTarget};
    use serde_json::json;
    use uuid::Uuid;

    use super::*;

    fn reload(tenant: Uuid) -> PushMessage {
        PushMessage {
            tenant_id: tenant,
            target: PushTarget::Tenant,
            event: "command".into(),
            data: json!({"command": "reload"}),
            regroup: None,
        }
    }

    #[tokio::test]
    async fn the_stream_says_hello_then_pushes_and_keeps_alive_until_the_hub_ends_it() {
        let hub = Hub::new();
        let tenant = Uuid::new_v4();
        let response = stream_with(
            hub.subscribe(tenant, Uuid::new_v4(), (None, None)),
            Duration::from_millis(50),
        );
        let headers = response.headers();
        assert_eq!(headers[header::CONTENT_TYPE], "text/event-stream");
        assert_eq!(headers[header::CACHE_CONTROL], "no-cache");
        assert_eq!(headers["x-accel-buffering"], "no");
        let mut body = response.into_body().into_data_stream();
        let mut next =
            async || String::from_utf8(body.next().await.unwrap().unwrap().to_vec()).unwrap();
        assert_eq!(next().await, "event: hello\ndata: {}\n\n");
        assert_eq!(next().await, ": keep-alive\n\n");
        assert_eq!(hub.deliver(&reload(tenant)), 1);
        assert_eq!(
            next().await,
            "event: command\ndata: {\"command\":\"reload\"}\n\n"
        );

        // Not read for too long: the hub drops it, and after what was queued
        // the body ends.
        let mut queued = 0;
        while hub.deliver(&reload(tenant)) == 1 {
            queued += 1;
        }
        for _ in 0..queued {
            assert!(next().await.starts_with("event: command\n"));
        }
        assert!(body.next().await.is_none());
    }
}
