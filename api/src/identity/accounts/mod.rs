//! Account flows that span aggregates and infrastructure: sign-up, sign-in
//! with an optional second factor, invitations, password reset, e-mail
//! verification, TOTP enrollment and erasure. GraphQL resolvers call these and
//! only map inputs and outputs.
//!
//! Personal data about a person (their address, session IPs, user agents) is
//! sealed with that person's data key — known before they register, since
//! user ids derive from the address's blind index — so erasing a user shreds
//! it everywhere, invitations included. Tokens sent by mail are MACs over ids
//! ([`Keyring::issue_token`](projections::Keyring::issue_token)); none is
//! stored.
//!
//! One module per flow: `signup`, `signin` (sessions, refresh, switching
//! tenants), `two_factor` (TOTP codes and enrolment), `invitations`,
//! `recovery` (password reset), `verification` and `erasure`. They share
//! `credentials` (address to user id, password hashes), `metadata` (event
//! metadata without a session) and `guard` (rate-limit keys).

mod credentials;
mod erasure;
mod guard;
mod invitations;
mod metadata;
mod recovery;
mod signin;
mod signup;
mod two_factor;
mod verification;

pub use credentials::user_id_for;
pub use erasure::erase_user;
pub use invitations::{INVITATION_TTL, accept_invitation, invite};
pub use recovery::{RESET_TTL, request_password_reset, reset_password};
pub use signin::{SignedIn, log_in, refresh, switch_tenant};
pub use signup::sign_up;
pub use two_factor::{Enrollment, begin_totp, confirm_totp, use_second_factor};
pub use verification::{VERIFY_TTL, verify_email};

/// Token purposes and prefixes.
pub use projections::crypto::{
    INVITATION_TOKEN as INVITATION, RESET_TOKEN as RESET, VERIFY_TOKEN as VERIFY,
};
