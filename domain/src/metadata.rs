//! Metadata carried by every event: who did it, for which tenant, why, and when.

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Current metadata schema version, stored with every event.
pub const METADATA_VERSION: &str = "1";

/// Who caused an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Actor {
    User(Uuid),
    ApiKey(Uuid),
    Display(Uuid),
    System,
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::User(id) => write!(f, "user:{id}"),
            Actor::ApiKey(id) => write!(f, "api_key:{id}"),
            Actor::Display(id) => write!(f, "display:{id}"),
            Actor::System => f.write_str("system"),
        }
    }
}

impl Actor {
    /// Parses the `Display` form back.
    pub fn parse(s: &str) -> Option<Self> {
        if s == "system" {
            return Some(Actor::System);
        }
        let (kind, id) = s.split_once(':')?;
        let id = Uuid::parse_str(id).ok()?;
        match kind {
            "user" => Some(Actor::User(id)),
            "api_key" => Some(Actor::ApiKey(id)),
            "display" => Some(Actor::Display(id)),
            _ => None,
        }
    }
}

/// The metadata of one command's events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventMetadata {
    pub tenant_id: Uuid,
    pub actor: Actor,
    pub correlation_id: Uuid,
    pub causation_id: Uuid,
    pub recorded_at: DateTime<Utc>,
}

impl EventMetadata {
    /// Metadata for a command that starts a new causal chain.
    pub fn new(tenant_id: Uuid, actor: Actor, correlation_id: Uuid, now: DateTime<Utc>) -> Self {
        Self {
            tenant_id,
            actor,
            correlation_id,
            causation_id: correlation_id,
            recorded_at: now,
        }
    }

    /// The string map cqrs-es stores beside each event.
    pub fn to_map(&self) -> HashMap<String, String> {
        HashMap::from([
            ("tenant_id".into(), self.tenant_id.to_string()),
            ("actor".into(), self.actor.to_string()),
            ("correlation_id".into(), self.correlation_id.to_string()),
            ("causation_id".into(), self.causation_id.to_string()),
            ("recorded_at".into(), self.recorded_at.to_rfc3339()),
            ("schema_version".into(), METADATA_VERSION.into()),
        ])
    }

    /// Reads the map back; `None` if a required key is missing or malformed.
    pub fn from_map(map: &HashMap<String, String>) -> Option<Self> {
        let uuid = |k: &str| map.get(k).and_then(|v| Uuid::parse_str(v).ok());
        Some(Self {
            tenant_id: uuid("tenant_id")?,
            actor: Actor::parse(map.get("actor")?)?,
            correlation_id: uuid("correlation_id")?,
            causation_id: uuid("causation_id")?,
            recorded_at: DateTime::parse_from_rfc3339(map.get("recorded_at")?)
                .ok()?
                .with_timezone(&Utc),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_round_trips_through_the_stored_map() {
        let meta = EventMetadata::new(
            Uuid::new_v4(),
            Actor::User(Uuid::new_v4()),
            Uuid::new_v4(),
            Utc::now(),
        );
        let map = meta.to_map();
        assert_eq!(map["schema_version"], METADATA_VERSION);
        let back = EventMetadata::from_map(&map).unwrap();
        assert_eq!(back.tenant_id, meta.tenant_id);
        assert_eq!(back.actor, meta.actor);
        assert_eq!(back.causation_id, meta.correlation_id);
    }

    #[test]
    fn actor_parses_its_display_form() {
        for actor in [Actor::System, Actor::ApiKey(Uuid::new_v4())] {
            assert_eq!(Actor::parse(&actor.to_string()), Some(actor));
        }
        assert_eq!(Actor::parse("robot:1"), None);
    }
}
