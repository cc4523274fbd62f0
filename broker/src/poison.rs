//! The broker's one lock-poisoning policy: **recover the guard**.
//!
//! Every `Mutex`, `RwLock` and `Condvar` wait in the broker goes through
//! these helpers, never `.lock().unwrap()`.
//!
//! Why recovering is sound here: a lock is poisoned only when a thread
//! panicked while holding it, i.e. on a bug. Every critical section in the
//! broker checks first and then mutates with steps that each leave the
//! protected data consistent (an insert, a remove, a replace of a whole
//! value, counters bumped after the change they count), so the data a
//! panicking thread left behind is the state as of some step of its section,
//! never torn memory. The one place where a half-done step *would* matter,
//! the partition log's writer (bytes written but not yet published), does
//! not rely on poisoning: `PartitionLog::commit_group` catches the panic and
//! fail-stops the partition explicitly (no later append reuses that writer),
//! the same mechanism as a failed fsync.
//!
//! Why not panic on poison (`expect`): one request's bug would then take
//! down every later request that touches the same lock (all of a broker's
//! groups, topics or users), turning one failed request into a dead broker.
//! The panic itself is still logged by the panic hook and fails the request
//! (or group commit) it happened in.

use std::sync::{
    Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard, TryLockError,
    WaitTimeoutResult,
};
use std::time::Duration;

/// Locks `m`, recovering the guard if a panicking thread poisoned it.
pub(crate) fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Read-locks `l`, recovering the guard if poisoned.
pub(crate) fn read<T: ?Sized>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

/// Write-locks `l`, recovering the guard if poisoned.
pub(crate) fn write<T: ?Sized>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

/// Read-locks `l` if no writer holds it (recovering a poisoned guard);
/// `None` if it would block.
pub(crate) fn try_read<T: ?Sized>(l: &RwLock<T>) -> Option<RwLockReadGuard<'_, T>> {
    match l.try_read() {
        Ok(guard) => Some(guard),
        Err(TryLockError::Poisoned(e)) => Some(e.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
}

/// Locks `m` if no one holds it (recovering a poisoned guard); `None` if
/// it would block.
pub(crate) fn try_lock<T: ?Sized>(m: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
    match m.try_lock() {
        Ok(guard) => Some(guard),
        Err(TryLockError::Poisoned(e)) => Some(e.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
}

/// Waits on `cv`, recovering the guard if poisoned meanwhile.
pub(crate) fn wait<'a, T>(cv: &Condvar, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    cv.wait(guard).unwrap_or_else(|e| e.into_inner())
}

/// Waits on `cv` for at most `timeout`, recovering the guard if poisoned
/// meanwhile.
pub(crate) fn wait_timeout<'a, T>(
    cv: &Condvar,
    guard: MutexGuard<'a, T>,
    timeout: Duration,
) -> (MutexGuard<'a, T>, WaitTimeoutResult) {
    cv.wait_timeout(guard, timeout)
        .unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_poisoned_lock_is_recovered_with_its_last_state() {
        let m = Arc::new(Mutex::new(1));
        let l = Arc::new(RwLock::new(1));
        let (m2, l2) = (Arc::clone(&m), Arc::clone(&l));
        let panicked = std::thread::spawn(move || {
            *lock(&m2) = 2;
            let _w = write(&l2);
            let _g = lock(&m2);
            panic!("poison both");
        })
        .join();
        assert!(panicked.is_err());
        assert!(m.is_poisoned() && l.is_poisoned());
        assert_eq!(*lock(&m), 2);
        assert_eq!(*read(&l), 1);
        assert_eq!(try_read(&l).map(|g| *g), Some(1));
        *write(&l) = 3;
        assert_eq!(*read(&l), 3);
    }
}
