//! Media: uploading images (`upload`, the one service behind both edges),
//! `POST /api/v1/media` (`routes`) and the media GraphQL operations
//! (`graphql`).

pub mod graphql;
pub mod routes;
pub mod upload;

pub use upload::MAX_UPLOAD_BYTES;
