//! Startup: `Application::build` makes a Herald process of any mode from
//! the settings — connects, migrates, binds (port 0 in tests) and reports
//! its address — and `run` runs its tasks under the one [`Supervisor`]
//! until shutdown. Serve, api and worker processes differ only in which
//! tasks they start ([`Mode`]); their wiring is written once, here.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

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

use crate::http::{self, Http, hardening};
use crate::identity::pages;
use crate::schema::{self, Endpoint};
use crate::settings::Settings;
use crate::state::AppState;
use crate::supervisor::Supervisor;

/// How long tasks get to stop after a shutdown is asked for.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Which parts a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// API and workers in one process (`herald serve`).
    Serve,
    /// The API and the projectors (`herald api`); process managers stay in
    /// `herald worker`.
    Api,
    /// The projectors and process managers, no HTTP (`herald worker`).
    Worker,
}

impl Mode {
    fn serves_http(self) -> bool {
        self != Mode::Worker
    }

    fn runs_process_managers(self) -> bool {
        self != Mode::Api
    }
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

/// The mail sender: SMTP when `mail.smtp_url` is set, the file outbox under
/// the data directory otherwise.
fn mail_sender(
    settings: &Settings,
    db: Database,
    keyring: &Keyring,
) -> anyhow::Result<workers::MailSender> {
    let smtp_url = settings.mail.smtp_url.as_ref().map(|u| u.expose_secret());
    // The URL may carry a password: the error names the setting, not the value.
    let transport = workers::Transport::from_config(smtp_url, &settings.data_dir)
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
    workers::MailSender::new(db, transport, unseal, &settings.mail.from)
        .context("invalid HERALD_MAIL_FROM")
}

/// Every projection and log-fed process manager, for `herald replay`.
pub fn projectors(settings: &Settings, db: &Database) -> anyhow::Result<projections::Projectors> {
    let keyring = crate::identity::keys::keyring(settings, db)?;
    Ok(workers::projectors(
        db.clone(),
        &keyring,
        &settings.public_url(),
        projections::push::Hub::new(),
    ))
}

/// A built, ready-to-run Herald process.
pub struct Application {
    /// The bound listener and its routes (not in worker mode).
    http: Option<(TcpListener, Router)>,
    state: Arc<AppState>,
    settings: Settings,
    mode: Mode,
    shutdown: watch::Sender<bool>,
}

impl Application {
    /// Connects, migrates and, unless `mode` is [`Mode::Worker`], binds
    /// `http.listen`.
    pub async fn build(settings: Settings, mode: Mode) -> anyhow::Result<Self> {
        let db = settings.connect().await?;
        let keyring = crate::identity::keys::keyring(&settings, &db)?;
        let accounts =
            workers::accounts::Accounts::new(db.clone(), keyring.clone(), settings.directory())
                .context("cannot set up the HTTP client for Bluesky")?;
        let mut state = AppState::new(
            db,
            keyring,
            settings.identity.access_ttl_seconds,
            settings.public_url(),
            accounts,
            settings.media_store()?,
            settings.node_id.clone(),
        );
        state.sign_ups_per_hour = settings.identity.sign_ups_per_hour;
        let state = Arc::new(state);
        let http = if mode.serves_http() {
            let listen = settings.http.listen;
            let listener = TcpListener::bind(listen)
                .await
                .with_context(|| format!("cannot listen on {listen}"))?;
            Some((listener, router(&settings, state.clone())))
        } else {
            None
        };
        Ok(Self {
            http,
            state,
            settings,
            mode,
            shutdown: watch::channel(false).0,
        })
    }

    /// The bound address. A worker process serves no HTTP: panics there.
    pub fn address(&self) -> SocketAddr {
        let (listener, _) = self.http.as_ref().expect("a worker process serves no HTTP");
        listener
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

    /// Runs the mode's tasks under one supervisor until the shutdown handle
    /// fires or a task fails; every task is then stopped within
    /// [`SHUTDOWN_GRACE`].
    pub async fn run(self) -> anyhow::Result<()> {
        let Self {
            http,
            state,
            settings,
            mode,
            shutdown,
        } = self;
        let mut tasks = Supervisor::new(shutdown);
        // Pins the point `/ready` waits for the read models to reach.
        state.projectors.caught_up().await?;
        tracing::info!(projections = ?state.projectors.names(), "starting projectors");
        // An API process competes for projector leases too: its mutations
        // wait for read models, which advance as long as any process runs
        // (the lease keeps one runner per projection).
        for (name, task) in state.projectors.spawn(tasks.shutdown()) {
            tasks.adopt(name, task);
        }
        // Other processes' commits and wake-ups (PostgreSQL).
        tasks.adopt(
            "checkpoint listener",
            state.projectors.follow(tasks.shutdown()),
        );
        if mode.runs_process_managers() {
            let mail = mail_sender(&settings, state.db.clone(), &state.keyring)?;
            let publisher = workers::publisher(
                &state.db,
                &state.projectors,
                state.accounts.clone(),
                state.media_store.clone(),
                settings.publisher(),
            );
            let collector = workers::collector(
                &state.db,
                &state.projectors,
                state.accounts.clone(),
                settings.collector(),
            );
            tasks.spawn_infallible("mail sender", mail.run(tasks.shutdown()));
            tasks.spawn_infallible("publisher", publisher.run(tasks.shutdown()));
            tasks.spawn_infallible("engagement collector", collector.run(tasks.shutdown()));
        }
        if let Some((listener, router)) = http {
            tasks.spawn_infallible(
                "housekeeping",
                housekeeping(state.clone(), tasks.shutdown()),
            );
            // Pushes from every process (PostgreSQL), and this process's
            // displays' presence.
            tasks.adopt(
                "push listener",
                state.hub.listen(&state.db, tasks.shutdown()),
            );
            tasks.spawn_infallible(
                "display presence",
                crate::signage::presence::run(state.clone(), tasks.shutdown()),
            );
            let address = listener.local_addr()?;
            tracing::info!(%address, ?mode, "herald listening");
            let mut stop = tasks.shutdown();
            let hub = state.hub.clone();
            let limits = http::server::Limits::new(&settings.http);
            let stopped = async move {
                let _ = stop.wait_for(|s| *s).await;
                // Open event streams are responses in progress: end them,
                // or the graceful shutdown waits for them.
                hub.close();
            };
            tasks.spawn_infallible(
                "http server",
                http::server::serve(listener, router, limits, stopped),
            );
        } else {
            tracing::info!(?mode, "herald working");
        }
        tasks.run(SHUTDOWN_GRACE).await
    }
}

/// Every route of the API.
fn router(settings: &Settings, state: Arc<AppState>) -> Router {
    let http = Http {
        metrics: prometheus(),
        state: state.clone(),
        trust_proxy: settings.http.trust_proxy,
        max_body_bytes: settings.http.max_body_bytes,
        display_registrations_per_minute: settings.signage.registrations_per_minute,
    };
    let endpoint = Endpoint {
        http: http.clone(),
        schema: schema::schema(state.clone()),
        introspection: schema::introspection_schema(state),
    };
    let http_state = http.clone();
    Router::new()
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
            .route("/api/v1/audit/export", get(crate::audit::export::audit_export))
            .merge(crate::signage::routes::routes())
            .with_state(http.clone())
            .merge(crate::signage::player::routes())
            // Outside the body limit, so its bare 413 becomes a JSON error.
            .layer(RequestBodyLimitLayer::new(settings.http.max_body_bytes))
            // GraphQL takes uploads too: its limit depends on the body's type.
            .merge(
                Router::new()
                    .route("/graphql", get(schema::graphql_get).post(schema::graphql))
                    .route("/graphql/assets/{name}", get(schema::graphiql::asset))
                    .with_state(endpoint.clone())
                    .layer(axum::middleware::from_fn_with_state(
                        endpoint,
                        schema::graphql_guard,
                    )),
            )
            // Uploads have their own, larger limit.
            .merge(
                Router::new()
                    .route("/api/v1/media", post(crate::media::routes::upload))
                    .with_state(http)
                    .layer(DefaultBodyLimit::max(crate::media::MAX_UPLOAD_BYTES))
                    .layer(RequestBodyLimitLayer::new(crate::media::MAX_UPLOAD_BYTES)),
            )
            // Around every write route, inside the error-body and header layers.
            .layer(axum::middleware::from_fn_with_state(
                http_state,
                http::idempotency::layer,
            ))
            .layer(hardening::cors(&settings.http.cors_origins))
            .layer(axum::middleware::from_fn(http::observe))
            // Outside `observe`, so the JSON error bodies it makes get them too.
            .layer(axum::middleware::from_fn_with_state(
                hardening::Policy::new(&settings.http),
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
            .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
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
                if let Err(error) = http::idempotency::forget_expired(&state.db.any).await {
                    tracing::warn!(%error, "idempotency key cleanup failed");
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
