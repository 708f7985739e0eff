//! TCP forwarding from a test namespace's loopback to a server on the machine's loopback.
//!
//! Daemons run by the test-bed (kube-apiserver) listen on the machine's 127.0.0.1, which a node
//! namespace cannot reach. A [`Forward`] listens on the same port on the node's own 127.0.0.1 and
//! relays each connection, so one kubeconfig works from the machine and from every node.

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{IoContext, Result};
use crate::netns::Netns;

/// Relays `127.0.0.1:<port>` inside a namespace to `127.0.0.1:<port>` of the machine; stops on drop.
#[derive(Debug)]
pub struct Forward {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Forward {
    pub fn start(netns: &Netns, port: u16) -> Result<Self> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let listener = netns
            .run_in(move || TcpListener::bind(addr))?
            .io_context(|| format!("listen on {addr} in {}", netns.name()))?;
        listener
            .set_nonblocking(true)
            .io_context(|| "set listener non-blocking".into())?;
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel::<TcpStream>();
        // Accepting needs no namespace (the socket is already bound in the node's); connecting
        // upstream must happen on a thread of the machine's namespace, like this one.
        let acceptor = spawn_acceptor(listener, Arc::clone(&stop), tx);
        let relay_stop = Arc::clone(&stop);
        let dispatcher = std::thread::spawn(move || {
            while !relay_stop.load(Ordering::Relaxed) {
                let Ok(client) = rx.recv_timeout(Duration::from_millis(100)) else {
                    continue;
                };
                let Ok(upstream) = TcpStream::connect_timeout(&addr, Duration::from_secs(5)) else {
                    continue;
                };
                let _ = client.set_nonblocking(false);
                relay(client, upstream);
            }
        });
        Ok(Self {
            stop,
            threads: vec![acceptor, dispatcher],
        })
    }
}

/// Accepts on a non-blocking `listener` until `stop`, handing each connection to `tx`.
pub(crate) fn spawn_acceptor(
    listener: TcpListener,
    stop: Arc<AtomicBool>,
    tx: mpsc::Sender<TcpStream>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((stream, _)) => {
                    if tx.send(stream).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(_) => return,
            }
        }
    })
}

/// Copies both directions until either side closes.
pub(crate) fn relay(a: TcpStream, b: TcpStream) {
    let pairs = [
        (a.try_clone(), b.try_clone()),
        (b.try_clone(), a.try_clone()),
    ];
    for pair in pairs {
        if let (Ok(mut from), Ok(mut to)) = pair {
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut from, &mut to);
                let _ = to.shutdown(std::net::Shutdown::Write);
            });
        }
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}
