//! Work inside a pod's network namespace, on a thread of its own.
//!
//! `setns` changes only the calling thread, and a netlink socket stays bound to the namespace it
//! was opened in. So the work runs on a fresh OS thread that enters the namespace, opens its own
//! rtnetlink connection on a current-thread runtime, and ends: the plugin's other threads never
//! leave the node's namespace, whatever happens inside.

use std::fs::File;
use std::future::Future;
use std::path::{Path, PathBuf};

use nix::sched::{CloneFlags, setns};

use super::NicError;

/// Runs `work(handle)` inside the namespace at `path` and returns its result.
pub(super) async fn run_in<T, F, Fut>(path: &Path, work: F) -> Result<T, NicError>
where
    F: FnOnce(rtnetlink::Handle) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, NicError>>,
    T: Send + 'static,
{
    let file = File::open(path).map_err(|e| NicError::netns(path, e))?;
    let owned: PathBuf = path.to_owned();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("nauti-netns".into())
        .spawn(move || {
            let _ = tx.send(enter_and_run(&owned, &file, work));
        })
        .map_err(|e| NicError::netns(path, e))?;
    rx.await
        .map_err(|_| NicError::ThreadLost(path.to_owned()))?
}

fn enter_and_run<T, F, Fut>(path: &Path, file: &File, work: F) -> Result<T, NicError>
where
    F: FnOnce(rtnetlink::Handle) -> Fut,
    Fut: Future<Output = Result<T, NicError>>,
{
    setns(file, CloneFlags::CLONE_NEWNET).map_err(|e| NicError::netns(path, e.into()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| NicError::netns(path, e))?;
    runtime.block_on(async move {
        let (connection, handle, _) = rtnetlink::new_connection().map_err(NicError::Connection)?;
        let task = tokio::spawn(connection);
        let result = work(handle).await;
        task.abort();
        result
    })
}
