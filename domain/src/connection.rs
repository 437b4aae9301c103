//! Connection: a tenant's account on a social platform (today Bluesky) and its
//! credentials, sealed with the tenant's data key. The id is derived from the
//! tenant and the account's DID, so connecting the same account again replaces
//! its credentials instead of creating a twin.

use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::handle::Handle;
use crate::sealed::Sealed;
use crate::{DomainError, Scoped};

/// Whether a connection can publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConnectionStatus {
    /// Credentials work.
    Active,
    /// Credentials stopped working; posts wait instead of consuming attempts.
    Degraded,
    /// Disconnected by a user; posts targeting it fail.
    Revoked,
}

impl ConnectionStatus {
    /// Stable upper-case name used in read models and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "ACTIVE",
            Self::Degraded => "DEGRADED",
            Self::Revoked => "REVOKED",
        }
    }
}

/// Namespace of connection ids (UUIDv5 of tenant and DID).
const NAMESPACE: Uuid = Uuid::from_u128(0x6865_7261_6c64_2f63_6f6e_6e65_6374_696f);

/// The id of the connection of `tenant` to the account `did`.
pub fn connection_id(tenant: Uuid, did: &str) -> Uuid {
    let mut name = tenant.as_bytes().to_vec();
    name.extend_from_slice(did.as_bytes());
    Uuid::new_v5(&NAMESPACE, &name)
}

/// Commands on a connection.
#[derive(Debug, Clone)]
pub enum ConnectionCommand {
    /// Connect (or reconnect) a Bluesky account whose credentials were
    /// verified with a real session. `credentials` is sealed by the caller.
    ConnectBluesky {
        handle: Handle,
        did: String,
        service_url: String,
        credentials: Sealed,
    },
    /// The platform refused the credentials.
    Degrade { reason: String },
    /// A user disconnected the account.
    Revoke,
}

/// Facts about a connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ConnectionEvent {
    BlueskyConnected {
        tenant_id: Uuid,
        handle: String,
        did: String,
        service_url: String,
        credentials: Sealed,
    },
    /// Reconnected with new credentials: active again.
    ConnectionCredentialsReplaced {
        handle: String,
        service_url: String,
        credentials: Sealed,
    },
    ConnectionDegraded {
        reason: String,
    },
    ConnectionRevoked,
}
crate::domain_event!(ConnectionEvent, "1");

/// Current state of a connection.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Connection {
    pub tenant_id: Option<Uuid>,
    pub handle: String,
    pub did: String,
    pub service_url: String,
    pub credentials: Option<Sealed>,
    pub status: Option<ConnectionStatus>,
    pub reason: Option<String>,
}

impl Connection {
    /// Whether posts may be published through it now.
    pub fn is_active(&self) -> bool {
        self.status == Some(ConnectionStatus::Active)
    }

    /// Decides a command without I/O; `Ok(events)` are the facts to append.
    pub fn decide(
        &self,
        Scoped { tenant_id, command }: Scoped<ConnectionCommand>,
    ) -> Result<Vec<ConnectionEvent>, DomainError> {
        let event = match command {
            ConnectionCommand::ConnectBluesky {
                handle,
                did,
                service_url,
                credentials,
            } => match self.tenant_id {
                None => ConnectionEvent::BlueskyConnected {
                    tenant_id,
                    handle: handle.into(),
                    did,
                    service_url,
                    credentials,
                },
                Some(owner) if owner == tenant_id && self.did == did => {
                    ConnectionEvent::ConnectionCredentialsReplaced {
                        handle: handle.into(),
                        service_url,
                        credentials,
                    }
                }
                Some(_) => return Err(DomainError::Conflict("connection id is taken".into())),
            },
            _ if self.tenant_id != Some(tenant_id) => {
                return Err(DomainError::NotFound("connection"));
            }
            ConnectionCommand::Degrade { reason } => {
                if self.status != Some(ConnectionStatus::Active) {
                    // Already degraded or revoked: nothing new to record.
                    return Ok(vec![]);
                }
                ConnectionEvent::ConnectionDegraded { reason }
            }
            ConnectionCommand::Revoke => {
                if self.status == Some(ConnectionStatus::Revoked) {
                    return Ok(vec![]);
                }
                ConnectionEvent::ConnectionRevoked
            }
        };
        Ok(vec![event])
    }
}

impl Aggregate for Connection {
    const TYPE: &'static str = "Connection";
    type Command = Scoped<ConnectionCommand>;
    type Event = ConnectionEvent;
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

    fn apply(&mut self, event: ConnectionEvent) {
        match event {
            ConnectionEvent::BlueskyConnected {
                tenant_id,
                handle,
                did,
                service_url,
                credentials,
            } => {
                self.tenant_id = Some(tenant_id);
                self.handle = handle;
                self.did = did;
                self.service_url = service_url;
                self.credentials = Some(credentials);
                self.status = Some(ConnectionStatus::Active);
            }
            ConnectionEvent::ConnectionCredentialsReplaced {
                handle,
                service_url,
                credentials,
            } => {
                self.handle = handle;
                self.service_url = service_url;
                self.credentials = Some(credentials);
                self.status = Some(ConnectionStatus::Active);
                self.reason = None;
            }
            ConnectionEvent::ConnectionDegraded { reason } => {
                self.status = Some(ConnectionStatus::Degraded);
                self.reason = Some(reason);
            }
            ConnectionEvent::ConnectionRevoked => {
                self.status = Some(ConnectionStatus::Revoked);
                self.credentials = None;
                self.reason = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::test::TestFramework;

    type Given = TestFramework<Connection>;

    fn tenant() -> Uuid {
        Uuid::from_u128(7)
    }

    fn cmd(command: ConnectionCommand) -> Scoped<ConnectionCommand> {
        Scoped {
            tenant_id: tenant(),
            command,
        }
    }

    fn connect(secret: &str) -> ConnectionCommand {
        ConnectionCommand::ConnectBluesky {
            handle: Handle::parse("alice.test", "handle").unwrap(),
            did: "did:plc:alice".into(),
            service_url: "http://localhost:2583".into(),
            credentials: Sealed::from_stored(secret),
        }
    }

    fn connected() -> ConnectionEvent {
        ConnectionEvent::BlueskyConnected {
            tenant_id: tenant(),
            handle: "alice.test".into(),
            did: "did:plc:alice".into(),
            service_url: "http://localhost:2583".into(),
            credentials: Sealed::from_stored("s1"),
        }
    }

    #[test]
    fn ids_are_per_tenant_and_account() {
        let a = connection_id(tenant(), "did:plc:alice");
        assert_eq!(a, connection_id(tenant(), "did:plc:alice"));
        assert_ne!(a, connection_id(Uuid::from_u128(8), "did:plc:alice"));
        assert_ne!(a, connection_id(tenant(), "did:plc:bob"));
    }

    #[test]
    fn connecting_twice_replaces_the_credentials_and_reactivates() {
        Given::with(())
            .given_no_previous_events()
            .when(cmd(connect("s1")))
            .then_expect_events(vec![connected()]);
        Given::with(())
            .given(vec![
                connected(),
                ConnectionEvent::ConnectionDegraded {
                    reason: "bad password".into(),
                },
            ])
            .when(cmd(connect("s2")))
            .then_expect_events(vec![ConnectionEvent::ConnectionCredentialsReplaced {
                handle: "alice.test".into(),
                service_url: "http://localhost:2583".into(),
                credentials: Sealed::from_stored("s2"),
            }]);
    }

    #[test]
    fn degrading_is_recorded_once() {
        Given::with(())
            .given(vec![connected()])
            .when(cmd(ConnectionCommand::Degrade {
                reason: "AuthenticationRequired".into(),
            }))
            .then_expect_events(vec![ConnectionEvent::ConnectionDegraded {
                reason: "AuthenticationRequired".into(),
            }]);
        Given::with(())
            .given(vec![
                connected(),
                ConnectionEvent::ConnectionDegraded { reason: "x".into() },
            ])
            .when(cmd(ConnectionCommand::Degrade { reason: "y".into() }))
            .then_expect_events(vec![]);
    }

    #[test]
    fn another_tenant_sees_not_found() {
        Given::with(())
            .given(vec![connected()])
            .when(Scoped {
                tenant_id: Uuid::from_u128(8),
                command: ConnectionCommand::Revoke,
            })
            .then_expect_error(DomainError::NotFound("connection"));
    }
}
