//! Where uploaded images live: an object store (a directory under the data
//! directory by default, or any S3-compatible bucket), and what a file is,
//! judged by decoding its bytes rather than by its name, its header or the
//! client's word.

use std::path::Path;
use std::sync::Arc;

use std::io::Cursor;

use bytes::Bytes;
use domain::DomainError;
use domain::media::{ImageFacts, MAX_IMAGE_SIDE, too_large};
use image::{ImageDecoder, ImageError, ImageFormat, ImageReader, Limits};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as Key;
use object_store::{ObjectStore, PutPayload};
use sha2::{Digest, Sha256};

/// Why the store failed (never holds credentials).
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("media store: {0}")]
    Store(#[from] object_store::Error),
    #[error("media store configuration: {0}")]
    Config(String),
}

/// The object store of uploaded media.
#[derive(Clone, Debug)]
pub struct MediaStore {
    store: Arc<dyn ObjectStore>,
}

impl MediaStore {
    /// `url` `s3://bucket[/prefix]` uses S3 (credentials, region and, for
    /// S3-compatible servers, `AWS_ENDPOINT` from the usual `AWS_*`
    /// variables); without it, files go to `<data_dir>/media`.
    pub fn from_config(url: Option<&str>, data_dir: &Path) -> Result<Self, MediaError> {
        let store: Arc<dyn ObjectStore> = match url {
            Some(url) if url.starts_with("s3://") => Arc::new(
                AmazonS3Builder::from_env()
                    .with_url(url)
                    .build()
                    .map_err(|e| MediaError::Config(e.to_string()))?,
            ),
            Some(_) => {
                return Err(MediaError::Config(
                    "HERALD_MEDIA_URL must be s3://bucket".into(),
                ));
            }
            None => {
                let dir = data_dir.join("media");
                std::fs::create_dir_all(&dir)
                    .map_err(|e| MediaError::Config(format!("{}: {e}", dir.display())))?;
                Arc::new(
                    LocalFileSystem::new_with_prefix(&dir)
                        .map_err(|e| MediaError::Config(e.to_string()))?,
                )
            }
        };
        Ok(Self { store })
    }

    /// An in-memory store, for tests.
    pub fn memory() -> Self {
        Self {
            store: Arc::new(object_store::memory::InMemory::new()),
        }
    }

    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<(), MediaError> {
        self.store
            .put(&Key::from(key), PutPayload::from_bytes(bytes))
            .await?;
        Ok(())
    }

    pub async fn get(&self, key: &str) -> Result<Bytes, MediaError> {
        Ok(self.store.get(&Key::from(key)).await?.bytes().await?)
    }

    pub async fn delete(&self, key: &str) -> Result<(), MediaError> {
        match self.store.delete(&Key::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// The most memory decoding one upload may take (the decoded pixels
/// included): 8-bit RGBA at [`MAX_IMAGE_PIXELS`](domain::media::MAX_IMAGE_PIXELS) fits, 16-bit RGBA of that
/// size does not. Decoders honour it as far as they can; the pixel buffer
/// itself is checked against it before it is allocated.
pub const MAX_DECODE_BYTES: u64 = 128 * 1024 * 1024;

/// What `bytes` are, judged by decoding them: the type from the magic bytes,
/// the pixel size from the header, and then the whole image (the first frame
/// of an animation) decoded within [`MAX_DECODE_BYTES`], so that a file is
/// accepted only when its bytes really are the image they claim to be.
/// Cheapest checks first: type, byte size and the header's pixel size
/// ([`ImageFacts::check`]) before any pixel is decoded. `field` names the
/// input in the [`DomainError::Validation`] that refuses anything else.
///
/// CPU-bound (up to a few hundred milliseconds for the largest image): call
/// it off the async runtime.
pub fn inspect(bytes: &[u8], field: &str) -> Result<ImageFacts, DomainError> {
    let not_an_image =
        || DomainError::invalid(field, "not an image Bluesky shows (PNG, JPEG, WebP or GIF)");
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|_| not_an_image())?;
    let (mime, name) = match reader.format() {
        Some(ImageFormat::Png) => ("image/png", "PNG"),
        Some(ImageFormat::Jpeg) => ("image/jpeg", "JPEG"),
        Some(ImageFormat::WebP) => ("image/webp", "WebP"),
        Some(ImageFormat::Gif) => ("image/gif", "GIF"),
        _ => return Err(not_an_image()),
    };
    let refused = |error: ImageError| match error {
        ImageError::Limits(_) => DomainError::invalid(field, too_large(None)),
        _ => DomainError::invalid(
            field,
            format!("the file is not a valid {name} image: it does not decode"),
        ),
    };
    let mut reader = reader;
    reader.limits(decode_limits());
    let decoder = reader.into_decoder().map_err(refused)?;
    let (width, height) = decoder.dimensions();
    let facts = ImageFacts {
        mime: mime.to_string(),
        size: bytes.len() as u64,
        width,
        height,
        sha256: hex::encode(Sha256::digest(bytes)),
    };
    facts.check(field)?;
    let pixels = decoder.total_bytes();
    if pixels > MAX_DECODE_BYTES {
        return Err(DomainError::invalid(
            field,
            too_large(Some((width, height))),
        ));
    }
    let mut buffer = vec![0; pixels as usize];
    decoder.read_image(&mut buffer).map_err(refused)?;
    Ok(facts)
}

/// The decoder limits: Herald's pixel size per side (strict in every
/// decoder) and the memory cap.
fn decode_limits() -> Limits {
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    limits
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_support::fixtures::{gif, jpeg, png, png_claiming};

    fn refusal(bytes: &[u8]) -> String {
        match inspect(bytes, "file") {
            Err(DomainError::Validation { field, message }) => {
                assert_eq!(field, "file");
                message
            }
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn genuine_images_are_recognised_by_decoding_them() {
        for (bytes, mime, size) in [
            (png(3, 2), "image/png", (3, 2)),
            (jpeg(17, 9), "image/jpeg", (17, 9)),
            (gif(5, 4), "image/gif", (5, 4)),
        ] {
            let facts = inspect(&bytes, "file").unwrap();
            assert_eq!(facts.mime, mime);
            assert_eq!((facts.width, facts.height), size);
            assert_eq!(facts.size, bytes.len() as u64);
            assert_eq!(facts.sha256, hex::encode(Sha256::digest(&bytes)));
        }
    }

    #[test]
    fn other_files_are_no_images() {
        for bytes in [&b"%PDF-1.7 not an image"[..], b"", b"BM\x00\x00 a bitmap"] {
            assert!(refusal(bytes).starts_with("not an image"), "{bytes:?}");
        }
    }

    #[test]
    fn a_header_claiming_a_huge_image_is_refused_before_decoding() {
        let huge = refusal(&png_claiming(i32::MAX as u32, i32::MAX as u32));
        assert!(huge.contains("16384"), "{huge}");
        // Within the limit per side, but 256 megapixels in all.
        let wide = refusal(&png_claiming(16_000, 16_000));
        assert!(wide.contains("25000000 pixels in all"), "{wide}");
        refusal(&png_claiming(0, 5));
    }

    #[test]
    fn bytes_that_are_not_the_claimed_format_are_refused() {
        // `<h` and `tm` read as 26,684 × 28,020 pixels: refused as too large.
        let html = refusal(b"GIF89a<html><body><script>alert(1)</script></body></html>");
        assert!(html.contains("too large"), "{html}");
        // With a plausible size in front, the page is no GIF data.
        let html = refusal(b"GIF89a\x10\x00\x10\x00\x00\x00\x00<html><script>alert(1)</script>");
        assert_eq!(
            html,
            "the file is not a valid GIF image: it does not decode"
        );
        let jpeg_marker = refusal(b"\xFF\xD8\xFF\xE0<?php system($_GET['c']); ?>");
        assert!(jpeg_marker.contains("JPEG"), "{jpeg_marker}");
        // Right header, pixels cut off or claimed but missing.
        let mut cut = png(40, 20);
        cut.truncate(cut.len() - 200);
        assert!(refusal(&cut).contains("does not decode"));
        assert!(refusal(&png_claiming(40, 20)).contains("does not decode"));
        // A JPEG cut off inside its scan data still decodes (the rest
        // gray), as in browsers: `image` runs zune-jpeg leniently. Its
        // structure up to the cut is checked, which is what matters here.
        let mut cut = jpeg(40, 20);
        cut.truncate(cut.len() / 2);
        assert_eq!(inspect(&cut, "file").unwrap().mime, "image/jpeg");
        cut.truncate(100);
        assert!(refusal(&cut).contains("does not decode"));
    }

    #[tokio::test]
    async fn the_store_round_trips_and_deleting_twice_is_fine() {
        let store = MediaStore::memory();
        store.put("t/a", Bytes::from_static(b"abc")).await.unwrap();
        assert_eq!(store.get("t/a").await.unwrap(), Bytes::from_static(b"abc"));
        store.delete("t/a").await.unwrap();
        store.delete("t/a").await.unwrap();
        assert!(store.get("t/a").await.is_err());
    }
}
