//! Where uploaded images live: an object store (a directory under the data
//! directory by default, or any S3-compatible bucket), and what a file is,
//! judged from its bytes rather than its name or the client's word.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use domain::media::ImageFacts;
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

/// What `bytes` are: the image type from its magic bytes and its pixel size
/// from its header. `None` when it is no image this module knows.
pub fn sniff(bytes: &[u8]) -> Option<ImageFacts> {
    let mime = match imagesize::image_type(bytes).ok()? {
        imagesize::ImageType::Png => "image/png",
        imagesize::ImageType::Jpeg => "image/jpeg",
        imagesize::ImageType::Webp => "image/webp",
        imagesize::ImageType::Gif => "image/gif",
        _ => "application/octet-stream",
    };
    let size = imagesize::blob_size(bytes).ok();
    Some(ImageFacts {
        mime: mime.to_string(),
        size: bytes.len() as u64,
        width: size.map_or(0, |s| s.width as u32),
        height: size.map_or(0, |s| s.height as u32),
        sha256: hex::encode(Sha256::digest(bytes)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 3×2 PNG header (enough for type and size).
    fn png() -> Vec<u8> {
        let mut b = vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
        b.extend_from_slice(&[0, 0, 0, 13]);
        b.extend_from_slice(b"IHDR");
        b.extend_from_slice(&3u32.to_be_bytes());
        b.extend_from_slice(&2u32.to_be_bytes());
        b.extend_from_slice(&[8, 6, 0, 0, 0, 0, 0, 0, 0]);
        b
    }

    #[test]
    fn images_are_recognised_by_their_bytes() {
        let facts = sniff(&png()).unwrap();
        assert_eq!(facts.mime, "image/png");
        assert_eq!((facts.width, facts.height), (3, 2));
        assert!(sniff(b"%PDF-1.7 not an image").is_none());
        assert!(sniff(b"").is_none());
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
