//! A bounded, least-recently-used cache of a run's minted leaf certificates, keyed by host.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use paddock_policy::Host;
use rustls::sign::CertifiedKey;

/// Leaves per run unless configured otherwise: far more hosts than a coding task talks to, and
/// small enough (~1 KiB each) that a hostile agent cycling host names cannot grow memory.
pub const DEFAULT_LEAF_CACHE_CAPACITY: usize = 1024;

struct Entry {
    leaf: Arc<CertifiedKey>,
    last_used: u64,
}

#[derive(Default)]
struct Inner {
    map: HashMap<Host, Entry>,
    tick: u64,
}

/// Holds at most `capacity` leaves; inserting into a full cache evicts the least recently used.
pub(crate) struct LeafCache {
    capacity: usize,
    inner: Mutex<Inner>,
}

impl LeafCache {
    /// A cache of at most `capacity` leaves (at least one).
    pub(crate) fn new(capacity: usize) -> LeafCache {
        LeafCache {
            capacity: capacity.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    // The map is consistent after every statement that can panic, so a poisoned lock is safe
    // to keep using; refusing would turn one panic into a dead run.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached leaf for `host`, marking it recently used.
    pub(crate) fn get(&self, host: &Host) -> Option<Arc<CertifiedKey>> {
        let mut inner = self.lock();
        inner.tick = inner.tick.wrapping_add(1);
        let tick = inner.tick;
        inner.map.get_mut(host).map(|entry| {
            entry.last_used = tick;
            Arc::clone(&entry.leaf)
        })
    }

    /// Stores `leaf` for `host` and returns the leaf to use. When a concurrent mint for the same
    /// host got there first, its leaf wins and is returned, so every caller ends up with one
    /// certificate per host.
    pub(crate) fn insert(&self, host: &Host, leaf: Arc<CertifiedKey>) -> Arc<CertifiedKey> {
        let mut inner = self.lock();
        inner.tick = inner.tick.wrapping_add(1);
        let tick = inner.tick;
        if let Some(existing) = inner.map.get_mut(host) {
            existing.last_used = tick;
            return Arc::clone(&existing.leaf);
        }
        if inner.map.len() >= self.capacity {
            let oldest = inner
                .map
                .iter()
                .min_by_key(|(_, entry)| entry.last_used)
                .map(|(host, _)| host.clone());
            if let Some(oldest) = oldest {
                inner.map.remove(&oldest);
            }
        }
        inner.map.insert(
            host.clone(),
            Entry {
                leaf: Arc::clone(&leaf),
                last_used: tick,
            },
        );
        leaf
    }

    /// Number of cached leaves.
    pub(crate) fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// The most leaves this cache holds.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }
}
