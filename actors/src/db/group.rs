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
        let released = txn.commit().await;
        match (self.turn.take(), released) {
            (None, released) => released,
            (Some(turn), Ok(())) => turn.end(true).await,
            (Some(turn), Err(error)) => {
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
        let rolled_back = txn.rollback().await;
        if let Some(turn) = self.turn.take() {
            turn.end(false).await?;
        }
        rolled_back
    }
}

impl Drop for Write {
    fn drop(&mut self) {
        // The transaction's own drop queues its rollback; the shared one must still be
        // committed for the writes before this one.
        drop(self.txn.take());
        if let Some(turn) = self.turn.take() {
            turn.end_later();
        }
    }
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
        let mut turn = Shared::turn(shared).await;
        let began = match &turn.open.txn {
            Some(outer) => outer.begin().await,
            None => match shared.writer.begin().await {
                Ok(outer) => {
                    let savepoint = outer.begin().await;
                    turn.open.txn = Some(outer);
                    savepoint
                }
                Err(error) => Err(error),
            },
        };
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
            open,
        }
    }
}

/// One write's exclusive use of the writer connection.
struct Turn {
    shared: Arc<Shared>,
    open: OwnedMutexGuard<Open>,
}

impl Turn {
    /// Ends the turn. A kept write (`keep`) is answered once the shared transaction is
    /// committed: here, when nothing waits behind it, or by a later write's turn.
    async fn end(mut self, keep: bool) -> Result<(), DbErr> {
        let others = self.shared.waiting.load(Ordering::Acquire) > 0;
        let room = self.open.kept.len() < MAX_GROUP;
        if others && room && self.open.txn.is_some() {
            if !keep {
                return Ok(());
            }
            let (answer, committed) = oneshot::channel();
            self.open.kept.push(answer);
            drop(self);
            return match committed.await {
                Ok(result) => result.map_err(DbErr::Custom),
                Err(_) => Err(DbErr::Custom(
                    "the shared commit ended without an answer".to_owned(),
                )),
            };
        }
        let committed = match self.open.txn.take() {
            Some(txn) => txn.commit().await.map_err(|e| e.to_string()),
            None => Ok(()),
        };
        for answer in self.open.kept.drain(..) {
            let _ = answer.send(committed.clone());
        }
        if keep {
            committed.map_err(DbErr::Custom)
        } else {
            Ok(())
        }
    }

    /// Ends the turn from a drop: the shared transaction is left to the writes waiting,
    /// or committed in the background when there are none.
    fn end_later(self) {
        if self.shared.waiting.load(Ordering::Acquire) > 0 {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = self.end(false).await;
            });
        }
    }
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
