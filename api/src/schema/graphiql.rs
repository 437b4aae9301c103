//! GraphiQL, served from files embedded in the binary (`api/assets/graphiql`,
//! whose README names each version and its npm integrity): no CDN, so the
//! page works offline and its Content-Security-Policy allows scripts from
//! this origin only.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::http::error_response;
use crate::http::hardening::GRAPHIQL_CSP;

/// The page itself.
const PAGE: &str = include_str!("../../assets/graphiql/index.html");

/// Vendor files carry their version in their name: cached for a year.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Herald's own files change with Herald: revalidated on every use.
const REVALIDATE: &str = "no-cache";

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// One served file: its name under `/graphql/assets/`, type, caching, bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    cache: &'static str,
    bytes: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $content_type:expr, $cache:expr) => {
        Asset {
            name: $name,
            content_type: $content_type,
            cache: $cache,
            bytes: include_bytes!(concat!("../../assets/graphiql/", $name)),
        }
    };
}

/// Every file the page loads.
const ASSETS: &[Asset] = &[
    asset!("react-18.3.1.production.min.js", JS, IMMUTABLE),
    asset!("react-dom-18.3.1.production.min.js", JS, IMMUTABLE),
    asset!("graphiql-4.1.2.min.js", JS, IMMUTABLE),
    asset!("graphiql-4.1.2.min.css", CSS, IMMUTABLE),
    asset!("graphiql.css", CSS, REVALIDATE),
    asset!("start.js", JS, REVALIDATE),
];

/// `GET /graphql` without a query: the GraphiQL page, with a CSP that lets
/// its assets load (the hardening layer's API policy would block them).
pub fn page() -> Response {
    (
        [
            (header::CONTENT_SECURITY_POLICY, GRAPHIQL_CSP),
            (header::CACHE_CONTROL, REVALIDATE),
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        ],
        PAGE,
    )
        .into_response()
}

/// `GET /graphql/assets/{name}`: one of the page's files.
pub async fn asset(Path(name): Path<String>) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == name) else {
        return error_response(StatusCode::NOT_FOUND, "NOT_FOUND", "no such asset");
    };
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static(asset.cache)),
        ],
        asset.bytes,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_exactly_the_served_assets() {
        let mut loaded: Vec<&str> = PAGE
            .split("/graphql/assets/")
            .skip(1)
            .map(|rest| rest.split('"').next().unwrap())
            .collect();
        loaded.sort_unstable();
        let mut served: Vec<&str> = ASSETS.iter().map(|a| a.name).collect();
        served.sort_unstable();
        assert_eq!(loaded, served);
        assert!(!PAGE.contains("https://") && !PAGE.contains("//unpkg"));
    }
}
