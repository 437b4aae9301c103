//! Background work of a `herald worker` (or `herald serve`) process: the
//! projector runners and the process managers (today the mail sender in
//! `mail`; the publish scheduler joins them here). Every task stops when
//! `shutdown` flips to true.

pub mod bluesky;
pub mod mail;
pub mod mail_intents;

use projections::Projectors;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use mail::{Mail, MailSender, Transport};

use std::sync::Arc;

use projections::{Database, Keyring};

/// Every projection and log-fed process manager of Herald over `db`.
pub fn projectors(db: Database, keyring: &Keyring, public_url: &str) -> Projectors {
    Projectors::new(db).with(Arc::new(mail_intents::MailIntents::new(
        keyring.clone(),
        public_url,
    )))
}

/// Starts every background task of a worker process.
pub fn start(
    projectors: &Projectors,
    mail: MailSender,
    shutdown: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    tracing::info!(projections = ?projectors.names(), "starting projectors");
    let mut tasks = projectors.spawn(shutdown.clone());
    tasks.push(tokio::spawn(mail.run(shutdown)));
    tasks
}
