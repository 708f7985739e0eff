//! Traffic between namespaces, generated and checked from Rust threads that entered them.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

use crate::error::{Error, IoContext, Result};
use crate::netns::{Netns, run_in_path};

/// Sends `bytes` bytes over TCP from `client` to `addr:port` served in `server`; returns how many
/// bytes the server received. Every step is bounded by `timeout`.
pub fn tcp_transfer(
    server: &Netns,
    client: &Netns,
    addr: IpAddr,
    port: u16,
    bytes: usize,
    timeout: Duration,
) -> Result<usize> {
    tcp_transfer_between(&server.path(), &client.path(), addr, port, bytes, timeout)
}

/// [`tcp_transfer`] between namespaces given by path (e.g. pods' namespaces from the runtime).
pub fn tcp_transfer_between(
    server: &Path,
    client: &Path,
    addr: IpAddr,
    port: u16,
    bytes: usize,
    timeout: Duration,
) -> Result<usize> {
    let listen = SocketAddr::new(addr, port);
    let listener = run_in_path(server, move || TcpListener::bind(listen))?
        .io_context(|| format!("bind {listen} in {}", server.display()))?;
    // The accept loop must not outlive the test: a non-blocking listener polled until the deadline.
    listener
        .set_nonblocking(true)
        .io_context(|| "set listener non-blocking".into())?;
    let receiver = std::thread::spawn(move || -> std::io::Result<usize> {
        let deadline = std::time::Instant::now() + timeout;
        let (mut stream, _) = loop {
            match listener.accept() {
                Ok(pair) => break pair,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if std::time::Instant::now() >= deadline {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "no connection",
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(e),
            }
        };
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(timeout))?;
        let mut total = 0;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match stream.read(&mut buf)? {
                0 => return Ok(total),
                n => total += n,
            }
        }
    });
    let sent = run_in_path(client, move || -> std::io::Result<()> {
        let mut stream = TcpStream::connect_timeout(&listen, timeout)?;
        stream.set_write_timeout(Some(timeout))?;
        let chunk = vec![0x5au8; 64 * 1024];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(chunk.len());
            stream.write_all(&chunk[..n])?;
            left -= n;
        }
        stream.shutdown(std::net::Shutdown::Write)
    })?;
    let received = receiver
        .join()
        .map_err(|_| Error::Other("TCP receiver thread panicked".into()))?;
    sent.io_context(|| format!("send to {listen} from {}", client.display()))?;
    received.io_context(|| format!("receive on {listen} in {}", server.display()))
}
