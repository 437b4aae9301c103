//! Publishing: campaigns, posts and their schedules, connected Bluesky
//! accounts, and campaign analytics. Its edge is GraphQL only (`graphql`);
//! the publish scheduler itself runs in the `workers` crate.

pub mod graphql;
