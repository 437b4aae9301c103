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

/// Longest side of an accepted image, in pixels. Far above what Bluesky
/// shows (it scales to 2000 px), so no real photo or screenshot is refused,
/// while a header claiming more (up to 2³¹−1) is.
pub const MAX_IMAGE_SIDE: u32 = 16_384;

/// Most pixels an accepted image may have (25 megapixels: a 6000 × 4000
/// camera photo fits). Bounds the memory an upload is decoded into, since
/// a file within [`BLUESKY_MAX_IMAGE_BYTES`] can still claim far more.
pub const MAX_IMAGE_PIXELS: u64 = 25_000_000;

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
        check_dimensions(self.width, self.height, field)
    }
}

/// Whether `width` × `height` is an image size Herald takes: some pixels,
/// at most [`MAX_IMAGE_SIDE`] per side and [`MAX_IMAGE_PIXELS`] in all.
/// Decoders call it with the header's size before decoding any pixel.
pub fn check_dimensions(width: u32, height: u32, field: &str) -> Result<(), DomainError> {
    if width == 0 || height == 0 {
        return Err(DomainError::invalid(field, "the image has no pixels"));
    }
    if width > MAX_IMAGE_SIDE
        || height > MAX_IMAGE_SIDE
        || u64::from(width) * u64::from(height) > MAX_IMAGE_PIXELS
    {
        return Err(DomainError::invalid(
            field,
            too_large(Some((width, height))),
        ));
    }
    Ok(())
}

/// The message for an image over the size limits; `size` when known.
pub fn too_large(size: Option<(u32, u32)>) -> String {
    let limits = format!(
        "at most {MAX_IMAGE_SIDE} pixels per side and {MAX_IMAGE_PIXELS} pixels in all are accepted"
    );
    match size {
        Some((w, h)) => format!("the image is {w} × {h} pixels; {limits}"),
        None => format!("the image is too large; {limits}"),
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
    fn image_sizes_are_bounded_per_side_and_in_all() {
        let ok = |w, h| check_dimensions(w, h, "file").is_ok();
        assert!(ok(1, 1));
        assert!(ok(MAX_IMAGE_SIDE, 1));
        assert!(ok(6000, 4000));
        assert!(ok(5000, 5000), "exactly the pixel cap");
        assert!(!ok(0, 3) && !ok(3, 0));
        assert!(!ok(MAX_IMAGE_SIDE + 1, 1));
        assert!(!ok(1, MAX_IMAGE_SIDE + 1));
        assert!(!ok(5000, 5001), "one row over the pixel cap");
        assert!(!ok(i32::MAX as u32, i32::MAX as u32));
        assert!(!ok(u32::MAX, u32::MAX), "the product does not overflow");
        let big = ImageFacts {
            width: 16_000,
            height: 16_000,
            ..facts("image/png", 10)
        };
        assert_eq!(
            big.check("file"),
            Err(DomainError::invalid(
                "file",
                "the image is 16000 × 16000 pixels; at most 16384 pixels per side and \
                 25000000 pixels in all are accepted"
            ))
        );
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
