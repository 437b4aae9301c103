//! The `signage` read model and the pushes to displays.
//!
//! Each tenant's content is kept as one folded [`SignageState`] (JSON in
//! `rm_signage`), paired displays in `rm_displays`, and plays per notice,
//! display and hour in `rm_notice_plays` (kept when a notice is deleted).
//!
//! Pushes: after a batch changes a tenant's content, every display of the
//! tenant is resolved at the current instant before and after the batch, and
//! exactly those whose manifest differs are told (`manifest-changed`,
//! carrying the emergency when there is one, so a player shows it without a
//! round trip). On PostgreSQL the pushes are `pg_notify`ed inside the batch
//! transaction, so every process hears them only once the read model shows
//! the change; on SQLite (one process) they are delivered after the commit.
//! Events older than [`PUSH_MAX_AGE_SECONDS`] push nothing, so a replay
//! does not replay pushes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use domain::manifest::{ActiveEmergency, Manifest, Source, resolve};
use domain::signage::{
    CategoryEvent, ContentEvent, Display, DisplayEvent, DisplayGroup, DisplayProfile, Emergency,
    EmergencyEvent, GroupEvent, Notice, NoticeCategory, NoticeEvent, PlayReport, PlayReportEvent,
    Playlist, PlaylistEvent, ScheduleEvent, SignageSchedule, SignageState,
};
use serde_json::{Value, json};
use sqlx::{AnyConnection, AnyPool, FromRow};
use uuid::Uuid;

use crate::push::{Hub, PushMessage, PushTarget};
use crate::{GlobalLog, Projection, StoreError, StoredEvent, from_micros, micros};

/// Events older than this (when projected) push nothing.
pub const PUSH_MAX_AGE_SECONDS: i64 = 60;

/// Aggregate types whose events make up a tenant's content.
pub const CONTENT_TYPES: [&str; 6] = [
    DisplayGroup::TYPE,
    NoticeCategory::TYPE,
    Notice::TYPE,
    Playlist::TYPE,
    SignageSchedule::TYPE,
    Emergency::TYPE,
];

/// Decodes a content event of any signage aggregate (None for others).
pub fn content_event(event: &StoredEvent) -> Result<Option<ContentEvent>, StoreError> {
    let Ok(id) = Uuid::parse_str(&event.aggregate_id) else {
        return Ok(None);
    };
    Ok(Some(match event.aggregate_type.as_str() {
        t if t == DisplayGroup::TYPE => ContentEvent::Group(id, event.decode::<GroupEvent>()?),
        t if t == NoticeCategory::TYPE => {
            ContentEvent::Category(id, event.decode::<CategoryEvent>()?)
        }
        t if t == Notice::TYPE => ContentEvent::Notice(id, event.decode::<NoticeEvent>()?),
        t if t == Playlist::TYPE => ContentEvent::Playlist(id, event.decode::<PlaylistEvent>()?),
        t if t == SignageSchedule::TYPE => {
            ContentEvent::Schedule(id, event.decode::<ScheduleEvent>()?)
        }
        t if t == Emergency::TYPE => ContentEvent::Emergency(id, event.decode::<EmergencyEvent>()?),
        _ => return Ok(None),
    }))
}

/// The emergency as displays see it.
pub fn emergency_json(e: &ActiveEmergency) -> Value {
    json!({
        "id": e.id, "message": e.message, "severity": e.severity, "mediaId": e.media_id,
    })
}

/// The manifest as `GET /display/v1/manifest` answers it (without
/// `generatedAt`, so equal manifests serialize equally for the ETag).
pub fn manifest_json(display_id: Uuid, name: &str, m: &Manifest) -> Value {
    let (kind, id) = match m.source {
        Source::Emergency(id) => ("EMERGENCY", Some(id)),
        Source::Schedule(id) => ("SCHEDULE", Some(id)),
        Source::GroupDefault(id) => ("GROUP_DEFAULT", Some(id)),
        Source::Nothing => ("NONE", None),
    };
    json!({
        "displayId": display_id,
        "name": name,
        "nextChange": m.next_change,
        "source": {"kind": kind, "id": id},
        "emergency": m.emergency.as_ref().map(emergency_json),
        "slides": m.slides.iter().map(|s| json!({
            "noticeId": s.notice_id, "title": s.title, "body": s.body,
            "mediaId": s.media_id, "category": s.category,
            "durationSeconds": s.duration_seconds,
        })).collect::<Vec<_>>(),
    })
}

/// A paired display as the read model keeps it.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct DisplayRow {
    pub id: String,
    pub tenant_id: String,
    pub profile: String,
    pub online: i64,
    pub status_at: i64,
    pub paired_at: i64,
}

impl DisplayRow {
    /// The decoded profile.
    pub fn profile(&self) -> Result<DisplayProfile, StoreError> {
        serde_json::from_str(&self.profile).map_err(|source| StoreError::Decode {
            position: format!("rm_displays {}", self.id),
            source,
        })
    }

    pub fn uuid(&self) -> Uuid {
        Uuid::parse_str(&self.id).unwrap_or_default()
    }
}

const DISPLAY_COLUMNS: &str = "id, tenant_id, profile, online, status_at, paired_at";

async fn load_state(conn: &mut AnyConnection, tenant: Uuid) -> Result<SignageState, StoreError> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT state FROM rm_signage WHERE tenant_id = $1")
            .bind(tenant.to_string())
            .fetch_optional(&mut *conn)
            .await?;
    match row {
        Some((json,)) => serde_json::from_str(&json).map_err(|source| StoreError::Decode {
            position: format!("rm_signage {tenant}"),
            source,
        }),
        None => Ok(SignageState::default()),
    }
}

async fn tenant_displays(
    conn: &mut AnyConnection,
    tenant: Uuid,
) -> Result<Vec<DisplayRow>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {DISPLAY_COLUMNS} FROM rm_displays WHERE tenant_id = $1"
    ))
    .bind(tenant.to_string())
    .fetch_all(&mut *conn)
    .await?)
}

/// The `signage` projection; pushes go through `hub`.
pub struct SignageProjection {
    hub: Hub,
    /// SQLite: pushes waiting for the batch to commit.
    staged: Mutex<Vec<PushMessage>>,
    /// Whether it pushes to displays (not in a rebuild: the live
    /// projection has pushed those changes already).
    pushes: bool,
}

impl SignageProjection {
    pub fn new(hub: Hub) -> Self {
        Self {
            hub,
            staged: Mutex::new(Vec::new()),
            pushes: true,
        }
    }

    fn staged(&self) -> std::sync::MutexGuard<'_, Vec<PushMessage>> {
        self.staged
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// What a batch did to one tenant.
#[derive(Default)]
struct TenantBatch {
    before: Option<SignageState>,
    after: SignageState,
    /// When its last event was recorded.
    last_at: i64,
    content_changed: bool,
    /// Content changed by a recent event: work out pushes.
    push: bool,
}

impl SignageProjection {
    /// The projection's name (checkpoint key, `--projection` argument, and
    /// what an operation names when it waits for this read model).
    pub const NAME: &'static str = "signage";
}

#[async_trait]
impl Projection for SignageProjection {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_signage", "rm_displays", "rm_notice_plays"]
    }

    async fn apply(
        &self,
        conn: &mut AnyConnection,
        events: &[StoredEvent],
    ) -> Result<(), StoreError> {
        self.staged().clear();
        let now = Utc::now();
        let recent =
            |e: &StoredEvent| (now - e.metadata.recorded_at).num_seconds() < PUSH_MAX_AGE_SECONDS;
        let mut tenants: HashMap<Uuid, TenantBatch> = HashMap::new();
        // Displays a recent display event touched: (tenant, display) → reload?
        let mut touched: BTreeMap<(Uuid, Uuid), bool> = BTreeMap::new();
        let mut messages: Vec<PushMessage> = Vec::new();
        for event in events {
            let tenant = event.metadata.tenant_id;
            if let Some(content) = content_event(event)? {
                let batch = match tenants.entry(tenant) {
                    std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                    std::collections::hash_map::Entry::Vacant(v) => {
                        let state = load_state(conn, tenant).await?;
                        v.insert(TenantBatch {
                            before: None,
                            after: state,
                            ..Default::default()
                        })
                    }
                };
                if recent(event) && batch.before.is_none() {
                    batch.before = Some(batch.after.clone());
                }
                batch.push |= recent(event);
                batch.content_changed = true;
                batch.last_at = micros(event.metadata.recorded_at);
                batch.after.apply(content, event.metadata.recorded_at);
                continue;
            }
            let id = event.aggregate_id.as_str();
            if let Some(e) = event.event_of::<Display>()? {
                let at = micros(event.metadata.recorded_at);
                match e {
                    DisplayEvent::DisplayPaired { tenant_id, profile } => {
                        sqlx::query(
                            "INSERT INTO rm_displays (id, tenant_id, profile, online, status_at, paired_at)
                             VALUES ($1, $2, $3, 0, $4, $4) ON CONFLICT (id) DO NOTHING",
                        )
                        .bind(id)
                        .bind(tenant_id.to_string())
                        .bind(serde_json::to_string(profile).expect("profiles serialize"))
                        .bind(at)
                        .execute(&mut *conn)
                        .await?;
                    }
                    DisplayEvent::DisplayRenamed { .. } | DisplayEvent::DisplayMoved { .. } => {
                        let row: Option<(String,)> =
                            sqlx::query_as("SELECT profile FROM rm_displays WHERE id = $1")
                                .bind(id)
                                .fetch_optional(&mut *conn)
                                .await?;
                        if let Some((profile,)) = row {
                            let mut profile: DisplayProfile = serde_json::from_str(&profile)
                                .map_err(|source| StoreError::Decode {
                                    position: event.position.to_string(),
                                    source,
                                })?;
                            match e {
                                DisplayEvent::DisplayRenamed { name } => {
                                    profile.name = name.clone()
                                }
                                DisplayEvent::DisplayMoved { group_id } => {
                                    profile.group_id = *group_id
                                }
                                _ => unreachable!("matched above"),
                            }
                            sqlx::query("UPDATE rm_displays SET profile = $1 WHERE id = $2")
                                .bind(serde_json::to_string(&profile).expect("profiles serialize"))
                                .bind(id)
                                .execute(&mut *conn)
                                .await?;
                        }
                    }
                    DisplayEvent::DisplayUnpaired => {
                        sqlx::query("DELETE FROM rm_displays WHERE id = $1")
                            .bind(id)
                            .execute(&mut *conn)
                            .await?;
                    }
                    DisplayEvent::DisplayReloadRequested => {}
                    DisplayEvent::DisplayWentOnline | DisplayEvent::DisplayWentOffline => {
                        sqlx::query(
                            "UPDATE rm_displays SET online = $1, status_at = $2 WHERE id = $3",
                        )
                        .bind(i64::from(matches!(e, DisplayEvent::DisplayWentOnline)))
                        .bind(at)
                        .bind(id)
                        .execute(&mut *conn)
                        .await?;
                        continue;
                    }
                }
                if recent(event)
                    && let Ok(display) = Uuid::parse_str(id)
                {
                    let reload = matches!(e, DisplayEvent::DisplayReloadRequested);
                    let unpaired = matches!(e, DisplayEvent::DisplayUnpaired);
                    if unpaired {
                        messages.push(PushMessage {
                            tenant_id: tenant,
                            target: PushTarget::Displays(vec![display]),
                            event: "manifest-changed".into(),
                            data: json!({"emergency": null, "unpaired": true}),
                            regroup: None,
                        });
                    } else {
                        *touched.entry((tenant, display)).or_default() |= reload;
                    }
                }
                continue;
            }
            if event.aggregate_type == PlayReport::TYPE {
                let PlayReportEvent::PlaysReported {
                    tenant_id,
                    display_id,
                    plays,
                } = event.decode()?;
                // Sum per (notice, hour) first: one upsert each.
                let mut sums: BTreeMap<(Uuid, i64), (i64, i64)> = BTreeMap::new();
                for play in plays {
                    let hour = micros(play.played_at) / 3_600_000_000 * 3_600_000_000;
                    let sum = sums.entry((play.notice_id, hour)).or_default();
                    sum.0 += 1;
                    sum.1 += i64::from(play.duration_seconds);
                }
                for ((notice, hour), (n, seconds)) in sums {
                    sqlx::query(
                        "INSERT INTO rm_notice_plays (tenant_id, notice_id, display_id, hour, plays, seconds)
                         VALUES ($1, $2, $3, $4, $5, $6)
                         ON CONFLICT (notice_id, display_id, hour) DO UPDATE
                         SET plays = rm_notice_plays.plays + excluded.plays,
                             seconds = rm_notice_plays.seconds + excluded.seconds",
                    )
                    .bind(tenant_id.to_string())
                    .bind(notice.to_string())
                    .bind(display_id.to_string())
                    .bind(hour)
                    .bind(n)
                    .bind(seconds)
                    .execute(&mut *conn)
                    .await?;
                }
            }
        }
        for (tenant, batch) in &tenants {
            if batch.content_changed {
                sqlx::query(
                    "INSERT INTO rm_signage (tenant_id, state, updated_at) VALUES ($1, $2, $3)
                     ON CONFLICT (tenant_id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
                )
                .bind(tenant.to_string())
                .bind(serde_json::to_string(&batch.after).expect("states serialize"))
                .bind(batch.last_at)
                .execute(&mut *conn)
                .await?;
            }
        }
        // Pushes: content changes by diff, display events by display.
        let push_tenants: HashSet<Uuid> = tenants
            .iter()
            .filter(|(_, b)| b.push)
            .map(|(t, _)| *t)
            .chain(touched.keys().map(|(t, _)| *t))
            .collect();
        for tenant in push_tenants {
            let after = match tenants.get(&tenant) {
                Some(b) => b.after.clone(),
                None => load_state(conn, tenant).await?,
            };
            let before = tenants.get(&tenant).and_then(|b| b.before.clone());
            let (signage_after, signage_before) =
                (after.signage(), before.as_ref().map(SignageState::signage));
            // Displays grouped by what the push carries.
            let mut changed: BTreeMap<String, (Value, Vec<Uuid>)> = BTreeMap::new();
            let mut reloads = Vec::new();
            let displays = tenant_displays(conn, tenant).await?;
            let total = displays.len();
            for row in displays {
                let display = row.uuid();
                let profile = row.profile()?;
                let now_after = resolve(&after.context(display, &profile), &signage_after, now);
                let differs = match (&before, &signage_before) {
                    (Some(b), Some(sb)) => {
                        resolve(&b.context(display, &profile), sb, now) != now_after
                    }
                    _ => false,
                };
                let touch = touched.get(&(tenant, display)).copied();
                if touch == Some(true) {
                    reloads.push(display);
                }
                if differs || touch.is_some() {
                    let data =
                        json!({"emergency": now_after.emergency.as_ref().map(emergency_json)});
                    changed
                        .entry(data.to_string())
                        .or_insert_with(|| (data, Vec::new()))
                        .1
                        .push(display);
                }
            }
            for (_, (data, ids)) in changed {
                let target = if ids.len() == total && total > 1 {
                    PushTarget::Tenant
                } else {
                    PushTarget::Displays(ids)
                };
                messages.push(PushMessage {
                    tenant_id: tenant,
                    target,
                    event: "manifest-changed".into(),
                    data,
                    regroup: None,
                });
            }
            if !reloads.is_empty() {
                messages.push(PushMessage {
                    tenant_id: tenant,
                    target: PushTarget::Displays(reloads),
                    event: "command".into(),
                    data: json!({"command": "reload"}),
                    regroup: None,
                });
            }
        }
        if !self.pushes {
            return Ok(());
        }
        for message in messages {
            if !Hub::notify(conn, &message).await? {
                self.staged().push(message);
            }
        }
        Ok(())
    }

    fn for_rebuild(&self) -> Option<Arc<dyn Projection>> {
        Some(Arc::new(Self {
            pushes: false,
            ..Self::new(self.hub.clone())
        }))
    }

    async fn committed(&self) {
        let staged = std::mem::take(&mut *self.staged());
        for message in &staged {
            self.hub.deliver(message);
        }
    }
}

/// Plays of a notice in one hour on one display.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct PlayRow {
    pub display_id: String,
    pub hour: i64,
    pub plays: i64,
    pub seconds: i64,
}

/// A registered device, as its secret finds it.
#[derive(Debug, Clone, FromRow)]
pub struct DeviceRow {
    pub device_id: String,
    pub pairing_code: Option<String>,
    pub code_expires_at: i64,
    pub tenant_id: Option<String>,
}

/// Reads of the signage read model, and the device and presence tables.
/// Every read of tenant data takes the tenant.
#[derive(Clone, Debug)]
pub struct SignageQueries {
    pool: AnyPool,
    log: GlobalLog,
}

impl SignageQueries {
    pub fn new(db: &crate::Database) -> Self {
        Self {
            pool: db.any.clone(),
            log: GlobalLog::new(db.clone()),
        }
    }

    /// The tenant's content.
    pub async fn state(&self, tenant: Uuid) -> Result<SignageState, StoreError> {
        let mut conn = crate::db::scoped(&self.pool, tenant).await?;
        load_state(&mut conn, tenant).await
    }

    /// The tenant's paired displays, by name.
    pub async fn displays(&self, tenant: Uuid) -> Result<Vec<DisplayRow>, StoreError> {
        let mut conn = crate::db::scoped(&self.pool, tenant).await?;
        let mut rows = tenant_displays(&mut conn, tenant).await?;
        rows.sort_by_cached_key(|r| {
            (
                r.profile().map(|p| p.name).unwrap_or_default(),
                r.id.clone(),
            )
        });
        Ok(rows)
    }

    /// One paired display of the tenant.
    pub async fn display(&self, tenant: Uuid, id: Uuid) -> Result<Option<DisplayRow>, StoreError> {
        let mut conn = crate::db::scoped(&self.pool, tenant).await?;
        Ok(sqlx::query_as(&format!(
            "SELECT {DISPLAY_COLUMNS} FROM rm_displays WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant.to_string())
        .bind(id.to_string())
        .fetch_optional(&mut *conn)
        .await?)
    }

    /// Which of `ids` are no paired display of the tenant, in one query.
    pub async fn unknown_displays(
        &self,
        tenant: Uuid,
        ids: &[Uuid],
    ) -> Result<Vec<Uuid>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = crate::db::scoped(&self.pool, tenant).await?;
        // One query for the whole list (the API caps it at 500 ids).
        let placeholders: Vec<String> = (2..ids.len() + 2).map(|n| format!("${n}")).collect();
        let sql = format!(
            "SELECT id FROM rm_displays WHERE tenant_id = $1 AND id IN ({})",
            placeholders.join(", ")
        );
        let mut query = sqlx::query_as(&sql).bind(tenant.to_string());
        for id in ids {
            query = query.bind(id.to_string());
        }
        let known: Vec<(String,)> = query.fetch_all(&mut *conn).await?;
        let known: std::collections::HashSet<&str> =
            known.iter().map(|(id,)| id.as_str()).collect();
        Ok(ids
            .iter()
            .filter(|id| !known.contains(id.to_string().as_str()))
            .copied()
            .collect())
    }

    /// What a paired display shows at `at`, from the read model.
    pub async fn manifest(
        &self,
        tenant: Uuid,
        id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<Option<(DisplayProfile, Manifest)>, StoreError> {
        let mut conn = crate::db::scoped(&self.pool, tenant).await?;
        let row: Option<DisplayRow> = sqlx::query_as(&format!(
            "SELECT {DISPLAY_COLUMNS} FROM rm_displays WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant.to_string())
        .bind(id.to_string())
        .fetch_optional(&mut *conn)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let state = load_state(&mut conn, tenant).await?;
        let profile = row.profile()?;
        let manifest = resolve(&state.context(id, &profile), &state.signage(), at);
        Ok(Some((profile, manifest)))
    }

    /// What a display showed at `as_of`, folded from the log (time travel):
    /// None if it was not paired to the tenant then.
    pub async fn manifest_as_of(
        &self,
        tenant: Uuid,
        id: Uuid,
        as_of: DateTime<Utc>,
    ) -> Result<Option<(DisplayProfile, Manifest)>, StoreError> {
        let mut types = CONTENT_TYPES.to_vec();
        types.push(Display::TYPE);
        let events = self.log.tenant_history(tenant, &types, as_of).await?;
        let mut state = SignageState::default();
        let mut profile: Option<DisplayProfile> = None;
        let display = id.to_string();
        for event in &events {
            if let Some(content) = content_event(event)? {
                state.apply(content, event.metadata.recorded_at);
            } else if event.aggregate_id == display {
                match event.decode::<DisplayEvent>()? {
                    DisplayEvent::DisplayPaired { profile: p, .. } => profile = Some(p),
                    DisplayEvent::DisplayRenamed { name } => {
                        if let Some(p) = &mut profile {
                            p.name = name;
                        }
                    }
                    DisplayEvent::DisplayMoved { group_id } => {
                        if let Some(p) = &mut profile {
                            p.group_id = group_id;
                        }
                    }
                    DisplayEvent::DisplayUnpaired => profile = None,
                    _ => {}
                }
            }
        }
        Ok(profile.map(|p| {
            let manifest = resolve(&state.context(id, &p), &state.signage(), as_of);
            (p, manifest)
        }))
    }

    /// Plays of a notice of the tenant between `from` and `to`, per display
    /// and hour.
    pub async fn notice_plays(
        &self,
        tenant: Uuid,
        notice: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<PlayRow>, StoreError> {
        let mut conn = crate::db::scoped(&self.pool, tenant).await?;
        Ok(sqlx::query_as(
            "SELECT display_id, hour, plays, seconds FROM rm_notice_plays
              WHERE tenant_id = $1 AND notice_id = $2 AND hour >= $3 AND hour < $4
              ORDER BY hour, display_id",
        )
        .bind(tenant.to_string())
        .bind(notice.to_string())
        .bind(micros(from) / 3_600_000_000 * 3_600_000_000)
        .bind(micros(to))
        .fetch_all(&mut *conn)
        .await?)
    }

    // ------------------------------------------------ devices and presence

    /// Records a registration (hashes only).
    pub async fn register_device(
        &self,
        device: Uuid,
        secret_hash: &str,
        code: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO display_devices (device_id, secret_hash, pairing_code, code_expires_at, created_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(device.to_string())
        .bind(secret_hash)
        .bind(code)
        .bind(micros(expires_at))
        .bind(micros(Utc::now()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The device a secret belongs to.
    pub async fn device_by_secret(
        &self,
        secret_hash: &str,
    ) -> Result<Option<DeviceRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT device_id, pairing_code, code_expires_at, tenant_id FROM display_devices WHERE secret_hash = $1",
        )
        .bind(secret_hash)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The unpaired device whose code this is, if the code has not expired.
    pub async fn pending_device(&self, code: &str) -> Result<Option<Uuid>, StoreError> {
        let row: Option<(String,)> = sqlx::query_as(
            "SELECT device_id FROM display_devices
              WHERE pairing_code = $1 AND tenant_id IS NULL AND code_expires_at > $2",
        )
        .bind(code)
        .bind(micros(Utc::now()))
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.and_then(|(id,)| Uuid::parse_str(&id).ok()))
    }

    /// Marks a device paired (after `DisplayPaired` was recorded).
    pub async fn mark_paired(&self, device: Uuid, tenant: Uuid) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE display_devices SET tenant_id = $1, paired_at = $2, pairing_code = NULL
              WHERE device_id = $3",
        )
        .bind(tenant.to_string())
        .bind(micros(Utc::now()))
        .bind(device.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets a device (unpaired: its secret stops working).
    pub async fn forget_device(&self, device: Uuid) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM display_devices WHERE device_id = $1")
            .bind(device.to_string())
            .execute(&self.pool)
            .await?;
        sqlx::query("DELETE FROM display_presence WHERE display_id = $1")
            .bind(device.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Deletes registrations whose code expired unpaired.
    pub async fn forget_expired_devices(&self) -> Result<u64, StoreError> {
        Ok(sqlx::query(
            "DELETE FROM display_devices WHERE tenant_id IS NULL AND code_expires_at < $1",
        )
        .bind(micros(Utc::now()))
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    /// Heartbeats of the displays connected to one process.
    pub async fn heartbeat(&self, displays: &[(Uuid, Uuid)]) -> Result<(), StoreError> {
        let now = micros(Utc::now());
        let mut conn = self.pool.acquire().await?;
        for chunk in displays.chunks(crate::infra::sql::CHUNK) {
            let sql = format!(
                "INSERT INTO display_presence (tenant_id, display_id, last_seen) VALUES {}
                 ON CONFLICT (display_id) DO UPDATE SET last_seen = excluded.last_seen",
                crate::infra::sql::placeholders(&conn, chunk.len(), 3)
            );
            let mut query = sqlx::query(&sql);
            for (tenant, display) in chunk {
                query = query
                    .bind(tenant.to_string())
                    .bind(display.to_string())
                    .bind(now);
            }
            query.execute(&mut *conn).await?;
        }
        Ok(())
    }

    /// Displays whose presence disagrees with the read model: (tenant,
    /// display, now online?). Seen within `window_seconds` counts as online.
    pub async fn presence_changes(
        &self,
        window_seconds: i64,
    ) -> Result<Vec<(Uuid, Uuid, bool)>, StoreError> {
        let cutoff = micros(Utc::now()) - window_seconds * 1_000_000;
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT d.tenant_id, d.id, CASE WHEN p.last_seen >= $1 THEN 1 ELSE 0 END
               FROM rm_displays d LEFT JOIN display_presence p ON p.display_id = d.id
              WHERE d.online <> (CASE WHEN p.last_seen >= $1 THEN 1 ELSE 0 END)
              LIMIT 1000",
        )
        .bind(cutoff)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(t, d, online)| {
                Some((
                    Uuid::parse_str(&t).ok()?,
                    Uuid::parse_str(&d).ok()?,
                    online == 1,
                ))
            })
            .collect())
    }
}

/// When a play row's hour starts.
pub fn hour_of(row: &PlayRow) -> DateTime<Utc> {
    from_micros(row.hour)
}
