//! Upstream connections driven inside the task of the client connection that opened them, so
//! that a request and its response never hop to another task (or worker thread) on the way.

use std::convert::Infallible;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Poll, Waker};

/// One upstream connection's I/O future.
pub type Driver = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Upstream connection futures handed over by the request handler to the connection task.
#[derive(Default)]
pub struct Drivers {
    incoming: Mutex<Vec<Driver>>,
    waker: Mutex<Option<Waker>>,
}

impl std::fmt::Debug for Drivers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Drivers")
    }
}

impl Drivers {
    /// Hands `d` to the connection task. Should the hand-over fail (a poisoned lock), the
    /// future is spawned instead, so that the upstream connection is always driven.
    pub fn add(&self, d: Driver) {
        match self.incoming.lock() {
            Ok(mut v) => v.push(d),
            Err(_) => {
                tokio::spawn(d);
                return;
            }
        }
        if let Ok(w) = self.waker.lock()
            && let Some(w) = w.as_ref()
        {
            w.wake_by_ref();
        }
    }

    /// Drives every handed-over future until it ends; never completes. Poll it in the same
    /// task as the client connection; dropping it closes the upstream connections left.
    pub fn run(&self) -> impl Future<Output = Infallible> + Send + '_ {
        let mut active: Vec<Driver> = Vec::new();
        poll_fn(move |cx| {
            if let Ok(mut w) = self.waker.lock() {
                match w.as_ref() {
                    Some(old) if old.will_wake(cx.waker()) => {}
                    _ => *w = Some(cx.waker().clone()),
                }
            }
            if let Ok(mut v) = self.incoming.lock() {
                active.append(&mut v);
            }
            active.retain_mut(|d| d.as_mut().poll(cx).is_pending());
            Poll::Pending
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[tokio::test]
    async fn handed_over_futures_run_to_completion() {
        let drivers = Arc::new(Drivers::default());
        let done = Arc::new(AtomicBool::new(false));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let d = done.clone();
        let runner = drivers.run();
        tokio::pin!(runner);
        let added = drivers.clone();
        let work = async move {
            tokio::task::yield_now().await;
            added.add(Box::pin(async move {
                let _ = rx.await;
                d.store(true, Ordering::SeqCst);
            }));
            tokio::task::yield_now().await;
            let _ = tx.send(());
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        };
        tokio::select! {
            never = &mut runner => match never {},
            () = work => {}
        }
        assert!(done.load(Ordering::SeqCst));
    }
}
