//! Releasing sandboxes nobody closed: a process-wide registry of release actions (delete a
//! Cloud sandbox, stop a runtime, kill an Apptainer process group), run by
//! [`release_all_blocking`] from a signal handler or panic hook, and [`block_on`] to run one
//! async release from `Drop`, on a short-lived thread with its own current-thread runtime (so
//! it works inside or outside a tokio runtime). It is the process's one registry: Docker
//! containers and networks are in it too (`docker::cleanup` names their keys), and
//! [`cleanup_all`] (the second signal, a stopped setup, the panic hook) empties it.
//!
//! A resource being created (a container create, a Cloud sandbox POST, a runtime start, an
//! Apptainer launch) is created through [`shielded`]: the creation runs to its end and
//! registers what it made even when its caller is cancelled mid-request, and
//! [`wait_for_creations`] lets a cleanup wait for those in flight, so a cancel at any moment
//! leaks nothing.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

type Action = Box<dyn FnOnce() + Send>;

static LIVE: Mutex<BTreeMap<String, Action>> = Mutex::new(BTreeMap::new());
/// Creations in flight (see [`shielded`]).
static CREATING: AtomicUsize = AtomicUsize::new(0);

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

/// Runs and forgets every registered release action, in the order of their keys (Docker
/// containers before their networks); blocks until done.
pub fn release_all_blocking() {
    release_matching_blocking("");
}

/// Runs and forgets the registered release actions whose key starts with `prefix`.
pub fn release_matching_blocking(prefix: &str) {
    let actions: Vec<Action> = {
        let mut live = live();
        let keys: Vec<String> = live
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect();
        keys.iter().filter_map(|k| live.remove(k)).collect()
    };
    for action in actions {
        action();
    }
}

/// How long [`cleanup_all`] waits for creations in flight (a container create, a sandbox POST).
const CREATION_WAIT: Duration = Duration::from_secs(15);
static CLEANUP: Mutex<()> = Mutex::new(());

/// Removes everything this process registered (containers and networks, Cloud sandboxes,
/// runtimes, Apptainer processes, local shells), after the creations in flight end; blocks.
/// A second caller waits for the first, then removes what is left.
pub fn cleanup_all() {
    let _one_at_a_time = CLEANUP.lock().unwrap_or_else(|p| p.into_inner());
    if !wait_for_creations(CREATION_WAIT) {
        eprintln!("sandcrab: warning: a sandbox creation did not end in time; it may be left");
    }
    release_all_blocking();
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

/// Counts a creation in flight while it lives.
pub struct Creating(());

impl Creating {
    pub fn start() -> Self {
        CREATING.fetch_add(1, Ordering::SeqCst);
        Creating(())
    }
}

impl Drop for Creating {
    fn drop(&mut self) {
        CREATING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Runs `work` (a creation that registers what it creates) on its own task, to its end even
/// if the caller stops waiting; counted as in flight until then.
pub async fn shielded<T, F>(work: F) -> T
where
    T: Send + 'static,
    F: Future<Output = T> + Send + 'static,
{
    let creating = Creating::start();
    let task = tokio::spawn(async move {
        let out = work.await;
        drop(creating);
        out
    });
    match task.await {
        Ok(out) => out,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // Only when the runtime shuts down, which drops this future too.
        Err(_) => std::future::pending().await,
    }
}

/// Waits (blocking, up to `limit`) until no creation is in flight; whether none is.
pub fn wait_for_creations(limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while CREATING.load(Ordering::SeqCst) > 0 {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}
