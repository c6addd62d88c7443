//! The database: one sqlx `Any` pool over SQLite (embedded default) or PostgreSQL, chosen by URL.

pub mod audit;
pub mod claim;
pub mod issues;
pub mod repos;
pub mod runs;
pub mod secrets;
pub mod users;
pub mod workspace;

pub use issues::Issue;
pub use repos::{NewRepo, Repo, RepoPatch};
pub use runs::{RunRecord, RunResult};
pub use secrets::{RotateReport, SecretMeta};

use std::str::FromStr;
use std::sync::Once;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Executor};

/// Which SQL dialect the pool speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A failure in the store. `Display` never carries SQL text or connection secrets.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error")]
    Db(#[from] sqlx::Error),
    #[error("database migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("invalid: {0}")]
    Invalid(String),
    #[error("vault: {0}")]
    Vault(#[from] crate::vault::VaultError),
    #[error("invalid database_url: {0}")]
    Url(String),
    #[error("cannot create the database directory: {0}")]
    Dir(std::io::Error),
}

impl StoreError {
    /// True when the database refused a row because of a UNIQUE constraint.
    pub fn is_unique_violation(&self) -> bool {
        match self {
            StoreError::Db(sqlx::Error::Database(d)) => d.is_unique_violation(),
            _ => false,
        }
    }
}

/// Result alias for store calls.
pub type StoreResult<T> = Result<T, StoreError>;

/// The connection pool and its dialect.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// Serialises audit appends of this process (other processes are kept in line by the
    /// UNIQUE(prev_hash) constraint and retry).
    audit_lock: std::sync::Arc<tokio::sync::Mutex<()>>,
}

static MIGRATOR_SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static MIGRATOR_POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");
static DRIVERS: Once = Once::new();

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Makes a SQLite URL create its file, and the file's directory, when missing.
fn prepare_sqlite_url(url: &str) -> StoreResult<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    if path.is_empty() || path == ":memory:" {
        return Err(StoreError::Url(
            "SQLite needs a file path (sqlite:///path/to/paddock.db)".into(),
        ));
    }
    if let Some(parent) = std::path::Path::new(path).parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent).map_err(StoreError::Dir)?;
    }
    let mut out = format!("sqlite://{path}");
    match query {
        Some(q) if q.contains("mode=") => out.push_str(&format!("?{q}")),
        Some(q) => out.push_str(&format!("?{q}&mode=rwc")),
        None => out.push_str("?mode=rwc"),
    }
    Ok(out)
}

impl Store {
    /// Connects to `database_url` with up to `max_connections` connections.
    pub async fn connect(database_url: &str, max_connections: u32) -> StoreResult<Store> {
        DRIVERS.call_once(sqlx::any::install_default_drivers);
        let (backend, url) = if database_url.starts_with("sqlite:") {
            (Backend::Sqlite, prepare_sqlite_url(database_url)?)
        } else if database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://")
        {
            (Backend::Postgres, database_url.to_string())
        } else {
            return Err(StoreError::Url(
                "must start with sqlite: or postgres://".into(),
            ));
        };
        let opts = AnyConnectOptions::from_str(&url)
            .map_err(|_| StoreError::Url("cannot parse the URL".into()))?
            .disable_statement_logging();
        let mut pool = AnyPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(30));
        if backend == Backend::Sqlite {
            pool = pool.after_connect(|conn, _meta| {
                Box::pin(async move {
                    // WAL lets readers run beside the one writer; busy_timeout makes writers queue
                    // instead of failing; foreign keys enforce the cascades the erasure relies on.
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA busy_timeout = 10000").await?;
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    Ok(())
                })
            });
        }
        let pool = pool.connect_with(opts).await?;
        Ok(Store {
            pool,
            backend,
            audit_lock: std::sync::Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    /// Applies pending migrations of this backend.
    pub async fn migrate(&self) -> StoreResult<()> {
        match self.backend {
            Backend::Sqlite => MIGRATOR_SQLITE.run(&self.pool).await?,
            Backend::Postgres => MIGRATOR_POSTGRES.run(&self.pool).await?,
        }
        Ok(())
    }

    /// The pool.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The lock around audit appends.
    pub(crate) fn audit_lock(&self) -> &tokio::sync::Mutex<()> {
        &self.audit_lock
    }

    /// The dialect.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_url_gets_create_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b/p.db");
        let url = prepare_sqlite_url(&format!("sqlite://{}", p.display())).unwrap();
        assert!(url.ends_with("?mode=rwc"));
        assert!(p.parent().unwrap().is_dir());
        assert!(prepare_sqlite_url("sqlite::memory:").is_err());
    }
}
