//! Tenant: an organisation. Created at sign-up with its first owner.

use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::DomainError;

/// Commands on a tenant.
#[derive(Debug, Clone)]
pub enum TenantCommand {
    Create { name: String, owner_user_id: Uuid },
}

/// Facts about a tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TenantEvent {
    TenantCreated { name: String, owner_user_id: Uuid },
}
crate::domain_event!(TenantEvent, "1");

/// Current state of a tenant.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Tenant {
    pub name: Option<String>,
    pub owner_user_id: Option<Uuid>,
}

/// Validates an organisation name: 1 to 120 characters after trimming.
pub fn parse_name(raw: &str, field: &str) -> Result<String, DomainError> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > 120 {
        return Err(DomainError::invalid(field, "must be 1 to 120 characters"));
    }
    Ok(name.to_string())
}

impl Aggregate for Tenant {
    const TYPE: &'static str = "Tenant";
    type Command = TenantCommand;
    type Event = TenantEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: TenantCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), DomainError> {
        match command {
            TenantCommand::Create {
                name,
                owner_user_id,
            } => {
                if self.name.is_some() {
                    return Err(DomainError::Conflict("tenant already exists".into()));
                }
                let name = parse_name(&name, "organization")?;
                sink.write(
                    TenantEvent::TenantCreated {
                        name,
                        owner_user_id,
                    },
                    self,
                )
                .await;
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: TenantEvent) {
        match event {
            TenantEvent::TenantCreated {
                name,
                owner_user_id,
            } => {
                self.name = Some(name);
                self.owner_user_id = Some(owner_user_id);
            }
        }
    }
}
