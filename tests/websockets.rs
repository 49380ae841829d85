//! Hibernatable WebSockets with the ChatRoom example and real WebSocket clients: broadcast
//! without echo, text and binary kept, plain requests refused, hibernation, size limit, and
//! restart closing sockets with 1001.

mod common;

use std::time::Duration;

use common::{TestServer, eventually};
use futures_util::SinkExt;
use reqwest::StatusCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

type Client = common::WsClient;

async fn join(s: &TestServer, room: &str) -> Client {
    common::ws_connect(s, &format!("/objects/ChatRoom/{room}/ws")).await
}

async fn next(client: &mut Client) -> Message {
    common::ws_next(client).await
}

async fn chat(adjust: impl FnOnce(&mut duro::Config)) -> TestServer {
    let s = TestServer::start_with(adjust).await;
    assert_eq!(
        s.deploy("ChatRoom", "duro-example-chat-room").await.0,
        StatusCode::CREATED
    );
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_are_broadcast_to_every_other_socket() {
    let s = chat(|_| {}).await;
    const CLIENTS: usize = 20;
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        clients.push(join(&s, "lobby").await);
    }
    for (i, client) in clients.iter_mut().enumerate() {
        client
            .send(Message::text(format!("hello from {i}")))
            .await
            .unwrap();
    }
    for (i, client) in clients.iter_mut().enumerate() {
        let mut got = Vec::new();
        for _ in 0..CLIENTS - 1 {
            match next(client).await {
                Message::Text(text) => got.push(text.to_string()),
                other => panic!("client {i} got {other:?}"),
            }
        }
        got.sort();
        let mut expected: Vec<String> = (0..CLIENTS)
            .filter(|j| *j != i)
            .map(|j| format!("hello from {j}"))
            .collect();
        expected.sort();
        assert_eq!(got, expected, "client {i}");
    }
    // Rooms are separate objects: a lobby message never reaches the other room, whose first
    // message is its own.
    let mut elsewhere = join(&s, "other-room").await;
    let mut neighbour = join(&s, "other-room").await;
    clients[0].send(Message::text("lobby only")).await.unwrap();
    assert_eq!(next(&mut clients[1]).await, Message::text("lobby only"));
    neighbour.send(Message::text("other room")).await.unwrap();
    assert_eq!(next(&mut elsewhere).await, Message::text("other room"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_stays_text_and_binary_stays_binary() {
    let s = chat(|_| {}).await;
    let mut a = join(&s, "kinds").await;
    let mut b = join(&s, "kinds").await;
    a.send(Message::binary(vec![0u8, 159, 146, 150]))
        .await
        .unwrap();
    assert_eq!(
        next(&mut b).await,
        Message::binary(vec![0u8, 159, 146, 150])
    );
    a.send(Message::text("héllo")).await.unwrap();
    assert_eq!(next(&mut b).await, Message::text("héllo"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_request_gets_400_expected_websocket() {
    let s = chat(|_| {}).await;
    let (status, body) = s.get("/objects/ChatRoom/lobby/ws").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, serde_json::json!("Expected WebSocket"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_room_hibernates_and_wakes_up_for_the_next_message() {
    let s = chat(|c| c.hibernate_after = Duration::from_millis(100)).await;
    let mut a = join(&s, "sleepy").await;
    let mut b = join(&s, "sleepy").await;
    a.send(Message::text("before")).await.unwrap();
    assert_eq!(next(&mut b).await, Message::text("before"));
    eventually(Duration::from_secs(5), || async {
        (s.metric("duro_hibernations_total").await >= 1.0).then_some(())
    })
    .await;
    let activations = s.metric("duro_activations_total").await;
    a.send(Message::text("after")).await.unwrap();
    assert_eq!(next(&mut b).await, Message::text("after"));
    assert!(s.metric("duro_activations_total").await > activations);
    // Closing one socket removes it: the other is now alone and gets nothing back.
    b.close(None).await.unwrap();
    let mut c = join(&s, "sleepy").await;
    a.send(Message::text("to c")).await.unwrap();
    assert_eq!(next(&mut c).await, Message::text("to c"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_closes_the_socket_with_1009() {
    let s = chat(|c| c.limits.max_ws_message_bytes = 1024).await;
    let mut a = join(&s, "big").await;
    a.send(Message::text("x".repeat(2000))).await.unwrap();
    match next(&mut a).await {
        Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Size),
        other => panic!("expected a 1009 close, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutting_down_closes_sockets_with_1001_and_rooms_come_back() {
    let s = chat(|_| {}).await;
    let mut a = join(&s, "bye").await;
    let (config, temp) = s.stop().await;
    match next(&mut a).await {
        Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Away),
        other => panic!("expected a 1001 close, got {other:?}"),
    }
    let s = TestServer::start_in(config).await;
    let mut a = join(&s, "bye").await;
    let mut b = join(&s, "bye").await;
    a.send(Message::text("again")).await.unwrap();
    assert_eq!(next(&mut b).await, Message::text("again"));
    s.stop().await;
    drop(temp);
}

async fn probe(adjust: impl FnOnce(&mut duro::Config)) -> TestServer {
    let s = TestServer::start_with(adjust).await;
    assert_eq!(s.deploy("Probe", "ws-probe").await.0, StatusCode::CREATED);
    s
}

async fn connect(s: &TestServer, object: &str, query: &str) -> Client {
    let base = s.ingress.replace("http://", "ws://");
    let url = format!("{base}/objects/Probe/{object}/connect?{query}");
    tokio_tungstenite::connect_async(url)
        .await
        .expect("handshake")
        .0
}

async fn ask(client: &mut Client, command: &str) -> String {
    client.send(Message::text(command)).await.unwrap();
    match next(client).await {
        Message::Text(text) => text.to_string(),
        other => panic!("{command}: got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_filter_and_attachments_survive_hibernation() {
    let s = probe(|c| c.hibernate_after = Duration::from_millis(100)).await;
    let mut alice = connect(&s, "p", "tags=red,team&name=alice").await;
    let mut bob = connect(&s, "p", "tags=blue,team&name=bob").await;
    eventually(Duration::from_secs(5), || async {
        (s.metric("duro_hibernations_total").await >= 1.0).then_some(())
    })
    .await;
    assert_eq!(ask(&mut alice, "who").await, "alice");
    assert_eq!(ask(&mut bob, "who").await, "bob");
    assert_eq!(ask(&mut alice, "tags").await, r#"["red","team"]"#);
    assert_eq!(ask(&mut alice, "count:red").await, "1");
    assert_eq!(ask(&mut alice, "count:team").await, "2");
    assert_eq!(ask(&mut alice, "count:").await, "2");
    // The object closes bob's socket: it is gone from the list.
    bob.send(Message::text("close")).await.unwrap();
    match next(&mut bob).await {
        Message::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 4000),
        other => panic!("expected a close, got {other:?}"),
    }
    assert_eq!(ask(&mut alice, "count:team").await, "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_message_reaches_websocket_error_before_the_close() {
    let s = probe(|c| c.limits.max_ws_message_bytes = 1024).await;
    let mut watcher = connect(&s, "errors", "name=watcher").await;
    let mut big = connect(&s, "errors", "name=big").await;
    assert_eq!(ask(&mut watcher, "count:").await, "2");
    big.send(Message::text("x".repeat(2000))).await.unwrap();
    match next(&mut big).await {
        Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Size),
        other => panic!("expected a 1009 close, got {other:?}"),
    }
    match next(&mut watcher).await {
        Message::Text(text) => assert!(text.starts_with("error:"), "{text}"),
        other => panic!("expected the object's error notice, got {other:?}"),
    }
    // The socket is gone after its close.
    eventually(Duration::from_secs(5), || async {
        let mut watcher = connect(&s, "errors", "name=probe").await;
        (ask(&mut watcher, "count:").await == "2").then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_class_closes_its_sockets_at_their_next_message() {
    let s = probe(|_| {}).await;
    let mut client = connect(&s, "doomed", "name=x").await;
    assert_eq!(ask(&mut client, "echo").await, "echo");
    let (status, _) = s
        .admin_call(reqwest::Method::DELETE, "/classes/Probe", vec![])
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    client.send(Message::text("anyone?")).await.unwrap();
    match next(&mut client).await {
        Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Away),
        other => panic!("expected a 1001 close, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_auto_response_is_answered_without_waking_the_object() {
    let s = probe(|c| c.hibernate_after = Duration::from_millis(100)).await;
    let mut client = connect(&s, "auto", "auto").await;
    assert_eq!(ask(&mut client, "echo me").await, "echo me");
    eventually(Duration::from_secs(5), || async {
        (s.metric("duro_hibernations_total").await >= 1.0).then_some(())
    })
    .await;
    let activations = s.metric("duro_activations_total").await;
    for _ in 0..5 {
        assert_eq!(ask(&mut client, "ping").await, "pong");
    }
    assert_eq!(s.metric("duro_activations_total").await, activations);
    assert_eq!(ask(&mut client, "woken").await, "woken");
    assert!(s.metric("duro_activations_total").await > activations);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_is_closed_with_1011_and_does_not_stall_others() {
    let s = probe(|_| {}).await;
    let mut slow = connect(&s, "flood", "").await;
    let mut other = connect(&s, "flood", "").await;
    // 5,000 messages in one event: more than a client's send queue (1,024) can hold.
    slow.send(Message::text("flood:5000")).await.unwrap();
    assert_eq!(ask(&mut other, "still here").await, "still here");
    let mut received = 0;
    let code = loop {
        match next(&mut slow).await {
            Message::Text(_) => received += 1,
            Message::Close(Some(frame)) => break u16::from(frame.code),
            other => panic!("got {other:?}"),
        }
    };
    assert_eq!(code, 1011);
    assert!(received < 5000, "{received} messages before the close");
    assert_eq!(ask(&mut other, "count:").await, "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_outside_an_upgrade_is_a_clear_error() {
    let s = probe(|_| {}).await;
    // ws-probe always calls accept; on a plain request that fails and the SDK answers 500.
    let (status, body) = s.get("/objects/Probe/plain/connect").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("not a WebSocket upgrade"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_handshakes_get_rfc_6455_errors() {
    let s = probe(|_| {}).await;
    let addr = s.ingress.trim_start_matches("http://").to_string();
    let handshake = |method: &str, headers: &[&str]| {
        let mut request = format!("{method} /objects/Probe/h/connect HTTP/1.1\r\nhost: x\r\n");
        for header in headers {
            request.push_str(header);
            request.push_str("\r\n");
        }
        request + "\r\n"
    };
    let good = [
        "upgrade: websocket",
        "connection: Upgrade",
        "sec-websocket-version: 13",
        "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==",
    ];
    let head = common::raw_http(&addr, &handshake("GET", &good)).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    for version in ["8", "14", ""] {
        let mut headers = good.to_vec();
        let line = format!("sec-websocket-version: {version}");
        headers[2] = if version.is_empty() {
            "x-none: 1"
        } else {
            &line
        };
        let head = common::raw_http(&addr, &handshake("GET", &headers)).await;
        assert!(
            head.starts_with("HTTP/1.1 426"),
            "version {version:?}: {head}"
        );
        assert!(
            head.to_ascii_lowercase()
                .contains("sec-websocket-version: 13"),
            "{head}"
        );
    }
    let cases: [(&str, usize, &str); 5] = [
        ("POST", 0, "upgrade: websocket"),
        ("GET", 1, "connection: keep-alive"),
        ("GET", 3, "sec-websocket-key: "),
        ("GET", 3, "sec-websocket-key: not base64 at all!!"),
        ("GET", 3, "sec-websocket-key: c2hvcnQ="),
    ];
    for (method, index, replacement) in cases {
        let mut headers = good.to_vec();
        headers[index] = replacement;
        let head = common::raw_http(&addr, &handshake(method, &headers)).await;
        assert!(
            head.starts_with("HTTP/1.1 400"),
            "{method} {replacement}: {head}"
        );
    }
    // None of these reached the object: once the one good handshake's connection is gone, a
    // new client is the only socket it holds.
    let mut client = connect(&s, "h", "").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while ask(&mut client, "count:").await != "1" {
        assert!(
            std::time::Instant::now() < deadline,
            "the socket count never fell to 1"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_in_a_text_message_closes_with_1007() {
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    let s = probe(|_| {}).await;
    let mut client = connect(&s, "utf8", "").await;
    let frame = Frame::message(vec![0xff, 0xfe, 0x41], OpCode::Data(Data::Text), true);
    client.send(Message::Frame(frame)).await.unwrap();
    match next(&mut client).await {
        Message::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 1007),
        other => panic!("expected a 1007 close, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_events_messages_and_one_objects_sockets_are_bounded() {
    let s = probe(|c| {
        c.limits.max_event_outbox_bytes = 64 * 1024;
        c.limits.max_sockets_per_object = 2;
    })
    .await;
    let mut client = connect(&s, "bounded", "").await;
    // 100 messages of 1 KiB in one event: the first 64 fit, the 65th send fails.
    client.send(Message::text("flood:100")).await.unwrap();
    for _ in 0..64 {
        assert_eq!(next(&mut client).await, Message::text("x".repeat(1024)));
    }
    assert_eq!(ask(&mut client, "after").await, "after");
    // A second socket is accepted; a third is refused by `accept`, with the reason.
    let _second = connect(&s, "bounded", "").await;
    let base = s.ingress.replace("http://", "ws://");
    let url = format!("{base}/objects/Probe/bounded/connect");
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 500);
            let body =
                String::from_utf8_lossy(response.body().as_deref().unwrap_or_default()).to_string();
            assert!(body.contains("most one object may hold"), "{body}");
        }
        other => panic!("a third socket was not refused: {other:?}"),
    }
    assert_eq!(ask(&mut client, "count:").await, "2");
}

/// What an alarm handler sends to the object's sockets reaches them (issue 36: it was dropped),
/// hibernated or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_an_alarm_sends_reach_the_sockets() {
    let s = probe(|c| c.hibernate_after = Duration::from_millis(100)).await;
    let mut alice = connect(&s, "alarmed", "name=alice").await;
    let mut bob = connect(&s, "alarmed", "name=bob").await;
    assert_eq!(ask(&mut alice, "alarm:300").await, "alarm set");
    for client in [&mut alice, &mut bob] {
        match next(client).await {
            Message::Text(text) => assert_eq!(text.as_str(), "alarm fired"),
            other => panic!("expected the alarm's message, got {other:?}"),
        }
    }
}
