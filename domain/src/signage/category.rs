//! The NoticeCategory aggregate: a named label for notices, shown on their
//! slides. Created once; nothing changes it afterwards.

use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::required_name;
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

impl NoticeCategory {
    /// Decides a command without I/O; `Ok(events)` are the facts to append.
    pub fn decide(
        &self,
        Scoped { tenant_id, command }: Scoped<CategoryCommand>,
    ) -> Result<Vec<CategoryEvent>, DomainError> {
        let CategoryCommand::Create { name } = command;
        self.fresh()?;
        let event = CategoryEvent::NoticeCategoryCreated {
            tenant_id,
            name: required_name(&name, "name", 100)?,
        };
        Ok(vec![event])
    }
}

impl Aggregate for NoticeCategory {
    const TYPE: &'static str = "NoticeCategory";
    type Command = Scoped<CategoryCommand>;
    type Event = CategoryEvent;
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

    fn apply(&mut self, event: CategoryEvent) {
        let CategoryEvent::NoticeCategoryCreated { tenant_id, .. } = event;
        self.tenant_id = Some(tenant_id);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::signage::testing::{OTHER_TENANT, TENANT, assert_stored, given};

    fn create(name: &str) -> CategoryCommand {
        CategoryCommand::Create { name: name.into() }
    }

    fn created() -> CategoryEvent {
        CategoryEvent::NoticeCategoryCreated {
            tenant_id: TENANT,
            name: "Canteen".into(),
        }
    }

    #[test]
    fn is_stored_as_aggregate_type_notice_category() {
        assert_eq!(NoticeCategory::TYPE, "NoticeCategory");
    }

    #[test]
    fn events_keep_their_stored_shape() {
        assert_stored(
            created(),
            json!({"NoticeCategoryCreated": {"tenant_id": TENANT, "name": "Canteen"}}),
        );
    }

    #[test]
    fn create_records_the_trimmed_name() {
        given::<NoticeCategory>([])
            .when(TENANT, create(" Canteen\n"))
            .then([created()]);
    }

    #[test]
    fn create_refuses_an_empty_or_overlong_name() {
        given::<NoticeCategory>([])
            .when(TENANT, create(" \t "))
            .then_err(DomainError::invalid("name", "must not be empty"));
        given::<NoticeCategory>([])
            .when(TENANT, create(&"c".repeat(101)))
            .then_err(DomainError::invalid("name", "101 characters; at most 100"));
        given::<NoticeCategory>([])
            .when(TENANT, create(&"c".repeat(100)))
            .then([CategoryEvent::NoticeCategoryCreated {
                tenant_id: TENANT,
                name: "c".repeat(100),
            }]);
    }

    #[test]
    fn an_existing_category_cannot_be_created_again_by_any_tenant() {
        // Creation is the only command, so this is also the tenant rule: a
        // foreign tenant cannot take over the id.
        for tenant in [TENANT, OTHER_TENANT] {
            given::<NoticeCategory>([created()])
                .when(tenant, create("Canteen"))
                .then_err(DomainError::Conflict("category already exists".into()));
        }
    }
}
