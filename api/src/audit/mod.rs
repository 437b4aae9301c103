//! The audit trail at the edge: the `auditLog` query (`graphql`), the
//! streamed export `GET /api/v1/audit/export` (`export`) and
//! `herald audit verify` (`cli`). The hash chain itself is
//! `domain::audit`; its read model `projections::audit`.

pub mod cli;
pub mod export;
pub mod graphql;
