//! `ssl:` remotes against ovsdb-server with `--private-key/--certificate/--ca-cert` and
//! `--remote=pssl:<port>:127.0.0.1`, certificates made per test.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nauti_ovn::core::nb::DB;
use nauti_ovn::{
    Client, Error, LogicalSwitch, MonitorRequest, Northbound, TlsError, TlsFile, TlsFiles, Value,
};
use nauti_testbed::Daemon;
use nauti_testbed::TestDir;
use nauti_testbed::ovn::{NB_SCHEMA, RunDir};
use nauti_testbed::pki::{CertPair, TestCa};
use nauti_testbed::process::run;

use crate::{mk_client, mk_config};

const WAIT: Duration = Duration::from_secs(15);

/// A key and certificate written to `<dir>/<stem>-key.pem` and `<dir>/<stem>-cert.pem`.
fn write_pair(dir: &Path, stem: &str, pair: &CertPair) -> (PathBuf, PathBuf) {
    let key = dir.join(format!("{stem}-key.pem"));
    let cert = dir.join(format!("{stem}-cert.pem"));
    std::fs::write(&key, &pair.key_pem).unwrap();
    std::fs::write(&cert, &pair.cert_pem).unwrap();
    (key, cert)
}

fn write_ca(dir: &Path, stem: &str, ca: &TestCa) -> PathBuf {
    let path = dir.join(format!("{stem}-ca.pem"));
    std::fs::write(&path, &ca.cert_pem).unwrap();
    path
}

/// An NB ovsdb-server serving TLS on a loopback port (and a unix socket, to check its contents
/// with a plain client); it can be stopped and started again on the same port and files.
struct TlsServer {
    daemon: Option<Daemon>,
    port: u16,
    db: PathBuf,
    socket: PathBuf,
    key: PathBuf,
    cert: PathBuf,
    ca: PathBuf,
    log: PathBuf,
    run: RunDir,
}

impl TlsServer {
    /// Serves with `server` as its identity and trusts client certificates signed by `trusts`.
    fn start(dir: &TestDir, server: &CertPair, trusts: &TestCa) -> Self {
        let run = RunDir::new("novs").unwrap();
        let db = run.join("nb.db");
        run_cmd(
            Command::new("ovsdb-tool")
                .arg("create")
                .arg(&db)
                .arg(NB_SCHEMA),
        );
        let (key, cert) = write_pair(dir.path(), "server", server);
        let ca = write_ca(dir.path(), "server-trusts", trusts);
        let mut s = Self {
            daemon: None,
            port: nauti_testbed::names::free_port().unwrap(),
            socket: run.join("nb.sock"),
            db,
            key,
            cert,
            ca,
            log: dir.log("ovsdb-server"),
            run,
        };
        s.resume();
        s
    }

    fn resume(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
        let mut cmd = Command::new("ovsdb-server");
        for var in ["OVS_RUNDIR", "OVS_DBDIR", "OVS_LOGDIR"] {
            cmd.env(var, self.run.path());
        }
        cmd.arg(&self.db)
            .arg(format!("--remote=pssl:{}:127.0.0.1", self.port))
            .arg(format!("--remote=punix:{}", self.socket.display()))
            .arg(format!("--private-key={}", self.key.display()))
            .arg(format!("--certificate={}", self.cert.display()))
            .arg(format!("--ca-cert={}", self.ca.display()))
            .arg(format!("--unixctl={}", self.run.join("nb.ctl").display()))
            .arg(format!("--pidfile={}", self.run.join("nb.pid").display()))
            .args(["-vconsole:info", "-vsyslog:off"]);
        let mut daemon = Daemon::spawn("ovsdb-server (ssl)", cmd, &self.log).unwrap();
        let port = self.port;
        daemon
            .wait_ready(WAIT, || {
                std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            })
            .unwrap();
        self.daemon = Some(daemon);
    }

    fn stop(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            d.stop(Duration::from_secs(5));
        }
    }

    fn remote(&self) -> String {
        format!("ssl:127.0.0.1:{}", self.port)
    }

    /// The same database over the unix socket, without TLS.
    fn plain_remote(&self) -> String {
        format!("unix:{}", self.socket.display())
    }

    fn offline_transact(&self, transaction: &str) {
        assert!(self.daemon.is_none(), "stop the server first");
        run_cmd(
            Command::new("ovsdb-tool")
                .arg("transact")
                .arg(&self.db)
                .arg(transaction),
        );
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run_cmd(cmd: &mut Command) {
    run(cmd).unwrap();
}

/// A client identity signed by `ca`, trusting servers signed by `trusts`.
fn client_files(dir: &TestDir, stem: &str, ca: &TestCa, trusts: &TestCa) -> TlsFiles {
    let (private_key, certificate) = write_pair(
        dir.path(),
        stem,
        &ca.client("nauti-ovnmaster", &[]).unwrap(),
    );
    TlsFiles {
        private_key,
        certificate,
        ca_cert: write_ca(dir.path(), &format!("{stem}-trusts"), trusts),
    }
}

async fn connect(remote: &str, files: &TlsFiles) -> Result<Client, Error> {
    let mut config = mk_config(remote);
    config.tls = Some(files.clone());
    Client::connect(config).await
}

fn switch_names(c: &nauti_ovn::Cache) -> Vec<String> {
    let mut v: Vec<String> = c
        .rows("Logical_Switch")
        .filter_map(|(_, r)| r.get("name").and_then(Value::as_str).map(str::to_owned))
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_and_a_monitor_work_over_ssl() {
    let dir = TestDir::new("ovsdb-tls-basic").unwrap();
    let ca = TestCa::new("ovsdb-ca").unwrap();
    let server = TlsServer::start(&dir, &ca.server(&["127.0.0.1"]).unwrap(), &ca);
    let files = client_files(&dir, "client", &ca, &ca);

    let client = connect(&server.remote(), &files).await.unwrap();
    assert_eq!(client.endpoint(), server.remote());
    let mut mon = client
        .monitor(DB, vec![MonitorRequest::table("Logical_Switch")])
        .await
        .unwrap();
    let nb = Northbound::new(client.clone());
    nb.ensure_logical_switch(&LogicalSwitch::new("over-tls"))
        .await
        .unwrap();
    assert!(
        mon.wait_until(WAIT, |c| switch_names(c) == ["over-tls"])
            .await,
        "monitor over TLS saw {:?}",
        switch_names(&mon.snapshot())
    );

    // The server really holds the row: read it back over its unix socket, without TLS.
    let plain = Northbound::new(mk_client(&server.plain_remote()).await);
    assert!(
        plain
            .get_logical_switch("over-tls")
            .await
            .unwrap()
            .is_some()
    );
    // And a change made by another client reaches the TLS monitor.
    plain
        .ensure_logical_switch(&LogicalSwitch::new("from-unix"))
        .await
        .unwrap();
    assert!(
        mon.wait_until(WAIT, |c| switch_names(c) == ["from-unix", "over-tls"])
            .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_from_another_ca_is_refused_by_the_server() {
    let dir = TestDir::new("ovsdb-tls-client-ca").unwrap();
    let ca = TestCa::new("ovsdb-ca").unwrap();
    let stranger = TestCa::new("another-ca").unwrap();
    let server = TlsServer::start(&dir, &ca.server(&["127.0.0.1"]).unwrap(), &ca);
    // We trust the server's CA, but our certificate comes from a CA the server does not know.
    let files = client_files(&dir, "client", &stranger, &ca);

    let started = Instant::now();
    let err = connect(&server.remote(), &files).await.unwrap_err();
    match &err {
        Error::Tls(TlsError::ClientCertificateRefused {
            endpoint,
            certificate,
            ..
        }) => {
            assert_eq!(endpoint, &server.remote());
            assert_eq!(certificate, &files.certificate);
        }
        other => panic!("expected the server to refuse our certificate, got: {other}"),
    }
    // A verdict, not a timeout.
    assert!(started.elapsed() < Duration::from_secs(4), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_certificate_from_another_ca_is_refused_by_the_client() {
    let dir = TestDir::new("ovsdb-tls-server-ca").unwrap();
    let ca = TestCa::new("ovsdb-ca").unwrap();
    let stranger = TestCa::new("another-ca").unwrap();
    let server = TlsServer::start(&dir, &stranger.server(&["127.0.0.1"]).unwrap(), &ca);
    let files = client_files(&dir, "client", &ca, &ca);

    let err = connect(&server.remote(), &files).await.unwrap_err();
    match &err {
        Error::Tls(TlsError::UntrustedServer {
            ca_cert, reason, ..
        }) => {
            assert_eq!(ca_cert, &files.ca_cert);
            assert!(reason.contains("not signed by that CA"), "{err}");
        }
        other => panic!("expected our client to refuse the server, got: {other}"),
    }
    assert!(err.to_string().contains(&server.remote()), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_certificate_naming_other_hosts_is_refused_and_one_naming_none_is_trusted() {
    let dir = TestDir::new("ovsdb-tls-names").unwrap();
    let ca = TestCa::new("ovsdb-ca").unwrap();
    let files = client_files(&dir, "client", &ca, &ca);

    let elsewhere = TlsServer::start(&dir, &ca.server(&["ovsdb.elsewhere.example"]).unwrap(), &ca);
    let err = connect(&elsewhere.remote(), &files).await.unwrap_err();
    match &err {
        Error::Tls(TlsError::ServerNameMismatch { presented, .. }) => {
            assert!(presented.contains("ovsdb.elsewhere.example"), "{err}");
        }
        other => panic!("expected a name mismatch, got: {other}"),
    }
    drop(elsewhere);

    // As `ovs-pki` makes them: no subjectAltName at all; the CA alone vouches for it.
    let nameless = TlsServer::start(&dir, &ca.server(&[]).unwrap(), &ca);
    let client = connect(&nameless.remote(), &files).await.unwrap();
    client.echo().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_and_invalid_files_are_named() {
    let dir = TestDir::new("ovsdb-tls-files").unwrap();
    let ca = TestCa::new("ovsdb-ca").unwrap();
    let good = client_files(&dir, "client", &ca, &ca);
    // Files are read before any connection is tried: no server needed.
    let remote = "ssl:127.0.0.1:1";

    let missing = TlsFiles {
        ca_cert: dir.path().join("absent-ca.pem"),
        ..good.clone()
    };
    let err = connect(remote, &missing).await.unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Tls(TlsError::Unreadable { file: TlsFile::CaCert, path, .. })
                if *path == missing.ca_cert
        ),
        "{err}"
    );
    assert!(err.to_string().contains("absent-ca.pem"), "{err}");

    // A key where the certificate should be.
    let swapped = TlsFiles {
        certificate: good.private_key.clone(),
        ..good.clone()
    };
    let err = connect(remote, &swapped).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Tls(TlsError::Invalid {
                file: TlsFile::Certificate,
                ..
            })
        ),
        "{err}"
    );

    let garbage = dir.path().join("garbage-key.pem");
    std::fs::write(&garbage, "not a key\n").unwrap();
    let err = connect(
        remote,
        &TlsFiles {
            private_key: garbage,
            ..good.clone()
        },
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Tls(TlsError::Invalid {
                file: TlsFile::PrivateKey,
                ..
            })
        ),
        "{err}"
    );

    // Another pair's key with this certificate.
    let other = client_files(&dir, "other", &ca, &ca);
    let err = connect(
        remote,
        &TlsFiles {
            private_key: other.private_key,
            ..good.clone()
        },
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, Error::Tls(TlsError::KeyMismatch { .. })),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_server_restart_the_client_reconnects_over_tls_and_the_cache_resyncs() {
    let dir = TestDir::new("ovsdb-tls-restart").unwrap();
    let ca = TestCa::new("ovsdb-ca").unwrap();
    let mut server = TlsServer::start(&dir, &ca.server(&["127.0.0.1"]).unwrap(), &ca);
    let files = client_files(&dir, "client", &ca, &ca);

    let client = connect(&server.remote(), &files).await.unwrap();
    let nb = Northbound::new(client.clone());
    let mut mon = client
        .monitor(DB, vec![MonitorRequest::table("Logical_Switch")])
        .await
        .unwrap();
    nb.ensure_logical_switch(&LogicalSwitch::new("before"))
        .await
        .unwrap();
    assert!(
        mon.wait_until(WAIT, |c| switch_names(c) == ["before"])
            .await
    );

    server.stop();
    let mut state = client.state();
    tokio::time::timeout(WAIT, state.wait_for(|s| !s.connected))
        .await
        .unwrap()
        .unwrap();
    server.offline_transact(
        r#"["OVN_Northbound",
            {"op":"insert","table":"Logical_Switch","row":{"name":"while-down"}}]"#,
    );

    // The files are read again at each attempt: a broken key stops the reconnects, naming it.
    let key_pem = std::fs::read(&files.private_key).unwrap();
    std::fs::write(&files.private_key, "broken\n").unwrap();
    server.resume();
    let refused = tokio::time::timeout(
        WAIT,
        state.wait_for(|s| {
            matches!(
                s.tls_error,
                Some(TlsError::Invalid {
                    file: TlsFile::PrivateKey,
                    ..
                })
            )
        }),
    )
    .await
    .expect("a reconnect attempt naming the broken key")
    .unwrap()
    .clone();
    assert!(!refused.connected);

    std::fs::write(&files.private_key, key_pem).unwrap();
    client.wait_connected(WAIT).await.unwrap();
    let after = client.state().borrow().clone();
    assert_eq!(after.epoch, 2, "{after:?}");
    assert_eq!(after.tls_error, None);

    assert!(
        mon.wait_until(WAIT, |c| switch_names(c) == ["before", "while-down"])
            .await,
        "cache did not resync over TLS: {:?}",
        switch_names(&mon.snapshot())
    );
    nb.ensure_logical_switch(&LogicalSwitch::new("after"))
        .await
        .unwrap();
    assert!(
        mon.wait_until(WAIT, |c| switch_names(c)
            == ["after", "before", "while-down"])
            .await
    );
}
