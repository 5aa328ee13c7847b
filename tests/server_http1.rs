//! The client side of HTTP/1.1 on the wire: the gateway's own server loop (requests without a
//! body) and its handover to hyper (everything else) on the same connection.

mod common;

use std::time::Duration;

use common::{base, client, proxy_all, upstream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Everything the gateway sends on `stream` until it closes (or 5 s pass).
async fn read_all(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Everything the gateway at `addr` answers to `bytes`, written at once on a new connection.
async fn exchange_raw(addr: std::net::SocketAddr, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(bytes).await.expect("write");
    read_all(&mut stream).await
}

/// The responses in `text`, split at their status lines.
fn responses(text: &str) -> Vec<&str> {
    let starts: Vec<usize> = text.match_indices("HTTP/1.1 ").map(|(at, _)| at).collect();
    starts
        .iter()
        .enumerate()
        .map(|(i, &start)| &text[start..starts.get(i + 1).copied().unwrap_or(text.len())])
        .collect()
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_and_close_is_honoured() {
    let echo = upstream("echo").await;
    let gw = proxy_all(&echo.url()).await;
    let text = exchange_raw(
        gw.listeners[0],
        b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n\
          DELETE /second HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n\
          GET /third HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let answers = responses(&text);
    assert_eq!(answers.len(), 3, "{text}");
    for (answer, path) in answers.iter().zip(["/first", "/second", "/third"]) {
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.contains(&format!("\"path\":\"{path}\"")), "{answer}");
        assert!(answer.contains("\r\ndate: "), "{answer}");
        assert!(answer.contains("\r\ncontent-length: "), "{answer}");
    }
    assert!(!answers[1].contains("connection: close"), "{}", answers[1]);
    assert!(
        answers[2].contains("\r\nconnection: close\r\n"),
        "{}",
        answers[2]
    );
    assert_eq!(echo.hits(), 3);
}

#[tokio::test]
async fn a_connection_goes_on_with_hyper_from_a_request_with_a_body() {
    let echo = upstream("echo").await;
    let gw = proxy_all(&echo.url()).await;
    let mut stream = TcpStream::connect(gw.listeners[0]).await.expect("connect");
    // A first request the own loop serves, then one with a body (hyper's), written in two
    // pieces so that the handover happens with part of the body still unread.
    stream
        .write_all(b"GET /one HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut first = vec![0; 4096];
    let n = stream.read(&mut first).await.expect("read");
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200 OK"));
    stream
        .write_all(b"POST /reflect HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello")
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(50)).await;
    stream
        .write_all(b" world\r\n\r\nGET /three HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let text = read_all(&mut stream).await;
    let answers = responses(&text);
    assert_eq!(answers.len(), 2, "{text}");
    assert!(answers[0].starts_with("HTTP/1.1 200 OK"), "{}", answers[0]);
    assert!(
        answers[0].ends_with("\r\n\r\nhello world"),
        "{}",
        answers[0]
    );
    assert!(answers[1].contains("\"path\":\"/three\""), "{}", answers[1]);
    assert_eq!(echo.hits(), 3);
    assert_eq!(
        echo.connections(),
        1,
        "one client connection, one upstream connection"
    );
}

#[tokio::test]
async fn a_head_that_arrives_a_byte_at_a_time_is_served() {
    let echo = upstream("echo").await;
    let gw = proxy_all(&echo.url()).await;
    let mut stream = TcpStream::connect(gw.listeners[0]).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    for byte in b"GET /slowly?x=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" {
        stream.write_all(&[*byte]).await.expect("write");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let text = read_all(&mut stream).await;
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    assert!(text.contains("\"path\":\"/slowly\""), "{text}");
}

#[tokio::test]
async fn heads_with_many_lines_go_to_hyper_and_are_served() {
    let echo = upstream("echo").await;
    let gw = proxy_all(&echo.url()).await;
    let mut head = String::from("GET /many HTTP/1.1\r\nHost: x\r\n");
    for i in 0..80 {
        head.push_str(&format!("X-Line-{i}: {i}\r\n"));
    }
    head.push_str("Connection: close\r\n\r\n");
    let text = exchange_raw(gw.listeners[0], head.as_bytes()).await;
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    assert!(text.contains("\"x-line-79\":\"79\""), "{text}");
}

#[tokio::test]
async fn streamed_answers_are_sent_chunked() {
    let echo = upstream("echo").await;
    let gw = proxy_all(&echo.url()).await;
    let text = exchange_raw(
        gw.listeners[0],
        b"GET /stream/3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        text.contains("\r\ntransfer-encoding: chunked\r\n"),
        "{text}"
    );
    assert!(
        text.ends_with("\r\n0\r\n\r\n"),
        "the last chunk ends the body"
    );

    // And a client decodes it to the bytes the upstream sent.
    let body = client()
        .get(format!("{}/stream/3", base(&gw)))
        .send()
        .await
        .expect("response")
        .bytes()
        .await
        .expect("body");
    assert_eq!(body.len(), 3 * 1024);
}

#[tokio::test]
async fn many_keep_alive_requests_share_one_connection() {
    let echo = upstream("echo").await;
    let gw = proxy_all(&echo.url()).await;
    let client = client();
    for i in 0..20 {
        let response = client
            .get(format!("{}/n/{i}", base(&gw)))
            .send()
            .await
            .expect("response");
        assert_eq!(response.status(), 200);
        let body = response.text().await.expect("body");
        assert!(body.contains(&format!("\"path\":\"/n/{i}\"")), "{body}");
    }
    assert_eq!(echo.hits(), 20);
    assert_eq!(echo.connections(), 1);
}
