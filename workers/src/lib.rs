//! Background work of a `herald worker` (or `herald serve`) process: the
//! projector runners and the process managers (the mail sender in `mail`, the
//! publish scheduler in `publisher`, the engagement collector in
//! `engagement`), and the platforms they publish to: the [`platform::Platform`]
//! trait, implemented for Bluesky in `platform::bluesky` over the AT Protocol
//! client in `bluesky` and the connected accounts and their sessions in
//! `accounts`.
//! Every task stops when `shutdown` flips to true.

pub mod accounts;
pub mod bluesky;
pub mod engagement;
pub mod mail;
pub mod mail_intents;
pub mod media;
pub mod platform;
pub mod publisher;

use projections::Projectors;

pub use mail::{Mail, MailSender, Transport};

use std::sync::Arc;

use projections::{Database, Keyring};

/// Every projection and log-fed process manager of Herald over `db`.
/// The signage projection pushes to the displays connected to `hub`.
pub fn projectors(
    db: Database,
    keyring: &Keyring,
    public_url: &str,
    hub: projections::push::Hub,
) -> Projectors {
    Projectors::with_push(db, hub).with(Arc::new(mail_intents::MailIntents::new(
        keyring.clone(),
        public_url,
    )))
}

/// The publish scheduler over `db`, sharing the projectors' wake-up signal;
/// it publishes to Bluesky through the sessions of `accounts`.
pub fn publisher(
    db: &Database,
    projectors: &Projectors,
    accounts: accounts::Accounts,
    media: media::MediaStore,
    config: publisher::PublisherConfig,
) -> publisher::Publisher {
    publisher::Publisher::new(
        projections::publishing::ScheduleIndex::new(db),
        projections::Repository::new(db, projectors.appended.clone()),
        projections::Repository::new(db, projectors.appended.clone()),
        projections::Repository::new(db, projectors.appended.clone()),
        platform::Platforms::new().with(platform::bluesky::Bluesky::new(accounts)),
        media,
        config,
    )
}

/// The engagement collector over `db`, reading Bluesky's counts through
/// the sessions of `accounts`.
pub fn collector(
    db: &Database,
    projectors: &Projectors,
    accounts: accounts::Accounts,
    config: engagement::CollectorConfig,
) -> engagement::Collector {
    engagement::Collector::new(
        db.clone(),
        projections::Repository::new(db, projectors.appended.clone()),
        projections::Repository::new(db, projectors.appended.clone()),
        platform::Platforms::new()
            .with(platform::bluesky::Bluesky::new(accounts).with_appview(config.appview.clone())),
        config,
    )
}
