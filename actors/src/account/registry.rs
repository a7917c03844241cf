//! The account registry: the only map of live account actors, and the way in for
//! registration and login look-ups.

use std::collections::HashMap;
use std::time::Duration;

use actix::dev::ToEnvelope;
use actix::prelude::*;

use super::messages::{FindLogin, GetAccount, OpenAccount, ReplacePasswordHash};
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
    live: HashMap<UserId, Addr<AccountActor>>,
    threads: Vec<Arbiter>,
}

impl AccountRegistry {
    /// A registry whose actors stop after `idle` without messages, on one thread per core.
    pub fn new(db: Db, idle: Duration) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Self {
            db,
            idle,
            live: HashMap::new(),
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
            registry.live.retain(|_, addr| addr.connected());
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
        if let Some(addr) = self.live.get(&msg.user).filter(|addr| addr.connected()) {
            return MessageResult(addr.clone());
        }
        let (db, idle, user) = (self.db.clone(), self.idle, msg.user);
        let thread = &self.threads[user.0.unsigned_abs() as usize % self.threads.len()];
        let addr = AccountActor::start_in_arbiter(&thread.handle(), move |_| {
            AccountActor::new(user, db, idle)
        });
        self.live.insert(msg.user, addr.clone());
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
        self.live.values().filter(|addr| addr.connected()).count()
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

/// The handle the rest of the service uses to reach accounts.
#[derive(Clone)]
pub struct Accounts {
    registry: Addr<AccountRegistry>,
}

/// How often a message is re-sent to a freshly started actor after the previous one had
/// stopped for idleness.
const RESTARTS: usize = 3;

impl Accounts {
    /// Wraps a started registry.
    pub fn new(registry: Addr<AccountRegistry>) -> Self {
        Self { registry }
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
        for _ in 0..RESTARTS {
            let actor = self.registry.send(GetAccount { user }).await?;
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
