//! Releasing sandboxes nobody closed: a process-wide registry of release actions (delete a
//! Cloud sandbox, stop a runtime, kill an Apptainer process group), run by
//! [`release_all_blocking`] from a signal handler or panic hook, and [`block_on`] to run one
//! async release from `Drop`, on a short-lived thread with its own current-thread runtime (so
//! it works inside or outside a tokio runtime). Docker containers have their own registry
//! (`docker::cleanup`).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Mutex, MutexGuard};

type Action = Box<dyn FnOnce() + Send>;

static LIVE: Mutex<BTreeMap<String, Action>> = Mutex::new(BTreeMap::new());

fn live() -> MutexGuard<'static, BTreeMap<String, Action>> {
    LIVE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Records how to release the sandbox `key` if the process is stopped before it closes it.
pub fn register(key: &str, action: impl FnOnce() + Send + 'static) {
    live().insert(key.to_string(), Box::new(action));
}

/// Forgets `key` (it was released, or is kept on purpose).
pub fn unregister(key: &str) {
    live().remove(key);
}

/// The keys currently registered.
pub fn registered() -> Vec<String> {
    live().keys().cloned().collect()
}

/// Runs and forgets every registered release action; blocks until done.
pub fn release_all_blocking() {
    let actions = std::mem::take(&mut *live());
    for (_, action) in actions {
        action();
    }
}

/// Runs `work` to completion on a fresh thread with its own runtime, and waits for it.
pub fn block_on<F>(work: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    let thread = std::thread::spawn(move || {
        if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            rt.block_on(work);
        }
    });
    let _ = thread.join();
}
