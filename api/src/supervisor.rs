//! The one supervisor of a Herald process: every long-running task (the
//! HTTP server, projector runners, process managers, housekeeping) runs
//! under it by name. When a task fails or panics, its error is logged with
//! its cause chain and the whole process stops (an orchestrator restarts
//! it: a half-running process would look healthy while doing nothing). On
//! shutdown (SIGTERM, SIGINT or the handle) every task is told to stop and
//! given a bounded grace period; what is still running then is aborted and
//! named in the log.

use std::borrow::Cow;
use std::future::Future;
use std::time::Duration;

use anyhow::anyhow;
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinHandle, JoinSet};

type Name = Cow<'static, str>;

/// Named tasks of one process and the signal that stops them.
pub struct Supervisor {
    tasks: JoinSet<(Name, anyhow::Result<()>)>,
    /// Tasks spawned elsewhere, aborted with the rest after the grace period.
    adopted: Vec<(Name, AbortHandle)>,
    stop: watch::Sender<bool>,
}

impl Supervisor {
    /// A supervisor whose tasks stop when `stop` turns true.
    pub fn new(stop: watch::Sender<bool>) -> Self {
        Self {
            tasks: JoinSet::new(),
            adopted: Vec::new(),
            stop,
        }
    }

    /// The signal tasks watch to know when to stop.
    pub fn shutdown(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// Runs `task` under `name`.
    pub fn spawn<F>(&mut self, name: impl Into<Name>, task: F)
    where
        F: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let name = name.into();
        tracing::debug!(task = %name, "task started");
        self.tasks.spawn(async move { (name, task.await) });
    }

    /// Runs a task that never fails on its own under `name`.
    pub fn spawn_infallible<F>(&mut self, name: impl Into<Name>, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.spawn(name, async move {
            task.await;
            Ok(())
        });
    }

    /// Supervises a task already spawned; a panic in it is a failure.
    pub fn adopt(&mut self, name: impl Into<Name>, handle: JoinHandle<()>) {
        let name = name.into();
        self.adopted.push((name.clone(), handle.abort_handle()));
        self.spawn(name, async move {
            handle.await.map_err(|e| anyhow!("the task panicked: {e}"))
        });
    }

    /// Waits until shutdown is asked for or a task fails, then stops every
    /// task within `grace`. Answers the first failure, if any.
    pub async fn run(mut self, grace: Duration) -> anyhow::Result<()> {
        let mut stop = self.stop.subscribe();
        let mut failure = None;
        loop {
            tokio::select! {
                // A shutdown first: tasks that end because of it stopped,
                // they did not finish on their own.
                biased;
                _ = stop.wait_for(|stopping| *stopping) => break,
                joined = self.tasks.join_next() => match joined {
                    None => break,
                    Some(joined) => {
                        let (name, outcome) = flatten(joined);
                        if let Err(error) = outcome {
                            tracing::error!(task = %name, error = format!("{error:#}"), "task failed; stopping the process");
                            failure = Some(error.context(format!("task {name} failed")));
                            self.stop.send_replace(true);
                            break;
                        }
                        if *self.stop.borrow() {
                            tracing::info!(task = %name, "task stopped");
                        } else {
                            tracing::info!(task = %name, "task finished");
                        }
                    }
                },
            }
        }
        tracing::info!(tasks = self.tasks.len(), "stopping");
        let deadline = tokio::time::Instant::now() + grace;
        while !self.tasks.is_empty() {
            match tokio::time::timeout_at(deadline, self.tasks.join_next()).await {
                Ok(Some(joined)) => {
                    let (name, outcome) = flatten(joined);
                    match outcome {
                        Ok(()) => tracing::info!(task = %name, "task stopped"),
                        Err(error) => {
                            tracing::error!(task = %name, error = format!("{error:#}"), "task failed while stopping");
                            failure.get_or_insert(error.context(format!("task {name} failed")));
                        }
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    tracing::error!(
                        tasks = self.tasks.len(),
                        grace_seconds = grace.as_secs_f64(),
                        "tasks did not stop in time; aborting them"
                    );
                    for (name, handle) in &self.adopted {
                        if !handle.is_finished() {
                            tracing::warn!(task = %name, "aborted");
                            handle.abort();
                        }
                    }
                    self.tasks.abort_all();
                    while let Some(joined) = self.tasks.join_next().await {
                        if let Ok((name, _)) = joined {
                            tracing::warn!(task = %name, "stopped late");
                        }
                    }
                    break;
                }
            }
        }
        failure.map_or(Ok(()), Err)
    }
}

fn flatten(
    joined: Result<(Name, anyhow::Result<()>), tokio::task::JoinError>,
) -> (Name, anyhow::Result<()>) {
    match joined {
        Ok(outcome) => outcome,
        // A panic inside `spawn`'s wrapper: the name went with it.
        Err(e) => (
            Cow::Borrowed("unknown"),
            Err(anyhow!("a task panicked: {e}")),
        ),
    }
}

/// SIGINT and SIGTERM, listened for from the moment this is made.
///
/// Make it before the process says it is ready: a signal that arrives
/// between "listening" and the first poll of a lazily installed handler
/// would otherwise kill the process with the default action.
pub struct ShutdownSignal {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl ShutdownSignal {
    /// Installs the handlers now.
    pub fn install() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// Resolves when SIGINT or SIGTERM arrives.
    pub async fn recv(mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A task that runs until told to stop, counting its clean stops.
    async fn polite(mut stop: watch::Receiver<bool>, stopped: Arc<AtomicUsize>) {
        let _ = stop.wait_for(|s| *s).await;
        stopped.fetch_add(1, Ordering::SeqCst);
    }

    #[tokio::test]
    async fn shutdown_stops_every_task_and_answers_ok() {
        let (stop, _) = watch::channel(false);
        let mut supervisor = Supervisor::new(stop.clone());
        let stopped = Arc::new(AtomicUsize::new(0));
        for _ in 0..3 {
            supervisor.spawn_infallible("polite", polite(supervisor.shutdown(), stopped.clone()));
        }
        let running = tokio::spawn(supervisor.run(Duration::from_secs(5)));
        stop.send_replace(true);
        running.await.unwrap().unwrap();
        assert_eq!(stopped.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_failing_task_stops_the_others_and_its_cause_is_answered() {
        let (stop, _) = watch::channel(false);
        let mut supervisor = Supervisor::new(stop.clone());
        let stopped = Arc::new(AtomicUsize::new(0));
        supervisor.spawn_infallible("polite", polite(supervisor.shutdown(), stopped.clone()));
        supervisor.spawn("broken", async {
            Err(anyhow!("disk on fire")).map_err(|e| e.context("cannot write"))
        });
        let error = supervisor.run(Duration::from_secs(5)).await.unwrap_err();
        let chain = format!("{error:#}");
        assert!(chain.contains("task broken failed"), "{chain}");
        assert!(chain.contains("cannot write: disk on fire"), "{chain}");
        assert_eq!(
            stopped.load(Ordering::SeqCst),
            1,
            "the other task was stopped"
        );
        assert!(*stop.borrow());
    }

    #[tokio::test]
    async fn a_panic_in_an_adopted_task_is_a_failure() {
        let (stop, _) = watch::channel(false);
        let mut supervisor = Supervisor::new(stop);
        supervisor.adopt("panicky", tokio::spawn(async { panic!("boom") }));
        let error = supervisor.run(Duration::from_secs(5)).await.unwrap_err();
        assert!(format!("{error:#}").contains("panicked"), "{error:#}");
    }

    #[tokio::test]
    async fn a_task_that_ignores_shutdown_is_aborted_after_the_grace_period() {
        let (stop, _) = watch::channel(false);
        let mut supervisor = Supervisor::new(stop.clone());
        supervisor.spawn_infallible("stubborn", std::future::pending());
        let stubborn = tokio::spawn(std::future::pending::<()>());
        let abort = stubborn.abort_handle();
        supervisor.adopt("stubborn adopted", stubborn);
        stop.send_replace(true);
        let started = std::time::Instant::now();
        supervisor.run(Duration::from_millis(200)).await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(2));
        tokio::task::yield_now().await;
        assert!(abort.is_finished(), "the adopted task was aborted too");
    }

    #[tokio::test]
    async fn a_task_that_finishes_on_its_own_stops_nothing() {
        let (stop, _) = watch::channel(false);
        let mut supervisor = Supervisor::new(stop.clone());
        let stopped = Arc::new(AtomicUsize::new(0));
        supervisor.spawn("one-shot", async { Ok(()) });
        supervisor.spawn_infallible("polite", polite(supervisor.shutdown(), stopped.clone()));
        let running = tokio::spawn(supervisor.run(Duration::from_secs(5)));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!*stop.borrow(), "a clean finish is no reason to stop");
        stop.send_replace(true);
        running.await.unwrap().unwrap();
        assert_eq!(stopped.load(Ordering::SeqCst), 1);
    }
}
