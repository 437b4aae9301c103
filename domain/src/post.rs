//! Post: a single post or a thread of up to 25 entries, with its schedule.

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::schedule::{Recurrence, TimeZone};
use crate::text::{Facet, PostText};
use crate::{DomainError, Scoped};

/// Most entries a thread may have.
pub const MAX_ENTRIES: usize = 25;
/// Most language tags per entry (Bluesky's limit).
pub const MAX_LANGS: usize = 3;

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

/// One entry of a post as stored: validated text, language tags, facets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PostEntry {
    pub text: PostText,
    pub langs: Vec<String>,
    pub facets: Vec<Facet>,
}

/// One entry as a user submits it.
#[derive(Debug, Clone)]
pub struct EntryInput {
    pub text: String,
    pub langs: Vec<String>,
}

fn valid_lang(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let primary = parts.next().unwrap_or_default();
    (2..=3).contains(&primary.len())
        && primary.bytes().all(|b| b.is_ascii_alphabetic())
        && parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// Validates a thread: 1 to 25 entries, each with valid text and at most three
/// BCP-47 language tags; facets are computed here so they are stored with it.
pub fn parse_entries(entries: &[EntryInput]) -> Result<Vec<PostEntry>, DomainError> {
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
            Ok(PostEntry {
                facets: text.facets(),
                text,
                langs: entry.langs.clone(),
            })
        })
        .collect()
}

/// Commands on a post.
#[derive(Debug, Clone)]
pub enum PostCommand {
    Create {
        campaign_id: Uuid,
        entries: Vec<PostEntry>,
    },
    Update {
        entries: Vec<PostEntry>,
    },
    Delete,
    /// `time_zone` is the campaign's, looked up by the caller.
    Schedule {
        at: DateTime<Utc>,
        recurrence: Option<String>,
        time_zone: TimeZone,
        now: DateTime<Utc>,
    },
    Reschedule {
        at: DateTime<Utc>,
        now: DateTime<Utc>,
    },
    Cancel,
}

/// Facts about a post.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PostEvent {
    PostCreated {
        tenant_id: Uuid,
        campaign_id: Uuid,
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
}
// Version 2: `PostCreated` entries carry `langs` (a list) and `facets`.
crate::domain_event!(PostEvent, "2");

/// Current state of a post.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Post {
    pub tenant_id: Option<Uuid>,
    pub campaign_id: Option<Uuid>,
    pub entries: Vec<PostEntry>,
    pub status: Option<PostStatus>,
    pub scheduled_at: Option<DateTime<Utc>>,
    pub recurrence: Option<Recurrence>,
    pub deleted: bool,
}

impl Post {
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
        Scoped { tenant_id, command }: Self::Command,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), DomainError> {
        use PostStatus::*;
        let event = match command {
            PostCommand::Create {
                campaign_id,
                entries,
            } => {
                if self.tenant_id.is_some() {
                    return Err(DomainError::Conflict("post already exists".into()));
                }
                PostEvent::PostCreated {
                    tenant_id,
                    campaign_id,
                    entries,
                }
            }
            _ if self.tenant_id != Some(tenant_id) || self.deleted => {
                return Err(DomainError::NotFound("post"));
            }
            PostCommand::Update { entries } => {
                self.require(&[Draft, Pending, Failed, Cancelled], "edit")?;
                PostEvent::PostUpdated { entries }
            }
            PostCommand::Delete => {
                self.require(&[Draft, Pending, Done, Failed, Cancelled], "delete")?;
                PostEvent::PostDeleted
            }
            PostCommand::Schedule {
                at,
                recurrence,
                time_zone,
                now,
            } => {
                self.require(&[Draft, Failed, Cancelled], "schedule")?;
                require_future(at, now)?;
                let recurrence = recurrence
                    .map(|r| Recurrence::parse(&r, at, time_zone))
                    .transpose()?;
                PostEvent::PostScheduled {
                    at,
                    recurrence,
                    time_zone,
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
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: PostEvent) {
        match event {
            PostEvent::PostCreated {
                tenant_id,
                campaign_id,
                entries,
            } => {
                self.tenant_id = Some(tenant_id);
                self.campaign_id = Some(campaign_id);
                self.entries = entries;
                self.status = Some(PostStatus::Draft);
            }
            PostEvent::PostUpdated { entries } => self.entries = entries,
            PostEvent::PostScheduled { at, recurrence, .. } => {
                self.scheduled_at = Some(at);
                self.recurrence = recurrence;
                self.status = Some(PostStatus::Pending);
            }
            PostEvent::PostRescheduled { at } => {
                self.scheduled_at = Some(at);
                self.status = Some(PostStatus::Pending);
            }
            PostEvent::PostCancelled => self.status = Some(PostStatus::Cancelled),
            PostEvent::PostDeleted => self.deleted = true,
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
                })
                .collect::<Vec<_>>(),
        )
        .unwrap()
    }

    fn created() -> PostEvent {
        PostEvent::PostCreated {
            tenant_id: tenant(),
            campaign_id: Uuid::from_u128(9),
            entries: entries(&["hello #launch"]),
        }
    }

    fn now() -> DateTime<Utc> {
        "2027-01-01T00:00:00Z".parse().unwrap()
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
                    langs: vec![],
                })
                .collect::<Vec<_>>()
        };
        assert!(parse_entries(&input(25)).is_ok());
        assert!(
            matches!(parse_entries(&input(26)), Err(DomainError::Validation { field, .. }) if field == "entries")
        );
        assert!(parse_entries(&input(0)).is_err());
        let bad_lang = [EntryInput {
            text: "hi".into(),
            langs: vec!["english!".into()],
        }];
        assert!(
            matches!(parse_entries(&bad_lang), Err(DomainError::Validation { field, .. }) if field == "entries.0.langs")
        );
    }

    #[test]
    fn entries_store_their_facets() {
        let e = entries(&["hello #launch"]);
        assert_eq!(e[0].facets.len(), 1);
    }

    #[test]
    fn schedule_in_the_future_makes_the_post_pending() {
        let at = now() + chrono::Duration::hours(1);
        Given::with(())
            .given(vec![created()])
            .when(cmd(PostCommand::Schedule {
                at,
                recurrence: Some("FREQ=DAILY".into()),
                time_zone: utc(),
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
                time_zone: utc(),
                now: now(),
            }))
            .then_expect_error(DomainError::invalid("at", "must be in the future"));
        let result = Given::with(())
            .given(vec![created()])
            .when(cmd(PostCommand::Schedule {
                at: now() + chrono::Duration::days(1),
                recurrence: Some("FREQ=NEVER".into()),
                time_zone: utc(),
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
}
