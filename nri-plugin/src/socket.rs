//! Where the NRI connection comes from: the runtime's socket, or a socket the runtime handed over
//! when it launched the plugin itself.

use std::io;
use std::os::fd::{FromRawFd as _, OwnedFd, RawFd};
use std::os::unix::fs::FileTypeExt as _;
use std::path::{Path, PathBuf};

use tokio::net::UnixStream;

/// The runtime's NRI socket when none is configured.
pub const DEFAULT_SOCKET_PATH: &str = "/var/run/nri/nri.sock";

/// Set by a runtime that launches the plugin: the number of an inherited, connected socket.
pub const PLUGIN_SOCKET_ENV: &str = "NRI_PLUGIN_SOCKET";
/// Set by a runtime that launches the plugin: the name it knows the plugin by.
pub const PLUGIN_NAME_ENV: &str = "NRI_PLUGIN_NAME";
/// Set by a runtime that launches the plugin: the plugin's index.
pub const PLUGIN_IDX_ENV: &str = "NRI_PLUGIN_IDX";

/// How to reach the runtime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NriSocket {
    /// Connect to the runtime's listening socket, and again after every disconnection.
    Path(PathBuf),
    /// Use the connected socket inherited as this descriptor. When it closes the plugin exits:
    /// the runtime that launched it launches it again.
    Inherited(RawFd),
}

/// A socket that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// The descriptor number is not a number, or is stdin/stdout/stderr.
    #[error("{PLUGIN_SOCKET_ENV}={value:?} is not a usable descriptor number")]
    BadDescriptor {
        /// The variable's value.
        value: String,
    },
    /// The descriptor is not open, or is not a socket.
    #[error("inherited descriptor {fd} is not an open socket")]
    NotASocket {
        /// The descriptor.
        fd: RawFd,
        /// What looking at it said.
        #[source]
        source: io::Error,
    },
    /// Connecting to the runtime's socket failed.
    #[error("cannot connect to the NRI socket {path}")]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Setting the socket up for tokio failed.
    #[error("cannot use the NRI socket")]
    Setup(#[source] io::Error),
}

/// Parses the value of [`PLUGIN_SOCKET_ENV`].
pub fn parse_inherited(value: &str) -> Result<RawFd, SocketError> {
    match value.trim().parse::<RawFd>() {
        Ok(fd) if fd > 2 => Ok(fd),
        _ => Err(SocketError::BadDescriptor {
            value: value.to_owned(),
        }),
    }
}

/// Connects to the runtime's socket at `path`.
pub async fn connect(path: &Path) -> Result<UnixStream, SocketError> {
    UnixStream::connect(path)
        .await
        .map_err(|source| SocketError::Connect {
            path: path.to_owned(),
            source,
        })
}

/// Takes ownership of the inherited socket `fd`. Call at most once per descriptor.
pub fn adopt_inherited(fd: RawFd) -> Result<UnixStream, SocketError> {
    if fd <= 2 {
        return Err(SocketError::BadDescriptor {
            value: fd.to_string(),
        });
    }
    // Check that the number names an open socket before claiming it.
    let meta = std::fs::metadata(format!("/proc/self/fd/{fd}"))
        .map_err(|source| SocketError::NotASocket { fd, source })?;
    if !meta.file_type().is_socket() {
        return Err(SocketError::NotASocket {
            fd,
            source: io::Error::other("not a socket"),
        });
    }
    // SAFETY: the runtime passed this descriptor to this process for the plugin connection
    // (`NRI_PLUGIN_SOCKET`); it is open and a socket (checked above), nothing else in this process
    // owns it, and the callers adopt each descriptor once.
    #[allow(unsafe_code)]
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let inherited = std::os::unix::net::UnixStream::from(owned);
    // The inherited descriptor lacks close-on-exec; a clone has it. The original closes on drop.
    let stream = inherited.try_clone().map_err(SocketError::Setup)?;
    drop(inherited);
    stream.set_nonblocking(true).map_err(SocketError::Setup)?;
    UnixStream::from_std(stream).map_err(SocketError::Setup)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_numbers_are_checked() {
        assert_eq!(parse_inherited("3").unwrap(), 3);
        assert_eq!(parse_inherited(" 17\n").unwrap(), 17);
        for bad in ["", "x", "-1", "0", "2", "3.5"] {
            assert!(parse_inherited(bad).is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn an_inherited_socket_is_adopted_and_carries_bytes() {
        use std::io::Write as _;
        use std::os::fd::IntoRawFd as _;
        use tokio::io::AsyncReadExt as _;
        let (mut ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let fd = theirs.into_raw_fd();
        let mut adopted = adopt_inherited(fd).unwrap();
        ours.write_all(b"nri").unwrap();
        let mut got = [0; 3];
        adopted.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"nri");
    }

    #[tokio::test]
    async fn a_closed_descriptor_is_not_adopted() {
        // A high number no test opens.
        let err = adopt_inherited(1_000_000).unwrap_err();
        assert!(
            matches!(err, SocketError::NotASocket { fd: 1_000_000, .. }),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_file_descriptor_is_not_adopted() {
        use std::os::fd::AsRawFd as _;
        let file = std::fs::File::open("/proc/self/status").unwrap();
        let err = adopt_inherited(file.as_raw_fd()).unwrap_err();
        assert!(matches!(err, SocketError::NotASocket { .. }), "{err}");
    }
}
