//! The pages the links in Herald's mails open: confirm an address, accept an
//! invitation, choose a new password. Plain HTML forms (no script); GET only
//! shows the form, so a mail scanner that follows links changes nothing, and
//! POST does the same as the GraphQL mutation.

use std::net::SocketAddr;

use axum::Extension;
use axum::extract::{ConnectInfo, Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use secrecy::SecretString;
use serde::Deserialize;
use uuid::Uuid;

use crate::error::ApiResult;
use crate::http::Http;
use crate::http::client::ClientInfo;
use crate::identity::accounts;

/// `?token=` of a link.
#[derive(Deserialize)]
pub struct TokenQuery {
    #[serde(default)]
    token: String,
}

/// A submitted form.
#[derive(Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    password: String,
}

/// Tokens are `prefix_` + base64url: anything else is not put into a page.
fn clean(token: &str) -> String {
    token
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .take(200)
        .collect()
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\"><title>{title} · Herald</title></head>\
         <body><main><h1>{title}</h1>{body}</main></body></html>"
    );
    (status, [(header::CACHE_CONTROL, "no-store")], Html(html)).into_response()
}

fn form(action: &str, token: &str, password: Option<&str>, button: &str) -> String {
    let field = password.map_or(String::new(), |label| {
        format!(
            "<p><label>{label} <input type=\"password\" name=\"password\" minlength=\"10\" \
             autocomplete=\"new-password\" required></label></p>"
        )
    });
    format!(
        "<form method=\"post\" action=\"{action}\"><input type=\"hidden\" name=\"token\" value=\"{}\">\
         {field}<p><button type=\"submit\">{button}</button></p></form>",
        clean(token)
    )
}

fn failed(message: &str) -> Response {
    let message = message
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    page(
        StatusCode::BAD_REQUEST,
        "That did not work",
        &format!("<p>{message}</p>"),
    )
}

/// The page after a submitted form: `title` and `text` on success, the
/// error's message otherwise.
fn outcome<T>(result: ApiResult<T>, title: &str, text: &str) -> Response {
    match result {
        Ok(_) => page(StatusCode::OK, title, &format!("<p>{text}</p>")),
        Err(e) => failed(&e.message()),
    }
}

fn client(
    http: &Http,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: &HeaderMap,
) -> ClientInfo {
    ClientInfo::from_request(
        peer.map(|Extension(ConnectInfo(a))| a),
        headers,
        http.trust_proxy,
    )
}

/// `GET /verify-email?token=`.
pub async fn verify_email_form(Query(q): Query<TokenQuery>) -> Response {
    page(
        StatusCode::OK,
        "Confirm your e-mail address",
        &form("/verify-email", &q.token, None, "Confirm"),
    )
}

/// `POST /verify-email`.
pub async fn verify_email(State(http): State<Http>, Form(f): Form<TokenForm>) -> Response {
    outcome(
        accounts::verify_email(&http.state, &f.token, Uuid::now_v7()).await,
        "Address confirmed",
        "Thank you. You can close this page.",
    )
}

/// `GET /invitations/accept?token=`.
pub async fn accept_invitation_form(Query(q): Query<TokenQuery>) -> Response {
    page(
        StatusCode::OK,
        "Join your organisation on Herald",
        &format!(
            "<p>Choose a password (at least 10 characters). If you already have a Herald \
             account, enter its password.</p>{}",
            form("/invitations/accept", &q.token, Some("Password"), "Join")
        ),
    )
}

/// `POST /invitations/accept`.
pub async fn accept_invitation(
    State(http): State<Http>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Form(f): Form<TokenForm>,
) -> Response {
    let client = client(&http, peer, &headers);
    let result = accounts::accept_invitation(
        &http.state,
        &f.token,
        SecretString::from(f.password),
        &client,
        Uuid::now_v7(),
    )
    .await;
    outcome(
        result,
        "Welcome",
        "You have joined the organisation. Sign in with your e-mail address and password.",
    )
}

/// `GET /reset-password?token=`.
pub async fn reset_password_form(Query(q): Query<TokenQuery>) -> Response {
    page(
        StatusCode::OK,
        "Choose a new password",
        &form("/reset-password", &q.token, Some("New password"), "Save"),
    )
}

/// `POST /reset-password`.
pub async fn reset_password(
    State(http): State<Http>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Form(f): Form<TokenForm>,
) -> Response {
    let client = client(&http, peer, &headers);
    let result = accounts::reset_password(
        &http.state,
        &f.token,
        SecretString::from(f.password),
        &client,
        Uuid::now_v7(),
    )
    .await;
    outcome(
        result,
        "Password changed",
        "Your password was changed and every session signed out. Sign in with the new password.",
    )
}
