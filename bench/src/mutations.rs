//! `herald bench mutations`: concurrent clients send GraphQL `createPost`
//! mutations to one Herald process (`herald serve` on SQLite, `herald api`
//! on PostgreSQL, started by the bench) as fast as it answers them, for a
//! fixed time. Each answer comes once the read model it reads shows the new
//! post (read-your-writes), so the latency includes the projector's work.
//! Reports throughput and p50/p99/max latency.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;

use crate::server::{Client, Server};
use crate::support::{Summary, in_scratch, is_postgres, verdict};

/// Issue 15's targets at 16 clients, on both databases.
const TARGET_P50: Duration = Duration::from_millis(10);
const TARGET_P99: Duration = Duration::from_millis(50);
const TARGET_PER_SEC: f64 = 1000.0;
/// Before measuring: connections opened, caches and statements warm.
const WARM_UP: Duration = Duration::from_secs(1);

/// `herald bench mutations`.
pub async fn mutations(url: Option<&str>, clients: usize, seconds: Duration) -> anyhow::Result<()> {
    if url.is_some_and(|u| !is_postgres(u) && !u.starts_with("sqlite:")) {
        bail!("unsupported database URL: expected postgres://… or sqlite:…");
    }
    let (backend, summary, errors) = in_scratch(url, |db_url| async move {
        let backend = if is_postgres(&db_url) {
            "PostgreSQL, herald api"
        } else {
            "SQLite, herald serve"
        };
        let mut server = Server::start(&db_url, &[]).await?;
        let measured = measure(&server, clients, seconds).await;
        server.stop().await?;
        let (summary, errors) = measured?;
        Ok((backend, summary, errors))
    })
    .await?;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("herald bench mutations: createPost from {clients} concurrent clients ({backend})");
    println!(
        "{:<26} {:>9} {:>10} {:>8} {:>8} {:>8}",
        "", "ops", "ops/s", "p50 ms", "p99 ms", "max ms"
    );
    println!("{}   errors {errors}", summary.row("createPost"));
    println!(
        "targets: p50 < {:.0} ms (p50 {:.2} ms), p99 < {:.0} ms (p99 {:.2} ms), ≥ {TARGET_PER_SEC:.0}/s ({:.0}/s), no errors   {}",
        ms(TARGET_P50),
        ms(summary.p50),
        ms(TARGET_P99),
        ms(summary.p99),
        summary.per_sec,
        verdict(
            errors == 0
                && summary.p50 < TARGET_P50
                && summary.p99 < TARGET_P99
                && summary.per_sec >= TARGET_PER_SEC
        )
    );
    Ok(())
}

const CREATE_POST: &str = "mutation($i: CreatePostInput!) { createPost(input: $i) { id status } }";

/// Latencies of the measured phase, and how many mutations failed.
async fn measure(
    server: &Server,
    clients: usize,
    seconds: Duration,
) -> anyhow::Result<(Summary, usize)> {
    let mut client = Client::of(server, clients)?;
    client.sign_up("Bench").await?;
    let today = chrono::Utc::now().date_naive();
    let campaign = client
        .gql(
            "mutation($i: CampaignInput!) { createCampaign(input: $i) { id } }",
            json!({"i": {
                "name": "Bench",
                "timeZone": "UTC",
                "startsOn": today.to_string(),
                "endsOn": (today + chrono::Days::new(365)).to_string(),
            }}),
        )
        .await
        .context("creating the campaign")?;
    let campaign = campaign["createCampaign"]["id"]
        .as_str()
        .context("createCampaign returned no id")?
        .to_string();

    let started = Instant::now();
    let measure_from = started + WARM_UP;
    let until = measure_from + seconds;
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..clients {
        let (client, campaign) = (client.clone(), campaign.clone());
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0usize;
            let mut n = 0usize;
            while Instant::now() < until {
                n += 1;
                let sent = Instant::now();
                let answer = client
                    .gql(
                        CREATE_POST,
                        json!({"i": {"campaignId": campaign, "entries": [{"text": format!("Bench post {c}-{n}")}]}}),
                    )
                    .await;
                let took = sent.elapsed();
                if sent < measure_from {
                    continue;
                }
                match answer {
                    Ok(data) if data["createPost"]["id"].is_string() => latencies.push(took),
                    Ok(data) => {
                        errors += 1;
                        eprintln!("createPost answered without an id: {data}");
                    }
                    Err(error) => {
                        errors += 1;
                        if errors <= 3 {
                            eprintln!("createPost failed: {error:#}");
                        }
                    }
                }
            }
            (latencies, errors)
        });
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    while let Some(done) = tasks.join_next().await {
        let (mine, failed) = done?;
        latencies.extend(mine);
        errors += failed;
    }
    let elapsed = Instant::now().saturating_duration_since(measure_from);
    if latencies.is_empty() {
        bail!("no createPost succeeded ({errors} failed)");
    }
    Ok((Summary::of(latencies, elapsed), errors))
}
