//! The identity GraphQL operations: the caller's account and sessions
//! (`account`), members, invitations and API keys (`members`).

pub mod account;
pub mod members;

pub use account::{AccountMutation, AccountQuery};
pub use members::{MemberMutation, MemberQuery};
