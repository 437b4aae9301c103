//! Live pushes to signage displays. A [`Hub`] holds the displays connected to
//! this process (one [`Subscription`] per open event stream) and delivers a
//! [`PushMessage`] to those it targets. Between processes, pushes travel as
//! PostgreSQL notifications on the `herald_push` channel: [`Hub::notify`]
//! sends one inside the caller's transaction (so it goes out only at commit)
//! and [`Hub::listen`] delivers what arrives. On SQLite there is one process,
//! and the caller delivers itself after its commit.
//!
//! Delivery never waits for a display: each subscription has a small queue,
//! and one whose queue is full is disconnected. Its player reconnects and
//! fetches the manifest, which is what a missed push would have asked for.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::db::Backend;
use crate::{Database, StoreError};

/// The PostgreSQL notification channel pushes travel on.
pub const CHANNEL: &str = "herald_push";
/// PostgreSQL refuses a notification payload of this many bytes or more.
const NOTIFY_LIMIT: usize = 8000;
/// Pushes a subscription may have waiting before it is disconnected.
const QUEUE: usize = 16;
/// A target list shorter than this is searched linearly; a longer one goes
/// into a set first (the list is compared with every subscriber).
const LINEAR_SEARCH: usize = 8;
/// First and longest wait before the listener connects again.
const MIN_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Which displays of a tenant a push is for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PushTarget {
    /// Every display of the tenant.
    Tenant,
    /// Displays whose group or parent group is one of these.
    Groups(Vec<Uuid>),
    /// These displays.
    Displays(Vec<Uuid>),
}

/// One push: an SSE event for some displays of one tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushMessage {
    pub tenant_id: Uuid,
    pub target: PushTarget,
    /// SSE event name: "manifest-changed" or "command".
    pub event: String,
    /// SSE data (JSON), the same for every recipient.
    pub data: serde_json::Value,
    /// When set, the matched displays now belong to these groups (group,
    /// parent group) before delivery (a display was moved).
    #[serde(default)]
    pub regroup: Option<(Option<Uuid>, Option<Uuid>)>,
}

/// (group, parent group) of a display.
type Groups = (Option<Uuid>, Option<Uuid>);

/// One open event stream.
struct Subscriber {
    display: Uuid,
    groups: Groups,
    sender: mpsc::Sender<Bytes>,
}

/// Subscribers by tenant, then by subscription id.
type Registry = HashMap<Uuid, HashMap<u64, Subscriber>>;

#[derive(Default)]
struct Inner {
    next_id: AtomicU64,
    tenants: RwLock<Registry>,
    /// Set by [`Hub::close`]: the process is stopping.
    closed: AtomicBool,
}

impl Inner {
    // Nothing panics while the lock is held, and the registry stays
    // consistent at every step, so a poisoned lock is still usable.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Registry> {
        self.tenants.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Registry> {
        self.tenants.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The displays connected to this process. Cheap to clone (shared inside).
#[derive(Clone, Default)]
pub struct Hub {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let subscribers: usize = self.inner.read().values().map(HashMap::len).sum();
        f.debug_struct("Hub")
            .field("subscribers", &subscribers)
            .finish()
    }
}

/// Whether an id is in a target list; sets for long lists.
enum Ids<'a> {
    Few(&'a [Uuid]),
    Many(HashSet<Uuid>),
}

impl<'a> Ids<'a> {
    fn new(ids: &'a [Uuid]) -> Self {
        if ids.len() < LINEAR_SEARCH {
            Self::Few(ids)
        } else {
            Self::Many(ids.iter().copied().collect())
        }
    }

    fn contains(&self, id: &Uuid) -> bool {
        match self {
            Self::Few(ids) => ids.contains(id),
            Self::Many(ids) => ids.contains(id),
        }
    }
}

/// A push target prepared for matching many subscribers.
enum Matcher<'a> {
    All,
    Groups(Ids<'a>),
    Displays(Ids<'a>),
}

impl<'a> Matcher<'a> {
    fn new(target: &'a PushTarget) -> Self {
        match target {
            PushTarget::Tenant => Self::All,
            PushTarget::Groups(ids) => Self::Groups(Ids::new(ids)),
            PushTarget::Displays(ids) => Self::Displays(Ids::new(ids)),
        }
    }

    fn matches(&self, subscriber: &Subscriber) -> bool {
        match self {
            Self::All => true,
            Self::Groups(ids) => {
                let (group, parent) = subscriber.groups;
                group.is_some_and(|g| ids.contains(&g)) || parent.is_some_and(|p| ids.contains(&p))
            }
            Self::Displays(ids) => ids.contains(&subscriber.display),
        }
    }
}

/// The SSE frame of a push, formatted once for all its recipients.
fn frame(event: &str, data: &serde_json::Value) -> Bytes {
    // A line break in the name would end the field early and let the rest
    // pass as fields of its own; compact JSON never holds a raw one.
    let event: String = event
        .chars()
        .filter(|c| !matches!(c, '\n' | '\r'))
        .collect();
    Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

impl Hub {
    /// An empty hub.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a connected display; the Subscription unregisters on Drop.
    /// `groups` = (group id, parent group id). A display may connect more
    /// than once (two tabs): each subscription gets every push. After
    /// [`Hub::close`] the subscription is ended from the start.
    pub fn subscribe(&self, tenant: Uuid, display: Uuid, groups: Groups) -> Subscription {
        let (sender, receiver) = mpsc::channel(QUEUE);
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let subscription = Subscription {
            inner: self.inner.clone(),
            tenant,
            id,
            receiver,
        };
        let mut tenants = self.inner.write();
        // Checked under the lock `close` sweeps under: never registered
        // after the sweep.
        if self.inner.closed.load(Ordering::SeqCst) {
            // Its sender dropped here: the stream ends at once.
            return subscription;
        }
        tenants.entry(tenant).or_default().insert(
            id,
            Subscriber {
                display,
                groups,
                sender,
            },
        );
        drop(tenants);
        metrics::gauge!("herald_push_subscribers").increment(1.0);
        subscription
    }

    /// Delivers to local subscribers matching the target (Tenant = all of the
    /// tenant; Groups = display's group or parent group in the list; Displays
    /// = by id). Returns how many subscriptions got it. Never blocks: a
    /// subscriber whose queue is full is disconnected (its stream ends; the
    /// player reconnects and refetches).
    pub fn deliver(&self, message: &PushMessage) -> usize {
        let frame = frame(&message.event, &message.data);
        let matcher = Matcher::new(&message.target);
        let mut delivered = 0;
        let mut full = Vec::new();
        let mut offer =
            |id: u64, subscriber: &Subscriber| match subscriber.sender.try_send(frame.clone()) {
                Ok(()) => delivered += 1,
                Err(mpsc::error::TrySendError::Full(_)) => full.push(id),
                // Its Subscription is being dropped and unregisters itself.
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            };
        if let Some(groups) = message.regroup {
            let mut tenants = self.inner.write();
            if let Some(subscribers) = tenants.get_mut(&message.tenant_id) {
                for (id, subscriber) in subscribers.iter_mut() {
                    if matcher.matches(subscriber) {
                        subscriber.groups = groups;
                        offer(*id, subscriber);
                    }
                }
            }
        } else {
            let tenants = self.inner.read();
            if let Some(subscribers) = tenants.get(&message.tenant_id) {
                for (id, subscriber) in subscribers {
                    if matcher.matches(subscriber) {
                        offer(*id, subscriber);
                    }
                }
            }
        }
        if !full.is_empty() {
            tracing::debug!(tenant = %message.tenant_id, count = full.len(), "disconnecting displays that fell behind");
            metrics::counter!("herald_push_overflows_total").increment(full.len() as u64);
            let removed: Vec<Subscriber> = {
                let mut tenants = self.inner.write();
                match tenants.get_mut(&message.tenant_id) {
                    Some(subscribers) => full
                        .iter()
                        .filter_map(|id| subscribers.remove(id))
                        .collect(),
                    None => Vec::new(),
                }
            };
            metrics::gauge!("herald_push_subscribers").decrement(removed.len() as f64);
            // Senders are dropped here, outside the lock: the streams end.
            drop(removed);
        }
        metrics::counter!("herald_push_deliveries_total").increment(delivered as u64);
        delivered
    }

    /// Distinct (tenant, display) pairs connected here, for presence
    /// heartbeats.
    pub fn connected(&self) -> Vec<(Uuid, Uuid)> {
        let pairs: HashSet<(Uuid, Uuid)> = self
            .inner
            .read()
            .iter()
            .flat_map(|(tenant, subscribers)| subscribers.values().map(|s| (*tenant, s.display)))
            .collect();
        pairs.into_iter().collect()
    }

    /// Ends every subscription and every later one: the process is
    /// stopping. An open event stream is a response in progress, which a
    /// graceful HTTP shutdown would otherwise wait for without end; ended,
    /// its player reconnects to another process or to this one restarted.
    pub fn close(&self) {
        let all = {
            let mut tenants = self.inner.write();
            self.inner.closed.store(true, Ordering::SeqCst);
            std::mem::take(&mut *tenants)
        };
        let count: usize = all.values().map(HashMap::len).sum();
        metrics::gauge!("herald_push_subscribers").decrement(count as f64);
        // Senders are dropped here, outside the lock: the streams end.
        drop(all);
    }

    /// Ends every subscription (their players reconnect and refetch): for
    /// when pushes may have been lost, as while the listener was away.
    fn disconnect_all(&self) {
        let all = std::mem::take(&mut *self.inner.write());
        let count: usize = all.values().map(HashMap::len).sum();
        if count > 0 {
            tracing::info!(
                count,
                "disconnecting every display: pushes may have been missed"
            );
            metrics::gauge!("herald_push_subscribers").decrement(count as f64);
        }
    }

    /// Sends `message` to every process: on PostgreSQL `SELECT
    /// pg_notify('herald_push', <json>)` on `conn` (so inside the caller's
    /// transaction it is delivered only at commit; Displays/Groups targets
    /// are split into several notifications so each payload stays under
    /// PostgreSQL's 8000-byte limit); on SQLite (single process) it returns
    /// Ok(false) and does nothing — the caller then calls `deliver` itself
    /// after its commit. Returns Ok(true) when notified via PostgreSQL.
    ///
    /// PostgreSQL folds identical notifications of one transaction into
    /// one, so a push repeated within a transaction arrives once. A split
    /// `Groups` push with `regroup` could reach a moved display twice, if its
    /// new group is in a later part; moves target `Displays`, which split
    /// safely.
    pub async fn notify(
        conn: &mut AnyConnection,
        message: &PushMessage,
    ) -> Result<bool, StoreError> {
        if conn.backend_name() != "PostgreSQL" {
            return Ok(false);
        }
        for payload in payloads(message)? {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind(payload)
                .execute(&mut *conn)
                .await?;
        }
        Ok(true)
    }

    /// PostgreSQL only (no-op task on SQLite): LISTENs on `herald_push` on a
    /// dedicated connection and `deliver`s each notification locally;
    /// reconnects with backoff if the connection drops, until `shutdown` is
    /// true. Every time listening (re)starts, the local subscriptions are
    /// ended, since pushes sent while nobody listened are lost.
    pub fn listen(&self, db: &Database, mut shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
        let Backend::Postgres(pool) = &db.backend else {
            return tokio::spawn(async {});
        };
        // Its own connection, outside the pool: it is held for good.
        let options = (*pool.connect_options()).clone();
        let hub = self.clone();
        tokio::spawn(async move {
            let mut backoff = MIN_BACKOFF;
            loop {
                match hub
                    .listen_until_lost(&options, &mut shutdown, &mut backoff)
                    .await
                {
                    Ok(()) => return,
                    Err(error) => tracing::warn!(
                        error = ?error,
                        retry_in_ms = backoff.as_millis() as u64,
                        "push listener lost its connection"
                    ),
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.wait_for(|stop| *stop) => return,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        })
    }

    /// Listens until shutdown (`Ok`) or a failure the listener cannot
    /// recover from by itself (`Err`). Resets `backoff` once listening.
    async fn listen_until_lost(
        &self,
        options: &PgConnectOptions,
        shutdown: &mut watch::Receiver<bool>,
        backoff: &mut Duration,
    ) -> Result<(), sqlx::Error> {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .max_lifetime(None)
            .idle_timeout(None)
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy_with(options.clone());
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.ignore_pool_close_event(true);
        listener.listen(CHANNEL).await?;
        *backoff = MIN_BACKOFF;
        tracing::debug!("listening for pushes");
        self.disconnect_all();
        loop {
            tokio::select! {
                biased;
                _ = shutdown.wait_for(|stop| *stop) => return Ok(()),
                received = listener.try_recv() => match received? {
                    Some(notification) => self.deliver_payload(notification.payload()),
                    // sqlx has connected and listens again, but whatever
                    // was sent in between is gone.
                    None => {
                        tracing::warn!("push listener reconnected after losing its connection");
                        self.disconnect_all();
                    }
                },
            }
        }
    }

    fn deliver_payload(&self, payload: &str) {
        match serde_json::from_str::<PushMessage>(payload) {
            Ok(message) => {
                self.deliver(&message);
            }
            Err(error) => {
                tracing::warn!(%error, "ignoring a push notification that does not parse")
            }
        }
    }
}

/// Makes a target of the same kind from part of its list.
type Rebuild = fn(Vec<Uuid>) -> PushTarget;

/// The notification payloads carrying `message`: one for a tenant-wide
/// push, as many as needed to keep each under PostgreSQL's limit for a list
/// of groups or displays, none for an empty list.
fn payloads(message: &PushMessage) -> Result<Vec<String>, StoreError> {
    let too_large = |bytes: usize| StoreError::PushTooLarge { bytes };
    let (ids, rebuild): (&[Uuid], Rebuild) = match &message.target {
        PushTarget::Tenant => {
            let payload = serde_json::to_string(message).map_err(StoreError::PushEncode)?;
            return if payload.len() < NOTIFY_LIMIT {
                Ok(vec![payload])
            } else {
                Err(too_large(payload.len()))
            };
        }
        PushTarget::Groups(ids) => (ids, PushTarget::Groups),
        PushTarget::Displays(ids) => (ids, PushTarget::Displays),
    };
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let encode = |chunk: &[Uuid]| {
        let part = PushMessage {
            target: rebuild(chunk.to_vec()),
            ..message.clone()
        };
        serde_json::to_string(&part).map_err(StoreError::PushEncode)
    };
    // Each id adds `"<36 characters>",` to the empty list.
    const PER_ID: usize = 39;
    let base = encode(&[])?.len();
    let per_chunk = (NOTIFY_LIMIT - 1).saturating_sub(base) / PER_ID;
    if per_chunk == 0 {
        return Err(too_large(base + PER_ID));
    }
    ids.chunks(per_chunk).map(encode).collect()
}

/// One display's open event stream: pushes for it, in order.
pub struct Subscription {
    inner: Arc<Inner>,
    tenant: Uuid,
    id: u64,
    receiver: mpsc::Receiver<Bytes>,
}

impl Subscription {
    /// Next push as a ready-to-send SSE frame ("event: …\ndata: …\n\n"),
    /// shared between recipients. None when the hub disconnected it.
    pub async fn next(&mut self) -> Option<Bytes> {
        self.receiver.recv().await
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let removed = {
            let mut tenants = self.inner.write();
            let removed = tenants
                .get_mut(&self.tenant)
                .and_then(|subscribers| subscribers.remove(&self.id));
            if tenants.get(&self.tenant).is_some_and(HashMap::is_empty) {
                tenants.remove(&self.tenant);
            }
            removed
        };
        // Already gone when the hub disconnected it.
        if removed.is_some() {
            metrics::gauge!("herald_push_subscribers").decrement(1.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn message(tenant: Uuid, target: PushTarget) -> PushMessage {
        PushMessage {
            tenant_id: tenant,
            target,
            event: "manifest-changed".into(),
            data: json!({"emergency": null}),
            regroup: None,
        }
    }

    /// The frames waiting for `sub`, without waiting for more.
    fn pending(sub: &mut Subscription) -> Vec<Bytes> {
        std::iter::from_fn(|| sub.receiver.try_recv().ok()).collect()
    }

    #[test]
    fn a_tenant_push_reaches_every_display_of_the_tenant_and_no_other() {
        let hub = Hub::new();
        let (tenant, other) = (Uuid::new_v4(), Uuid::new_v4());
        let mut a = hub.subscribe(tenant, Uuid::new_v4(), (None, None));
        let mut b = hub.subscribe(tenant, Uuid::new_v4(), (Some(Uuid::new_v4()), None));
        let mut c = hub.subscribe(other, Uuid::new_v4(), (None, None));
        assert_eq!(hub.deliver(&message(tenant, PushTarget::Tenant)), 2);
        assert_eq!(pending(&mut a).len(), 1);
        assert_eq!(pending(&mut b).len(), 1);
        assert!(pending(&mut c).is_empty());
    }

    #[test]
    fn a_group_push_reaches_displays_in_the_group_or_below_it() {
        let hub = Hub::new();
        let tenant = Uuid::new_v4();
        let (parent, child, elsewhere) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let mut direct = hub.subscribe(tenant, Uuid::new_v4(), (Some(parent), None));
        let mut nested = hub.subscribe(tenant, Uuid::new_v4(), (Some(child), Some(parent)));
        let mut outside = hub.subscribe(tenant, Uuid::new_v4(), (Some(elsewhere), None));
        let mut ungrouped = hub.subscribe(tenant, Uuid::new_v4(), (None, None));
        assert_eq!(
            hub.deliver(&message(tenant, PushTarget::Groups(vec![parent]))),
            2
        );
        assert_eq!(pending(&mut direct).len(), 1);
        assert_eq!(pending(&mut nested).len(), 1);
        assert!(pending(&mut outside).is_empty());
        assert!(pending(&mut ungrouped).is_empty());
        assert_eq!(
            hub.deliver(&message(tenant, PushTarget::Groups(vec![child]))),
            1
        );
        assert_eq!(pending(&mut nested).len(), 1);
        // Another tenant's push never crosses over, whatever its groups.
        assert_eq!(
            hub.deliver(&message(Uuid::new_v4(), PushTarget::Groups(vec![parent]))),
            0
        );
    }

    #[test]
    fn a_display_push_reaches_each_connection_of_those_displays() {
        let hub = Hub::new();
        let tenant = Uuid::new_v4();
        let (display, other) = (Uuid::new_v4(), Uuid::new_v4());
        let mut tab1 = hub.subscribe(tenant, display, (None, None));
        let mut tab2 = hub.subscribe(tenant, display, (None, None));
        let mut rest = hub.subscribe(tenant, other, (None, None));
        assert_eq!(
            hub.deliver(&message(tenant, PushTarget::Displays(vec![display]))),
            2
        );
        assert_eq!(pending(&mut tab1).len(), 1);
        assert_eq!(pending(&mut tab2).len(), 1);
        assert!(pending(&mut rest).is_empty());
    }

    #[test]
    fn long_target_lists_match_like_short_ones() {
        let hub = Hub::new();
        let tenant = Uuid::new_v4();
        let displays: Vec<Uuid> = (0..50).map(|_| Uuid::new_v4()).collect();
        let mut subs: Vec<_> = displays
            .iter()
            .map(|d| hub.subscribe(tenant, *d, (Some(*d), None)))
            .collect();
        let _outside = hub.subscribe(tenant, Uuid::new_v4(), (None, None));
        assert_eq!(
            hub.deliver(&message(tenant, PushTarget::Displays(displays.clone()))),
            50
        );
        assert_eq!(
            hub.deliver(&message(
                tenant,
                PushTarget::Groups(displays[..20].to_vec())
            )),
            20
        );
        assert!(subs.iter_mut().all(|s| !pending(s).is_empty()));
    }

    #[test]
    fn a_regroup_moves_the_matched_displays_before_later_pushes() {
        let hub = Hub::new();
        let tenant = Uuid::new_v4();
        let (old, new, parent) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let (display, stays) = (Uuid::new_v4(), Uuid::new_v4());
        let mut moved = hub.subscribe(tenant, display, (Some(old), None));
        let mut kept = hub.subscribe(tenant, stays, (Some(old), None));
        let mut push = message(tenant, PushTarget::Displays(vec![display]));
        push.regroup = Some((Some(new), Some(parent)));
        assert_eq!(hub.deliver(&push), 1, "the move itself is delivered");
        assert_eq!(pending(&mut moved).len(), 1);
        assert_eq!(
            hub.deliver(&message(tenant, PushTarget::Groups(vec![old]))),
            1
        );
        assert!(pending(&mut moved).is_empty());
        assert_eq!(pending(&mut kept).len(), 1);
        assert_eq!(
            hub.deliver(&message(tenant, PushTarget::Groups(vec![parent]))),
            1
        );
        assert_eq!(pending(&mut moved).len(), 1);
    }

    #[test]
    fn dropping_a_subscription_unregisters_it() {
        let hub = Hub::new();
        let (tenant, display) = (Uuid::new_v4(), Uuid::new_v4());
        let first = hub.subscribe(tenant, display, (None, None));
        let second = hub.subscribe(tenant, display, (None, None));
        assert_eq!(
            hub.connected(),
            vec![(tenant, display)],
            "one pair for two tabs"
        );
        drop(first);
        assert_eq!(hub.deliver(&message(tenant, PushTarget::Tenant)), 1);
        drop(second);
        assert_eq!(hub.deliver(&message(tenant, PushTarget::Tenant)), 0);
        assert!(hub.connected().is_empty());
        assert!(hub.inner.read().is_empty(), "no empty tenant entry is left");
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_is_disconnected_without_blocking() {
        let hub = Hub::new();
        let tenant = Uuid::new_v4();
        let mut slow = hub.subscribe(tenant, Uuid::new_v4(), (None, None));
        let mut quick = hub.subscribe(tenant, Uuid::new_v4(), (None, None));
        for _ in 0..QUEUE {
            assert_eq!(hub.deliver(&message(tenant, PushTarget::Tenant)), 2);
            assert!(quick.next().await.is_some());
        }
        assert_eq!(
            hub.deliver(&message(tenant, PushTarget::Tenant)),
            1,
            "only the one that kept up"
        );
        assert!(quick.next().await.is_some());
        assert_eq!(hub.connected().len(), 1);
        // What was queued is still read, then the stream ends.
        for _ in 0..QUEUE {
            assert!(slow.next().await.is_some());
        }
        assert_eq!(slow.next().await, None);
        drop(slow);
        assert_eq!(hub.deliver(&message(tenant, PushTarget::Tenant)), 1);
    }

    #[tokio::test]
    async fn the_frame_is_an_sse_event_shared_by_all_recipients() {
        let hub = Hub::new();
        let tenant = Uuid::new_v4();
        let mut a = hub.subscribe(tenant, Uuid::new_v4(), (None, None));
        let mut b = hub.subscribe(tenant, Uuid::new_v4(), (None, None));
        let mut push = message(tenant, PushTarget::Tenant);
        push.data = json!({"emergency": {"message": "Leave\nnow"}});
        hub.deliver(&push);
        let (fa, fb) = (a.next().await.unwrap(), b.next().await.unwrap());
        assert_eq!(
            &fa[..],
            b"event: manifest-changed\ndata: {\"emergency\":{\"message\":\"Leave\\nnow\"}}\n\n"
        );
        assert_eq!(fa.as_ptr(), fb.as_ptr(), "formatted once");
        push.event = "com\nmand".into();
        push.data = json!({"command": "reload"});
        hub.deliver(&push);
        assert_eq!(
            &a.next().await.unwrap()[..],
            b"event: command\ndata: {\"command\":\"reload\"}\n\n"
        );
    }

    #[tokio::test]
    async fn closing_ends_every_stream_and_every_later_one() {
        let hub = Hub::new();
        let tenant = Uuid::new_v4();
        let mut before = hub.subscribe(tenant, Uuid::new_v4(), (None, None));
        hub.close();
        assert_eq!(before.next().await, None);
        let mut after = hub.subscribe(tenant, Uuid::new_v4(), (None, None));
        assert_eq!(after.next().await, None);
        assert!(hub.connected().is_empty());
        assert_eq!(hub.deliver(&message(tenant, PushTarget::Tenant)), 0);
    }

    #[test]
    fn disconnecting_all_ends_every_stream() {
        let hub = Hub::new();
        let mut sub = hub.subscribe(Uuid::new_v4(), Uuid::new_v4(), (None, None));
        hub.disconnect_all();
        assert!(hub.connected().is_empty());
        assert!(matches!(
            sub.receiver.try_recv(),
            Err(mpsc::error::TryRecvError::Disconnected)
        ));
    }

    #[test]
    fn long_target_lists_are_split_into_payloads_postgres_accepts() {
        let tenant = Uuid::new_v4();
        let displays: Vec<Uuid> = (0..1000).map(|_| Uuid::new_v4()).collect();
        let mut push = message(tenant, PushTarget::Displays(displays.clone()));
        push.regroup = Some((Some(Uuid::new_v4()), Some(Uuid::new_v4())));
        let parts = payloads(&push).unwrap();
        assert!(parts.len() > 1);
        let mut seen = Vec::new();
        for part in &parts {
            assert!(part.len() < NOTIFY_LIMIT, "{} bytes", part.len());
            let decoded: PushMessage = serde_json::from_str(part).unwrap();
            let PushTarget::Displays(ids) = decoded.target else {
                panic!("target changed kind")
            };
            assert_eq!(
                (
                    decoded.tenant_id,
                    &decoded.event,
                    &decoded.data,
                    decoded.regroup
                ),
                (tenant, &push.event, &push.data, push.regroup)
            );
            seen.extend(ids);
        }
        assert_eq!(seen, displays, "every id once, in order");
        // Full chunks are as full as the limit allows.
        assert!(
            parts[0].len() > NOTIFY_LIMIT - 40,
            "{} bytes",
            parts[0].len()
        );

        let groups = message(tenant, PushTarget::Groups(displays[..3].to_vec()));
        assert_eq!(payloads(&groups).unwrap().len(), 1);
        assert!(
            payloads(&message(tenant, PushTarget::Displays(vec![])))
                .unwrap()
                .is_empty()
        );
        let whole = payloads(&message(tenant, PushTarget::Tenant)).unwrap();
        assert_eq!(
            serde_json::from_str::<PushMessage>(&whole[0]).unwrap(),
            message(tenant, PushTarget::Tenant)
        );
    }

    #[test]
    fn data_too_large_for_one_notification_is_refused() {
        let mut push = message(Uuid::new_v4(), PushTarget::Tenant);
        push.data = json!({"emergency": {"message": "x".repeat(NOTIFY_LIMIT)}});
        assert!(matches!(
            payloads(&push),
            Err(StoreError::PushTooLarge { .. })
        ));
        push.target = PushTarget::Displays(vec![Uuid::new_v4()]);
        assert!(matches!(
            payloads(&push),
            Err(StoreError::PushTooLarge { .. })
        ));
    }

    #[test]
    fn a_message_without_regroup_parses() {
        let tenant = Uuid::new_v4();
        let parsed: PushMessage = serde_json::from_value(json!({
            "tenant_id": tenant, "target": "Tenant", "event": "command", "data": {"command": "reload"}
        }))
        .unwrap();
        assert_eq!(parsed.regroup, None);
    }
}
