//! [`RepoSource`] and [`SecretSource`] over Paddock's own store and vault.

use std::sync::Arc;

use paddock_policy::SecretValue;

use super::sources::{RepoRecord, RepoSource, SecretSource};
use super::{BoxFuture, WorkerError};
use crate::store::Store;
use crate::store::issues::Issue;
use crate::vault::KeyRing;

/// The store and the key ring that opens its secrets.
#[derive(Clone)]
pub struct StoreSources {
    store: Store,
    ring: Arc<KeyRing>,
}

impl std::fmt::Debug for StoreSources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreSources")
    }
}

impl StoreSources {
    /// Wraps a store and its key ring.
    pub fn new(store: Store, ring: Arc<KeyRing>) -> StoreSources {
        StoreSources { store, ring }
    }
}

fn record(r: crate::store::Repo) -> RepoRecord {
    RepoRecord {
        id: r.id,
        url: r.url,
        default_branch: r.default_branch,
        credential: r.credential,
        known_hosts: r.ssh_known_hosts,
        branch_prefix: r.branch_prefix,
    }
}

impl RepoSource for StoreSources {
    fn repo_for_issue<'a>(
        &'a self,
        issue: &'a Issue,
    ) -> BoxFuture<'a, Result<RepoRecord, WorkerError>> {
        Box::pin(async move {
            match self.store.repo_for_issue(issue).await {
                Ok(r) => Ok(record(r)),
                Err(crate::store::StoreError::NotFound(_)) => Err(WorkerError::Config(
                    "the issue names no repository of its workspace, and the workspace does not \
                     have exactly one; set the issue's repository or register one with \
                     `paddock repo add`"
                        .into(),
                )),
                Err(e) => Err(e.into()),
            }
        })
    }

    fn runs_paused(&self, workspace_id: i64) -> BoxFuture<'_, Result<bool, WorkerError>> {
        Box::pin(async move { Ok(self.store.runs_paused(workspace_id).await?) })
    }
}

impl SecretSource for StoreSources {
    fn open<'a>(
        &'a self,
        workspace_id: i64,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<SecretValue>, WorkerError>> {
        Box::pin(async move {
            Ok(self
                .store
                .open_secret(&self.ring, workspace_id, name)
                .await?)
        })
    }
}
