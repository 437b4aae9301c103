//! Bluesky behind [`Platform`]: the clients and sessions of
//! [`Accounts`](crate::accounts::Accounts), and the calls of
//! [`crate::bluesky::Client`]. Creating a record at a key that exists fails,
//! with a plain `500` that reads as ambiguous, so a repeated publish never
//! makes a second record: the publisher's look-up finds the first.

use std::sync::Arc;

use async_trait::async_trait;

use super::{Account, Counts, Entry, Platform, PlatformError, PlatformKind, Published, Record};
use crate::accounts::{AccountError, Accounts};
use crate::bluesky::{
    Appview, BlueskyError, Client, ErrorKind, Image, PostRecord, Reply, StrongRef,
};

impl From<BlueskyError> for PlatformError {
    fn from(error: BlueskyError) -> Self {
        let message = error.message;
        match error.kind {
            ErrorKind::Transient if error.ambiguous => Self::Ambiguous(message),
            ErrorKind::Transient => Self::Transient(message),
            ErrorKind::RateLimited => Self::RateLimited {
                message,
                retry_after: error.retry_after,
            },
            ErrorKind::Auth => Self::Auth(message),
            ErrorKind::Invalid => Self::Invalid(message),
        }
    }
}

impl From<AccountError> for PlatformError {
    fn from(error: AccountError) -> Self {
        match error {
            AccountError::Bluesky(e) => e.into(),
            AccountError::Store(e) => Self::Internal(e.to_string()),
        }
    }
}

fn strong_ref(record: &Record) -> StrongRef {
    StrongRef {
        uri: record.uri.clone(),
        cid: record.cid.clone(),
    }
}

fn record(r: StrongRef) -> Record {
    Record {
        uri: r.uri,
        cid: r.cid,
    }
}

/// Bluesky accounts, through the session cache shared by every worker task.
#[derive(Clone)]
pub struct Bluesky {
    accounts: Accounts,
    appview: Appview,
}

impl Bluesky {
    /// Reads engagement from Bluesky's AppView through each account's PDS.
    pub fn new(accounts: Accounts) -> Self {
        Self {
            accounts,
            appview: Appview::Proxy {
                did: "did:web:api.bsky.app".into(),
            },
        }
    }

    /// Reads engagement from `appview` instead.
    pub fn with_appview(self, appview: Appview) -> Self {
        Self { appview, ..self }
    }

    async fn client(&self, account: Account<'_>) -> Result<Arc<Client>, PlatformError> {
        Ok(self.accounts.client(account.id, account.connection).await?)
    }
}

#[async_trait]
impl Platform for Bluesky {
    fn kind(&self) -> PlatformKind {
        PlatformKind::Bluesky
    }

    async fn publish(
        &self,
        account: Account<'_>,
        key: &str,
        entry: &Entry,
    ) -> Result<Published, PlatformError> {
        let client = self.client(account).await?;
        // The PDS keeps one copy per content hash: uploading again on a
        // retry stores nothing new. A failed upload created no post, so it
        // is never ambiguous.
        let mut images = Vec::with_capacity(entry.media.len());
        for media in &entry.media {
            let blob = client
                .upload_blob(media.bytes.to_vec(), &media.mime)
                .await
                .map_err(|e| BlueskyError {
                    ambiguous: false,
                    ..e
                })?;
            images.push(Image {
                blob,
                alt: media.alt.clone(),
                width: media.width,
                height: media.height,
            });
        }
        let post = PostRecord {
            text: entry.text.clone(),
            langs: entry.langs.clone(),
            facets: entry.facets.clone(),
            // Part of the record's CID: the same for every attempt.
            created_at: entry.created_at,
            reply: entry.reply_to.as_ref().map(|thread| Reply {
                root: strong_ref(&thread.root),
                parent: strong_ref(&thread.parent),
            }),
            images,
        };
        let (facets, warnings) = client.resolve_mentions(&post.facets).await;
        let created = client.create_post(key, &post, &facets).await?;
        // The client refreshes its tokens as they expire: keep the new ones.
        if let Err(error) = self
            .accounts
            .save_session(account.id, account.tenant, &client)
            .await
        {
            tracing::warn!(%error, "could not save the refreshed session");
        }
        Ok(Published {
            record: record(created),
            warnings,
        })
    }

    async fn find(&self, account: Account<'_>, key: &str) -> Result<Option<Record>, PlatformError> {
        let client = self.client(account).await?;
        Ok(client.get_post(key).await?.map(record))
    }

    async fn delete(&self, account: Account<'_>, key: &str) -> Result<(), PlatformError> {
        let client = self.client(account).await?;
        Ok(client.delete_post(key).await?)
    }

    async fn engagement(
        &self,
        account: Account<'_>,
        uris: &[String],
    ) -> Result<Vec<Counts>, PlatformError> {
        let client = self.client(account).await?;
        Ok(client.engagement(uris, &self.appview).await?)
    }

    async fn refresh(&self, account: Account<'_>) -> Result<(), PlatformError> {
        self.accounts.forget(account.id).await;
        self.accounts
            .log_in(account.id, account.tenant, account.connection)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bluesky_errors_keep_their_meaning() {
        let ambiguous = BlueskyError {
            ambiguous: true,
            ..BlueskyError::new(ErrorKind::Transient, "createRecord: timed out")
        };
        assert_eq!(
            PlatformError::from(ambiguous),
            PlatformError::Ambiguous("createRecord: timed out".into())
        );
        assert_eq!(
            PlatformError::from(BlueskyError::new(ErrorKind::Transient, "refused")),
            PlatformError::Transient("refused".into())
        );
        let reset = chrono::Utc::now();
        let limited = BlueskyError {
            retry_after: Some(reset),
            ..BlueskyError::new(ErrorKind::RateLimited, "429")
        };
        assert_eq!(
            PlatformError::from(limited),
            PlatformError::RateLimited {
                message: "429".into(),
                retry_after: Some(reset)
            }
        );
        assert_eq!(
            PlatformError::from(BlueskyError::new(ErrorKind::Auth, "ExpiredToken")),
            PlatformError::Auth("ExpiredToken".into())
        );
        assert_eq!(
            PlatformError::from(BlueskyError::new(ErrorKind::Invalid, "too long")),
            PlatformError::Invalid("too long".into())
        );
    }
}
