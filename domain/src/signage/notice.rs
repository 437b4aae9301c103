//! The Notice aggregate: a slide's content (title, body, optional media and
//! category) with a validity window, a priority and a duration. Updated
//! whole; deleted notices stay in the log and the state (late play reports
//! name them) but leave every manifest at once.

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{bounded_text, required_name};
use crate::manifest::Validity;
use crate::{DomainError, Scoped};

/// A notice's content (ids of media and category are checked by the caller
/// in the tenant).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoticeContent {
    /// 1 to 200 characters.
    pub title: String,
    /// At most 2,000 characters.
    pub body: String,
    /// An image or video shown with it.
    pub media_id: Option<Uuid>,
    /// Its category.
    pub category_id: Option<Uuid>,
    /// Shown from this instant (open when `None`).
    pub valid_from: Option<DateTime<Utc>>,
    /// Shown until this instant, exclusive (open when `None`).
    pub valid_to: Option<DateTime<Utc>>,
    /// 0 to 100.
    pub priority: i32,
    /// How long it stays on screen, 1 to 3,600 seconds.
    pub duration_seconds: u32,
}

impl NoticeContent {
    /// Validates the input of `createNotice`/`updateNotice`.
    #[allow(clippy::too_many_arguments)]
    pub fn parse(
        title: &str,
        body: &str,
        media_id: Option<Uuid>,
        category_id: Option<Uuid>,
        valid_from: Option<DateTime<Utc>>,
        valid_to: Option<DateTime<Utc>>,
        priority: i32,
        duration_seconds: i32,
    ) -> Result<Self, DomainError> {
        Validity::parse(valid_from, valid_to)?;
        if !(0..=100).contains(&priority) {
            return Err(DomainError::invalid("priority", "between 0 and 100"));
        }
        if !(1..=3600).contains(&duration_seconds) {
            return Err(DomainError::invalid(
                "durationSeconds",
                "between 1 and 3600 seconds",
            ));
        }
        Ok(Self {
            title: required_name(title, "title", 200)?,
            body: bounded_text(body, "body", 2000)?,
            media_id,
            category_id,
            valid_from,
            valid_to,
            priority,
            duration_seconds: duration_seconds as u32,
        })
    }
}

/// What may be asked of a notice.
#[derive(Debug, Clone)]
pub enum NoticeCommand {
    /// Creates it.
    Create(NoticeContent),
    /// Replaces its content.
    Update(NoticeContent),
    /// Deletes it (terminal).
    Delete,
}

/// What happened to a notice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum NoticeEvent {
    /// The notice was created; its first event.
    NoticeCreated {
        /// The tenant it belongs to.
        tenant_id: Uuid,
        /// Its content.
        content: NoticeContent,
    },
    /// Its content was replaced.
    NoticeUpdated {
        /// The new content.
        content: NoticeContent,
    },
    /// It was deleted; no command reaches it any more.
    NoticeDeleted,
}
crate::domain_event!(NoticeEvent, "1");

/// A notice, as its decisions need it.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Notice {
    /// The owning tenant; `None` until created.
    pub tenant_id: Option<Uuid>,
    /// Deleted (terminal).
    pub deleted: bool,
}
tenant_owned!(Notice, "notice");

impl Notice {
    /// Decides a command without I/O; `Ok(events)` are the facts to append.
    pub fn decide(
        &self,
        Scoped { tenant_id, command }: Scoped<NoticeCommand>,
    ) -> Result<Vec<NoticeEvent>, DomainError> {
        let event = match command {
            NoticeCommand::Create(content) => {
                self.fresh()?;
                NoticeEvent::NoticeCreated { tenant_id, content }
            }
            NoticeCommand::Update(content) => {
                self.owned_by(tenant_id)?;
                NoticeEvent::NoticeUpdated { content }
            }
            NoticeCommand::Delete => {
                self.owned_by(tenant_id)?;
                NoticeEvent::NoticeDeleted
            }
        };
        Ok(vec![event])
    }
}

impl Aggregate for Notice {
    const TYPE: &'static str = "Notice";
    type Command = Scoped<NoticeCommand>;
    type Event = NoticeEvent;
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

    fn apply(&mut self, event: NoticeEvent) {
        match event {
            NoticeEvent::NoticeCreated { tenant_id, .. } => self.tenant_id = Some(tenant_id),
            NoticeEvent::NoticeUpdated { .. } => {}
            NoticeEvent::NoticeDeleted => self.deleted = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::signage::testing::{OTHER_TENANT, TENANT, assert_stored, given};

    fn at(s: &str) -> Option<DateTime<Utc>> {
        Some(s.parse().unwrap())
    }

    fn content(title: &str) -> NoticeContent {
        NoticeContent::parse(title, "Soup", None, None, None, None, 10, 15).unwrap()
    }

    fn created() -> NoticeEvent {
        NoticeEvent::NoticeCreated {
            tenant_id: TENANT,
            content: content("Lunch"),
        }
    }

    /// Parses with every field valid but the ones a test changes.
    fn parse_with(
        title: &str,
        body: &str,
        valid: (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
        priority: i32,
        duration_seconds: i32,
    ) -> Result<NoticeContent, DomainError> {
        NoticeContent::parse(
            title,
            body,
            None,
            None,
            valid.0,
            valid.1,
            priority,
            duration_seconds,
        )
    }

    #[test]
    fn is_stored_as_aggregate_type_notice() {
        assert_eq!(Notice::TYPE, "Notice");
    }

    #[test]
    fn events_keep_their_stored_shape() {
        let media = Uuid::from_u128(60);
        let category = Uuid::from_u128(61);
        let content = NoticeContent::parse(
            "Lunch",
            "Soup",
            Some(media),
            Some(category),
            at("2027-01-01T00:00:00Z"),
            None,
            10,
            15,
        )
        .unwrap();
        let stored = json!({
            "title": "Lunch",
            "body": "Soup",
            "media_id": media,
            "category_id": category,
            "valid_from": "2027-01-01T00:00:00Z",
            "valid_to": null,
            "priority": 10,
            "duration_seconds": 15,
        });
        assert_stored(
            NoticeEvent::NoticeCreated {
                tenant_id: TENANT,
                content: content.clone(),
            },
            json!({"NoticeCreated": {"tenant_id": TENANT, "content": stored}}),
        );
        assert_stored(
            NoticeEvent::NoticeUpdated { content },
            json!({"NoticeUpdated": {"content": stored}}),
        );
        assert_stored(NoticeEvent::NoticeDeleted, json!("NoticeDeleted"));
    }

    #[test]
    fn create_records_the_content() {
        given::<Notice>([])
            .when(TENANT, NoticeCommand::Create(content("Lunch")))
            .then([created()]);
    }

    #[test]
    fn an_existing_notice_cannot_be_created_again_by_any_tenant() {
        for tenant in [TENANT, OTHER_TENANT] {
            given::<Notice>([created()])
                .when(tenant, NoticeCommand::Create(content("Lunch")))
                .then_err(DomainError::Conflict("notice already exists".into()));
        }
    }

    #[test]
    fn update_records_the_new_content() {
        given::<Notice>([created()])
            .when(TENANT, NoticeCommand::Update(content("Dinner")))
            .then([NoticeEvent::NoticeUpdated {
                content: content("Dinner"),
            }]);
    }

    #[test]
    fn delete_records_the_deletion() {
        given::<Notice>([created()])
            .when(TENANT, NoticeCommand::Delete)
            .then([NoticeEvent::NoticeDeleted]);
    }

    #[test]
    fn a_deleted_notice_is_not_found() {
        let deleted = [created(), NoticeEvent::NoticeDeleted];
        given::<Notice>(deleted.clone())
            .when(TENANT, NoticeCommand::Update(content("Dinner")))
            .then_err(DomainError::NotFound("notice"));
        given::<Notice>(deleted.clone())
            .when(TENANT, NoticeCommand::Delete)
            .then_err(DomainError::NotFound("notice"));
        // Its id stays taken.
        given::<Notice>(deleted)
            .when(TENANT, NoticeCommand::Create(content("Lunch")))
            .then_err(DomainError::Conflict("notice already exists".into()));
    }

    #[test]
    fn another_tenant_or_a_missing_notice_is_not_found() {
        for command in [
            NoticeCommand::Update(content("Dinner")),
            NoticeCommand::Delete,
        ] {
            given::<Notice>([created()])
                .when(OTHER_TENANT, command.clone())
                .then_err(DomainError::NotFound("notice"));
            given::<Notice>([])
                .when(TENANT, command)
                .then_err(DomainError::NotFound("notice"));
        }
    }

    #[test]
    fn content_trims_the_title_and_keeps_the_body() {
        let c = parse_with(" Lunch ", " Soup\n", (None, None), 0, 1).unwrap();
        assert_eq!(c.title, "Lunch");
        assert_eq!(c.body, " Soup\n");
        assert!(parse_with("Lunch", "", (None, None), 100, 3600).is_ok());
    }

    #[test]
    fn content_refuses_an_empty_or_overlong_title_and_an_overlong_body() {
        assert_eq!(
            parse_with("  ", "", (None, None), 0, 10).unwrap_err(),
            DomainError::invalid("title", "must not be empty")
        );
        assert_eq!(
            parse_with(&"t".repeat(201), "", (None, None), 0, 10).unwrap_err(),
            DomainError::invalid("title", "201 characters; at most 200")
        );
        assert_eq!(
            parse_with("x", &"b".repeat(2001), (None, None), 0, 10).unwrap_err(),
            DomainError::invalid("body", "2001 characters; at most 2000")
        );
    }

    #[test]
    fn content_refuses_a_validity_that_ends_before_or_as_it_starts() {
        let start = at("2027-01-02T00:00:00Z");
        for end in [at("2027-01-01T00:00:00Z"), start] {
            assert!(matches!(
                parse_with("x", "", (start, end), 0, 10).unwrap_err(),
                DomainError::Validation { field, .. } if field == "validTo"
            ));
        }
        assert!(parse_with("x", "", (start, None), 0, 10).is_ok());
        assert!(parse_with("x", "", (None, start), 0, 10).is_ok());
    }

    #[test]
    fn content_refuses_priority_and_duration_out_of_range() {
        for priority in [-1, 101] {
            assert_eq!(
                parse_with("x", "", (None, None), priority, 10).unwrap_err(),
                DomainError::invalid("priority", "between 0 and 100")
            );
        }
        for duration in [0, -5, 3601] {
            assert_eq!(
                parse_with("x", "", (None, None), 0, duration).unwrap_err(),
                DomainError::invalid("durationSeconds", "between 1 and 3600 seconds")
            );
        }
    }
}
