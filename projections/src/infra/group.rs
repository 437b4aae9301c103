//! Group commit: the appends of concurrent commands, written together.
//!
//! Each caller hands its [`Staged`] events to one writer task per
//! repository and waits for its own answer. While the writer's statement is
//! in flight the next requests queue; the writer takes all of them (up to
//! [`GROUP_MAX`]) in one insert: one statement and one commit where
//! each command would have cost its own. An idle writer writes a lone
//! request at once, so nobody waits for company.
//!
//! The insert is all or nothing: when one stream of a group moved on
//! (another writer got there first) or the statement failed, the group is
//! written again one request at a time, so every caller learns its own
//! outcome and a conflict costs only the command that caused it.

use std::sync::OnceLock;

use tokio::sync::{mpsc, oneshot};

use crate::StoreError;
use crate::db::Database;
use crate::infra::append::{Committed, Staged, insert};

/// Most requests written in one statement (each is one or a few rows; the
/// statement stays well inside both backends' parameter limits).
pub(crate) const GROUP_MAX: usize = 256;

type Answer = Result<Option<Committed>, StoreError>;

struct Request {
    staged: Staged,
    reply: oneshot::Sender<Answer>,
}

/// A repository's writer, started on first use in the caller's runtime; it
/// stops when the repository is dropped.
#[derive(Default)]
pub(crate) struct GroupCommit {
    queue: OnceLock<mpsc::UnboundedSender<Request>>,
}

impl GroupCommit {
    /// Appends `staged` (as [`crate::store::append_all`] does, without
    /// counting a command: the caller's retries are one command):
    /// `Ok(None)` when its stream moved on and nothing of it was written.
    pub(crate) async fn append(&self, db: &Database, staged: Staged) -> Answer {
        let queue = self.queue.get_or_init(|| {
            let (queue, requests) = mpsc::unbounded_channel();
            tokio::spawn(write(db.clone(), requests));
            queue
        });
        let (reply, answer) = oneshot::channel();
        if let Err(mpsc::error::SendError(request)) = queue.send(Request { staged, reply }) {
            // The writer is gone with the runtime it started in.
            return single(db, request.staged).await;
        }
        answer.await.unwrap_or_else(|_| {
            Err(StoreError::EventStore(
                "the group commit writer stopped; the append's outcome is unknown".into(),
            ))
        })
    }
}

async fn write(db: Database, mut requests: mpsc::UnboundedReceiver<Request>) {
    let mut group = Vec::with_capacity(GROUP_MAX);
    while requests.recv_many(&mut group, GROUP_MAX).await > 0 {
        let (staged, replies): (Vec<Staged>, Vec<_>) =
            group.drain(..).map(|r| (r.staged, r.reply)).unzip();
        match insert(&db, &staged).await {
            Ok(Some(committed)) => {
                for (reply, committed) in replies.into_iter().zip(committed) {
                    let _ = reply.send(Ok(Some(committed)));
                }
            }
            // Alone, its outcome is the group's.
            outcome if staged.len() == 1 => {
                let reply = replies.into_iter().next().expect("one reply");
                let _ = reply.send(outcome.map(|_| None));
            }
            // Nothing was written: each on its own, to learn whose it was.
            Ok(None) | Err(_) => {
                for (reply, staged) in replies.into_iter().zip(staged) {
                    let _ = reply.send(single(&db, staged).await);
                }
            }
        }
    }
}

async fn single(db: &Database, staged: Staged) -> Answer {
    Ok(insert(db, std::slice::from_ref(&staged))
        .await?
        .and_then(|mut committed| committed.pop()))
}
