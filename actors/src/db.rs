//! Database connections: a writer and a reader, so that SQLite keeps one writer while
//! readers proceed in parallel under WAL; on PostgreSQL both share one pool.

use std::fs::File;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};
use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};

mod group;

pub use group::Write;
use group::Writes;

/// The connections every store function works with.
#[derive(Debug, Clone)]
pub struct Db {
    /// On SQLite, the exclusive lock that keeps a second instance off the file; released
    /// when the last clone goes, or by the system when the process dies.
    _instance_lock: Option<Arc<File>>,
    /// Where every write goes. On SQLite a single connection: writes are serialized there
    /// instead of failing with `SQLITE_BUSY`.
    pub writer: DatabaseConnection,
    /// Where list queries go.
    pub reader: DatabaseConnection,
    /// How write transactions begin and commit.
    writes: Writes,
    /// Whether other instances write to this database too: then a cached balance is a
    /// hint, and every decision and every read starts from the stored row.
    pub shared: bool,
    /// Order lists kept between reads when alone on the database; every writer of an
    /// order tells it after the commit.
    pub order_lists: crate::orders::OrderLists,
}

impl Db {
    /// Connects to `url` (`sqlite://…` or `postgres://…`).
    pub async fn connect(url: &str) -> Result<Self, DbErr> {
        if url.starts_with("sqlite:") {
            if url.contains(":memory:") || url.contains("mode=memory") {
                // Every connection would see its own empty database.
                return Err(DbErr::Custom(
                    "in-memory SQLite is not supported; give a file, e.g. sqlite://gophermart.db?mode=rwc"
                        .to_owned(),
                ));
            }
            restrict_sqlite_files(url)?;
            let lock = lock_sqlite_file(url)?;
            let writer = Database::connect(sqlite_options(url, 1, false)).await?;
            let reader = Database::connect(sqlite_options(url, 4, true)).await?;
            Ok(Self {
                _instance_lock: Some(Arc::new(lock)),
                writes: Writes::shared(writer.clone()),
                writer,
                reader,
                shared: false,
                order_lists: Default::default(),
            })
        } else {
            let mut options = ConnectOptions::new(url);
            options
                .max_connections(16)
                .min_connections(1)
                .acquire_timeout(Duration::from_secs(10))
                .sqlx_logging(false);
            let pool = Database::connect(options).await?;
            Ok(Self {
                _instance_lock: None,
                writer: pool.clone(),
                reader: pool,
                writes: Writes::separate(),
                shared: false,
                order_lists: Default::default(),
            })
        }
    }

    /// Begins a write transaction on the writer. On SQLite its commit is shared with the
    /// writes queued behind it (see [`group`]); on PostgreSQL it is its own.
    pub async fn write(&self) -> Result<Write, DbErr> {
        self.writes.begin(&self.writer).await
    }

    /// Whether this is a PostgreSQL database.
    pub fn is_postgres(&self) -> bool {
        self.writer.get_database_backend() == sea_orm::DbBackend::Postgres
    }

    /// Closes both pools.
    pub async fn close(self) {
        let _ = self.reader.close().await;
        let _ = self.writer.close().await;
    }
}

/// Makes the database file readable by its owner only, creating it so when missing: it
/// holds the token key and the password hashes. SQLite gives its `-wal` and `-shm` files
/// the mode of the database file; ones left by an older start are restricted here too.
fn restrict_sqlite_files(url: &str) -> Result<(), DbErr> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    use std::str::FromStr;

    let options = SqliteConnectOptions::from_str(url)
        .map_err(|e| DbErr::Custom(format!("unreadable SQLite URL: {e}")))?;
    let path = options.get_filename();
    let failed = |what: &str, e: std::io::Error| {
        DbErr::Custom(format!("could not {what} {}: {e}", path.display()))
    };
    if !path.exists() && url.contains("mode=rwc") {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .or_else(|e| match e.kind() {
                // Another instance created it at the same moment.
                std::io::ErrorKind::AlreadyExists => Ok(std::fs::File::open(path)?),
                _ => Err(e),
            })
            .map_err(|e| failed("create", e))?;
    }
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        match std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(file = ?file, %e, "could not make the database file private"),
        }
    }
    Ok(())
}

/// Takes the SQLite file for this process: an exclusive lock on `<file>.lock`, holding
/// our process id. SQLite serializes writes, but two services on one file would each run
/// an accrual pipeline, a relay and a dispatcher of their own: refused with a reason.
fn lock_sqlite_file(url: &str) -> Result<File, DbErr> {
    use std::io::{Read, Seek, Write};
    use std::os::unix::fs::OpenOptionsExt;
    use std::str::FromStr;

    let options = SqliteConnectOptions::from_str(url)
        .map_err(|e| DbErr::Custom(format!("unreadable SQLite URL: {e}")))?;
    let mut path = options.get_filename().as_os_str().to_owned();
    path.push(".lock");
    let failed = |e: std::io::Error| {
        DbErr::Custom(format!("could not lock {}: {e}", path.to_string_lossy()))
    };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(failed)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let holder = if holder.is_empty() {
                String::new()
            } else {
                format!(" (process {holder})")
            };
            return Err(DbErr::Custom(format!(
                "another gophermart instance is using {}{holder}; SQLite serves one instance \
                 per database file — run several instances on PostgreSQL",
                options.get_filename().display()
            )));
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(failed(e)),
    }
    file.set_len(0).map_err(failed)?;
    file.rewind().map_err(failed)?;
    write!(file, "{}", std::process::id()).map_err(failed)?;
    Ok(file)
}

fn sqlite_options(url: &str, connections: u32, read_only: bool) -> ConnectOptions {
    let mut options = ConnectOptions::new(url);
    options
        .max_connections(connections)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(30))
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(move |opts| {
            // FULL: a commit that answered the client survives a power cut, not only a crash.
            opts.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
                .read_only(read_only)
        });
    options
}

/// Now, as stored: UTC with an explicit offset.
pub fn now() -> DateTime<FixedOffset> {
    Utc::now().fixed_offset()
}

/// Points read back from a stored column of hundredths.
pub(crate) fn stored_points(cents: i64) -> Result<crate::domain::Points, DbErr> {
    crate::domain::Points::from_cents(cents)
        .map_err(|e| DbErr::Custom(format!("stored amount {cents}: {e}")))
}
