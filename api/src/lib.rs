//! The `herald` server: the axum application, the GraphQL schema, the REST
//! routes and the command-line subcommands.
//!
//! Layout, one folder per feature, each holding its GraphQL types and
//! resolvers, its REST routes and its services:
//! - `identity`: accounts, authentication, sessions, API keys, TOTP, the
//!   master key, rate limits and the pages mail links open;
//! - `publishing`: campaigns, posts, connections and campaign analytics;
//! - `signage`: the display API, its event stream, the player page,
//!   presence, and the signage GraphQL operations;
//! - `media`: uploads (REST and GraphQL) and the media queries;
//! - `audit`: the audit log query, the streamed export and
//!   `herald audit verify`.
//!
//! Shared by all of them: `http` (REST helpers, middleware, the caller's
//! address, security headers), `graphql` (what every resolver uses: the
//! caller, paging, ids, the input guard), `input` (the edge rules every
//! input is held to), `ids` (the ids a request gives what it creates: derived
//! from its `Idempotency-Key` when it has one), `state` (repositories and
//! read-model queries) and `error`. A feature uses another only through its public items; `schema`
//! assembles the features' GraphQL types and serves `/graphql`, and `app`
//! wires everything into a process. The benchmarks are the `bench` crate.

// The merged GraphQL roots (features merging their aggregates' objects)
// nest deeper futures than the default limit lets rustc lay out.
#![recursion_limit = "256"]

pub mod app;
pub mod audit;
pub mod error;
pub mod graphql;
pub mod http;
pub mod identity;
pub mod ids;
pub mod input;
pub mod media;
pub mod publishing;
pub mod schema;
pub mod settings;
pub mod signage;
pub mod state;
pub mod supervisor;
pub mod telemetry;

pub use app::{Application, Mode};
pub use settings::Settings;
