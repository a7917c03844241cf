//! The account registry: the keeper of the map of live account actors, and the way in for
//! registration and login look-ups.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use actix::dev::ToEnvelope;
use actix::prelude::*;

use super::messages::{
    Balance, FindLogin, GetAccount, GetBalance, OpenAccount, ReplacePasswordHash,
};
use super::store::{self, Credentials};
use super::AccountActor;
use crate::db::Db;
use crate::domain::UserId;
use crate::error::AccountError;

/// Finds or starts the account actor of a user. Actors stop themselves when idle; the
/// registry forgets stopped ones on its next sweep and starts a fresh one on demand.
///
/// The actors live on a thread per core, a user's always on the same one: what they do
/// between messages (a database round trip, encoding, decoding) runs in parallel.
pub struct AccountRegistry {
    db: Db,
    idle: Duration,
    live: Directory,
    threads: Vec<Arbiter>,
}

impl AccountRegistry {
    /// A registry whose actors stop after `idle` without messages, on one thread per core.
    pub fn new(db: Db, idle: Duration) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Self {
            db,
            idle,
            live: Directory::default(),
            threads: (0..cores).map(|_| Arbiter::new()).collect(),
        }
    }
}

impl Actor for AccountRegistry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let sweep = self
            .idle
            .clamp(Duration::from_millis(100), Duration::from_secs(60));
        ctx.run_interval(sweep, |registry, _| {
            if let Some(mut live) = registry.live.write() {
                live.retain(|_, addr| addr.connected());
            }
        });
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        for thread in &self.threads {
            thread.stop();
        }
    }
}

impl Handler<GetAccount> for AccountRegistry {
    type Result = MessageResult<GetAccount>;

    fn handle(&mut self, msg: GetAccount, _: &mut Self::Context) -> Self::Result {
        if let Some(addr) = self.live.find(msg.user) {
            return MessageResult(addr);
        }
        let (db, idle, user) = (self.db.clone(), self.idle, msg.user);
        let thread = &self.threads[user.0.unsigned_abs() as usize % self.threads.len()];
        let addr = AccountActor::start_in_arbiter(&thread.handle(), move |_| {
            AccountActor::new(user, db, idle)
        });
        if let Some(mut live) = self.live.write() {
            live.insert(msg.user, addr.clone());
        }
        MessageResult(addr)
    }
}

/// How many account actors are running.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "usize")]
pub struct CountLive;

impl Handler<CountLive> for AccountRegistry {
    type Result = usize;

    fn handle(&mut self, _: CountLive, _: &mut Self::Context) -> usize {
        self.live.read().map_or(0, |live| {
            live.values().filter(|addr| addr.connected()).count()
        })
    }
}

impl Handler<OpenAccount> for AccountRegistry {
    type Result = ResponseFuture<Result<UserId, AccountError>>;

    fn handle(&mut self, msg: OpenAccount, _: &mut Self::Context) -> Self::Result {
        let db = self.db.clone();
        // The unique login index decides between concurrent registrations.
        Box::pin(async move { store::create_user(&db, &msg.login, &msg.password_hash).await })
    }
}

impl Handler<FindLogin> for AccountRegistry {
    type Result = ResponseFuture<Result<Option<Credentials>, AccountError>>;

    fn handle(&mut self, msg: FindLogin, _: &mut Self::Context) -> Self::Result {
        let db = self.db.clone();
        Box::pin(async move { store::find_user(&db, &msg.login).await })
    }
}

impl Handler<ReplacePasswordHash> for AccountRegistry {
    type Result = ResponseFuture<Result<bool, AccountError>>;

    fn handle(&mut self, msg: ReplacePasswordHash, _: &mut Self::Context) -> Self::Result {
        let db = self.db.clone();
        // Conditional on the old hash: of two logins upgrading at once, one writes.
        Box::pin(
            async move { store::replace_password_hash(&db, msg.user, &msg.old, &msg.new).await },
        )
    }
}

/// The running account actors by user: written by the registry alone, read by every
/// [`Accounts`] handle, so that a message to a live actor needs no hop through the
/// registry.
#[derive(Clone, Default)]
struct Directory(Arc<RwLock<HashMap<UserId, Addr<AccountActor>>>>);

impl Directory {
    /// The live actor of `user`, if there is one.
    fn find(&self, user: UserId) -> Option<Addr<AccountActor>> {
        let live = self.read()?;
        live.get(&user).filter(|addr| addr.connected()).cloned()
    }

    fn read(&self) -> Option<RwLockReadGuard<'_, HashMap<UserId, Addr<AccountActor>>>> {
        self.0.read().ok()
    }

    fn write(&self) -> Option<RwLockWriteGuard<'_, HashMap<UserId, Addr<AccountActor>>>> {
        self.0.write().ok()
    }
}

/// The handle the rest of the service uses to reach accounts.
#[derive(Clone)]
pub struct Accounts {
    registry: Addr<AccountRegistry>,
    live: Directory,
    db: Db,
}

/// How often a message is re-sent to a freshly started actor after the previous one had
/// stopped for idleness.
const RESTARTS: usize = 3;

impl Accounts {
    /// Starts `registry` and returns the handle to it.
    pub fn start(registry: AccountRegistry) -> Self {
        let (live, db) = (registry.live.clone(), registry.db.clone());
        Self {
            registry: registry.start(),
            live,
            db,
        }
    }

    /// `user`'s balance as committed. Alone on its database the actor's memory is the
    /// truth and answers; when other instances write too, the committed row is read here,
    /// in the caller's task: a read decides nothing, so it need not wait in the actor's
    /// line behind the writes of this instance, nor hop to its thread.
    pub async fn balance(&self, user: UserId) -> Result<Balance, AccountError> {
        if !self.db.shared {
            return self.ask(user, GetBalance).await;
        }
        let state = store::load(&self.db.reader, user).await?;
        Ok(Balance {
            current: state.current,
            withdrawn: state.withdrawn,
        })
    }

    /// Sends `msg` to `user`'s account actor, starting it if needed. An actor that stopped
    /// for idleness before handling the message is replaced and the message sent again;
    /// every account message is safe to repeat.
    pub async fn ask<M, T>(&self, user: UserId, msg: M) -> Result<T, AccountError>
    where
        M: Message<Result = Result<T, AccountError>> + Clone + Send + 'static,
        T: Send + 'static,
        AccountActor: Handler<M>,
        <AccountActor as Actor>::Context: ToEnvelope<AccountActor, M>,
    {
        let mut last = MailboxError::Closed;
        for attempt in 0..RESTARTS {
            let actor = match self.live.find(user).filter(|_| attempt == 0) {
                Some(actor) => actor,
                None => self.registry.send(GetAccount { user }).await?,
            };
            match actor.send(msg.clone()).await {
                Ok(result) => return result,
                Err(error) => last = error,
            }
        }
        Err(AccountError::Unavailable(last))
    }

    /// Registers a user; `LoginTaken` when the login exists.
    pub async fn open(&self, login: String, password_hash: String) -> Result<UserId, AccountError> {
        self.registry
            .send(OpenAccount {
                login,
                password_hash,
            })
            .await?
    }

    /// Replaces an outdated password hash; `false` when it changed meanwhile.
    pub async fn replace_password_hash(
        &self,
        user: UserId,
        old: String,
        new: String,
    ) -> Result<bool, AccountError> {
        self.registry
            .send(ReplacePasswordHash { user, old, new })
            .await?
    }

    /// How many account actors are running.
    pub async fn live(&self) -> Result<usize, MailboxError> {
        self.registry.send(CountLive).await
    }

    /// Looks up a login.
    pub async fn find_login(&self, login: String) -> Result<Option<Credentials>, AccountError> {
        self.registry.send(FindLogin { login }).await?
    }
}
