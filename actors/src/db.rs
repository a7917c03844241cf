//! Database connections: a writer and a reader, so that SQLite keeps one writer while
//! readers proceed in parallel under WAL; on PostgreSQL both share one pool.

use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};

/// The connections every store function works with.
#[derive(Debug, Clone)]
pub struct Db {
    /// Where every write goes. On SQLite a single connection: writes are serialized there
    /// instead of failing with `SQLITE_BUSY`.
    pub writer: DatabaseConnection,
    /// Where list queries go.
    pub reader: DatabaseConnection,
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
            let writer = Database::connect(sqlite_options(url, 1, false)).await?;
            let reader = Database::connect(sqlite_options(url, 4, true)).await?;
            Ok(Self { writer, reader })
        } else {
            let mut options = ConnectOptions::new(url);
            options
                .max_connections(16)
                .min_connections(1)
                .acquire_timeout(Duration::from_secs(10))
                .sqlx_logging(false);
            let pool = Database::connect(options).await?;
            Ok(Self {
                writer: pool.clone(),
                reader: pool,
            })
        }
    }

    /// Closes both pools.
    pub async fn close(self) {
        let _ = self.reader.close().await;
        let _ = self.writer.close().await;
    }
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
