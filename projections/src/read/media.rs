//! The `media` read model: the tenant's uploaded images, and which posts use
//! them (so an image in use cannot be deleted).

use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use domain::media::{MediaAsset, MediaEvent};
use domain::post::{Post, PostEntry, PostEvent};
use sqlx::{AnyConnection, AnyPool, FromRow};
use uuid::Uuid;

use crate::infra::sql::{CHUNK, in_list, placeholders};
use crate::{Projection, StoreError, StoredEvent, micros};

/// The `media` projection.
pub struct Media;

/// The images a post's entries use.
fn assets(entries: &[PostEntry]) -> BTreeSet<String> {
    entries
        .iter()
        .flat_map(|e| e.media.iter().map(|m| m.asset_id.to_string()))
        .collect()
}

impl Media {
    /// The projection's name (checkpoint key, `--projection` argument, and
    /// what an operation names when it waits for this read model).
    pub const NAME: &'static str = "media";
}

#[async_trait]
impl Projection for Media {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_media", "rm_media_uses"]
    }

    fn deferred_indexes(&self) -> &'static [&'static str] {
        &["rm_media_tenant", "rm_media_uses_asset"]
    }

    async fn apply(
        &self,
        conn: &mut AnyConnection,
        events: &[StoredEvent],
    ) -> Result<(), StoreError> {
        // Post id → the assets it uses after this batch; `replace` marks posts
        // whose earlier uses must go first.
        let mut uses: HashMap<String, BTreeSet<String>> = HashMap::new();
        let mut replace: BTreeSet<String> = BTreeSet::new();
        for event in events {
            let id = event.aggregate_id.as_str();
            if let Some(e) = event.event_of::<MediaAsset>()? {
                match e {
                    MediaEvent::MediaUploaded {
                        tenant_id,
                        facts,
                        filename,
                        ..
                    } => {
                        sqlx::query(
                            "INSERT INTO rm_media (id, tenant_id, mime, size, width, height, filename, created_at)
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING",
                        )
                        .bind(id)
                        .bind(tenant_id.to_string())
                        .bind(facts.mime.as_str())
                        .bind(facts.size as i64)
                        .bind(i64::from(facts.width))
                        .bind(i64::from(facts.height))
                        .bind(filename.as_str())
                        .bind(micros(event.metadata.recorded_at))
                        .execute(&mut *conn)
                        .await?;
                    }
                    MediaEvent::MediaDeleted => {
                        sqlx::query("DELETE FROM rm_media WHERE id = $1")
                            .bind(id)
                            .execute(&mut *conn)
                            .await?;
                    }
                }
                continue;
            }
            let Some(e) = event.event_of::<Post>()? else {
                continue;
            };
            // Only the events that change which images a post uses.
            match e {
                PostEvent::PostCreated { entries, .. } => {
                    let used = assets(entries);
                    if !used.is_empty() {
                        uses.insert(id.to_string(), used);
                    }
                }
                PostEvent::PostUpdated { entries } => {
                    replace.insert(id.to_string());
                    uses.insert(id.to_string(), assets(entries));
                }
                PostEvent::PostDeleted => {
                    replace.insert(id.to_string());
                    uses.remove(id);
                }
                _ => {}
            }
        }
        let replace: Vec<String> = replace.into_iter().collect();
        for chunk in replace.chunks(CHUNK) {
            let sql = format!(
                "DELETE FROM rm_media_uses WHERE post_id IN ({})",
                in_list(conn, chunk.len())
            );
            let mut query = sqlx::query(&sql);
            for id in chunk {
                query = query.bind(id.as_str());
            }
            query.execute(&mut *conn).await?;
        }
        let rows: Vec<(String, String)> = uses
            .into_iter()
            .flat_map(|(post, assets)| assets.into_iter().map(move |a| (post.clone(), a)))
            .collect();
        for chunk in rows.chunks(CHUNK) {
            let sql = format!(
                "INSERT INTO rm_media_uses (post_id, asset_id) VALUES {} ON CONFLICT DO NOTHING",
                placeholders(conn, chunk.len(), 2)
            );
            let mut query = sqlx::query(&sql);
            for (post, asset) in chunk {
                query = query.bind(post.as_str()).bind(asset.as_str());
            }
            query.execute(&mut *conn).await?;
        }
        Ok(())
    }
}

/// An uploaded image as the API lists it.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct MediaRow {
    pub id: String,
    pub tenant_id: String,
    pub mime: String,
    pub size: i64,
    pub width: i64,
    pub height: i64,
    pub filename: String,
    pub created_at: i64,
}

const COLUMNS: &str = "id, tenant_id, mime, size, width, height, filename, created_at";

/// Reads of the media read model; every read takes the tenant.
#[derive(Clone, Debug)]
pub struct MediaQueries {
    pool: AnyPool,
}

impl MediaQueries {
    pub fn new(pool: AnyPool) -> Self {
        Self { pool }
    }

    /// The tenant's images, newest first.
    pub async fn list(&self, tenant: Uuid, limit: i64) -> Result<Vec<MediaRow>, StoreError> {
        let mut conn = crate::db::scoped(&self.pool, tenant).await?;
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM rm_media WHERE tenant_id = $1 ORDER BY created_at DESC, id LIMIT $2"
        ))
        .bind(tenant.to_string())
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?)
    }

    /// One image of the tenant.
    pub async fn get(&self, tenant: Uuid, id: Uuid) -> Result<Option<MediaRow>, StoreError> {
        let mut conn = crate::db::scoped(&self.pool, tenant).await?;
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM rm_media WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant.to_string())
        .bind(id.to_string())
        .fetch_optional(&mut *conn)
        .await?)
    }

    /// Whether any post uses the image.
    pub async fn in_use(&self, id: Uuid) -> Result<bool, StoreError> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM rm_media_uses WHERE asset_id = $1")
            .bind(id.to_string())
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }
}
