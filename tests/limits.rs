//! Listener limits (SPEC §2.1 `limits`) and request smuggling rejections (SPEC §4.1).

mod common;

use std::time::{Duration, Instant};

use common::{base, client, error_body, gateway, raw, upstream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn limited_gateway(limits: &str) -> (gatehouse::app::Gatehouse, common::Upstream) {
    let echo = upstream("echo").await;
    let gw = gateway(&format!(
        r#"
listen: 127.0.0.1:0
limits: {limits}
services:
  echo: {{ url: "{}" }}
routes:
  - {{ path: /small/**, service: echo, max_body: 1KiB }}
  - {{ path: /**, service: echo }}
"#,
        echo.url()
    ))
    .await;
    (gw, echo)
}

/// Reads one response head (and whatever body bytes came with it) from `stream`.
async fn read_some(stream: &mut TcpStream, wait: Duration) -> String {
    let mut buf = vec![0u8; 16 * 1024];
    match tokio::time::timeout(wait, stream.read(&mut buf)).await {
        Ok(Ok(n)) => String::from_utf8_lossy(&buf[..n]).into_owned(),
        _ => String::new(),
    }
}

#[tokio::test]
async fn body_over_max_body_is_413_without_reading_it() {
    let (gw, echo) = limited_gateway("{ max_body: 64KiB }").await;
    // Declared too large: answered at once, before any body byte is sent.
    let mut stream = TcpStream::connect(gw.listeners[0]).await.expect("connect");
    stream
        .write_all(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 104857600\r\n\r\n")
        .await
        .expect("write");
    let answer = read_some(&mut stream, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.contains("\"code\":\"payload_too_large\""),
        "{answer}"
    );
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert_eq!(echo.hits(), 0);

    // Chunked past the limit: cut off, 413.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..4).map(|_| Ok(vec![b'a'; 32 * 1024])).collect();
    let response = client()
        .post(format!("{}/upload", base(&gw)))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await;
    if let Ok(response) = response {
        error_body(response, 413, "payload_too_large").await;
    }

    // The route's own max_body overrides the listener's.
    let response = client()
        .post(format!("{}/small/x", base(&gw)))
        .body(vec![b'a'; 2048])
        .send()
        .await
        .expect("response");
    error_body(response, 413, "payload_too_large").await;
    let response = client()
        .post(format!("{}/small/x", base(&gw)))
        .body(vec![b'a'; 1000])
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn headers_over_max_header_bytes_are_431() {
    let (gw, echo) = limited_gateway("{ max_header_bytes: 4KiB }").await;
    let response = client()
        .get(format!("{}/x", base(&gw)))
        .header("x-big", "a".repeat(5000))
        .send()
        .await
        .expect("response");
    error_body(response, 431, "headers_too_large").await;
    assert_eq!(echo.hits(), 0);
    let response = client()
        .get(format!("{}/x", base(&gw)))
        .header("x-fine", "a".repeat(1000))
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn slow_headers_are_cut_off_after_header_timeout() {
    let (gw, _echo) = limited_gateway("{ header_timeout: 300ms, idle_timeout: 10s }").await;
    let mut stream = TcpStream::connect(gw.listeners[0]).await.expect("connect");
    stream
        .write_all(b"GET /x HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "connection closed");
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(250), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
}

#[tokio::test]
async fn idle_keep_alive_connections_close_after_idle_timeout() {
    let (gw, _echo) = limited_gateway("{ idle_timeout: 500ms, header_timeout: 10s }").await;
    let mut stream = TcpStream::connect(gw.listeners[0]).await.expect("connect");
    stream
        .write_all(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let answer = read_some(&mut stream, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // Within the idle time the connection still serves.
    tokio::time::sleep(Duration::from_millis(200)).await;
    stream
        .write_all(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let answer = read_some(&mut stream, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let idle_from = Instant::now();
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("closed in time")
        .unwrap_or(0);
    assert_eq!(n, 0, "closed without a response");
    let elapsed = idle_from.elapsed();
    assert!(elapsed >= Duration::from_millis(400), "{elapsed:?}");
}

#[tokio::test]
async fn connections_past_max_connections_wait() {
    let (gw, _echo) = limited_gateway("{ max_connections: 2 }").await;
    let addr = gw.listeners[0];
    let mut first = TcpStream::connect(addr).await.expect("connect");
    let mut second = TcpStream::connect(addr).await.expect("connect");
    for stream in [&mut first, &mut second] {
        stream
            .write_all(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        let answer = read_some(stream, Duration::from_secs(5)).await;
        assert!(answer.starts_with("HTTP/1.1 200"));
    }
    let mut third = TcpStream::connect(addr).await.expect("connect (backlog)");
    third
        .write_all(b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let answer = read_some(&mut third, Duration::from_millis(500)).await;
    assert!(answer.is_empty(), "third connection waits: {answer}");
    drop(first);
    let answer = read_some(&mut third, Duration::from_secs(5)).await;
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "served once a slot frees: {answer}"
    );
}

#[tokio::test]
async fn shutdown_drains_in_flight_requests() {
    let (gw, _echo) = limited_gateway("{ shutdown_grace: 5s }").await;
    let url = format!("{}/slow/600", base(&gw));
    let addr = gw.listeners[0];
    let in_flight = tokio::spawn(async move { client().get(url).send().await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let drained = gw.shutdown().await;
    assert!(drained, "drained within the grace period");
    let response = in_flight
        .await
        .expect("join")
        .expect("in-flight request completed");
    assert_eq!(response.status(), 200);
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no longer accepting"
    );
}

#[tokio::test]
async fn smuggling_attempts_are_rejected_and_closed() {
    let (gw, echo) = limited_gateway("{}").await;
    let addr = gw.listeners[0];
    let attempts: [&[u8]; 4] = [
        b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n",
        b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
        b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 4x\r\n\r\nabcd",
    ];
    for attempt in attempts {
        let answer = raw(addr, attempt, Duration::from_secs(5)).await;
        assert!(
            answer.starts_with("HTTP/1.1 400"),
            "{}: {answer}",
            String::from_utf8_lossy(attempt)
        );
    }
    assert_eq!(echo.hits(), 0, "nothing reached the upstream");
}

#[tokio::test]
async fn malformed_requests_get_400() {
    let (gw, echo) = limited_gateway("{}").await;
    let addr = gw.listeners[0];
    for attempt in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET /x HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        b"GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /x HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
    ] {
        let answer = raw(addr, attempt, Duration::from_secs(5)).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        assert!(
            answer.contains("content-type: application/json"),
            "even requests the parser refuses get a JSON error: {answer}"
        );
        assert!(answer.contains("\"code\":\"bad_request\""), "{answer}");
    }
    assert_eq!(echo.hits(), 0);
}
