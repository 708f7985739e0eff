//! TCP relay from the machine's loopback into a namespace: `kubectl` on the machine reaches a
//! kube-apiserver that listens only inside its control-plane namespace.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{Error, IoContext, Result};
use crate::forward::{relay, spawn_acceptor};

/// Listens on `127.0.0.1:<port>` of the machine and connects each client to `target` from inside
/// the namespace at `netns`; stops on drop.
#[derive(Debug)]
pub struct Relay {
    port: u16,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Relay {
    pub fn start(netns: &Path, target: SocketAddr) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").io_context(|| "bind the relay".into())?;
        let port = listener
            .local_addr()
            .io_context(|| "the relay's port".into())?
            .port();
        listener
            .set_nonblocking(true)
            .io_context(|| "set the relay non-blocking".into())?;
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel::<TcpStream>();
        let acceptor = spawn_acceptor(listener, Arc::clone(&stop), tx);
        // This thread lives in the target namespace: the sockets it opens belong to it.
        let file = std::fs::File::open(netns).io_context(|| format!("open {}", netns.display()))?;
        let relay_stop = Arc::clone(&stop);
        let (entered_tx, entered_rx) = mpsc::channel::<std::result::Result<(), String>>();
        let dispatcher = std::thread::spawn(move || {
            let entered = nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| e.to_string());
            let ok = entered.is_ok();
            let _ = entered_tx.send(entered);
            if !ok {
                return;
            }
            while !relay_stop.load(Ordering::Relaxed) {
                let Ok(client) = rx.recv_timeout(Duration::from_millis(100)) else {
                    continue;
                };
                let Ok(upstream) = TcpStream::connect_timeout(&target, Duration::from_secs(5))
                else {
                    continue;
                };
                let _ = client.set_nonblocking(false);
                relay(client, upstream);
            }
        });
        let mut relay = Self {
            port,
            stop,
            threads: vec![acceptor, dispatcher],
        };
        match entered_rx.recv() {
            Ok(Ok(())) => Ok(relay),
            Ok(Err(e)) => {
                relay.stop_threads();
                Err(Error::Other(format!("setns {}: {e}", netns.display())))
            }
            Err(_) => {
                relay.stop_threads();
                Err(Error::Other("the relay thread ended early".into()))
            }
        }
    }

    /// The port on the machine's 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    fn stop_threads(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop_threads();
    }
}
