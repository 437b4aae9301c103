//! MediaAsset: an uploaded image. The bytes live in the object store; the
//! aggregate keeps what publishing needs (type, size, pixel size for the
//! aspect ratio) and refuses deletion while a post uses it.

use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{DomainError, Scoped};

/// Largest image Bluesky accepts, in bytes.
pub const BLUESKY_MAX_IMAGE_BYTES: u64 = 1_000_000;

/// Image types Bluesky shows.
pub const IMAGE_TYPES: [&str; 4] = ["image/png", "image/jpeg", "image/webp", "image/gif"];

/// What an uploaded file was found to be (sniffed from its bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageFacts {
    pub mime: String,
    pub size: u64,
    pub width: u32,
    pub height: u32,
    /// Hex SHA-256 of the bytes.
    pub sha256: String,
}

impl ImageFacts {
    /// Checks the facts against Bluesky's limits; `field` names the input.
    pub fn check(&self, field: &str) -> Result<(), DomainError> {
        if !IMAGE_TYPES.contains(&self.mime.as_str()) {
            return Err(DomainError::invalid(
                field,
                "not an image Bluesky shows (PNG, JPEG, WebP or GIF)",
            ));
        }
        if self.size > BLUESKY_MAX_IMAGE_BYTES {
            return Err(DomainError::invalid(
                field,
                format!(
                    "the image has {} bytes; Bluesky takes at most {BLUESKY_MAX_IMAGE_BYTES}",
                    self.size
                ),
            ));
        }
        if self.width == 0 || self.height == 0 {
            return Err(DomainError::invalid(field, "the image has no pixels"));
        }
        Ok(())
    }
}

/// Commands on a media asset.
#[derive(Debug, Clone)]
pub enum MediaCommand {
    /// Record a stored upload (the bytes are already in the object store at
    /// `key`).
    Upload {
        facts: ImageFacts,
        key: String,
        filename: String,
    },
    /// Delete; `in_use` says whether a post still uses it (a read-model look-up
    /// by the caller).
    Delete { in_use: bool },
}

/// Facts about a media asset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MediaEvent {
    MediaUploaded {
        tenant_id: Uuid,
        facts: ImageFacts,
        key: String,
        filename: String,
    },
    MediaDeleted,
}
crate::domain_event!(MediaEvent, "1");

/// Current state of a media asset.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct MediaAsset {
    pub tenant_id: Option<Uuid>,
    pub facts: Option<ImageFacts>,
    pub key: String,
    pub deleted: bool,
}

impl MediaAsset {
    /// Whether `tenant` may use it.
    pub fn usable_by(&self, tenant: Uuid) -> bool {
        self.tenant_id == Some(tenant) && !self.deleted
    }

    /// Decides a command without I/O; `Ok(events)` are the facts to append.
    pub fn decide(
        &self,
        Scoped { tenant_id, command }: Scoped<MediaCommand>,
    ) -> Result<Vec<MediaEvent>, DomainError> {
        let event = match command {
            MediaCommand::Upload {
                facts,
                key,
                filename,
            } => {
                if self.tenant_id.is_some() {
                    return Err(DomainError::Conflict("media asset already exists".into()));
                }
                facts.check("file")?;
                MediaEvent::MediaUploaded {
                    tenant_id,
                    facts,
                    key,
                    filename,
                }
            }
            _ if !self.usable_by(tenant_id) => return Err(DomainError::NotFound("media asset")),
            MediaCommand::Delete { in_use } => {
                if in_use {
                    return Err(DomainError::Conflict(
                        "a post uses this image; remove it from the post first".into(),
                    ));
                }
                MediaEvent::MediaDeleted
            }
        };
        Ok(vec![event])
    }
}

impl Aggregate for MediaAsset {
    const TYPE: &'static str = "MediaAsset";
    type Command = Scoped<MediaCommand>;
    type Event = MediaEvent;
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

    fn apply(&mut self, event: MediaEvent) {
        match event {
            MediaEvent::MediaUploaded {
                tenant_id,
                facts,
                key,
                ..
            } => {
                self.tenant_id = Some(tenant_id);
                self.facts = Some(facts);
                self.key = key;
            }
            MediaEvent::MediaDeleted => self.deleted = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::test::TestFramework;

    fn facts(mime: &str, size: u64) -> ImageFacts {
        ImageFacts {
            mime: mime.into(),
            size,
            width: 4,
            height: 3,
            sha256: "00".into(),
        }
    }

    fn cmd(command: MediaCommand) -> Scoped<MediaCommand> {
        Scoped {
            tenant_id: Uuid::from_u128(7),
            command,
        }
    }

    #[test]
    fn only_images_within_bluesky_limits_are_accepted() {
        assert!(facts("image/png", 1_000_000).check("file").is_ok());
        assert!(facts("image/png", 1_000_001).check("file").is_err());
        assert!(facts("application/pdf", 10).check("file").is_err());
        let upload = |f| {
            cmd(MediaCommand::Upload {
                facts: f,
                key: "k".into(),
                filename: "a.png".into(),
            })
        };
        TestFramework::<MediaAsset>::with(())
            .given_no_previous_events()
            .when(upload(facts("image/tiff", 10)))
            .then_expect_error(DomainError::invalid(
                "file",
                "not an image Bluesky shows (PNG, JPEG, WebP or GIF)",
            ));
    }

    #[test]
    fn media_in_use_cannot_be_deleted() {
        let uploaded = MediaEvent::MediaUploaded {
            tenant_id: Uuid::from_u128(7),
            facts: facts("image/png", 10),
            key: "k".into(),
            filename: "a.png".into(),
        };
        TestFramework::<MediaAsset>::with(())
            .given(vec![uploaded.clone()])
            .when(cmd(MediaCommand::Delete { in_use: true }))
            .then_expect_error(DomainError::Conflict(
                "a post uses this image; remove it from the post first".into(),
            ));
        TestFramework::<MediaAsset>::with(())
            .given(vec![uploaded])
            .when(cmd(MediaCommand::Delete { in_use: false }))
            .then_expect_events(vec![MediaEvent::MediaDeleted]);
    }
}
