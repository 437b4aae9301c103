//! Identity: sign-up, sign-in and sessions (`accounts`, `auth`), API keys,
//! second factors (`totp`), members and invitations, the master key
//! (`keys`), brute-force limits (`ratelimit`), the pages mail links open
//! (`pages`), the prefixes that tell Herald's tokens apart (`tokens`) and
//! the identity GraphQL operations (`graphql`).

pub mod accounts;
pub mod auth;
pub mod graphql;
pub mod keys;
pub mod pages;
pub mod ratelimit;
pub mod tokens;
pub mod totp;
