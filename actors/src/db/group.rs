//! Write transactions, and on SQLite their commits shared across owners.
//!
//! SQLite has one writer connection and pays one durable sync (`synchronous=FULL`) per
//! commit. Writes of different owners — one shopper's credit, another's withdrawal, an
//! upload, a claim — queue for that connection one after another anyway, so they share
//! its commits: while writes are waiting for their turn, each one that finishes is kept
//! as a savepoint inside one open transaction, and the last write of the run commits it
//! for all of them. Every write's [`Write::commit`] returns only after the commit that
//! holds it is durable, so each owner answers and updates its memory exactly as it would
//! after a commit of its own. A write that rolls back takes only its savepoint with it.
//!
//! Nothing waits on purpose: a write with no one behind it commits at once. On
//! PostgreSQL every write is a transaction of its own; the server groups the syncs of
//! concurrent commits itself.

use std::future::Future;
use std::ops::Deref;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, ExecResult,
    QueryResult, Statement, TransactionTrait,
};
use tokio::sync::{oneshot, Mutex, OwnedMutexGuard};

/// The most writes one shared commit takes; the one after starts the next.
const MAX_GROUP: usize = 128;

/// An open write: a transaction of its own, or on SQLite a savepoint in the shared one.
/// Dropped without [`Write::commit`], it rolls back.
pub struct Write {
    txn: Option<DatabaseTransaction>,
    turn: Option<Turn>,
}

impl Deref for Write {
    type Target = DatabaseTransaction;

    fn deref(&self) -> &DatabaseTransaction {
        // Present until `commit` or `rollback` consume the write.
        self.txn
            .as_ref()
            .unwrap_or_else(|| unreachable!("a write is used after its end"))
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for Write {
    fn get_database_backend(&self) -> DbBackend {
        self.deref().get_database_backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        self.deref().execute_raw(stmt).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.deref().execute_unprepared(sql).await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        self.deref().query_one_raw(stmt).await
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        self.deref().query_all_raw(stmt).await
    }

    fn support_returning(&self) -> bool {
        self.deref().support_returning()
    }
}

impl Write {
    /// Commits; returns once the write is durable.
    pub async fn commit(mut self) -> Result<(), DbErr> {
        let Some(txn) = self.txn.take() else {
            return Ok(());
        };
        let Some(turn) = self.turn.take() else {
            return txn.commit().await;
        };
        match detached(txn.commit()).await? {
            Ok(()) => turn.end(true).await,
            Err(error) => {
                turn.end(false).await?;
                Err(error)
            }
        }
    }

    /// Rolls back this write alone.
    pub async fn rollback(mut self) -> Result<(), DbErr> {
        let Some(txn) = self.txn.take() else {
            return Ok(());
        };
        let Some(turn) = self.turn.take() else {
            return txn.rollback().await;
        };
        let rolled_back = detached(txn.rollback()).await?;
        turn.end(false).await?;
        rolled_back
    }
}

impl Drop for Write {
    fn drop(&mut self) {
        // The savepoint's own drop queues its rollback, which runs before anything else
        // on the connection; then the turn ends (see `Turn`'s drop).
        drop(self.txn.take());
        drop(self.turn.take());
    }
}

/// Runs a step on the shared transaction to its end even if its caller stops waiting: a
/// savepoint begun, released or rolled back halfway, or a commit cut short, would leave
/// the transaction that others' writes are in where no one knows.
async fn detached<T: Send + 'static>(
    step: impl Future<Output = T> + Send + 'static,
) -> Result<T, DbErr> {
    tokio::spawn(step)
        .await
        .map_err(|e| DbErr::Custom(format!("a step of a shared commit failed: {e}")))
}

/// Where writes begin: the writer connection, and on SQLite the shared commit.
#[derive(Debug, Clone)]
pub(crate) struct Writes {
    shared: Option<Arc<Shared>>,
}

impl Writes {
    /// Transactions of their own (PostgreSQL).
    pub(crate) fn separate() -> Self {
        Self { shared: None }
    }

    /// Commits shared across writers (SQLite's single writer connection).
    pub(crate) fn shared(writer: DatabaseConnection) -> Self {
        Self {
            shared: Some(Arc::new(Shared {
                writer,
                open: Arc::new(Mutex::new(Open::default())),
                waiting: AtomicUsize::new(0),
            })),
        }
    }

    /// Begins a write on `writer`.
    pub(crate) async fn begin(&self, writer: &DatabaseConnection) -> Result<Write, DbErr> {
        let Some(shared) = &self.shared else {
            return Ok(Write {
                txn: Some(writer.begin().await?),
                turn: None,
            });
        };
        let turn = Shared::turn(shared).await;
        let writer = shared.writer.clone();
        // Dropped unused if the caller went away meanwhile: the savepoint first, then the
        // turn.
        let (began, turn) = detached(async move {
            let mut turn = turn;
            (turn.savepoint(&writer).await, turn)
        })
        .await?;
        match began {
            Ok(txn) => Ok(Write {
                txn: Some(txn),
                turn: Some(turn),
            }),
            Err(error) => {
                turn.end(false).await?;
                Err(error)
            }
        }
    }
}

/// The shared transaction and the writes waiting for their turn at it.
#[derive(Debug)]
struct Shared {
    writer: DatabaseConnection,
    open: Arc<Mutex<Open>>,
    /// Writes queued for the lock: while there are any, a finished write leaves the
    /// commit to them.
    waiting: AtomicUsize,
}

/// The transaction open across writes, and the writes in it waiting for its commit.
#[derive(Debug, Default)]
struct Open {
    txn: Option<DatabaseTransaction>,
    kept: Vec<oneshot::Sender<Result<(), String>>>,
}

impl Shared {
    /// Waits for the writer connection's turn.
    async fn turn(shared: &Arc<Self>) -> Turn {
        let queued = Queued::new(shared);
        let open = Arc::clone(&shared.open).lock_owned().await;
        queued.arrived();
        Turn {
            shared: Arc::clone(shared),
            open: Some(open),
        }
    }

    /// Whether writes are queued behind the current turn.
    fn others_waiting(&self) -> bool {
        self.waiting.load(Ordering::Acquire) > 0
    }
}

/// One write's exclusive use of the writer connection. Dropped without [`Turn::end`], it
/// leaves the shared transaction to the writes waiting, or commits it in the background
/// for the writes in it when there are none.
struct Turn {
    shared: Arc<Shared>,
    open: Option<OwnedMutexGuard<Open>>,
}

impl Turn {
    /// Begins a savepoint in the shared transaction, beginning that first if needed.
    async fn savepoint(
        &mut self,
        writer: &DatabaseConnection,
    ) -> Result<DatabaseTransaction, DbErr> {
        let Some(open) = self.open.as_mut() else {
            return Err(DbErr::Custom("the writer's turn has ended".to_owned()));
        };
        match &open.txn {
            Some(outer) => outer.begin().await,
            None => {
                let outer = writer.begin().await?;
                let savepoint = outer.begin().await;
                open.txn = Some(outer);
                savepoint
            }
        }
    }

    /// Ends the turn. A kept write (`keep`) is answered once the shared transaction is
    /// committed: here, when nothing waits behind it, or by a later write's turn.
    async fn end(mut self, keep: bool) -> Result<(), DbErr> {
        let Some(mut open) = self.open.take() else {
            return Ok(());
        };
        let room = open.kept.len() < MAX_GROUP;
        if self.shared.others_waiting() && room && open.txn.is_some() {
            if !keep {
                return Ok(());
            }
            let (answer, committed) = oneshot::channel();
            open.kept.push(answer);
            drop(open);
            return match committed.await {
                Ok(result) => result.map_err(DbErr::Custom),
                Err(_) => Err(DbErr::Custom(
                    "the shared commit ended without an answer".to_owned(),
                )),
            };
        }
        let committed = detached(commit(open)).await?;
        if keep {
            committed.map_err(DbErr::Custom)
        } else {
            Ok(())
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let Some(open) = self.open.take() else {
            return;
        };
        if self.shared.others_waiting() || open.txn.is_none() {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(commit(open));
        }
    }
}

/// Commits the shared transaction, answers every write kept in it and hands the writer
/// connection on.
async fn commit(mut open: OwnedMutexGuard<Open>) -> Result<(), String> {
    let committed = match open.txn.take() {
        Some(txn) => txn.commit().await.map_err(|e| e.to_string()),
        None => Ok(()),
    };
    for answer in open.kept.drain(..) {
        let _ = answer.send(committed.clone());
    }
    committed
}

/// A write queued for its turn. One that gives up before its turn (its caller went
/// away) may have been the one the last write left the commit to: it has the shared
/// transaction committed in its place.
struct Queued {
    shared: Option<Arc<Shared>>,
}

impl Queued {
    fn new(shared: &Arc<Shared>) -> Self {
        shared.waiting.fetch_add(1, Ordering::AcqRel);
        Self {
            shared: Some(Arc::clone(shared)),
        }
    }

    fn arrived(mut self) {
        if let Some(shared) = self.shared.take() {
            shared.waiting.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        let Some(shared) = self.shared.take() else {
            return;
        };
        shared.waiting.fetch_sub(1, Ordering::AcqRel);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let turn = Shared::turn(&shared).await;
                let _ = turn.end(false).await;
            });
        }
    }
}
