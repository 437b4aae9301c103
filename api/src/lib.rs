//! The `herald` server: the axum application (GraphQL at `/graphql`, health,
//! readiness and metrics), authentication, configuration, the command-line
//! subcommands and the benchmarks. Layout: `app` builds and runs the process,
//! `http` holds the REST routes and middleware, `graphql` the schema,
//! `state` the shared repositories and read-model queries, `auth` passwords
//! and sessions, `bench` the service-level benchmarks.

pub mod app;
pub mod auth;
pub mod bench;
pub mod config;
pub mod error;
pub mod graphql;
pub mod http;
pub mod state;
pub mod telemetry;

pub use app::{Application, Mode};
pub use config::Config;
