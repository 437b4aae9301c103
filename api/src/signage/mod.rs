//! Digital signage at the edge: the display API (`routes`: registration,
//! manifest, media, plays), the event stream a display keeps open (`sse`),
//! the player page (`player`), presence (`presence`) and the signage GraphQL
//! operations (`graphql`). The rules live in `domain::signage` and
//! `domain::manifest`; the read model and pushes in `projections::signage`.

pub mod graphql;
pub mod player;
pub mod presence;
pub mod routes;
pub mod sse;
