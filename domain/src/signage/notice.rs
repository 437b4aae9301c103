//! The Notice aggregate: a slide's content (title, body, optional media and
//! category) with a validity window, a priority and a duration. Updated
//! whole; deleted notices stay in the log and the state (late play reports
//! name them) but leave every manifest at once.

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{bounded_text, required_text};
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
            title: required_text(title, "title", 200)?,
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
pub struct SignageNotice {
    /// The owning tenant; `None` until created.
    pub tenant_id: Option<Uuid>,
    /// Deleted (terminal).
    pub deleted: bool,
}
tenant_owned!(SignageNotice, "notice");

impl Aggregate for SignageNotice {
    const TYPE: &'static str = "Notice";
    type Command = Scoped<NoticeCommand>;
    type Event = NoticeEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        Scoped { tenant_id, command }: Self::Command,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), DomainError> {
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
        sink.write(event, self).await;
        Ok(())
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
    use super::*;

    #[test]
    fn notice_rules() {
        let at = |s: &str| Some(s.parse::<DateTime<Utc>>().unwrap());
        let err = NoticeContent::parse(
            "Lunch",
            "",
            None,
            None,
            at("2027-01-02T00:00:00Z"),
            at("2027-01-01T00:00:00Z"),
            0,
            10,
        )
        .unwrap_err();
        assert!(matches!(err, DomainError::Validation { ref field, .. } if field == "validTo"));
        assert!(NoticeContent::parse("", "", None, None, None, None, 0, 10).is_err());
        assert!(NoticeContent::parse("x", "", None, None, None, None, 0, 0).is_err());
        assert!(
            NoticeContent::parse("x", &"b".repeat(2001), None, None, None, None, 0, 5).is_err()
        );
        assert!(NoticeContent::parse("x", "", None, None, None, None, 0, 5).is_ok());
    }
}
