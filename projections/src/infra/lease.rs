//! Leases on rows of `projection_checkpoints`: who may advance a projection
//! (a row per projection), and who may rebuild read models (the
//! [`REBUILD`] row). A lease names its holder ([`ProcessIdentity`]) and
//! expires unless renewed; a holder that is provably gone loses it at once.

use std::sync::Arc;
use std::time::Duration;

use sqlx::AnyPool;

use crate::StoreError;
use crate::infra::process::ProcessIdentity;

/// The row whose lease a rebuild of read models holds (one at a time).
pub(crate) const REBUILD: &str = "~rebuild";

pub(crate) fn now_micros() -> i64 {
    crate::time::micros(chrono::Utc::now())
}

/// A lease on the checkpoint row `name`, held as `owner`.
#[derive(Clone, Debug)]
pub(crate) struct Lease {
    pub(crate) name: &'static str,
    pub(crate) owner: String,
    /// The process behind `owner`, when it is a real one: then a lease held
    /// by a process that is provably gone is taken at once.
    pub(crate) identity: Option<Arc<ProcessIdentity>>,
    /// How long the lease lasts without renewal.
    pub(crate) term: Duration,
}

impl Lease {
    /// When a lease taken now ends.
    pub(crate) fn until(&self) -> i64 {
        now_micros() + self.term.as_micros() as i64
    }

    async fn ensure_row(&self, pool: &AnyPool) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO projection_checkpoints (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
        )
        .bind(self.name)
        .execute(pool)
        .await?;
        Ok(())
    }

    /// Takes or renews the lease; `true` if it is held now. A lease held by
    /// a process that is provably gone (see [`crate::infra::process`]) is
    /// taken at once; any other holder keeps it until it expires.
    pub(crate) async fn acquire(&self, pool: &AnyPool) -> Result<bool, StoreError> {
        self.ensure_row(pool).await?;
        let now = now_micros();
        let done = sqlx::query(
            "UPDATE projection_checkpoints SET lease_owner = $1, lease_until = $2
              WHERE name = $3 AND (lease_owner = $1 OR lease_owner IS NULL OR lease_until < $4)",
        )
        .bind(&self.owner)
        .bind(self.until())
        .bind(self.name)
        .bind(now)
        .execute(pool)
        .await?;
        if done.rows_affected() == 1 {
            return Ok(true);
        }
        let Some(identity) = &self.identity else {
            return Ok(false);
        };
        let holder: Option<(Option<String>,)> =
            sqlx::query_as("SELECT lease_owner FROM projection_checkpoints WHERE name = $1")
                .bind(self.name)
                .fetch_optional(pool)
                .await?;
        let Some(holder) = holder.and_then(|(owner,)| owner) else {
            return Ok(false);
        };
        if !identity.outlived(&holder) {
            return Ok(false);
        }
        // Compare and swap: only the gone holder's lease is taken.
        let taken = sqlx::query(
            "UPDATE projection_checkpoints SET lease_owner = $1, lease_until = $2
              WHERE name = $3 AND lease_owner = $4",
        )
        .bind(&self.owner)
        .bind(self.until())
        .bind(self.name)
        .bind(&holder)
        .execute(pool)
        .await?
        .rows_affected()
            == 1;
        if taken {
            tracing::info!(lease = self.name, previous = %holder, "took over the lease of a process that is gone");
        }
        Ok(taken)
    }

    /// Takes the lease whoever holds it. Safe because every write under a
    /// lease is fenced on it in the same transaction: the previous holder's
    /// next batch writes nothing and its runner waits, as for an expired
    /// lease, until this one is released.
    pub(crate) async fn take(&self, pool: &AnyPool) -> Result<(), StoreError> {
        self.ensure_row(pool).await?;
        sqlx::query(
            "UPDATE projection_checkpoints SET lease_owner = $1, lease_until = $2 WHERE name = $3",
        )
        .bind(&self.owner)
        .bind(self.until())
        .bind(self.name)
        .execute(pool)
        .await?;
        Ok(())
    }

    /// Gives the lease up so another process can take over at once.
    pub(crate) async fn release(&self, pool: &AnyPool) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE projection_checkpoints SET lease_owner = NULL, lease_until = 0
              WHERE name = $1 AND lease_owner = $2",
        )
        .bind(self.name)
        .bind(&self.owner)
        .execute(pool)
        .await?;
        Ok(())
    }
}
