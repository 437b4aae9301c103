//! The publishing GraphQL operations: the object types (`objects`), and
//! the queries and mutations of campaigns, posts, connections and campaign
//! analytics.

pub mod analytics;
pub mod campaigns;
pub mod connections;
pub mod objects;
pub mod posts;

pub use analytics::AnalyticsQuery;
pub use campaigns::{CampaignMutation, CampaignQuery};
pub use connections::{ConnectionMutation, ConnectionQuery};
pub use posts::{PostMutation, PostQuery};
