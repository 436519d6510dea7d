//! How a session wakes the connection that owns it (new deliveries, a
//! spilled chunk read back): a permit and the driver's waker, which the
//! driver polls in place. Unlike a `tokio::sync::Notify`, waiting costs
//! the waiting future nothing (a `Notified` is about 60 bytes of every
//! idle connection's task).

use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;

/// One waiter (the owning connection), one permit.
#[derive(Debug, Default)]
pub struct Wake {
    waker: AtomicWaker,
    permit: AtomicBool,
}

impl Wake {
    /// Wakes the waiter, or, if none waits, lets its next poll through.
    pub fn notify_one(&self) {
        self.permit.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Ready (taking the permit) once notified since the last time;
    /// else `cx`'s waker is the one woken. The last registered waits: a
    /// session has one owner at a time.
    pub fn poll_notified(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.permit.swap(false, Ordering::AcqRel) {
            return Poll::Ready(());
        }
        self.waker.register(cx.waker());
        // A notification between the check and the registration.
        if self.permit.swap(false, Ordering::AcqRel) {
            return Poll::Ready(());
        }
        Poll::Pending
    }

    /// Waits until notified.
    pub async fn notified(&self) {
        std::future::poll_fn(|cx| self.poll_notified(cx)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_notification_before_the_wait_is_kept_and_taken_once() {
        let w = Wake::default();
        w.notify_one();
        w.notify_one();
        w.notified().await;
        let again = std::future::poll_fn(|cx| Poll::Ready(w.poll_notified(cx).is_ready())).await;
        assert!(!again, "two notifications before a wait are one permit");
    }

    #[tokio::test]
    async fn a_waiting_task_is_woken() {
        let w = std::sync::Arc::new(Wake::default());
        let waiter = tokio::spawn({
            let w = w.clone();
            async move { w.notified().await }
        });
        tokio::task::yield_now().await;
        w.notify_one();
        tokio::time::timeout(std::time::Duration::from_secs(10), waiter).await.expect("woken").expect("joined");
    }
}
