//! Settings: one typed, nested struct, each default written once (the
//! `Default` impls below), layered from the lowest to the highest:
//!
//! 1. the defaults, which need no setup (SQLite in the working directory);
//! 2. `herald.toml` in the working directory, or the file `--config` (or
//!    `HERALD_CONFIG`) names, in the shape `herald config` prints;
//! 3. a `.env` file in the working directory (`NAME=value` lines);
//! 4. environment variables;
//! 5. command-line flags.
//!
//! Every setting has one row in [`SETTINGS`]: its key in the file, its
//! environment variable and its flag. Secrets (the database URL, master
//! keys, the SMTP URL) are [`SecretString`]s: `Debug` and `herald config`
//! show them as `[redacted]`, and no error names their value. Figment does
//! the layering; values from `.env`, the environment and flags are strings,
//! read leniently (`yes`/`no`, `1`/`0` for switches; comma-separated
//! lists).
//!
//! Layout: `model` holds the struct and its defaults, `sources` the layering
//! (the table of variables and flags, `.env`, the file) and the flags of the
//! command line, `secret` how secrets are read and shown.

mod model;
mod secret;
mod sources;

pub use model::{
    BlueskySettings, DatabaseSettings, HttpSettings, IdentitySettings, MailSettings, MediaSettings,
    PublishingSettings, Settings, SignageSettings,
};
pub use secret::REDACTED;
pub use sources::{DEFAULT_FILE, Kind, SETTINGS, Setting, SettingsArgs, Sources};

#[cfg(test)]
mod tests;
