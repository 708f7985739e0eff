//! Against a scripted peer: what a real ovsdb-server will not send (garbage, oversized frames,
//! frames that are not JSON-RPC, a server without `monitor_cond`), and the server's own echo.

use std::time::Duration;

use nauti_ovn::core::framing::JsonSplitter;
use nauti_ovn::core::rpc::Message;
use nauti_ovn::{Client, Error, MonitorRequest};
use nauti_testbed::ovn::{NB_SCHEMA, RunDir};
use serde_json::{Value as Json, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

const WAIT: Duration = Duration::from_secs(10);

struct Conn {
    stream: UnixStream,
    splitter: JsonSplitter,
}

impl Conn {
    async fn recv(&mut self) -> Message {
        loop {
            if let Some(frame) = self.splitter.next_frame().unwrap() {
                return Message::decode(&frame).unwrap();
            }
            let mut buf = [0u8; 4096];
            let n = tokio::time::timeout(WAIT, self.stream.read(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0, "client closed the connection");
            self.splitter.push(&buf[..n]);
        }
    }

    /// Receives the next request, answering `get_schema` with the installed NB schema.
    async fn recv_request(&mut self) -> (Json, String, Vec<Json>) {
        loop {
            match self.recv().await {
                Message::Request { id, method, params } if method == "get_schema" => {
                    let schema: Json =
                        serde_json::from_str(&std::fs::read_to_string(NB_SCHEMA).unwrap()).unwrap();
                    self.send(&Message::Response {
                        id,
                        result: Ok(schema),
                    })
                    .await;
                    let _ = params;
                }
                Message::Request { id, method, params } => return (id, method, params),
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    async fn send(&mut self, msg: &Message) {
        self.send_raw(&msg.encode()).await;
    }

    async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }
}

struct Peer {
    listener: UnixListener,
    remote: String,
    _run: RunDir,
}

impl Peer {
    fn new() -> Self {
        let run = RunDir::new("novp").unwrap();
        let path = run.join("peer.sock");
        let listener = UnixListener::bind(&path).unwrap();
        Self {
            listener,
            remote: format!("unix:{}", path.display()),
            _run: run,
        }
    }

    async fn accept(&self) -> Conn {
        let (stream, _) = tokio::time::timeout(WAIT, self.listener.accept())
            .await
            .unwrap()
            .unwrap();
        Conn {
            stream,
            splitter: JsonSplitter::new(1 << 20),
        }
    }
}

async fn lost_reason(client: &Client) -> String {
    let mut state = client.state();
    let s = tokio::time::timeout(
        WAIT,
        state.wait_for(|s| !s.connected && s.last_error.is_some()),
    )
    .await
    .unwrap()
    .unwrap()
    .clone();
    s.last_error.unwrap()
}

/// Answers the client's first request with `bytes`, then serves `list_dbs` on the reconnection.
async fn check_bad_reply(bytes: Vec<u8>, max_message: usize, expect: &str) {
    let peer = Peer::new();
    let mut config = crate::mk_config(&peer.remote);
    config.max_message = max_message;
    let (client, mut conn) = tokio::join!(Client::connect(config), peer.accept());
    let client = client.unwrap();
    let call = tokio::spawn({
        let client = client.clone();
        async move { client.list_dbs().await }
    });
    let _ = conn.recv_request().await;
    conn.send_raw(&bytes).await;
    let err = call.await.unwrap().unwrap_err();
    assert!(matches!(err, Error::Disconnected { .. }), "{err}");
    let reason = lost_reason(&client).await;
    assert!(
        reason.contains(expect),
        "{reason:?} does not say {expect:?}"
    );

    // The client reconnects by itself and works against a sane server.
    let mut conn = peer.accept().await;
    let call = tokio::spawn({
        let client = client.clone();
        async move {
            client.wait_connected(WAIT).await.unwrap();
            client.list_dbs().await
        }
    });
    let (id, method, _) = conn.recv_request().await;
    assert_eq!(method, "list_dbs");
    conn.send(&Message::Response {
        id,
        result: Ok(json!(["OVN_Northbound"])),
    })
    .await;
    assert_eq!(
        call.await.unwrap().unwrap(),
        vec!["OVN_Northbound".to_owned()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_between_messages_drops_the_connection_and_the_client_reconnects() {
    check_bad_reply(b"  xyz{}".to_vec(), 1 << 20, "unexpected byte 0x78").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_inside_a_frame_drops_the_connection() {
    check_bad_reply(
        br#"{"id":1,"result":[tru]}"#.to_vec(),
        1 << 20,
        "malformed JSON",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_that_is_not_json_rpc_drops_the_connection() {
    check_bad_reply(
        br#"{"hello":"world"}"#.to_vec(),
        1 << 20,
        "not a JSON-RPC message",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_drops_the_connection_before_it_is_buffered_whole() {
    let big = format!(
        r#"{{"id":1,"result":["{}"],"error":null}}"#,
        "x".repeat(10_000)
    );
    check_bad_reply(big.into_bytes(), 4096, "maximum size of 4096").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_servers_echo_requests_are_answered_with_their_params() {
    let peer = Peer::new();
    let (client, mut conn) = tokio::join!(
        Client::connect(crate::mk_config(&peer.remote)),
        peer.accept()
    );
    let _client = client.unwrap();
    conn.send(&Message::Request {
        id: json!("srv-1"),
        method: "echo".into(),
        params: vec![json!("ka")],
    })
    .await;
    match conn.recv().await {
        Message::Response { id, result } => {
            assert_eq!(id, json!("srv-1"));
            assert_eq!(result.unwrap(), json!(["ka"]));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_client_probes_with_echo_and_drops_a_silent_server() {
    let peer = Peer::new();
    let mut config = crate::mk_config(&peer.remote);
    config.echo_interval = Duration::from_millis(200);
    let (client, mut conn) = tokio::join!(Client::connect(config), peer.accept());
    let client = client.unwrap();
    // Answer the first probe: the connection stays up.
    let (id, method, params) = conn.recv_request().await;
    assert_eq!(method, "echo");
    conn.send(&Message::Response {
        id,
        result: Ok(Json::Array(params)),
    })
    .await;
    // Ignore the next one: the client gives up on the connection.
    let (_, method, _) = conn.recv_request().await;
    assert_eq!(method, "echo");
    let reason = lost_reason(&client).await;
    assert!(reason.contains("no reply to echo"), "{reason}");
    assert_eq!(client.state().borrow().epoch, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_monitor_cond_gets_a_plain_monitor_and_update_notifications() {
    let peer = Peer::new();
    let (client, mut conn) = tokio::join!(
        Client::connect(crate::mk_config(&peer.remote)),
        peer.accept()
    );
    let client = client.unwrap();
    let u1 = "11111111-1111-4111-8111-111111111111";
    let server = tokio::spawn(async move {
        let (id, method, _) = conn.recv_request().await;
        assert_eq!(method, "monitor_cond");
        conn.send(&Message::Response {
            id,
            result: Err(nauti_ovn::ServerError {
                kind: nauti_ovn::ErrorKind::UnknownMethod,
                details: None,
                syntax: None,
            }),
        })
        .await;
        let (id, method, params) = conn.recv_request().await;
        assert_eq!(method, "monitor");
        assert!(params[2]["Logical_Switch"][0].get("where").is_none());
        conn.send(&Message::Response {
            id,
            result: Ok(json!({"Logical_Switch": {u1: {"new": {"name": "ls1"}}}})),
        })
        .await;
        conn.send(&Message::Notification {
            method: "update".into(),
            params: vec![params[1].clone(), json!({"Logical_Switch": {u1: {"old": {"name": "ls1"}, "new": {"name": "renamed"}}}})],
        })
        .await;
        conn
    });
    let mut mon = client
        .monitor(
            nauti_ovn::core::nb::DB,
            vec![MonitorRequest::table("Logical_Switch")],
        )
        .await
        .unwrap();
    assert!(
        mon.wait_until(WAIT, |c| c
            .find_by("Logical_Switch", "name", "renamed")
            .is_some())
            .await
    );
    let _conn = server.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_that_does_not_fit_the_schema_forces_a_resync() {
    let peer = Peer::new();
    let (client, mut conn) = tokio::join!(
        Client::connect(crate::mk_config(&peer.remote)),
        peer.accept()
    );
    let client = client.unwrap();
    let monitor = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .monitor(
                    nauti_ovn::core::nb::DB,
                    vec![MonitorRequest::table("Logical_Switch")],
                )
                .await
        }
    });
    let (id, method, params) = conn.recv_request().await;
    assert_eq!(method, "monitor_cond");
    conn.send(&Message::Response {
        id,
        result: Ok(json!({})),
    })
    .await;
    let _mon = monitor.await.unwrap().unwrap();
    conn.send(&Message::Notification {
        method: "update2".into(),
        params: vec![params[1].clone(), json!({"Logical_Switch": {"11111111-1111-4111-8111-111111111111": {"insert": {"bogus": 1}}}})],
    })
    .await;
    let reason = lost_reason(&client).await;
    assert!(reason.contains("bogus"), "{reason}");
    // On the new connection the monitor is asked for again, from scratch.
    let mut conn = peer.accept().await;
    let (_, method, _) = conn.recv_request().await;
    assert_eq!(method, "monitor_cond");
}
