//! The display player page at `/display`: plain HTML, CSS and JavaScript
//! compiled into the binary (no build step), which pairs the browser as a
//! display and plays its manifest through the display API
//! (`docs/signage.md`).
//!
//! The page has its own Content-Security-Policy ([`PLAYER_CSP`]): the API's
//! forbids everything, and the player needs its own script and styles, same-
//! origin requests, and `blob:` images (media is fetched with the display's
//! `Authorization` header and shown from a blob URL).

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::http::hardening::PLAYER_CSP;

const INDEX_HTML: &str = include_str!("../../assets/display/index.html");
const PLAYER_JS: &str = include_str!("../../assets/display/player.js");
const PLAYER_CSS: &str = include_str!("../../assets/display/player.css");

/// `GET /display`, `/display/player.js` and `/display/player.css`.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/display",
            get(|| asset("text/html; charset=utf-8", INDEX_HTML)),
        )
        .route(
            "/display/player.js",
            get(|| asset("text/javascript; charset=utf-8", PLAYER_JS)),
        )
        .route(
            "/display/player.css",
            get(|| asset("text/css; charset=utf-8", PLAYER_CSS)),
        )
}

/// A static file. `no-cache` rather than a lifetime: the files change with
/// each release, and a display runs for weeks without being reloaded by hand.
async fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, PLAYER_CSP),
        ],
        body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_its_own_files() {
        assert!(INDEX_HTML.contains(r#"src="/display/player.js""#));
        assert!(INDEX_HTML.contains(r#"href="/display/player.css""#));
        // Inline code would be blocked by the policy.
        assert!(!INDEX_HTML.contains("<script>"));
        assert!(!INDEX_HTML.contains("<style"));
        assert!(!INDEX_HTML.contains(" style="));
    }
}
