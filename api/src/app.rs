//! Startup: `Application::build` connects, migrates, binds (port 0 in tests)
//! and reports its address; `run` serves until shutdown, alongside the
//! workers when the process runs both.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use anyhow::Context as _;
use axum::Router;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use projections::Database;
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::config::Config;
use crate::http::{self, Http};
use crate::state::AppState;

/// Which parts a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// API and workers in one process (`herald serve`).
    Serve,
    /// The API and the projectors (`herald api`); process managers stay in
    /// `herald worker`.
    Api,
}

fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .install_recorder()
                .expect("no other metrics recorder is installed")
        })
        .clone()
}

/// Connects to the configured database and applies migrations.
pub async fn connect(config: &Config) -> anyhow::Result<Database> {
    let db = Database::connect(config.database_url.expose_secret(), config.db_pool)
        .await
        .context("cannot connect to the database")?;
    db.migrate().await.context("cannot apply migrations")?;
    Ok(db)
}

/// A bound, ready-to-run Herald process.
pub struct Application {
    listener: TcpListener,
    router: Router,
    state: Arc<AppState>,
    mode: Mode,
    shutdown: watch::Sender<bool>,
}

impl Application {
    /// Connects, migrates and binds `config.listen`.
    pub async fn build(config: Config, mode: Mode) -> anyhow::Result<Self> {
        let db = connect(&config).await?;
        let state = Arc::new(AppState::new(db, config.access_ttl_seconds));
        let http = Http {
            schema: crate::graphql::schema(state.clone()),
            metrics: prometheus(),
            state: state.clone(),
        };
        let router = Router::new()
            .route("/graphql", get(http::graphiql).post(http::graphql))
            .route("/health", get(http::health))
            .route("/ready", get(http::ready))
            .route("/metrics", get(http::metrics))
            .with_state(http)
            // Outside the body limit, so its bare 413 becomes a JSON error.
            .layer(RequestBodyLimitLayer::new(config.max_body_bytes))
            .layer(axum::middleware::from_fn(http::observe))
            .layer(TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
                let id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
            }))
            .layer(PropagateRequestIdLayer::x_request_id())
            .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid));
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        Ok(Self {
            listener,
            router,
            state,
            mode,
            shutdown: watch::channel(false).0,
        })
    }

    /// The bound address.
    pub fn address(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    /// Shared state (for tests that need to reach behind the API).
    pub fn state(&self) -> Arc<AppState> {
        self.state.clone()
    }

    /// A handle that stops the application when set to `true`.
    pub fn shutdown_handle(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }

    /// Serves until the shutdown handle fires; in `Serve` mode the workers run
    /// alongside and are stopped with it.
    pub async fn run(self) -> anyhow::Result<()> {
        let workers = match self.mode {
            Mode::Serve => workers::start(&self.state.projectors, self.shutdown.subscribe()),
            // The API's mutations wait for read models, so an API process
            // also competes for projector leases: read models advance as long
            // as any process runs (the lease keeps one runner per projection).
            Mode::Api => self.state.projectors.spawn(self.shutdown.subscribe()),
        };
        let mut stop = self.shutdown.subscribe();
        tracing::info!(address = %self.address(), mode = ?self.mode, "herald listening");
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await
            .context("HTTP server failed")?;
        for task in workers {
            let _ = task.await;
        }
        Ok(())
    }
}

/// Resolves when SIGINT or SIGTERM arrives.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler installs");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
