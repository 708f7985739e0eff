//! `ssl:` remotes: TLS with a client certificate, as OVN's own daemons speak it.
//!
//! The client takes the three files `ovn-nbctl` and `ovn-controller` take (`--private-key`,
//! `--certificate`, `--ca-cert`). The server is trusted when its certificate chains to that CA.
//! A certificate that names hosts (subjectAltName) must also name the one we dialed; one that
//! names none, as `ovs-pki` makes them, is trusted on the CA alone, as OVS itself does. So keep
//! the OVSDB CA for OVSDB only.
//!
//! The files are read again at every connection attempt, so renewed certificates take effect at
//! the next reconnect.
//!
//! With TLS 1.3 the server checks our certificate after our side of the handshake is done; its
//! refusal arrives as an alert on the first read. A connection therefore counts as made only
//! once the server answered an `echo` over it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{AlertDescription, CertificateError, DigitallySignedStruct, SignatureScheme};
use serde_json::{Value as Json, json};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::core::framing::JsonSplitter;
use crate::core::rpc::Message;

/// The flags (and environment twins) that name the files; every daemon that takes OVSDB remotes
/// flattens these into its command line.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct TlsArgs {
    /// Private key (PEM) for `ssl:` OVSDB remotes, as `ovn-nbctl --private-key`.
    #[arg(long = "ovsdb-private-key", env = "NAUTI_OVSDB_PRIVATE_KEY")]
    pub private_key: Option<PathBuf>,
    /// Certificate (PEM) for that key, shown to `ssl:` OVSDB servers, as `--certificate`.
    #[arg(long = "ovsdb-certificate", env = "NAUTI_OVSDB_CERTIFICATE")]
    pub certificate: Option<PathBuf>,
    /// CA certificate (PEM) that `ssl:` OVSDB servers' certificates must chain to, as
    /// `--ca-cert`.
    #[arg(long = "ovsdb-ca-cert", env = "NAUTI_OVSDB_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
}

impl TlsArgs {
    /// The files, when all three are given; none is fine (no `ssl:` remote then); some is not.
    pub fn files(&self) -> Result<Option<TlsFiles>, TlsError> {
        match (&self.private_key, &self.certificate, &self.ca_cert) {
            (None, None, None) => Ok(None),
            (Some(key), Some(cert), Some(ca)) => Ok(Some(TlsFiles {
                private_key: key.clone(),
                certificate: cert.clone(),
                ca_cert: ca.clone(),
            })),
            (key, cert, ca) => Err(TlsError::Incomplete {
                missing: [
                    (key.is_none(), TlsFile::PrivateKey),
                    (cert.is_none(), TlsFile::Certificate),
                    (ca.is_none(), TlsFile::CaCert),
                ]
                .into_iter()
                .filter_map(|(missing, file)| missing.then_some(file))
                .collect(),
            }),
        }
    }
}

/// The three PEM files of a TLS client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Our private key.
    pub private_key: PathBuf,
    /// Our certificate (and any intermediates after it).
    pub certificate: PathBuf,
    /// The CA the server's certificate must chain to.
    pub ca_cert: PathBuf,
}

/// One of the three files, named as its flag is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFile {
    /// `--ovsdb-private-key`.
    PrivateKey,
    /// `--ovsdb-certificate`.
    Certificate,
    /// `--ovsdb-ca-cert`.
    CaCert,
}

impl fmt::Display for TlsFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::PrivateKey => "private key (--ovsdb-private-key)",
            Self::Certificate => "certificate (--ovsdb-certificate)",
            Self::CaCert => "CA certificate (--ovsdb-ca-cert)",
        })
    }
}

/// Why a TLS connection to an OVSDB server cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TlsError {
    /// An `ssl:` remote without the files.
    #[error(
        "{endpoint} needs a private key, certificate and CA certificate (--ovsdb-private-key, --ovsdb-certificate, --ovsdb-ca-cert)"
    )]
    NotConfigured {
        /// The remote.
        endpoint: String,
    },
    /// Some of the three files are given, not all.
    #[error("TLS for OVSDB needs all three files; missing: {}", list(missing))]
    Incomplete {
        /// The files not given.
        missing: Vec<TlsFile>,
    },
    /// A file cannot be read.
    #[error("cannot read the {file} {}: {reason}", path.display())]
    Unreadable {
        /// Which file.
        file: TlsFile,
        /// Its path.
        path: PathBuf,
        /// The system's reason.
        reason: String,
    },
    /// A file holds no usable PEM of the kind it should.
    #[error("the {file} {} is not usable: {reason}", path.display())]
    Invalid {
        /// Which file.
        file: TlsFile,
        /// Its path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The private key is not the certificate's.
    #[error(
        "the private key {} does not belong to the certificate {}: {reason}",
        key.display(),
        certificate.display()
    )]
    KeyMismatch {
        /// The key file.
        key: PathBuf,
        /// The certificate file.
        certificate: PathBuf,
        /// The TLS library's words.
        reason: String,
    },
    /// The server's certificate does not verify against our CA.
    #[error(
        "the server certificate of {endpoint} does not verify against the CA certificate {}: {reason}",
        ca_cert.display()
    )]
    UntrustedServer {
        /// The remote.
        endpoint: String,
        /// Our CA file.
        ca_cert: PathBuf,
        /// Why (e.g. not signed by that CA, expired).
        reason: String,
    },
    /// The server's certificate chains to our CA but names other hosts.
    #[error(
        "the server certificate of {endpoint} is signed by our CA but names other hosts: {presented}"
    )]
    ServerNameMismatch {
        /// The remote.
        endpoint: String,
        /// The names the certificate carries.
        presented: String,
    },
    /// The server refused our client certificate.
    #[error(
        "{endpoint} refused our client certificate {} (TLS alert: {alert}); is it signed by a CA the server trusts?",
        certificate.display()
    )]
    ClientCertificateRefused {
        /// The remote.
        endpoint: String,
        /// Our certificate file.
        certificate: PathBuf,
        /// The server's alert.
        alert: String,
    },
    /// The TLS library refuses its own defaults (not expected with the `ring` provider).
    #[error("TLS cannot be set up: {0}")]
    Setup(String),
    /// Any other TLS failure.
    #[error("TLS with {endpoint} failed: {reason}")]
    Handshake {
        /// The remote.
        endpoint: String,
        /// What failed.
        reason: String,
    },
}

fn list(files: &[TlsFile]) -> String {
    files
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why one connection attempt failed.
#[derive(Debug)]
pub(crate) enum ConnectFailure {
    /// The network (refused, unreachable, timed out, closed).
    Io(std::io::Error),
    /// TLS: bad files, or a peer whose certificate or verdict says no.
    Tls(TlsError),
}

impl fmt::Display for ConnectFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => e.fmt(f),
            Self::Tls(e) => e.fmt(f),
        }
    }
}

impl From<std::io::Error> for ConnectFailure {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

/// A TLS client configuration built from [`TlsFiles`].
#[derive(Clone)]
pub(crate) struct Connector {
    files: TlsFiles,
    config: Arc<rustls::ClientConfig>,
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl Connector {
    /// Reads the files and builds the configuration.
    pub(crate) fn load(files: &TlsFiles) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let ca = read(TlsFile::CaCert, &files.ca_cert)?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in certificates(TlsFile::CaCert, &files.ca_cert, &ca)? {
            roots.add(cert).map_err(|e| TlsError::Invalid {
                file: TlsFile::CaCert,
                path: files.ca_cert.clone(),
                reason: e.to_string(),
            })?;
        }
        let chain_pem = read(TlsFile::Certificate, &files.certificate)?;
        let chain = certificates(TlsFile::Certificate, &files.certificate, &chain_pem)?;
        let key_pem = read(TlsFile::PrivateKey, &files.private_key)?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Invalid {
            file: TlsFile::PrivateKey,
            path: files.private_key.clone(),
            reason: e.to_string(),
        })?;
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| TlsError::Invalid {
                file: TlsFile::CaCert,
                path: files.ca_cert.clone(),
                reason: e.to_string(),
            })?;
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Setup(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(OvsdbServerVerifier { webpki }))
            .with_client_auth_cert(chain, key)
            .map_err(|e| match e {
                rustls::Error::InconsistentKeys(_) => TlsError::KeyMismatch {
                    key: files.private_key.clone(),
                    certificate: files.certificate.clone(),
                    reason: e.to_string(),
                },
                other => TlsError::Invalid {
                    file: TlsFile::PrivateKey,
                    path: files.private_key.clone(),
                    reason: other.to_string(),
                },
            })?;
        Ok(Self {
            files: files.clone(),
            config: Arc::new(config),
        })
    }

    /// The same files read again (renewed certificates).
    pub(crate) fn reload(&self) -> Result<Self, TlsError> {
        Self::load(&self.files)
    }

    /// Runs the handshake on `tcp` and waits for the server's first answer (see the module
    /// notes); returns the stream and the splitter holding whatever followed that answer.
    pub(crate) async fn connect<S>(
        &self,
        tcp: S,
        host: &str,
        endpoint: &str,
        max_message: usize,
    ) -> Result<(tokio_rustls::client::TlsStream<S>, JsonSplitter), ConnectFailure>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let name = ServerName::try_from(host.trim_start_matches('[').trim_end_matches(']'))
            .map_err(|e| {
                ConnectFailure::Tls(TlsError::Handshake {
                    endpoint: endpoint.to_owned(),
                    reason: format!("{host:?} is not a host name or address: {e}"),
                })
            })?
            .to_owned();
        let classify = |e: std::io::Error| match classify(&e, endpoint, &self.files) {
            Some(tls) => ConnectFailure::Tls(tls),
            None => ConnectFailure::Io(e),
        };
        let mut stream = tokio_rustls::TlsConnector::from(self.config.clone())
            .connect(name, tcp)
            .await
            .map_err(classify)?;
        let splitter = first_answer(&mut stream, max_message)
            .await
            .map_err(|e| match e {
                FirstAnswer::Io(e) => classify(e),
                FirstAnswer::Closed => ConnectFailure::Tls(TlsError::Handshake {
                    endpoint: endpoint.to_owned(),
                    reason: "the server closed the connection right after the handshake \
                             (did it refuse our client certificate?)"
                        .into(),
                }),
                FirstAnswer::Protocol(reason) => ConnectFailure::Tls(TlsError::Handshake {
                    endpoint: endpoint.to_owned(),
                    reason,
                }),
            })?;
        Ok((stream, splitter))
    }
}

fn read(file: TlsFile, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::Unreadable {
        file,
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

fn certificates(
    file: TlsFile,
    path: &Path,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let invalid = |reason: String| TlsError::Invalid {
        file,
        path: path.to_owned(),
        reason,
    };
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(e.to_string()))?;
    if certs.is_empty() {
        return Err(invalid("no PEM CERTIFICATE in it".into()));
    }
    Ok(certs)
}

/// What the TLS library's error on `err` means, if it is one.
pub(crate) fn classify(err: &std::io::Error, endpoint: &str, files: &TlsFiles) -> Option<TlsError> {
    let tls = err.get_ref()?.downcast_ref::<rustls::Error>()?;
    let endpoint = endpoint.to_owned();
    Some(match tls {
        rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
            presented,
            ..
        }) => TlsError::ServerNameMismatch {
            endpoint,
            presented: presented.join(", "),
        },
        rustls::Error::InvalidCertificate(cert) => TlsError::UntrustedServer {
            endpoint,
            ca_cert: files.ca_cert.clone(),
            reason: match cert {
                CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                    "it is not signed by that CA".into()
                }
                other => other.to_string(),
            },
        },
        rustls::Error::AlertReceived(alert) if refuses_our_certificate(*alert) => {
            TlsError::ClientCertificateRefused {
                endpoint,
                certificate: files.certificate.clone(),
                alert: format!("{alert:?}"),
            }
        }
        other => TlsError::Handshake {
            endpoint,
            reason: other.to_string(),
        },
    })
}

/// Alerts a server sends when it does not accept the client's certificate (or its absence).
fn refuses_our_certificate(alert: AlertDescription) -> bool {
    matches!(
        alert,
        AlertDescription::BadCertificate
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateRevoked
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnknownCA
            | AlertDescription::AccessDenied
            | AlertDescription::CertificateRequired
    )
}

/// The webpki verifier, except that a certificate naming no host at all is trusted on its chain
/// (see the module notes).
#[derive(Debug)]
struct OvsdbServerVerifier {
    webpki: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for OvsdbServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verdict = self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        match verdict {
            // webpki checks the name only after the chain verified.
            Err(rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
                presented,
                ..
            })) if presented.is_empty() => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }

    fn root_hint_subjects(&self) -> Option<&[rustls::DistinguishedName]> {
        self.webpki.root_hint_subjects()
    }
}

enum FirstAnswer {
    Io(std::io::Error),
    Closed,
    Protocol(String),
}

const PROBE_ID: &str = "nauti-tls-probe";

/// Sends an `echo` and reads until its answer; echoes the server sends meanwhile are answered.
async fn first_answer<S>(stream: &mut S, max_message: usize) -> Result<JsonSplitter, FirstAnswer>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let probe = Message::Request {
        id: json!(PROBE_ID),
        method: "echo".into(),
        params: vec![],
    };
    stream
        .write_all(&probe.encode())
        .await
        .map_err(FirstAnswer::Io)?;
    stream.flush().await.map_err(FirstAnswer::Io)?;
    let mut splitter = JsonSplitter::new(max_message);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = stream.read(&mut buf).await.map_err(FirstAnswer::Io)?;
        if n == 0 {
            return Err(FirstAnswer::Closed);
        }
        splitter.push(&buf[..n]);
        while let Some(frame) = splitter
            .next_frame()
            .map_err(|e| FirstAnswer::Protocol(e.to_string()))?
        {
            match Message::decode(&frame).map_err(|e| FirstAnswer::Protocol(e.to_string()))? {
                Message::Response { id, .. } if id == PROBE_ID => return Ok(splitter),
                Message::Request { id, method, params } if method == "echo" => {
                    let answer = Message::Response {
                        id,
                        result: Ok(Json::Array(params)),
                    };
                    stream
                        .write_all(&answer.encode())
                        .await
                        .map_err(FirstAnswer::Io)?;
                }
                // Nothing else is due before our first request is answered.
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> TlsFiles {
        TlsFiles {
            private_key: "/etc/ovn/key.pem".into(),
            certificate: "/etc/ovn/cert.pem".into(),
            ca_cert: "/etc/ovn/ca.pem".into(),
        }
    }

    fn io(e: rustls::Error) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, e)
    }

    #[test]
    fn all_three_files_or_none() {
        assert_eq!(TlsArgs::default().files(), Ok(None));
        let only_ca = TlsArgs {
            ca_cert: Some("/ca.pem".into()),
            ..TlsArgs::default()
        };
        let err = only_ca.files().unwrap_err();
        assert_eq!(
            err,
            TlsError::Incomplete {
                missing: vec![TlsFile::PrivateKey, TlsFile::Certificate]
            }
        );
        let text = err.to_string();
        assert!(
            text.contains("--ovsdb-private-key") && text.contains("--ovsdb-certificate"),
            "{text}"
        );
        let all = TlsArgs {
            private_key: Some("/k".into()),
            certificate: Some("/c".into()),
            ca_cert: Some("/ca".into()),
        };
        assert_eq!(
            all.files().unwrap().unwrap().private_key,
            PathBuf::from("/k")
        );
    }

    #[test]
    fn a_server_certificate_from_another_ca_is_named_as_such() {
        let err = classify(
            &io(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            )),
            "ssl:10.0.0.1:6641",
            &files(),
        )
        .unwrap();
        assert!(matches!(err, TlsError::UntrustedServer { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("/etc/ovn/ca.pem") && text.contains("not signed by that CA"),
            "{text}"
        );
    }

    #[test]
    fn a_refusal_of_our_certificate_is_named_as_such() {
        for alert in [
            AlertDescription::UnknownCA,
            AlertDescription::BadCertificate,
            AlertDescription::CertificateRequired,
        ] {
            let err = classify(
                &io(rustls::Error::AlertReceived(alert)),
                "ssl:h:1",
                &files(),
            )
            .unwrap();
            assert!(
                matches!(err, TlsError::ClientCertificateRefused { .. }),
                "{alert:?}: {err}"
            );
            assert!(err.to_string().contains("/etc/ovn/cert.pem"), "{err}");
        }
        let other = classify(
            &io(rustls::Error::AlertReceived(
                AlertDescription::ProtocolVersion,
            )),
            "ssl:h:1",
            &files(),
        )
        .unwrap();
        assert!(matches!(other, TlsError::Handshake { .. }), "{other}");
    }

    #[test]
    fn network_errors_are_not_tls_errors() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(classify(&refused, "ssl:h:1", &files()), None);
    }
}
