//! The NoticeCategory aggregate: a named label for notices, shown on their
//! slides. Created once; nothing changes it afterwards.

use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::required_text;
use crate::{DomainError, Scoped};

/// What may be asked of a notice category.
#[derive(Debug, Clone)]
pub enum CategoryCommand {
    /// Creates it.
    Create {
        /// Its name (1 to 100 characters).
        name: String,
    },
}

/// What happened to a notice category.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CategoryEvent {
    /// The category was created; its only event.
    NoticeCategoryCreated {
        /// The tenant it belongs to.
        tenant_id: Uuid,
        /// Its name.
        name: String,
    },
}
crate::domain_event!(CategoryEvent, "1");

/// A notice category, as its decisions need it.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct NoticeCategory {
    /// The owning tenant; `None` until created.
    pub tenant_id: Option<Uuid>,
    /// Always false: categories are not deleted (yet); kept for the shared
    /// ownership check.
    pub deleted: bool,
}
tenant_owned!(NoticeCategory, "category");

impl Aggregate for NoticeCategory {
    const TYPE: &'static str = "NoticeCategory";
    type Command = Scoped<CategoryCommand>;
    type Event = CategoryEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        Scoped { tenant_id, command }: Self::Command,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), DomainError> {
        let CategoryCommand::Create { name } = command;
        self.fresh()?;
        let event = CategoryEvent::NoticeCategoryCreated {
            tenant_id,
            name: required_text(&name, "name", 100)?,
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: CategoryEvent) {
        let CategoryEvent::NoticeCategoryCreated { tenant_id, .. } = event;
        self.tenant_id = Some(tenant_id);
    }
}
