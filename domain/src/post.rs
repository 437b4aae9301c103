//! Post: a single post or a thread of up to 25 entries, with its schedule and
//! its publishing history. The scheduler decides at fire time from this
//! state (a cancelled, deleted, edited or rescheduled post is never published
//! at its old time), and every attempt, published entry and failure is an
//! event here.

use chrono::{DateTime, NaiveDate, Utc};
use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::campaign::{Campaign, CampaignStatus};
use crate::connection::ConnectionStatus;
use crate::publish::{FailureKind, PublishedEntry, RetryPolicy};
use crate::schedule::{Recurrence, TimeZone};
use crate::text::{Facet, PostText};
use crate::{DomainError, Scoped};

/// Most entries a thread may have.
pub const MAX_ENTRIES: usize = 25;
/// Most language tags per entry (Bluesky's limit).
pub const MAX_LANGS: usize = 3;
/// Most images per entry (Bluesky's limit).
pub const MAX_IMAGES: usize = 4;
/// Longest alt text, in graphemes.
pub const MAX_ALT: usize = 2000;

/// Publishing status of a post.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PostStatus {
    Draft,
    Pending,
    Running,
    Done,
    Failed,
    Cancelled,
}

impl PostStatus {
    /// Every status, for per-status counts.
    pub const ALL: [PostStatus; 6] = [
        Self::Draft,
        Self::Pending,
        Self::Running,
        Self::Done,
        Self::Failed,
        Self::Cancelled,
    ];

    /// Stable upper-case name used in read models and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "DRAFT",
            Self::Pending => "PENDING",
            Self::Running => "RUNNING",
            Self::Done => "DONE",
            Self::Failed => "FAILED",
            Self::Cancelled => "CANCELLED",
        }
    }
}

/// An image attached to an entry, with the alt text of this use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaUse {
    pub asset_id: Uuid,
    pub alt: String,
}

/// One entry of a post as stored: validated text, language tags, facets and
/// images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PostEntry {
    pub text: PostText,
    pub langs: Vec<String>,
    pub facets: Vec<Facet>,
    #[serde(default)]
    pub media: Vec<MediaUse>,
}

/// One entry as a user submits it.
#[derive(Debug, Clone, Default)]
pub struct EntryInput {
    pub text: String,
    pub langs: Vec<String>,
    pub media: Vec<MediaUse>,
}

fn valid_lang(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let primary = parts.next().unwrap_or_default();
    (2..=3).contains(&primary.len())
        && primary.bytes().all(|b| b.is_ascii_alphabetic())
        && parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// Validates a thread: 1 to 25 entries, each with valid text, at most three
/// BCP-47 language tags and at most four images with alt text of at most
/// 2,000 graphemes (required when `alt_required`); facets are computed here
/// so they are stored with it.
pub fn parse_entries(
    entries: &[EntryInput],
    alt_required: bool,
) -> Result<Vec<PostEntry>, DomainError> {
    if entries.is_empty() || entries.len() > MAX_ENTRIES {
        return Err(DomainError::invalid(
            "entries",
            format!(
                "a post has 1 to {MAX_ENTRIES} entries, got {}",
                entries.len()
            ),
        ));
    }
    entries
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            let text = PostText::parse(&entry.text, &format!("entries.{i}.text"))?;
            if entry.langs.len() > MAX_LANGS || !entry.langs.iter().all(|l| valid_lang(l)) {
                return Err(DomainError::invalid(
                    &format!("entries.{i}.langs"),
                    format!("up to {MAX_LANGS} BCP-47 language tags such as \"en\" or \"de-AT\""),
                ));
            }
            if entry.media.len() > MAX_IMAGES {
                return Err(DomainError::invalid(
                    &format!("entries.{i}.media"),
                    format!(
                        "an entry has at most {MAX_IMAGES} images, got {}",
                        entry.media.len()
                    ),
                ));
            }
            for (j, media) in entry.media.iter().enumerate() {
                let field = format!("entries.{i}.media.{j}.alt");
                if crate::text::graphemes(&media.alt) > MAX_ALT {
                    return Err(DomainError::invalid(
                        &field,
                        format!("alt text has at most {MAX_ALT} characters"),
                    ));
                }
                if alt_required && media.alt.trim().is_empty() {
                    return Err(DomainError::invalid(
                        &field,
                        "the campaign requires alt text for every image",
                    ));
                }
            }
            Ok(PostEntry {
                facets: text.facets(),
                text,
                langs: entry.langs.clone(),
                media: entry.media.clone(),
            })
        })
        .collect()
}

/// Where a post may be scheduled: the campaign's zone and date range.
#[derive(Debug, Clone, Copy)]
pub struct ScheduleWindow {
    pub time_zone: TimeZone,
    pub starts_on: NaiveDate,
    pub ends_on: NaiveDate,
}

impl ScheduleWindow {
    fn check(&self, at: DateTime<Utc>) -> Result<(), DomainError> {
        let day = self.time_zone.today(at);
        if day < self.starts_on || day > self.ends_on {
            return Err(DomainError::invalid(
                "at",
                format!(
                    "{day} ({}) is outside the campaign's dates {} to {}",
                    self.time_zone.name(),
                    self.starts_on,
                    self.ends_on
                ),
            ));
        }
        Ok(())
    }
}

/// What the post rules need to know about a post's campaign, looked up (for
/// the tenant) by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CampaignFacts {
    pub id: Uuid,
    /// An archived campaign takes no new posts.
    pub archived: bool,
}

impl CampaignFacts {
    /// The facts of `campaign`, whose id is `id`.
    pub fn of(id: Uuid, campaign: &Campaign) -> Self {
        Self {
            id,
            archived: campaign.status == Some(CampaignStatus::Archived),
        }
    }
}

/// What the post rules need to know about the connection a post is published
/// to, looked up (for the tenant) by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionFacts {
    pub id: Uuid,
    /// A revoked connection takes no new posts; a degraded one does (its
    /// posts wait for new credentials).
    pub status: ConnectionStatus,
}

/// Commands on a post.
#[derive(Debug, Clone)]
pub enum PostCommand {
    /// `campaign` and `connection` are looked up by the caller.
    Create {
        campaign: CampaignFacts,
        connection: Option<ConnectionFacts>,
        entries: Vec<PostEntry>,
    },
    Update {
        entries: Vec<PostEntry>,
    },
    Delete,
    /// `window` is the campaign's, looked up by the caller.
    Schedule {
        at: DateTime<Utc>,
        recurrence: Option<String>,
        window: ScheduleWindow,
        now: DateTime<Utc>,
    },
    Reschedule {
        at: DateTime<Utc>,
        now: DateTime<Utc>,
    },
    Cancel,
    /// The scheduler fires: start (or resume) publishing the due occurrence.
    StartPublish {
        now: DateTime<Utc>,
    },
    /// One entry of the occurrence now exists on the platform.
    RecordEntry {
        occurrence: DateTime<Utc>,
        entry: PublishedEntry,
    },
    /// Every entry of the occurrence exists; `last` is the final entry when
    /// it is recorded in the same step (one append instead of two).
    CompletePublish {
        occurrence: DateTime<Utc>,
        now: DateTime<Utc>,
        last: Option<PublishedEntry>,
    },
    /// The attempt failed; `jitter` is a uniform sample in [0, 1).
    FailPublish {
        occurrence: DateTime<Utc>,
        kind: FailureKind,
        message: String,
        now: DateTime<Utc>,
        jitter: f64,
        not_before: Option<DateTime<Utc>>,
        policy: RetryPolicy,
    },
    /// A user retries a FAILED post now.
    Retry {
        now: DateTime<Utc>,
    },
    /// The published records were removed from the platform.
    RecordUnpublished,
    /// The engagement collector read the records' counts at `sampled_at`.
    RecordEngagement {
        sampled_at: DateTime<Utc>,
        entries: Vec<EntrySample>,
    },
}

/// Engagement counts of one published record at one moment: cumulative
/// totals as the platform reports them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntrySample {
    pub uri: String,
    pub likes: i64,
    pub reposts: i64,
    pub replies: i64,
    pub quotes: i64,
}

/// A post's engagement summed over its records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngagementTotals {
    pub likes: i64,
    pub reposts: i64,
    pub replies: i64,
    pub quotes: i64,
}

impl EngagementTotals {
    /// The sum over a sample's entries.
    pub fn of(entries: &[EntrySample]) -> Self {
        entries.iter().fold(Self::default(), |t, e| Self {
            likes: t.likes + e.likes,
            reposts: t.reposts + e.reposts,
            replies: t.replies + e.replies,
            quotes: t.quotes + e.quotes,
        })
    }
}

/// Facts about a post.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PostEvent {
    PostCreated {
        tenant_id: Uuid,
        campaign_id: Uuid,
        #[serde(default)]
        connection_id: Option<Uuid>,
        entries: Vec<PostEntry>,
    },
    PostUpdated {
        entries: Vec<PostEntry>,
    },
    PostScheduled {
        at: DateTime<Utc>,
        recurrence: Option<Recurrence>,
        time_zone: TimeZone,
    },
    PostRescheduled {
        at: DateTime<Utc>,
    },
    PostCancelled,
    PostDeleted,
    /// Attempt `attempt` (1-based, per occurrence) of the occurrence due at
    /// `occurrence` began.
    PublishStarted {
        occurrence: DateTime<Utc>,
        attempt: u32,
    },
    EntryPublished {
        occurrence: DateTime<Utc>,
        entry: PublishedEntry,
    },
    /// The whole occurrence is published; a recurring post is due again at
    /// `next_at`.
    PublishSucceeded {
        occurrence: DateTime<Utc>,
        next_at: Option<DateTime<Utc>>,
    },
    /// The attempt failed; retried at `retry_at`, or FAILED when `None`.
    PublishFailed {
        occurrence: DateTime<Utc>,
        attempt: u32,
        kind: FailureKind,
        message: String,
        retry_at: Option<DateTime<Utc>>,
    },
    PublishRetryRequested {
        at: DateTime<Utc>,
    },
    /// Every published record was removed from the platform.
    PostUnpublished {
        uris: Vec<String>,
    },
    /// Engagement counts of the published records at `sampled_at` (a new
    /// variant; older shapes are unchanged, so the version stays 3).
    EngagementSampled {
        sampled_at: DateTime<Utc>,
        entries: Vec<EntrySample>,
    },
}
// Version 3: `PostCreated` carries `connection_id`, entries carry `media`.
crate::domain_event!(PostEvent, "3");

/// Current state of a post.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Post {
    pub tenant_id: Option<Uuid>,
    pub campaign_id: Option<Uuid>,
    pub connection_id: Option<Uuid>,
    pub entries: Vec<PostEntry>,
    pub status: Option<PostStatus>,
    /// Due time of the current occurrence.
    pub scheduled_at: Option<DateTime<Utc>>,
    /// When the scheduler should fire next (the due time, or a retry time).
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub recurrence: Option<Recurrence>,
    pub time_zone: Option<TimeZone>,
    /// First occurrence of a recurring series (the RRULE's DTSTART).
    pub series_start: Option<DateTime<Utc>>,
    /// The occurrence being published (its record keys derive from it).
    pub occurrence: Option<DateTime<Utc>>,
    /// Attempts counted for the current occurrence.
    pub attempt: u32,
    /// Entries of the current occurrence that exist on the platform.
    pub published: Vec<PublishedEntry>,
    /// Every entry ever published (all occurrences), until unpublished.
    pub records: Vec<PublishedEntry>,
    pub last_error: Option<(FailureKind, String)>,
    pub deleted: bool,
    /// When engagement was last recorded, and the totals then (a sample
    /// equal to the previous one is not recorded again).
    #[serde(default)]
    pub last_sampled_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub last_engagement: Option<EngagementTotals>,
}

/// What the scheduler should do with a post it claimed.
#[derive(Debug, Clone, PartialEq)]
pub enum FireDecision {
    /// Publish the occurrence, starting at entry `resume_from`.
    Publish {
        occurrence: DateTime<Utc>,
        resume_from: usize,
    },
    /// Not due (rescheduled or waiting for a retry): look again then.
    NotUntil(DateTime<Utc>),
    /// Nothing to publish (cancelled, deleted, done, failed, draft).
    Nothing,
}

impl Post {
    /// Decides a command without I/O; `Ok(events)` are the facts to append.
    pub fn decide(
        &self,
        Scoped { tenant_id, command }: Scoped<PostCommand>,
    ) -> Result<Vec<PostEvent>, DomainError> {
        use PostStatus::*;
        let event = match command {
            PostCommand::Create {
                campaign,
                connection,
                entries,
            } => {
                if self.tenant_id.is_some() {
                    return Err(DomainError::Conflict("post already exists".into()));
                }
                if campaign.archived {
                    return Err(DomainError::Conflict("the campaign is archived".into()));
                }
                if connection.is_some_and(|c| c.status == ConnectionStatus::Revoked) {
                    return Err(DomainError::Conflict(
                        "the connection was disconnected".into(),
                    ));
                }
                PostEvent::PostCreated {
                    tenant_id,
                    campaign_id: campaign.id,
                    connection_id: connection.map(|c| c.id),
                    entries,
                }
            }
            _ if self.tenant_id != Some(tenant_id) || self.deleted => {
                return Err(DomainError::NotFound("post"));
            }
            PostCommand::Update { entries } => {
                self.require(&[Draft, Pending, Failed, Cancelled], "edit")?;
                if self.partly_published() {
                    return Err(DomainError::Conflict(
                        "part of this thread is already published; delete it or let it finish"
                            .into(),
                    ));
                }
                PostEvent::PostUpdated { entries }
            }
            PostCommand::Delete => {
                self.require(&[Draft, Pending, Done, Failed, Cancelled], "delete")?;
                PostEvent::PostDeleted
            }
            PostCommand::Schedule {
                at,
                recurrence,
                window,
                now,
            } => {
                self.require(&[Draft, Failed, Cancelled], "schedule")?;
                require_future(at, now)?;
                window.check(at)?;
                let recurrence = recurrence
                    .map(|r| Recurrence::parse(&r, at, window.time_zone))
                    .transpose()?;
                PostEvent::PostScheduled {
                    at,
                    recurrence,
                    time_zone: window.time_zone,
                }
            }
            PostCommand::Reschedule { at, now } => {
                self.require(&[Pending, Failed, Cancelled], "reschedule")?;
                require_future(at, now)?;
                PostEvent::PostRescheduled { at }
            }
            PostCommand::Cancel => {
                self.require(&[Pending], "cancel")?;
                PostEvent::PostCancelled
            }
            PostCommand::StartPublish { now } => match self.fire_decision(now) {
                FireDecision::Publish { occurrence, .. } => PostEvent::PublishStarted {
                    occurrence,
                    attempt: self.attempt + 1,
                },
                _ => return Err(DomainError::Conflict("the post is not due".into())),
            },
            PostCommand::RecordEntry { occurrence, entry } => {
                self.require_running(occurrence)?;
                if self.published.iter().any(|e| e.index == entry.index) {
                    return Ok(vec![]);
                }
                PostEvent::EntryPublished { occurrence, entry }
            }
            PostCommand::CompletePublish {
                occurrence,
                now,
                last,
            } => {
                self.require_running(occurrence)?;
                let last =
                    last.filter(|entry| !self.published.iter().any(|e| e.index == entry.index));
                if self.published.len() + usize::from(last.is_some()) < self.entries.len() {
                    return Err(DomainError::Conflict(
                        "not every entry is published yet".into(),
                    ));
                }
                let next_at = match (&self.recurrence, self.time_zone, self.series_start) {
                    (Some(rule), Some(zone), Some(start)) => {
                        rule.next_after(start, zone, occurrence.max(now))
                    }
                    _ => None,
                };
                let succeeded = PostEvent::PublishSucceeded {
                    occurrence,
                    next_at,
                };
                return Ok(match last {
                    Some(entry) => vec![PostEvent::EntryPublished { occurrence, entry }, succeeded],
                    None => vec![succeeded],
                });
            }
            PostCommand::FailPublish {
                occurrence,
                kind,
                message,
                now,
                jitter,
                not_before,
                policy,
            } => {
                self.require_running(occurrence)?;
                PostEvent::PublishFailed {
                    occurrence,
                    attempt: self.attempt,
                    kind,
                    message,
                    retry_at: policy.retry_at(kind, self.attempt, now, jitter, not_before),
                }
            }
            PostCommand::Retry { now } => {
                self.require(&[Failed], "retry")?;
                PostEvent::PublishRetryRequested { at: now }
            }
            PostCommand::RecordUnpublished => {
                if self.records.is_empty() {
                    return Err(DomainError::Conflict(
                        "nothing of this post is published".into(),
                    ));
                }
                self.require(&[Pending, Done, Failed, Cancelled], "unpublish")?;
                PostEvent::PostUnpublished {
                    uris: self.records.iter().map(|r| r.uri.clone()).collect(),
                }
            }
            PostCommand::RecordEngagement {
                sampled_at,
                entries,
            } => {
                if self.records.is_empty() {
                    return Err(DomainError::Conflict(
                        "nothing of this post is published".into(),
                    ));
                }
                // Counts are cumulative: an unchanged sample adds nothing
                // the previous one does not already say.
                if self.last_engagement == Some(EngagementTotals::of(&entries)) {
                    return Ok(vec![]);
                }
                PostEvent::EngagementSampled {
                    sampled_at,
                    entries,
                }
            }
        };
        Ok(vec![event])
    }

    fn require(&self, allowed: &[PostStatus], verb: &str) -> Result<(), DomainError> {
        let status = self.status.expect("existing post has a status");
        if allowed.contains(&status) {
            Ok(())
        } else {
            Err(DomainError::Conflict(format!(
                "cannot {verb} a post that is {}",
                status.as_str()
            )))
        }
    }

    /// The scheduler's decision at `now`, from the current state only.
    pub fn fire_decision(&self, now: DateTime<Utc>) -> FireDecision {
        if self.deleted {
            return FireDecision::Nothing;
        }
        match (self.status, self.next_attempt_at) {
            (Some(PostStatus::Pending | PostStatus::Running), Some(at)) if at > now => {
                FireDecision::NotUntil(at)
            }
            // Running here means a worker died mid-publish: resume.
            (Some(PostStatus::Pending | PostStatus::Running), Some(at)) => FireDecision::Publish {
                occurrence: self.occurrence.unwrap_or(self.scheduled_at.unwrap_or(at)),
                resume_from: self.published.len(),
            },
            _ => FireDecision::Nothing,
        }
    }

    fn require_running(&self, occurrence: DateTime<Utc>) -> Result<(), DomainError> {
        if self.status != Some(PostStatus::Running) || self.occurrence != Some(occurrence) {
            return Err(DomainError::Conflict(
                "the post is not publishing this occurrence".into(),
            ));
        }
        Ok(())
    }

    /// Entries of the current occurrence are already on the platform.
    fn partly_published(&self) -> bool {
        !self.published.is_empty()
    }
}

fn require_future(at: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), DomainError> {
    if at <= now {
        return Err(DomainError::invalid("at", "must be in the future"));
    }
    Ok(())
}

impl Aggregate for Post {
    const TYPE: &'static str = "Post";
    type Command = Scoped<PostCommand>;
    type Event = PostEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), DomainError> {
        crate::record(self.decide(command), self, sink).await
    }

    fn apply(&mut self, event: PostEvent) {
        match event {
            PostEvent::PostCreated {
                tenant_id,
                campaign_id,
                connection_id,
                entries,
            } => {
                self.tenant_id = Some(tenant_id);
                self.campaign_id = Some(campaign_id);
                self.connection_id = connection_id;
                self.entries = entries;
                self.status = Some(PostStatus::Draft);
            }
            PostEvent::PostUpdated { entries } => self.entries = entries,
            PostEvent::PostScheduled {
                at,
                recurrence,
                time_zone,
            } => {
                self.scheduled_at = Some(at);
                self.next_attempt_at = Some(at);
                self.series_start = Some(at);
                self.recurrence = recurrence;
                self.time_zone = Some(time_zone);
                self.attempt = 0;
                self.status = Some(PostStatus::Pending);
            }
            PostEvent::PostRescheduled { at } => {
                self.scheduled_at = Some(at);
                self.next_attempt_at = Some(at);
                self.attempt = 0;
                self.status = Some(PostStatus::Pending);
            }
            PostEvent::PostCancelled => {
                self.status = Some(PostStatus::Cancelled);
                self.next_attempt_at = None;
            }
            PostEvent::PostDeleted => {
                self.deleted = true;
                self.next_attempt_at = None;
            }
            PostEvent::PublishStarted {
                occurrence,
                attempt,
            } => {
                self.status = Some(PostStatus::Running);
                self.occurrence = Some(occurrence);
                self.attempt = attempt;
            }
            PostEvent::EntryPublished { entry, .. } => {
                self.published.push(entry.clone());
                self.records.push(entry);
            }
            PostEvent::PublishSucceeded { next_at, .. } => {
                self.occurrence = None;
                self.published.clear();
                self.attempt = 0;
                self.last_error = None;
                self.next_attempt_at = next_at;
                match next_at {
                    Some(at) => {
                        self.scheduled_at = Some(at);
                        self.status = Some(PostStatus::Pending);
                    }
                    None => self.status = Some(PostStatus::Done),
                }
            }
            PostEvent::PublishFailed {
                kind,
                message,
                retry_at,
                ..
            } => {
                if kind == FailureKind::Auth {
                    // Waiting for the connection is not an attempt.
                    self.attempt = self.attempt.saturating_sub(1);
                }
                self.last_error = Some((kind, message));
                self.next_attempt_at = retry_at;
                self.status = Some(if retry_at.is_some() {
                    PostStatus::Pending
                } else {
                    PostStatus::Failed
                });
            }
            PostEvent::PublishRetryRequested { at } => {
                self.attempt = 0;
                self.next_attempt_at = Some(at);
                self.status = Some(PostStatus::Pending);
            }
            PostEvent::PostUnpublished { .. } => {
                self.records.clear();
                self.published.clear();
            }
            PostEvent::EngagementSampled {
                sampled_at,
                entries,
            } => {
                self.last_sampled_at = Some(sampled_at);
                self.last_engagement = Some(EngagementTotals::of(&entries));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::test::TestFramework;

    type Given = TestFramework<Post>;

    fn tenant() -> Uuid {
        Uuid::from_u128(7)
    }

    fn cmd(command: PostCommand) -> Scoped<PostCommand> {
        Scoped {
            tenant_id: tenant(),
            command,
        }
    }

    fn entries(texts: &[&str]) -> Vec<PostEntry> {
        parse_entries(
            &texts
                .iter()
                .map(|t| EntryInput {
                    text: t.to_string(),
                    langs: vec!["en".into()],
                    media: vec![],
                })
                .collect::<Vec<_>>(),
            false,
        )
        .unwrap()
    }

    fn created() -> PostEvent {
        PostEvent::PostCreated {
            tenant_id: tenant(),
            campaign_id: Uuid::from_u128(9),
            connection_id: Some(Uuid::from_u128(10)),
            entries: entries(&["hello #launch"]),
        }
    }

    fn now() -> DateTime<Utc> {
        "2027-01-01T00:00:00Z".parse().unwrap()
    }

    fn create(archived: bool, connection: Option<ConnectionStatus>) -> Scoped<PostCommand> {
        cmd(PostCommand::Create {
            campaign: CampaignFacts {
                id: Uuid::from_u128(9),
                archived,
            },
            connection: connection.map(|status| ConnectionFacts {
                id: Uuid::from_u128(10),
                status,
            }),
            entries: entries(&["hello #launch"]),
        })
    }

    #[test]
    fn create_records_the_campaign_connection_and_entries() {
        Given::with(())
            .given_no_previous_events()
            .when(create(false, Some(ConnectionStatus::Active)))
            .then_expect_events(vec![created()]);
        Given::with(())
            .given(vec![created()])
            .when(create(false, Some(ConnectionStatus::Active)))
            .then_expect_error(DomainError::Conflict("post already exists".into()));
    }

    #[test]
    fn an_archived_campaign_takes_no_new_posts() {
        Given::with(())
            .given_no_previous_events()
            .when(create(true, None))
            .then_expect_error(DomainError::Conflict("the campaign is archived".into()));
    }

    #[test]
    fn a_disconnected_connection_takes_no_new_posts_but_a_degraded_one_does() {
        Given::with(())
            .given_no_previous_events()
            .when(create(false, Some(ConnectionStatus::Revoked)))
            .then_expect_error(DomainError::Conflict(
                "the connection was disconnected".into(),
            ));
        // Its posts wait for new credentials instead of failing.
        Given::with(())
            .given_no_previous_events()
            .when(create(false, Some(ConnectionStatus::Degraded)))
            .then_expect_events(vec![created()]);
        Given::with(())
            .given_no_previous_events()
            .when(create(false, None))
            .then_expect_events(vec![PostEvent::PostCreated {
                tenant_id: tenant(),
                campaign_id: Uuid::from_u128(9),
                connection_id: None,
                entries: entries(&["hello #launch"]),
            }]);
    }

    fn utc() -> TimeZone {
        TimeZone::parse("UTC").unwrap()
    }

    #[test]
    fn thread_limits_are_enforced() {
        let input = |n| {
            (0..n)
                .map(|i| EntryInput {
                    text: format!("entry {i}"),
                    ..Default::default()
                })
                .collect::<Vec<_>>()
        };
        assert!(parse_entries(&input(25), false).is_ok());
        assert!(
            matches!(parse_entries(&input(26), false), Err(DomainError::Validation { field, .. }) if field == "entries")
        );
        assert!(parse_entries(&input(0), false).is_err());
        let bad_lang = [EntryInput {
            text: "hi".into(),
            langs: vec!["english!".into()],
            media: vec![],
        }];
        assert!(
            matches!(parse_entries(&bad_lang, false), Err(DomainError::Validation { field, .. }) if field == "entries.0.langs")
        );
    }

    #[test]
    fn entries_store_their_facets() {
        let e = entries(&["hello #launch"]);
        assert_eq!(e[0].facets.len(), 1);
    }

    fn image(alt: &str) -> MediaUse {
        MediaUse {
            asset_id: Uuid::from_u128(11),
            alt: alt.into(),
        }
    }

    #[test]
    fn at_most_four_images_and_alt_text_when_the_campaign_requires_it() {
        let with = |media: Vec<MediaUse>| {
            [EntryInput {
                text: "look".into(),
                langs: vec![],
                media,
            }]
        };
        assert!(parse_entries(&with(vec![image("a"); 4]), true).is_ok());
        assert!(
            matches!(parse_entries(&with(vec![image("a"); 5]), false), Err(DomainError::Validation { field, .. }) if field == "entries.0.media")
        );
        assert!(parse_entries(&with(vec![image("")]), false).is_ok());
        assert!(
            matches!(parse_entries(&with(vec![image("a"), image(" ")]), true), Err(DomainError::Validation { field, .. }) if field == "entries.0.media.1.alt")
        );
    }

    fn window() -> ScheduleWindow {
        ScheduleWindow {
            time_zone: utc(),
            starts_on: "2026-12-01".parse().unwrap(),
            ends_on: "2027-12-31".parse().unwrap(),
        }
    }

    #[test]
    fn schedule_outside_the_campaign_dates_is_rejected() {
        let result = Given::with(())
            .given(vec![created()])
            .when(cmd(PostCommand::Schedule {
                at: "2028-01-01T00:00:00Z".parse().unwrap(),
                recurrence: None,
                window: window(),
                now: now(),
            }))
            .inspect_result();
        assert!(matches!(result, Err(DomainError::Validation { field, .. }) if field == "at"));
    }

    #[test]
    fn schedule_in_the_future_makes_the_post_pending() {
        let at = now() + chrono::Duration::hours(1);
        Given::with(())
            .given(vec![created()])
            .when(cmd(PostCommand::Schedule {
                at,
                recurrence: Some("FREQ=DAILY".into()),
                window: window(),
                now: now(),
            }))
            .then_expect_events(vec![PostEvent::PostScheduled {
                at,
                recurrence: Some(Recurrence::parse("FREQ=DAILY", at, utc()).unwrap()),
                time_zone: utc(),
            }]);
    }

    #[test]
    fn schedule_in_the_past_or_with_a_bad_rule_is_rejected() {
        Given::with(())
            .given(vec![created()])
            .when(cmd(PostCommand::Schedule {
                at: now(),
                recurrence: None,
                window: window(),
                now: now(),
            }))
            .then_expect_error(DomainError::invalid("at", "must be in the future"));
        let result = Given::with(())
            .given(vec![created()])
            .when(cmd(PostCommand::Schedule {
                at: now() + chrono::Duration::days(1),
                recurrence: Some("FREQ=NEVER".into()),
                window: window(),
                now: now(),
            }))
            .inspect_result();
        assert!(
            matches!(result, Err(DomainError::Validation { field, .. }) if field == "recurrence")
        );
    }

    #[test]
    fn cancel_only_pending_and_deleted_posts_vanish() {
        let scheduled = PostEvent::PostScheduled {
            at: now(),
            recurrence: None,
            time_zone: utc(),
        };
        Given::with(())
            .given(vec![created(), scheduled])
            .when(cmd(PostCommand::Cancel))
            .then_expect_events(vec![PostEvent::PostCancelled]);
        Given::with(())
            .given(vec![created()])
            .when(cmd(PostCommand::Cancel))
            .then_expect_error(DomainError::Conflict(
                "cannot cancel a post that is DRAFT".into(),
            ));
        Given::with(())
            .given(vec![created(), PostEvent::PostDeleted])
            .when(cmd(PostCommand::Update {
                entries: entries(&["x"]),
            }))
            .then_expect_error(DomainError::NotFound("post"));
    }

    #[test]
    fn another_tenant_sees_not_found() {
        Given::with(())
            .given(vec![created()])
            .when(Scoped {
                tenant_id: Uuid::from_u128(8),
                command: PostCommand::Delete,
            })
            .then_expect_error(DomainError::NotFound("post"));
    }
    fn due() -> DateTime<Utc> {
        now() + chrono::Duration::hours(1)
    }

    fn scheduled(recurrence: Option<&str>) -> PostEvent {
        PostEvent::PostScheduled {
            at: due(),
            recurrence: recurrence.map(|r| Recurrence::parse(r, due(), utc()).unwrap()),
            time_zone: utc(),
        }
    }

    fn published(index: u32) -> PublishedEntry {
        PublishedEntry {
            index,
            rkey: format!("rkey{index}"),
            uri: format!("at://did:plc:a/app.bsky.feed.post/rkey{index}"),
            cid: format!("cid{index}"),
            warnings: vec![],
        }
    }

    fn two_entries() -> PostEvent {
        PostEvent::PostUpdated {
            entries: entries(&["first", "second"]),
        }
    }

    fn state(events: Vec<PostEvent>) -> Post {
        let mut post = Post::default();
        for event in events {
            post.apply(event);
        }
        post
    }

    #[test]
    fn the_decision_is_taken_from_the_current_state_at_fire_time() {
        let at = due();
        let pending = state(vec![created(), scheduled(None)]);
        assert_eq!(
            pending.fire_decision(at),
            FireDecision::Publish {
                occurrence: at,
                resume_from: 0
            }
        );
        assert_eq!(
            pending.fire_decision(at - chrono::Duration::seconds(1)),
            FireDecision::NotUntil(at)
        );
        let later = at + chrono::Duration::days(1);
        let moved = state(vec![
            created(),
            scheduled(None),
            PostEvent::PostRescheduled { at: later },
        ]);
        assert_eq!(moved.fire_decision(at), FireDecision::NotUntil(later));
        let cancelled = state(vec![created(), scheduled(None), PostEvent::PostCancelled]);
        assert_eq!(cancelled.fire_decision(at), FireDecision::Nothing);
        let deleted = state(vec![created(), scheduled(None), PostEvent::PostDeleted]);
        assert_eq!(deleted.fire_decision(at), FireDecision::Nothing);
        Given::with(())
            .given(vec![created(), scheduled(None), PostEvent::PostCancelled])
            .when(cmd(PostCommand::StartPublish { now: at }))
            .then_expect_error(DomainError::Conflict("the post is not due".into()));
    }

    #[test]
    fn a_thread_that_failed_half_way_resumes_where_it_stopped() {
        let at = due();
        let history = vec![
            created(),
            two_entries(),
            scheduled(None),
            PostEvent::PublishStarted {
                occurrence: at,
                attempt: 1,
            },
            PostEvent::EntryPublished {
                occurrence: at,
                entry: published(0),
            },
            PostEvent::PublishFailed {
                occurrence: at,
                attempt: 1,
                kind: FailureKind::Transient,
                message: "timeout".into(),
                retry_at: Some(at + chrono::Duration::seconds(3)),
            },
        ];
        let post = state(history.clone());
        assert_eq!(post.status, Some(PostStatus::Pending));
        assert_eq!(
            post.fire_decision(at + chrono::Duration::seconds(3)),
            FireDecision::Publish {
                occurrence: at,
                resume_from: 1
            }
        );
        Given::with(())
            .given(history.clone())
            .when(cmd(PostCommand::StartPublish {
                now: at + chrono::Duration::seconds(3),
            }))
            .then_expect_events(vec![PostEvent::PublishStarted {
                occurrence: at,
                attempt: 2,
            }]);
        // Edits would change what the rest of the thread replies to.
        let result = Given::with(())
            .given(history)
            .when(cmd(PostCommand::Update {
                entries: entries(&["other"]),
            }))
            .inspect_result();
        assert!(matches!(result, Err(DomainError::Conflict(_))));
    }

    #[test]
    fn a_worker_that_died_mid_publish_is_resumed_and_recording_twice_is_harmless() {
        let at = due();
        let history = vec![
            created(),
            two_entries(),
            scheduled(None),
            PostEvent::PublishStarted {
                occurrence: at,
                attempt: 1,
            },
            PostEvent::EntryPublished {
                occurrence: at,
                entry: published(0),
            },
        ];
        assert_eq!(
            state(history.clone()).fire_decision(at + chrono::Duration::minutes(5)),
            FireDecision::Publish {
                occurrence: at,
                resume_from: 1
            }
        );
        Given::with(())
            .given(history.clone())
            .when(cmd(PostCommand::RecordEntry {
                occurrence: at,
                entry: published(0),
            }))
            .then_expect_events(vec![]);
        Given::with(())
            .given(history)
            .when(cmd(PostCommand::CompletePublish {
                occurrence: at,
                now: at,
                last: None,
            }))
            .then_expect_error(DomainError::Conflict(
                "not every entry is published yet".into(),
            ));
    }

    #[test]
    fn the_last_entry_and_success_are_recorded_in_one_step() {
        let at = due();
        Given::with(())
            .given(vec![
                created(),
                two_entries(),
                scheduled(None),
                PostEvent::PublishStarted {
                    occurrence: at,
                    attempt: 1,
                },
                PostEvent::EntryPublished {
                    occurrence: at,
                    entry: published(0),
                },
            ])
            .when(cmd(PostCommand::CompletePublish {
                occurrence: at,
                now: at,
                last: Some(published(1)),
            }))
            .then_expect_events(vec![
                PostEvent::EntryPublished {
                    occurrence: at,
                    entry: published(1),
                },
                PostEvent::PublishSucceeded {
                    occurrence: at,
                    next_at: None,
                },
            ]);
    }

    #[test]
    fn a_recurring_post_is_due_again_at_its_next_occurrence() {
        let at = due();
        Given::with(())
            .given(vec![
                created(),
                scheduled(Some("FREQ=DAILY")),
                PostEvent::PublishStarted {
                    occurrence: at,
                    attempt: 1,
                },
                PostEvent::EntryPublished {
                    occurrence: at,
                    entry: published(0),
                },
            ])
            .when(cmd(PostCommand::CompletePublish {
                occurrence: at,
                now: at,
                last: None,
            }))
            .then_expect_events(vec![PostEvent::PublishSucceeded {
                occurrence: at,
                next_at: Some(at + chrono::Duration::days(1)),
            }]);
    }

    #[test]
    fn attempts_run_out_into_failed_and_retry_post_starts_over() {
        let at = due();
        let policy = RetryPolicy {
            max_attempts: 2,
            ..Default::default()
        };
        let fail = |kind| {
            cmd(PostCommand::FailPublish {
                occurrence: at,
                kind,
                message: "boom".into(),
                now: at,
                jitter: 0.5,
                not_before: None,
                policy,
            })
        };
        let second_attempt = vec![
            created(),
            scheduled(None),
            PostEvent::PublishStarted {
                occurrence: at,
                attempt: 2,
            },
        ];
        Given::with(())
            .given(second_attempt.clone())
            .when(fail(FailureKind::Transient))
            .then_expect_events(vec![PostEvent::PublishFailed {
                occurrence: at,
                attempt: 2,
                kind: FailureKind::Transient,
                message: "boom".into(),
                retry_at: None,
            }]);
        // Lost credentials are not the post's attempt: it waits.
        let mut waiting = second_attempt.clone();
        waiting.push(PostEvent::PublishFailed {
            occurrence: at,
            attempt: 2,
            kind: FailureKind::Auth,
            message: "AuthenticationRequired".into(),
            retry_at: Some(at),
        });
        let post = state(waiting);
        assert_eq!(post.status, Some(PostStatus::Pending));
        assert_eq!(post.attempt, 1);
        let mut dead = second_attempt;
        dead.push(PostEvent::PublishFailed {
            occurrence: at,
            attempt: 2,
            kind: FailureKind::Transient,
            message: "boom".into(),
            retry_at: None,
        });
        assert_eq!(state(dead.clone()).status, Some(PostStatus::Failed));
        let later = at + chrono::Duration::hours(1);
        Given::with(())
            .given(dead.clone())
            .when(cmd(PostCommand::Retry { now: later }))
            .then_expect_events(vec![PostEvent::PublishRetryRequested { at: later }]);
        dead.push(PostEvent::PublishRetryRequested { at: later });
        assert_eq!(
            state(dead).fire_decision(later),
            FireDecision::Publish {
                occurrence: at,
                resume_from: 0
            }
        );
    }

    #[test]
    fn unpublishing_needs_published_records() {
        let at = due();
        let done = vec![
            created(),
            scheduled(None),
            PostEvent::PublishStarted {
                occurrence: at,
                attempt: 1,
            },
            PostEvent::EntryPublished {
                occurrence: at,
                entry: published(0),
            },
            PostEvent::PublishSucceeded {
                occurrence: at,
                next_at: None,
            },
        ];
        assert_eq!(state(done.clone()).status, Some(PostStatus::Done));
        Given::with(())
            .given(done)
            .when(cmd(PostCommand::RecordUnpublished))
            .then_expect_events(vec![PostEvent::PostUnpublished {
                uris: vec![published(0).uri],
            }]);
        Given::with(())
            .given(vec![created()])
            .when(cmd(PostCommand::RecordUnpublished))
            .then_expect_error(DomainError::Conflict(
                "nothing of this post is published".into(),
            ));
    }

    fn sample(likes: i64, replies: i64) -> Vec<EntrySample> {
        vec![EntrySample {
            uri: published(0).uri,
            likes,
            reposts: 0,
            replies,
            quotes: 0,
        }]
    }

    fn published_post() -> Vec<PostEvent> {
        let at = due();
        vec![
            created(),
            scheduled(None),
            PostEvent::PublishStarted {
                occurrence: at,
                attempt: 1,
            },
            PostEvent::EntryPublished {
                occurrence: at,
                entry: published(0),
            },
            PostEvent::PublishSucceeded {
                occurrence: at,
                next_at: None,
            },
        ]
    }

    #[test]
    fn engagement_is_recorded_for_published_posts_once_even_when_zero() {
        let at = due() + chrono::Duration::minutes(5);
        let record = |likes, replies| {
            cmd(PostCommand::RecordEngagement {
                sampled_at: at,
                entries: sample(likes, replies),
            })
        };
        // The first sample is recorded even with nothing to count.
        Given::with(())
            .given(published_post())
            .when(record(0, 0))
            .then_expect_events(vec![PostEvent::EngagementSampled {
                sampled_at: at,
                entries: sample(0, 0),
            }]);
        let mut sampled = published_post();
        sampled.push(PostEvent::EngagementSampled {
            sampled_at: at,
            entries: sample(1, 0),
        });
        // Unchanged counts are not recorded again; changed ones are.
        Given::with(())
            .given(sampled.clone())
            .when(record(1, 0))
            .then_expect_events(vec![]);
        Given::with(())
            .given(sampled.clone())
            .when(record(1, 1))
            .then_expect_events(vec![PostEvent::EngagementSampled {
                sampled_at: at,
                entries: sample(1, 1),
            }]);
        let post = state(sampled);
        assert_eq!(post.last_sampled_at, Some(at));
        assert_eq!(
            post.last_engagement,
            Some(EngagementTotals {
                likes: 1,
                ..Default::default()
            })
        );
    }

    #[test]
    fn engagement_needs_published_records_and_an_existing_post() {
        let record = cmd(PostCommand::RecordEngagement {
            sampled_at: now(),
            entries: sample(1, 0),
        });
        Given::with(())
            .given(vec![created()])
            .when(record.clone())
            .then_expect_error(DomainError::Conflict(
                "nothing of this post is published".into(),
            ));
        let mut deleted = published_post();
        deleted.push(PostEvent::PostDeleted);
        Given::with(())
            .given(deleted)
            .when(record)
            .then_expect_error(DomainError::NotFound("post"));
    }
}
