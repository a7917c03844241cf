//! Which instance runs the pipelines. Several instances may serve one PostgreSQL database;
//! the accrual supervisor, the fulfilment dispatcher and the event relay run on one of
//! them, the leader: the holder of a PostgreSQL advisory lock on a connection of its own.
//! The server releases the lock when that connection ends, so a leader that dies hands
//! over as soon as its socket closes, and a waiting instance takes the lock at once.
//!
//! Every instance also holds an instance lock on the same connection: shared when it
//! runs as one of a cluster, exclusive when it runs alone — then its caches are the
//! truth, and a second instance on its database is refused with a reason.
//!
//! The leader listens for uploads made on any instance (`LISTEN/NOTIFY`); the stored
//! schedule, rescanned by the supervisor, catches a notice lost while the listening
//! connection was being replaced.

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::Recipient;
use sea_orm::sqlx::postgres::{PgConnectOptions, PgConnection, PgListener, PgPool, PgPoolOptions};
use sea_orm::sqlx::{self, ConnectOptions, Connection};
use sea_orm::DbErr;
use tokio::sync::watch;

use crate::accrual::OrderAccepted;
use crate::db::now;
use crate::domain::{OrderNumber, UserId};
use crate::orders::store::{OrderStatus, PendingOrder};

/// Held shared by every instance of a cluster, exclusively by an instance alone.
const INSTANCE_KEY: i64 = 0x676f_7068_6572_0001;

/// Held by the leader.
const LEADER_KEY: i64 = 0x676f_7068_6572_0002;

/// The channel an accepted upload is announced on: `<user id>:<order number>`.
pub const ORDERS_CHANNEL: &str = "gophermart_orders";

/// How often the leader checks that its lock connection is alive.
const HEARTBEAT: Duration = Duration::from_secs(1);

/// How long that check may take before the leader steps down.
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(3);

/// The pause before connecting again after the lock connection failed.
const RECONNECT: Duration = Duration::from_secs(1);

/// How long an instance that wants the database to itself waits for an instance that
/// was just stopped to let go of it.
const HANDOVER_WAIT: Duration = Duration::from_secs(5);

/// Whether this instance leads now. Cheap to clone and to ask.
#[derive(Debug, Clone)]
pub struct Leadership {
    leading: Arc<AtomicBool>,
}

impl Leadership {
    /// The only instance there can be (SQLite: the file lock keeps others out).
    pub fn sole() -> Self {
        Self {
            leading: Arc::new(AtomicBool::new(true)),
        }
    }

    /// Whether the pipelines should run here now.
    pub fn is_leader(&self) -> bool {
        self.leading.load(Ordering::Acquire)
    }
}

/// An instance admitted to its PostgreSQL database, not yet campaigning.
pub struct Candidate {
    url: String,
    cluster: bool,
    connection: PgConnection,
    leadership: Leadership,
}

impl Candidate {
    /// Takes the instance lock on a connection of its own: shared with `cluster`,
    /// exclusive without. Refused, with the reason, when the database is another
    /// instance's alone, or when this one wants it alone and others use it. An instance
    /// alone leads from the start.
    pub async fn join(url: &str, cluster: bool) -> Result<Self, DbErr> {
        let mut connection = admit(url, cluster).await.map_err(db_error)?;
        let leadership = Leadership {
            leading: Arc::new(AtomicBool::new(false)),
        };
        if !cluster {
            // Nobody else is admitted, so nobody else can hold it.
            take_leader_lock(&mut connection).await.map_err(db_error)?;
            leadership.leading.store(true, Ordering::Release);
        }
        Ok(Self {
            url: url.to_owned(),
            cluster,
            connection,
            leadership,
        })
    }

    /// The flag the pipelines look at.
    pub fn leadership(&self) -> Leadership {
        self.leadership.clone()
    }

    /// Waits for the leader lock (at once when alone), leads while the lock connection
    /// lives, and campaigns again when it fails; uploads announced on any instance go to
    /// `orders` while leading.
    pub fn campaign(self, orders: Recipient<OrderAccepted>) -> Campaign {
        let (stop, stopped) = watch::channel(false);
        let task = actix::spawn(campaign(self, orders, stopped));
        Campaign { stop, task }
    }
}

/// The running campaign.
pub struct Campaign {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Campaign {
    /// Steps down and leaves: the lock connection is closed, which hands leadership to
    /// another instance at once.
    pub async fn resign(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// `work`, or `None` once the campaign is told to stop.
async fn unless_stopped<T>(
    stopped: &mut watch::Receiver<bool>,
    work: impl std::future::Future<Output = T>,
) -> Option<T> {
    tokio::select! {
        biased;
        _ = stopped.wait_for(|stop| *stop) => None,
        done = work => Some(done),
    }
}

async fn campaign(
    candidate: Candidate,
    orders: Recipient<OrderAccepted>,
    mut stopped: watch::Receiver<bool>,
) {
    let Candidate {
        url,
        cluster,
        connection,
        leadership,
    } = candidate;
    let mut connection = Some(connection);
    let mut failures = 0u32;
    loop {
        let mut lock = match connection.take() {
            Some(lock) => lock,
            None => match unless_stopped(&mut stopped, admit(&url, cluster)).await {
                None => return,
                Some(Ok(lock)) => lock,
                Some(Err(AdmitError::Refused(reason))) => {
                    // Someone took the database while this instance was cut off from
                    // it: serving on would answer from caches another instance writes
                    // behind. Stop, and let the supervisor of the process restart it.
                    tracing::error!(%reason, "this instance lost its place on the database; stopping");
                    std::process::exit(1);
                }
                Some(Err(error @ AdmitError::Db(_))) => {
                    failures += 1;
                    if failures == 1 {
                        tracing::warn!(%error, "cannot reach the database for leadership; retrying");
                    }
                    if unless_stopped(&mut stopped, tokio::time::sleep(RECONNECT))
                        .await
                        .is_none()
                    {
                        return;
                    }
                    continue;
                }
            },
        };
        failures = 0;
        match unless_stopped(&mut stopped, lead(&mut lock)).await {
            None => return close(lock).await,
            Some(Ok(())) => {}
            Some(Err(error)) => {
                tracing::warn!(%error, "lost the database while waiting to lead; reconnecting");
                if unless_stopped(&mut stopped, tokio::time::sleep(RECONNECT))
                    .await
                    .is_none()
                {
                    return;
                }
                continue;
            }
        }
        // Listening before leading: an upload committed after the supervisor loaded its
        // schedule is announced to it. Alone, every upload passes through this process.
        let listener = if cluster {
            let listening = Listening::start(&url).await;
            let (stop, stopped) = watch::channel(false);
            let task = actix::spawn(forward_uploads(
                url.clone(),
                listening,
                orders.clone(),
                stopped,
            ));
            Some((stop, task))
        } else {
            None
        };
        leadership.leading.store(true, Ordering::Release);
        tracing::info!(
            cluster,
            "leading: the accrual, fulfilment and event pipelines run here"
        );
        let resigned = loop {
            if unless_stopped(&mut stopped, tokio::time::sleep(HEARTBEAT))
                .await
                .is_none()
            {
                break true;
            }
            match tokio::time::timeout(HEARTBEAT_TIMEOUT, lock.ping()).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    tracing::error!(%error, "the leadership connection failed; stepping down");
                    break false;
                }
                Err(_) => {
                    tracing::error!("the leadership connection stopped answering; stepping down");
                    break false;
                }
            }
        };
        leadership.leading.store(false, Ordering::Release);
        if let Some((stop, task)) = listener {
            // Its connection is closed while the runtime still runs.
            let _ = stop.send(true);
            let _ = task.await;
        }
        if resigned {
            tracing::info!("resigned the leadership");
            return close(lock).await;
        }
        drop(lock);
        if unless_stopped(&mut stopped, tokio::time::sleep(RECONNECT))
            .await
            .is_none()
        {
            return;
        }
    }
}

/// Ends the session politely: the server releases its locks at once.
async fn close(lock: PgConnection) {
    let _ = tokio::time::timeout(HEARTBEAT_TIMEOUT, lock.close()).await;
}

/// A connection listening on [`ORDERS_CHANNEL`], from a pool of its own so that it can be
/// closed before the runtime goes away.
struct Listening {
    pool: PgPool,
    listener: PgListener,
}

impl Listening {
    /// Listening, or `None` when it cannot be had now.
    async fn start(url: &str) -> Option<Self> {
        let warn = |error: sqlx::Error| {
            tracing::warn!(%error, "cannot listen for uploads; the stored schedule still brings them");
        };
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect(url)
            .await
            .map_err(warn)
            .ok()?;
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(listener) => listener,
            Err(error) => {
                warn(error);
                pool.close().await;
                return None;
            }
        };
        match listener.listen(ORDERS_CHANNEL).await {
            Ok(()) => Some(Self { pool, listener }),
            Err(error) => {
                warn(error);
                drop(listener);
                pool.close().await;
                None
            }
        }
    }

    async fn close(self) {
        drop(self.listener);
        self.pool.close().await;
    }
}

/// Passes every upload announced on [`ORDERS_CHANNEL`] to the supervisor until `stop`,
/// listening again after a failure.
async fn forward_uploads(
    url: String,
    mut listening: Option<Listening>,
    orders: Recipient<OrderAccepted>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let Some(current) = listening.as_mut() else {
            if unless_stopped(&mut stop, tokio::time::sleep(RECONNECT))
                .await
                .is_none()
            {
                return;
            }
            listening = Listening::start(&url).await;
            continue;
        };
        match unless_stopped(&mut stop, current.listener.recv()).await {
            None => break,
            Some(Ok(notice)) => match announced(notice.payload()) {
                Some(order) => orders.do_send(OrderAccepted { order }),
                None => tracing::warn!(
                    payload = notice.payload(),
                    "ignored a malformed upload notice"
                ),
            },
            Some(Err(error)) => {
                tracing::warn!(%error, "listening for uploads failed; listening again");
                if let Some(failed) = listening.take() {
                    failed.close().await;
                }
            }
        }
    }
    if let Some(listening) = listening {
        listening.close().await;
    }
}

/// `<user id>:<order number>` as a new order to ask about now.
fn announced(payload: &str) -> Option<PendingOrder> {
    let (user, number) = payload.split_once(':')?;
    let at = now();
    Some(PendingOrder {
        number: OrderNumber::parse(number).ok()?,
        user: UserId(user.parse().ok()?),
        status: OrderStatus::New,
        attempts: 0,
        next_poll_at: at,
        uploaded_at: at,
    })
}

/// Why an instance may not join.
enum AdmitError {
    /// The database is not this instance's to use: the reason.
    Refused(String),
    /// The database is out of reach.
    Db(sqlx::Error),
}

impl std::fmt::Display for AdmitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused(reason) => f.write_str(reason),
            Self::Db(error) => write!(f, "{error}"),
        }
    }
}

fn db_error(error: impl std::fmt::Display) -> DbErr {
    DbErr::Custom(error.to_string())
}

/// Connects and takes the instance lock: shared with `cluster`, exclusive without,
/// waiting a little for an instance that is stopping.
async fn admit(url: &str, cluster: bool) -> Result<PgConnection, AdmitError> {
    // Waiting for the leader lock is this connection's work, not a slow statement.
    let options = PgConnectOptions::from_str(url)
        .map_err(AdmitError::Db)?
        .disable_statement_logging();
    let mut connection = PgConnection::connect_with(&options)
        .await
        .map_err(AdmitError::Db)?;
    // The server drops this connection (and so the locks) within about 8 s of its
    // client going silent, as when the host of a leader dies without closing sockets:
    // 4 s without a heartbeat, then four unanswered probes a second apart.
    for setting in [
        "SET application_name = 'gophermart leadership'",
        "SET tcp_keepalives_idle = 4",
        "SET tcp_keepalives_interval = 1",
        "SET tcp_keepalives_count = 4",
    ] {
        sqlx::query(setting)
            .execute(&mut connection)
            .await
            .map_err(AdmitError::Db)?;
    }
    let take = if cluster {
        "SELECT pg_try_advisory_lock_shared($1)"
    } else {
        "SELECT pg_try_advisory_lock($1)"
    };
    let deadline = tokio::time::Instant::now() + HANDOVER_WAIT;
    loop {
        let taken: bool = sqlx::query_scalar(take)
            .bind(INSTANCE_KEY)
            .fetch_one(&mut connection)
            .await
            .map_err(AdmitError::Db)?;
        if taken {
            return Ok(connection);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(AdmitError::Refused(if cluster {
                "another gophermart instance uses this database alone (it was started without \
                 CLUSTER); start every instance with CLUSTER=true to run several"
                    .to_owned()
            } else {
                "other gophermart instances use this database; start every instance with \
                 CLUSTER=true to run several on one PostgreSQL"
                    .to_owned()
            }));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until this connection holds the leader lock, then has the server end the session
/// should the heartbeat stop: a leader that is frozen (stopped, swapped out, cut off)
/// loses the lock within 5 s even while its socket stays open.
async fn lead(connection: &mut PgConnection) -> Result<(), sqlx::Error> {
    take_leader_lock(connection).await?;
    // Five heartbeats of silence.
    match sqlx::query("SET idle_session_timeout = '5s'")
        .execute(connection)
        .await
    {
        Ok(_) => Ok(()),
        // Before PostgreSQL 14: only the socket's end or the keepalives release the lock.
        Err(sqlx::Error::Database(error)) if error.code().as_deref() == Some("42704") => {
            tracing::warn!(%error, "this PostgreSQL cannot end a frozen leader's session");
            Ok(())
        }
        Err(error) => Err(error),
    }
}

/// Waits until this connection holds the leader lock.
async fn take_leader_lock(connection: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(LEADER_KEY)
        .execute(connection)
        .await?;
    Ok(())
}
