//! Startup: `Application::build` connects, migrates, binds (port 0 in tests)
//! and reports its address; `run` serves until shutdown, alongside the
//! workers when the process runs both.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use anyhow::Context as _;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use domain::sealed::Sealed;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use projections::{Database, Keyring, Opened};
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::config::Config;
use crate::hardening;
use crate::http::{self, Http};
use crate::pages;
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

/// The mail sender of `config`: SMTP when `HERALD_SMTP_URL` is set, the file
/// outbox under the data directory otherwise.
pub fn mail_sender(
    config: &Config,
    db: Database,
    keyring: &Keyring,
) -> anyhow::Result<workers::MailSender> {
    let smtp_url = config.smtp_url.as_ref().map(|u| u.expose_secret());
    // The URL may carry a password: the error names the setting, not the value.
    let transport = workers::Transport::from_config(smtp_url, &config.data_dir)
        .context("invalid HERALD_SMTP_URL")?;
    // Recipients and bodies are sealed; subjects are plain text.
    let keyring = keyring.clone();
    let unseal: workers::mail::Unseal = Arc::new(move |value: String| {
        let keyring = keyring.clone();
        Box::pin(async move {
            if !value.starts_with("hk1:") {
                return Some(value);
            }
            match keyring.open(&Sealed::from_stored(value)).await {
                Ok(Opened::Plain(plain)) => Some(plain),
                Ok(Opened::Erased) | Err(_) => None,
            }
        })
    });
    workers::MailSender::new(db, transport, unseal, &config.mail_from)
        .context("invalid HERALD_MAIL_FROM")
}

/// The base URL for links in mails.
pub fn public_url(config: &Config) -> String {
    config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.listen))
}

/// Connected platform accounts (the Bluesky sessions cache).
pub fn accounts(
    config: &Config,
    db: &Database,
    keyring: &Keyring,
) -> anyhow::Result<workers::accounts::Accounts> {
    workers::accounts::Accounts::new(db.clone(), keyring.clone(), config.directory())
        .context("cannot set up the HTTP client for Bluesky")
}

/// Every projection and log-fed process manager, for `herald worker` and
/// `herald replay`.
pub fn projectors(config: &Config, db: &Database) -> anyhow::Result<projections::Projectors> {
    let keyring = crate::keys::keyring(config, db)?;
    Ok(workers::projectors(
        db.clone(),
        &keyring,
        &public_url(config),
        projections::push::Hub::new(),
    ))
}

/// A bound, ready-to-run Herald process.
pub struct Application {
    listener: TcpListener,
    router: Router,
    state: Arc<AppState>,
    mode: Mode,
    mail: Option<workers::MailSender>,
    publisher: Option<workers::publisher::Publisher>,
    collector: Option<workers::engagement::Collector>,
    shutdown: watch::Sender<bool>,
}

impl Application {
    /// Connects, migrates and binds `config.listen`.
    pub async fn build(config: Config, mode: Mode) -> anyhow::Result<Self> {
        let db = connect(&config).await?;
        let keyring = crate::keys::keyring(&config, &db)?;
        let mail = match mode {
            Mode::Serve => Some(mail_sender(&config, db.clone(), &keyring)?),
            Mode::Api => None,
        };
        let public_url = public_url(&config);
        let accounts = accounts(&config, &db, &keyring)?;
        let state = Arc::new(AppState::new(
            db,
            keyring,
            config.access_ttl_seconds,
            public_url,
            accounts,
            config.media_store()?,
        ));
        let publisher = (mode == Mode::Serve).then(|| {
            workers::publisher(
                &state.db,
                &state.projectors,
                state.accounts.clone(),
                state.media_store.clone(),
                config.publisher(),
            )
        });
        let collector = (mode == Mode::Serve).then(|| {
            workers::collector(
                &state.db,
                &state.projectors,
                state.accounts.clone(),
                config.collector(),
            )
        });
        let http = Http {
            schema: crate::graphql::schema(state.clone()),
            metrics: prometheus(),
            state: state.clone(),
            trust_proxy: config.trust_proxy,
            max_body_bytes: config.max_body_bytes,
            display_registrations_per_minute: config.display_registrations_per_minute,
        };
        let router = Router::new()
            .route(
                "/verify-email",
                get(pages::verify_email_form).post(pages::verify_email),
            )
            .route(
                "/invitations/accept",
                get(pages::accept_invitation_form).post(pages::accept_invitation),
            )
            .route(
                "/reset-password",
                get(pages::reset_password_form).post(pages::reset_password),
            )
            .route("/health", get(http::health))
            .route("/ready", get(http::ready))
            .route("/metrics", get(http::metrics))
            .route("/api/v1/audit/export", get(crate::export::audit_export))
            .merge(crate::display::routes())
            .with_state(http.clone())
            .merge(crate::player::routes())
            // Outside the body limit, so its bare 413 becomes a JSON error.
            .layer(RequestBodyLimitLayer::new(config.max_body_bytes))
            // GraphQL takes uploads too: its limit depends on the body's type.
            .merge(
                Router::new()
                    .route("/graphql", get(http::graphiql).post(http::graphql))
                    .with_state(http.clone())
                    .layer(axum::middleware::from_fn_with_state(
                        http.clone(),
                        http::graphql_body_limit,
                    )),
            )
            // Uploads have their own, larger limit.
            .merge(
                Router::new()
                    .route("/api/v1/media", post(crate::media::upload))
                    .with_state(http)
                    .layer(DefaultBodyLimit::max(crate::media::MAX_UPLOAD_BYTES))
                    .layer(RequestBodyLimitLayer::new(crate::media::MAX_UPLOAD_BYTES)),
            )
            .layer(hardening::cors(&config.cors_origins))
            .layer(axum::middleware::from_fn(http::observe))
            // Outside `observe`, so the JSON error bodies it makes get them too.
            .layer(axum::middleware::from_fn_with_state(
                hardening::Policy::new(&config),
                hardening::security_headers,
            ))
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
            mail,
            publisher,
            collector,
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
    pub async fn run(mut self) -> anyhow::Result<()> {
        let mut workers = match (
            self.mail.take(),
            self.publisher.take(),
            self.collector.take(),
        ) {
            (Some(mail), Some(publisher), Some(collector)) => workers::start(
                &self.state.projectors,
                mail,
                publisher,
                collector,
                self.shutdown.subscribe(),
            ),
            // The API's mutations wait for read models, so an API process
            // also competes for projector leases: read models advance as long
            // as any process runs (the lease keeps one runner per projection).
            _ => self.state.projectors.spawn(self.shutdown.subscribe()),
        };
        workers.push(tokio::spawn(housekeeping(
            self.state.clone(),
            self.shutdown.subscribe(),
        )));
        // Pushes from every process (PostgreSQL), and this process's
        // displays' presence.
        workers.push(
            self.state
                .hub
                .listen(&self.state.db, self.shutdown.subscribe()),
        );
        workers.push(tokio::spawn(crate::presence::run(
            self.state.clone(),
            self.shutdown.subscribe(),
        )));
        let mut stop = self.shutdown.subscribe();
        let hub = self.state.hub.clone();
        tracing::info!(address = %self.address(), mode = ?self.mode, "herald listening");
        // With the peer address, for per-IP rate limits (`http::graphql`).
        let service = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(self.listener, service)
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
                // Open event streams are responses in progress: end them, or
                // the graceful shutdown waits for them for ever.
                hub.close();
            })
            .await
            .context("HTTP server failed")?;
        for task in workers {
            let _ = task.await;
        }
        Ok(())
    }
}

/// Every ten minutes, deletes expired rate-limit rows and sessions that can
/// no longer be used (any process may; the deletes are idempotent).
async fn housekeeping(state: Arc<AppState>, mut shutdown: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(600));
    loop {
        tokio::select! {
            _ = every.tick() => {
                if let Err(error) = state.limiter.cleanup().await {
                    tracing::warn!(%error, "rate-limit cleanup failed");
                }
                if let Err(error) = state.sessions.forget_dead().await {
                    tracing::warn!(error = ?error, "session cleanup failed");
                }
                if let Err(error) = state.signage.forget_expired_devices().await {
                    tracing::warn!(%error, "display registration cleanup failed");
                }
            }
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    return;
                }
            }
        }
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
