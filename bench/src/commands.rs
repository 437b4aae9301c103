//! `herald bench commands`: command throughput and latency next to the
//! server's single-row insert ceiling.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::Utc;
use domain::Scoped;
use domain::campaign::{Campaign, CampaignCommand};
use domain::metadata::{Actor, EventMetadata};
use projections::db::Backend;
use projections::{Database, Repository};
use uuid::Uuid;

use crate::support::{
    Summary, campaign_settings, close, connect, in_scratch, is_postgres, verdict,
};

/// SPEC §3: commands reach at least this share of the ceiling's throughput…
const TARGET_RATIO: f64 = 0.40;

/// Campaigns created before the mixed phase, for its commands on existing
/// aggregates to spread over (few enough conflicts, as across a tenant's
/// live campaigns).
const EXISTING: usize = 2_000;

/// In the mixed phase, one call in this many creates; the rest update an
/// existing campaign (load, decide, append): 80 % of the traffic.
const CREATE_EVERY: u64 = 5;
/// …with a 99th-percentile latency below this.
const TARGET_P99: Duration = Duration::from_millis(50);

/// Runs one task per element of `clients` for `duration`, each calling `op`
/// in a loop and timing every call. `op` takes the task's state (such as its
/// own connection) and hands it back for the next call.
async fn drive<S, F, Fut>(clients: Vec<S>, duration: Duration, op: F) -> anyhow::Result<Summary>
where
    S: Send + 'static,
    F: Fn(S) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<S>> + Send + 'static,
{
    let op = Arc::new(op);
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut state| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    state = op(state).await?;
                    latencies.push(t.elapsed());
                }
                anyhow::Ok(latencies)
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    // Until the last in-flight call ended, not the deadline: that work counts.
    Ok(Summary::of(all, started.elapsed()))
}

/// `herald bench commands`.
pub(crate) async fn commands(url: &str, clients: usize, duration: Duration) -> anyhow::Result<()> {
    if !is_postgres(url) {
        bail!("the commands benchmark needs PostgreSQL: pass --database-url postgres://…");
    }
    let (ceiling, commands, mixed) = in_scratch(Some(url), |url| async move {
        let db = connect(&url, clients as u32 + 4).await?;
        let result = measure_commands(&db, clients, duration).await;
        close(db).await;
        result
    })
    .await?;

    println!(
        "herald bench commands: PostgreSQL, {clients} clients, {}s per phase",
        duration.as_secs()
    );
    println!(
        "{:<26} {:>9} {:>10} {:>8} {:>8} {:>8}",
        "phase", "ops", "ops/s", "p50 ms", "p99 ms", "max ms"
    );
    println!("{}", ceiling.row("ceiling: single INSERT"));
    println!("{}", commands.row("commands: Campaign Create"));
    println!("{}", mixed.row("mixed: 80% update, 20% new"));
    for (name, phase) in [("commands", &commands), ("mixed", &mixed)] {
        let ratio = phase.per_sec / ceiling.per_sec;
        println!(
            "{name:<8} / ceiling  {:>6.1}%   target >= {:.0}%    {}",
            ratio * 100.0,
            TARGET_RATIO * 100.0,
            verdict(ratio >= TARGET_RATIO)
        );
        println!(
            "{name:<8} p99        {:>6.2} ms  target < {} ms    {}",
            phase.p99.as_secs_f64() * 1e3,
            TARGET_P99.as_millis(),
            verdict(phase.p99 < TARGET_P99)
        );
    }
    Ok(())
}

async fn measure_commands(
    db: &Database,
    clients: usize,
    duration: Duration,
) -> anyhow::Result<(Summary, Summary, Summary)> {
    let Backend::Postgres(pool) = &db.backend else {
        bail!("the commands benchmark needs PostgreSQL");
    };
    let pool = pool.clone();
    sqlx::query("CREATE TABLE bench_ceiling (id bigserial PRIMARY KEY, payload text NOT NULL)")
        .execute(&pool)
        .await?;
    // Phase A, as pgbench runs it: each client holds its own connection and
    // sends one autocommitted INSERT per call, one transaction in one round
    // trip. The payload is about the size of a stored event (payload and
    // metadata).
    let mut connections = Vec::with_capacity(clients);
    for _ in 0..clients {
        connections.push(pool.acquire().await?);
    }
    let payload: Arc<str> = "x".repeat(600).into();
    let ceiling = drive(connections, duration, move |mut conn| {
        let payload = payload.clone();
        async move {
            sqlx::query("INSERT INTO bench_ceiling (payload) VALUES ($1)")
                .bind(&*payload)
                .execute(&mut *conn)
                .await?;
            Ok(conn)
        }
    })
    .await
    .context("ceiling phase")?;

    // Phase B: the full write path of a command (load, decide, append),
    // taking connections from the pool as the API does; phase A left them all
    // open. Nothing listens for commits: the write path is measured alone.
    let appended = Arc::new(tokio::sync::watch::channel(0).0);
    let repo = Arc::new(Repository::<Campaign>::new(db, appended));
    let tenant = Uuid::now_v7();
    let scoped = move |command| Scoped {
        tenant_id: tenant,
        command,
    };
    let metadata = move || EventMetadata::new(tenant, Actor::System, Uuid::now_v7(), Utc::now());
    let settings = campaign_settings(0)?;
    let commands = {
        let repo = repo.clone();
        drive(vec![(); clients], duration, move |()| {
            let repo = repo.clone();
            let command = scoped(CampaignCommand::Create(settings.clone()));
            async move {
                repo.create(&Uuid::now_v7().to_string(), command, &metadata())
                    .await?;
                Ok(())
            }
        })
        .await
        .context("commands phase")?
    };

    // Phase C, the traffic of a running system: most commands change an
    // aggregate that exists (load its snapshot and events, decide, append),
    // some create one.
    let mut existing = Vec::with_capacity(EXISTING);
    for n in 0..EXISTING {
        let id = Uuid::now_v7().to_string();
        let command = scoped(CampaignCommand::Create(campaign_settings(n)?));
        repo.create(&id, command, &metadata()).await?;
        existing.push(id);
    }
    let existing: Arc<[String]> = existing.into();
    let updates: Arc<[_]> = (0..64)
        .map(campaign_settings)
        .collect::<anyhow::Result<Vec<_>>>()?
        .into();
    let clients_state: Vec<(u64, u64)> = (0..clients as u64).map(|c| (c, 0)).collect();
    let mixed = drive(clients_state, duration, move |(client, call)| {
        let repo = repo.clone();
        let existing = existing.clone();
        let updates = updates.clone();
        async move {
            // A fixed walk, different per client: no two clients follow
            // each other over the same campaigns.
            let n = client
                .wrapping_mul(7_919)
                .wrapping_add(call.wrapping_mul(104_729));
            if call % CREATE_EVERY == 0 {
                let command = scoped(CampaignCommand::Create(updates[0].clone()));
                repo.create(&Uuid::now_v7().to_string(), command, &metadata())
                    .await?;
            } else {
                let id = &existing[(n % existing.len() as u64) as usize];
                let settings = updates[(n % updates.len() as u64) as usize].clone();
                repo.execute(id, scoped(CampaignCommand::Update(settings)), &metadata())
                    .await?;
            }
            Ok((client, call + 1))
        }
    })
    .await
    .context("mixed phase")?;
    Ok((ceiling, commands, mixed))
}
