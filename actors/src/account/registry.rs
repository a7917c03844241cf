//! The account registry: the keeper of the map of live account actors, and the way in for
//! registration and login look-ups.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use actix::dev::ToEnvelope;
use actix::prelude::*;

use super::messages::{
    Balance, CheckAccount, FindLogin, GetAccount, GetBalance, OpenAccount, ReplacePasswordHash,
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

/// How many actors stopping in one sweep make it worth returning freed memory.
const RELEASE_AFTER: usize = 1024;

/// Returns the allocator's free pages to the system: glibc keeps what a crowd of
/// stopped actors freed, and the resident size would stay at the crowd's peak.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only releases free memory of the allocator; it takes no
    // pointers and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

impl Actor for AccountRegistry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let sweep = self
            .idle
            .clamp(Duration::from_millis(100), Duration::from_secs(60));
        ctx.run_interval(sweep, |registry, _| {
            let Some(mut live) = registry.live.write() else {
                return;
            };
            let before = live.len();
            live.retain(|_, entry| entry.addr.connected());
            let stopped = before - live.len();
            if stopped == 0 {
                return;
            }
            // A map never gives its table back by itself: after a crowd went idle, hand
            // back what it grew to, and the pages the stopped actors' memory came from.
            if live.len() < live.capacity() / 4 {
                live.shrink_to_fit();
            }
            drop(live);
            if stopped >= RELEASE_AFTER {
                release_freed_memory();
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
        let committed = Committed::default();
        let published = committed.clone();
        let addr = AccountActor::start_in_arbiter(&thread.handle(), move |_| {
            AccountActor::new(user, db, idle, published)
        });
        if let Some(mut live) = self.live.write() {
            let entry = Entry {
                addr: addr.clone(),
                committed,
            };
            live.insert(msg.user, entry);
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
            live.values().filter(|entry| entry.addr.connected()).count()
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
/// registry, and a read of what it committed needs no message at all.
#[derive(Clone, Default)]
struct Directory(Arc<RwLock<HashMap<UserId, Entry>>>);

/// A live actor and what it published.
struct Entry {
    addr: Addr<AccountActor>,
    committed: Committed,
}

/// The balance an account actor last committed, published by the actor itself before it
/// answers anyone about that commit; `None` while it does not know (cold, after a
/// failure, or when other instances write the balance too).
#[derive(Debug, Clone, Default)]
pub struct Committed(Arc<RwLock<Option<Balance>>>);

impl Committed {
    /// Publishes `balance`.
    pub(super) fn set(&self, balance: Option<Balance>) {
        if let Ok(mut published) = self.0.write() {
            *published = balance;
        }
    }

    fn get(&self) -> Option<Balance> {
        self.0.read().ok().and_then(|published| *published)
    }
}

impl Directory {
    /// The live actor of `user`, if there is one.
    fn find(&self, user: UserId) -> Option<Addr<AccountActor>> {
        let live = self.read()?;
        live.get(&user)
            .filter(|entry| entry.addr.connected())
            .map(|entry| entry.addr.clone())
    }

    /// What `user`'s live actor last committed, when it knows.
    fn committed(&self, user: UserId) -> Option<Balance> {
        let live = self.read()?;
        live.get(&user)
            .filter(|entry| entry.addr.connected())
            .and_then(|entry| entry.committed.get())
    }

    fn read(&self) -> Option<RwLockReadGuard<'_, HashMap<UserId, Entry>>> {
        self.0.read().ok()
    }

    fn write(&self) -> Option<RwLockWriteGuard<'_, HashMap<UserId, Entry>>> {
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
    /// truth: what it published is read here, without a message, and a cold account asks
    /// its actor. When other instances write too, the committed row is read here, in the
    /// caller's task: a read decides nothing, so it need not wait in the actor's line
    /// behind the writes of this instance, nor hop to its thread.
    pub async fn balance(&self, user: UserId) -> Result<Balance, AccountError> {
        if !self.db.shared {
            if let Some(balance) = self.live.committed(user) {
                return Ok(balance);
            }
            return self.ask(user, GetBalance).await;
        }
        Ok(store::load(&self.db.reader, user).await?.balance())
    }

    /// Confirms that `user` has an account: at once when its actor has loaded it (users
    /// are never deleted), else by asking the actor, which loads it.
    pub async fn check(&self, user: UserId) -> Result<(), AccountError> {
        if self.live.committed(user).is_some() {
            return Ok(());
        }
        self.ask(user, CheckAccount).await
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
