//! Unique names, so that tests (and several test binaries) can run in parallel on one machine.

use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name unique on this machine for the life of this process: `<prefix><pid36><n36>`.
///
/// Kept short because Linux limits interface names to 15 bytes; a prefix of up to 5 bytes leaves room.
pub fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{}{}", base36(std::process::id()), base36(n))
}

fn base36(mut n: u32) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8_lossy(&out).into_owned()
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
///
/// The kernel picks it; the short window before the peer binds it is the price of running real
/// daemons that want a port number on their command line.
pub fn free_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_differ_and_fit_an_interface_name() {
        let a = unique("nt");
        let b = unique("nt");
        assert_ne!(a, b);
        assert!(a.len() <= 15, "{a} is too long for an interface name");
    }
}
