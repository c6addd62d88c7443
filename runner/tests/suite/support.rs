//! Test databases: a fresh SQLite file or a fresh PostgreSQL database per test.

use paddock::store::Store;

/// A database made for one test; dropped with it (SQLite) or left for the cluster reset (PostgreSQL).
pub struct TestDb {
    #[allow(dead_code)]
    pub url: String,
    pub store: Store,
    _dir: Option<tempfile::TempDir>,
    /// (admin URL, database name) of a PostgreSQL test database, dropped with the TestDb.
    pg: Option<(String, String)>,
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((admin, name)) = self.pg.take() else {
            return;
        };
        // Runs on its own thread and runtime: Drop cannot await, and the test runtime may be ending.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(s) = Store::connect(&admin, 1).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(s.pool())
                        .await;
                    s.close().await;
                }
            });
        })
        .join();
    }
}

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// PostgreSQL admin URL, or None (skip) when not configured and not in CI.
pub fn postgres_url() -> Option<String> {
    match std::env::var("PADDOCK_TEST_POSTGRES_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            if std::env::var_os("CI").is_some() {
                panic!(
                    "CI is set but PADDOCK_TEST_POSTGRES_URL is not: PostgreSQL tests cannot be skipped in CI"
                );
            }
            eprintln!(
                "skipping PostgreSQL test: PADDOCK_TEST_POSTGRES_URL is not set (run `. scripts/services.sh; paddock_postgres`)"
            );
            None
        }
    }
}

/// A fresh, migrated database of `kind`; None when PostgreSQL is unavailable outside CI.
pub async fn fresh(kind: Kind) -> Option<TestDb> {
    match kind {
        Kind::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}", dir.path().join("paddock.db").display());
            let store = Store::connect(&url, 8).await.unwrap();
            store.migrate().await.unwrap();
            Some(TestDb {
                url,
                store,
                _dir: Some(dir),
                pg: None,
            })
        }
        Kind::Postgres => {
            let admin = postgres_url()?;
            let name = format!("paddock_t_{}", uuid::Uuid::new_v4().simple());
            let admin_store = Store::connect(&admin, 1).await.unwrap();
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(admin_store.pool())
                .await
                .unwrap();
            admin_store.close().await;
            let base = admin.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap();
            let url = format!("{base}/{name}");
            let store = Store::connect(&url, 16).await.unwrap();
            store.migrate().await.unwrap();
            Some(TestDb {
                url,
                store,
                _dir: None,
                pg: Some((admin, name)),
            })
        }
    }
}

/// Declares one test per backend: `both!(name, async_fn)` where `async_fn(TestDb)`.
#[macro_export]
macro_rules! both {
    ($name:ident, $body:path) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                let db = $crate::suite::support::fresh($crate::suite::support::Kind::Sqlite)
                    .await
                    .unwrap();
                $body(db).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                if let Some(db) =
                    $crate::suite::support::fresh($crate::suite::support::Kind::Postgres).await
                {
                    $body(db).await;
                }
            }
        }
    };
}
