//! What every feature's resolvers share: the caller and its permission
//! (`principal`, `person`), the request's correlation id and client, the
//! application state, id parsing, and connection paging with opaque cursors.
//! The schema itself is assembled in `crate::schema`.

pub mod guard;
pub mod once_per_request;
pub mod uploads;

use std::sync::Arc;

use async_graphql::Context;
use async_graphql::connection::{Connection, Edge};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cqrs_es::Aggregate;
use domain::access::Action;
use domain::{DomainError, Scoped};
use projections::Repository;
use projections::store::Committed;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::http::Correlation;
use crate::http::client::ClientInfo;
use crate::identity::auth::{Caller, Principal};
use crate::state::{AppState, ShownIn, Target};

/// Largest page size.
pub const MAX_PAGE: i32 = 100;

pub fn state<'a>(ctx: &Context<'a>) -> &'a AppState {
    ctx.data_unchecked::<Arc<AppState>>()
}

/// The client's address and user agent.
pub fn client(ctx: &Context<'_>) -> ClientInfo {
    ctx.data_opt::<ClientInfo>().cloned().unwrap_or_default()
}

/// The signed-in person behind the caller (API keys have none).
pub fn person<'a>(ctx: &Context<'a>, action: Action) -> ApiResult<(&'a Principal, Uuid)> {
    let p = principal(ctx, action)?;
    let user = p.user_id.ok_or_else(|| {
        ApiError::Forbidden("only a signed-in person can do this, not an API key".into())
    })?;
    Ok((p, user))
}

pub fn correlation(ctx: &Context<'_>) -> Uuid {
    ctx.data_opt::<Correlation>()
        .map_or_else(Uuid::now_v7, |c| c.0)
}

/// The authenticated caller, allowed to perform `action` by the matrix in
/// `domain::access`.
pub fn principal<'a>(ctx: &Context<'a>, action: Action) -> ApiResult<&'a Principal> {
    match ctx.data_opt::<Caller>() {
        Some(Caller::Authenticated(p)) => {
            p.permit(action)?;
            Ok(p)
        }
        Some(Caller::Invalid) => Err(ApiError::Unauthenticated(
            "the access token is invalid or has expired",
        )),
        _ => Err(ApiError::Unauthenticated(
            "sign in and send Authorization: Bearer <accessToken>",
        )),
    }
}

/// Runs `command` for the resolver's caller through the one command path,
/// [`AppState::execute`], on the repository `repo` picks.
pub async fn execute<A, C>(
    ctx: &Context<'_>,
    p: &Principal,
    repo: impl FnOnce(&AppState) -> &Repository<A>,
    target: Target,
    command: C,
) -> ApiResult<Committed>
where
    A: Aggregate<Command = Scoped<C>, Services = (), Error = DomainError>
        + ShownIn
        + Clone
        + 'static,
    C: Clone,
{
    let st = state(ctx);
    st.execute(repo(st), p, correlation(ctx), target, command)
        .await
}

/// Parses a UUID argument.
pub fn parse_id(raw: &str, field: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(raw).map_err(|_| ApiError::invalid(field, "not a valid id"))
}

/// Validates `first`.
pub fn page_size(first: Option<i32>) -> ApiResult<i64> {
    let first = first.unwrap_or(20);
    if !(1..=MAX_PAGE).contains(&first) {
        return Err(ApiError::invalid(
            "first",
            format!("must be between 1 and {MAX_PAGE}"),
        ));
    }
    Ok(first as i64)
}

/// Complexity of a connection page: `first` items of `child` cost each.
pub fn page_cost(first: Option<i32>, child: usize) -> usize {
    (first.unwrap_or(20).clamp(1, MAX_PAGE) as usize).saturating_mul(child.max(1))
}

/// A connection page from up to `limit + 1` rows (the extra row only tells
/// that a next page exists); `edge` gives each row's cursor and node.
pub fn page<R, N: async_graphql::OutputType>(
    rows: Vec<R>,
    limit: i64,
    has_previous: bool,
    edge: impl Fn(R) -> (String, N),
) -> Connection<String, N> {
    let has_next = rows.len() as i64 > limit;
    let mut connection = Connection::new(has_previous, has_next);
    connection
        .edges
        .extend(rows.into_iter().take(limit as usize).map(|row| {
            let (cursor, node) = edge(row);
            Edge::new(cursor, node)
        }));
    connection
}

/// Opaque cursor of a `(key, id)` position.
pub fn encode_cursor(key: i64, id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{key}:{id}"))
}

/// Reads [`encode_cursor`] back.
pub fn decode_cursor(cursor: Option<String>) -> ApiResult<Option<(i64, String)>> {
    let Some(cursor) = cursor else {
        return Ok(None);
    };
    let invalid = || ApiError::invalid("after", "not a cursor returned by this query");
    let raw = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let raw = String::from_utf8(raw).map_err(|_| invalid())?;
    let (key, id) = raw.split_once(':').ok_or_else(invalid)?;
    let key = key.parse().map_err(|_| invalid())?;
    Uuid::parse_str(id).map_err(|_| invalid())?;
    Ok(Some((key, id.to_string())))
}
