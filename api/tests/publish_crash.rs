//! Exactly-once under crashes: `herald worker` is killed with SIGKILL at
//! random moments while it publishes 200 scheduled posts (a tenth of them
//! threads) and restarted each time; afterwards every entry exists exactly
//! once on the PDS, threads intact.

mod common;

use std::time::Duration;

use chrono::Utc;
use common::{Deployment, Publisher, assert_published_exactly_once, peer};
use rand::Rng;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_worker_mid_publish_never_loses_or_doubles_a_post() {
    let peer = peer();
    let deployment = Deployment::new().await;
    let (_api_process, api) = deployment.api().await;
    let publisher = Publisher::set_up(&api, &peer).await;
    let marker = format!("crash-{}", uuid::Uuid::new_v4().simple());
    let due = Utc::now() + chrono::Duration::seconds(40);
    let posts = publisher.schedule_posts(&marker, 200, due).await;
    assert!(
        Utc::now() < due,
        "scheduling took too long for the test's plan"
    );
    tokio::time::sleep((due - Utc::now()).to_std().unwrap_or_default()).await;

    let mut worker = deployment.worker();
    let mut kills = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(240);
    loop {
        let pause = rand::thread_rng().gen_range(200..1500);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let (done, failed, total) = publisher.counts().await.unwrap_or((0, 0, 0));
        assert_eq!(failed, 0, "no post may fail");
        if done == total && total == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {done} of {total} published"
        );
        if kills < 12 {
            worker.kill().await.expect("SIGKILL");
            kills += 1;
            worker = deployment.worker();
        }
    }
    worker.kill().await.ok();
    assert!(
        kills >= 3,
        "the worker was killed mid-publish ({kills} times)"
    );
    assert_published_exactly_once(&peer, &marker, &posts).await;
}
