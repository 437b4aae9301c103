//! The Emergency aggregate: an override that replaces whatever the tenant's
//! displays (or some of its groups) show with a message, from the moment it
//! starts until it is cleared. Clearing is terminal; a new emergency is a new
//! aggregate.

use std::collections::BTreeSet;

use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Severity, required_text};
use crate::{DomainError, Scoped};

/// What may be asked of an emergency.
#[derive(Debug, Clone)]
pub enum EmergencyCommand {
    /// Starts it.
    Start {
        /// What the screens say (1 to 500 characters).
        message: String,
        /// How severe it is.
        severity: Severity,
        /// Empty: every display of the tenant.
        groups: BTreeSet<Uuid>,
        /// An image or video shown with it.
        media_id: Option<Uuid>,
    },
    /// Clears it (terminal).
    Clear,
}

/// What happened to an emergency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum EmergencyEvent {
    /// The emergency started; its first event.
    EmergencyStarted {
        /// The tenant it belongs to.
        tenant_id: Uuid,
        /// What the screens say.
        message: String,
        /// How severe it is.
        severity: Severity,
        /// Empty: every display of the tenant.
        groups: BTreeSet<Uuid>,
        /// An image or video shown with it.
        media_id: Option<Uuid>,
    },
    /// It was cleared; the displays go back to their content.
    EmergencyCleared,
}
crate::domain_event!(EmergencyEvent, "1");

/// An emergency, as its decisions need it.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Emergency {
    /// The owning tenant; `None` until started.
    pub tenant_id: Option<Uuid>,
    /// Cleared (so it cannot be cleared twice).
    pub deleted: bool,
}
tenant_owned!(Emergency, "emergency");

impl Emergency {
    /// Decides a command without I/O; `Ok(events)` are the facts to append.
    pub fn decide(
        &self,
        Scoped { tenant_id, command }: Scoped<EmergencyCommand>,
    ) -> Result<Vec<EmergencyEvent>, DomainError> {
        let event = match command {
            EmergencyCommand::Start {
                message,
                severity,
                groups,
                media_id,
            } => {
                self.fresh()?;
                EmergencyEvent::EmergencyStarted {
                    tenant_id,
                    message: required_text(&message, "message", 500)?,
                    severity,
                    groups,
                    media_id,
                }
            }
            EmergencyCommand::Clear => {
                self.owned_by(tenant_id)?;
                EmergencyEvent::EmergencyCleared
            }
        };
        Ok(vec![event])
    }
}

impl Aggregate for Emergency {
    const TYPE: &'static str = "Emergency";
    type Command = Scoped<EmergencyCommand>;
    type Event = EmergencyEvent;
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

    fn apply(&mut self, event: EmergencyEvent) {
        match event {
            EmergencyEvent::EmergencyStarted { tenant_id, .. } => self.tenant_id = Some(tenant_id),
            EmergencyEvent::EmergencyCleared => self.deleted = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::signage::testing::{OTHER_TENANT, TENANT, assert_stored, given};

    const GROUP: Uuid = Uuid::from_u128(70);
    const MEDIA: Uuid = Uuid::from_u128(71);

    fn start(message: &str) -> EmergencyCommand {
        EmergencyCommand::Start {
            message: message.into(),
            severity: Severity::Critical,
            groups: [GROUP].into(),
            media_id: Some(MEDIA),
        }
    }

    fn started() -> EmergencyEvent {
        EmergencyEvent::EmergencyStarted {
            tenant_id: TENANT,
            message: "Evacuate".into(),
            severity: Severity::Critical,
            groups: [GROUP].into(),
            media_id: Some(MEDIA),
        }
    }

    #[test]
    fn is_stored_as_aggregate_type_emergency() {
        assert_eq!(Emergency::TYPE, "Emergency");
    }

    #[test]
    fn events_keep_their_stored_shape() {
        assert_stored(
            started(),
            json!({"EmergencyStarted": {
                "tenant_id": TENANT,
                "message": "Evacuate",
                "severity": "CRITICAL",
                "groups": [GROUP],
                "media_id": MEDIA,
            }}),
        );
        assert_stored(EmergencyEvent::EmergencyCleared, json!("EmergencyCleared"));
    }

    #[test]
    fn start_records_the_trimmed_message_severity_groups_and_media() {
        given::<Emergency>([])
            .when(TENANT, start("  Evacuate "))
            .then([started()]);
    }

    #[test]
    fn start_without_groups_means_every_display() {
        given::<Emergency>([])
            .when(
                TENANT,
                EmergencyCommand::Start {
                    message: "Drill".into(),
                    severity: Severity::Info,
                    groups: BTreeSet::new(),
                    media_id: None,
                },
            )
            .then([EmergencyEvent::EmergencyStarted {
                tenant_id: TENANT,
                message: "Drill".into(),
                severity: Severity::Info,
                groups: BTreeSet::new(),
                media_id: None,
            }]);
    }

    #[test]
    fn start_refuses_an_empty_or_overlong_message() {
        given::<Emergency>([])
            .when(TENANT, start(""))
            .then_err(DomainError::invalid("message", "must not be empty"));
        given::<Emergency>([])
            .when(TENANT, start(&"m".repeat(501)))
            .then_err(DomainError::invalid(
                "message",
                "501 characters; at most 500",
            ));
    }

    #[test]
    fn an_emergency_starts_once_even_after_it_is_cleared() {
        for tenant in [TENANT, OTHER_TENANT] {
            given::<Emergency>([started()])
                .when(tenant, start("Again"))
                .then_err(DomainError::Conflict("emergency already exists".into()));
        }
        given::<Emergency>([started(), EmergencyEvent::EmergencyCleared])
            .when(TENANT, start("Again"))
            .then_err(DomainError::Conflict("emergency already exists".into()));
    }

    #[test]
    fn clear_records_it_and_is_terminal() {
        given::<Emergency>([started()])
            .when(TENANT, EmergencyCommand::Clear)
            .then([EmergencyEvent::EmergencyCleared]);
        given::<Emergency>([started(), EmergencyEvent::EmergencyCleared])
            .when(TENANT, EmergencyCommand::Clear)
            .then_err(DomainError::NotFound("emergency"));
    }

    #[test]
    fn another_tenant_or_a_missing_emergency_is_not_found() {
        given::<Emergency>([started()])
            .when(OTHER_TENANT, EmergencyCommand::Clear)
            .then_err(DomainError::NotFound("emergency"));
        given::<Emergency>([])
            .when(TENANT, EmergencyCommand::Clear)
            .then_err(DomainError::NotFound("emergency"));
    }
}
