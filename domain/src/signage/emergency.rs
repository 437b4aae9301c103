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

impl Aggregate for Emergency {
    const TYPE: &'static str = "Emergency";
    type Command = Scoped<EmergencyCommand>;
    type Event = EmergencyEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        Scoped { tenant_id, command }: Self::Command,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), DomainError> {
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
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: EmergencyEvent) {
        match event {
            EmergencyEvent::EmergencyStarted { tenant_id, .. } => self.tenant_id = Some(tenant_id),
            EmergencyEvent::EmergencyCleared => self.deleted = true,
        }
    }
}
