//! The signage GraphQL operations: displays and their groups, notices,
//! categories, playlists, schedules, emergency overrides, proof-of-play
//! analytics and what a display showed at any instant
//! (`displayManifest(asOf:)`).
//!
//! Laid out like `domain::signage`: one module per aggregate (`display`,
//! with pairing and the manifest; `group`, `category`, `notice`,
//! `playlist`, `schedule`, `emergency`, `play_report`), each holding its
//! object types, inputs, queries and mutations, and `support` for what
//! several of them use (the tenant's signage state, the tenant checks,
//! `execute`, the id helpers, `Removed`). This module only merges their
//! queries and mutations.
//!
//! Every id an input names is looked up in the caller's tenant first, so a
//! foreign id is `NOT_FOUND` exactly like one that does not exist.

use async_graphql::MergedObject;

pub mod category;
pub mod display;
pub mod emergency;
pub mod group;
pub mod notice;
pub mod play_report;
pub mod playlist;
pub mod schedule;
pub mod support;

use category::{CategoryMutation, CategoryQuery};
use display::{DisplayMutation, DisplayQuery};
use emergency::{EmergencyMutation, EmergencyQuery};
use group::{GroupMutation, GroupQuery};
use notice::{NoticeMutation, NoticeQuery};
use play_report::PlayReportQuery;
use playlist::{PlaylistMutation, PlaylistQuery};
use schedule::{ScheduleMutation, ScheduleQuery};

/// The signage queries, merged from each aggregate's.
#[derive(MergedObject, Default)]
pub struct SignageQuery(
    DisplayQuery,
    GroupQuery,
    CategoryQuery,
    NoticeQuery,
    PlaylistQuery,
    ScheduleQuery,
    EmergencyQuery,
    PlayReportQuery,
);

/// The signage mutations, merged from each aggregate's.
#[derive(MergedObject, Default)]
pub struct SignageMutation(
    DisplayMutation,
    GroupMutation,
    CategoryMutation,
    NoticeMutation,
    PlaylistMutation,
    ScheduleMutation,
    EmergencyMutation,
);
