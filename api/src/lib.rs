//! The `herald` server: the axum application (GraphQL at `/graphql`, health,
//! readiness and metrics), authentication, configuration, the command-line
//! subcommands and the benchmarks. Layout: `app` builds and runs the process,
//! `http` holds the REST routes and middleware, `export` the streamed audit
//! export, `audit_cli` `herald audit verify`, `client` the caller's IP and
//! User-Agent, `graphql` the schema, `state` the shared repositories and
//! read-model queries, `auth` passwords, sessions and API keys, `accounts`
//! the identity flows, `keys` the master key, `totp` the second factor,
//! `ratelimit` the brute-force guard, `hardening` security headers and CORS,
//! `pages` the forms mail links open, `player` the display player page,
//! `sse` the event stream of a display, `bench`, `bench_publish` and
//! `bench_displays` the service-level benchmarks.

pub mod accounts;
pub mod app;
pub mod audit_cli;
pub mod auth;
pub mod bench;
pub mod bench_displays;
pub mod bench_publish;
pub mod client;
pub mod config;
pub mod display;
pub mod error;
pub mod export;
pub mod graphql;
pub mod hardening;
pub mod http;
pub mod keys;
pub mod media;
pub mod pages;
pub mod player;
pub mod presence;
pub mod ratelimit;
pub mod sse;
pub mod state;
pub mod telemetry;
pub mod totp;

pub use app::{Application, Mode};
pub use config::Config;
