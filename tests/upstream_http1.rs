//! The gateway's own HTTP/1.1 client against upstreams that answer byte for byte as scripted:
//! body framings (length, chunked, until close), interim responses, keep-alive and close,
//! malformed answers, and request bodies of every framing.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What a scripted upstream saw.
#[derive(Default)]
struct Seen {
    connections: usize,
    requests: Vec<String>,
}

/// An upstream that reads each request whole (head, then a `Content-Length` or chunked body)
/// and answers it with `answer` verbatim; after an answer that says `Connection: close` or
/// has no length, it closes.
async fn scripted(answer: &'static str) -> (SocketAddr, Arc<Mutex<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Mutex::new(Seen::default()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            record.lock().expect("lock").connections += 1;
            tokio::spawn(serve(stream, answer, record.clone()));
        }
    });
    (addr, seen)
}

async fn serve(mut stream: TcpStream, answer: &'static str, seen: Arc<Mutex<Seen>>) {
    let mut buf = Vec::new();
    loop {
        let Some(request) = read_request(&mut stream, &mut buf).await else {
            return;
        };
        seen.lock().expect("lock").requests.push(request);
        if stream.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
        let lower = answer.to_ascii_lowercase();
        let head = lower.split("\r\n\r\n").next().unwrap_or_default();
        let bodiless = head.starts_with("http/1.1 204") || head.starts_with("http/1.1 304");
        if head.contains("connection: close")
            || !(bodiless || head.contains("content-length") || head.contains("transfer-encoding"))
        {
            return;
        }
    }
}

/// Reads one request (head and body) from `stream`; `None` when it closed.
async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end + 4]).to_ascii_lowercase();
            let body_end = if let Some(len) = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .and_then(|v| v.trim().parse::<usize>().ok())
            {
                (buf.len() >= end + 4 + len).then_some(end + 4 + len)
            } else if head.contains("transfer-encoding: chunked") {
                find(&buf[end + 4..], b"0\r\n\r\n").map(|at| end + 4 + at + 5)
            } else {
                Some(end + 4)
            };
            if let Some(body_end) = body_end {
                let request = String::from_utf8_lossy(&buf[..body_end]).into_owned();
                buf.drain(..body_end);
                return Some(request);
            }
        }
        let mut chunk = [0u8; 8192];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

async fn gateway_to(addr: SocketAddr) -> gatehouse::app::Gatehouse {
    common::proxy_all(&format!("http://{addr}")).await
}

/// `GET`s of `path` on one client connection (so on one worker, and one worker's pool).
async fn get_n(gw: &gatehouse::app::Gatehouse, path: &str, n: usize) -> Vec<(u16, String)> {
    let client = common::client();
    let mut answers = Vec::new();
    for _ in 0..n {
        let response = client
            .get(format!("{}{path}", common::base(gw)))
            .send()
            .await
            .expect("response");
        let status = response.status().as_u16();
        answers.push((status, response.text().await.expect("body")));
    }
    answers
}

/// Sends `n` GETs through the gateway to an upstream answering `answer`, checks that each is
/// a 200 with `body`, and returns how many connections the upstream accepted.
async fn connections_for(answer: &'static str, n: usize, body: &str) -> usize {
    let (addr, seen) = scripted(answer).await;
    let gw = gateway_to(addr).await;
    for got in get_n(&gw, "/x", n).await {
        assert_eq!(got, (200, body.to_owned()));
    }
    seen.lock().expect("lock").connections
}

#[tokio::test]
async fn a_chunked_answer_is_decoded_and_the_connection_kept() {
    let answer = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 11\r\n\r\n";
    assert_eq!(connections_for(answer, 3, "hello world").await, 1);
}

#[tokio::test]
async fn an_answer_without_length_runs_until_the_upstream_closes() {
    let answer = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nto the end";
    // Such a connection cannot carry another request.
    assert_eq!(connections_for(answer, 2, "to the end").await, 2);
}

#[tokio::test]
async fn connection_close_is_honoured_and_keep_alive_reused() {
    let closing = "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok";
    assert_eq!(connections_for(closing, 3, "ok").await, 3);
    let kept = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    assert_eq!(connections_for(kept, 3, "ok").await, 1);
}

#[tokio::test]
async fn interim_answers_are_skipped() {
    let (addr, _) = scripted(
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\ndone",
    )
    .await;
    let gw = gateway_to(addr).await;
    let response = common::get(&gw, "/i").await;
    assert_eq!(response.status(), 201);
    assert_eq!(response.text().await.expect("body"), "done");
}

#[tokio::test]
async fn malformed_answers_are_502() {
    for answer in [
        "HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\nabcd",
        "HTTP/1.1 200 OK\r\nBad Name: x\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n",
        "SSH-2.0-OpenSSH\r\n\r\n",
    ] {
        let (addr, _) = scripted(answer).await;
        let gw = gateway_to(addr).await;
        let body = common::error_body(common::get(&gw, "/m").await, 502, "bad_gateway").await;
        let text = body.to_string();
        assert!(!text.contains("127.0.0.1"), "no internal detail: {text}");
    }
}

#[tokio::test]
async fn a_large_answer_streams_through_whole() {
    let size = 3 * 1024 * 1024 + 17;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                while read_request(&mut stream, &mut buf).await.is_some() {
                    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n");
                    let body: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
                    if stream.write_all(head.as_bytes()).await.is_err()
                        || stream.write_all(&body).await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    let gw = gateway_to(addr).await;
    for _ in 0..2 {
        let response = common::get(&gw, "/big").await;
        assert_eq!(response.content_length(), Some(size as u64));
        let body = response.bytes().await.expect("body");
        assert_eq!(body.len(), size);
        assert!(body.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8));
    }
}

#[tokio::test]
async fn request_bodies_go_with_their_framing() {
    let (addr, seen) = scripted("HTTP/1.1 204 No Content\r\n\r\n").await;
    let gw = gateway_to(addr).await;
    let client = common::client();
    let url = format!("{}/up", common::base(&gw));

    let sized = client
        .post(&url)
        .body("0123456789")
        .send()
        .await
        .expect("send");
    assert_eq!(sized.status(), 204);

    let pieces: Vec<Result<&'static str, std::io::Error>> = vec![Ok("abc"), Ok("defg")];
    let stream = futures_util::stream::iter(pieces);
    let chunked = client
        .post(&url)
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .expect("send");
    assert_eq!(chunked.status(), 204);

    let empty = client.post(&url).send().await.expect("send");
    assert_eq!(empty.status(), 204);

    let seen = seen.lock().expect("lock");
    assert_eq!(seen.connections, 1, "one kept-alive connection");
    let sized = seen.requests[0].to_ascii_lowercase();
    assert!(sized.contains("content-length: 10\r\n"), "{sized}");
    assert!(sized.ends_with("\r\n\r\n0123456789"), "{sized}");
    let chunked = seen.requests[1].to_ascii_lowercase();
    assert!(
        chunked.contains("transfer-encoding: chunked\r\n"),
        "{chunked}"
    );
    assert!(!chunked.contains("content-length"), "{chunked}");
    let body = chunked
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    assert_eq!(dechunk(body), "abcdefg");
    assert!(seen.requests[2].ends_with("\r\n\r\n"));
}

/// The payload of a chunked body (no extensions, no trailers).
fn dechunk(mut text: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, rest) = text.split_once("\r\n").expect("size line");
        let size = usize::from_str_radix(size, 16).expect("hex");
        if size == 0 {
            return out;
        }
        out.push_str(&rest[..size]);
        text = &rest[size + 2..];
    }
}

#[tokio::test]
async fn an_upstream_that_closes_without_answering_is_502() {
    let addr = common::resetting_upstream().await;
    let gw = gateway_to(addr).await;
    common::error_body(common::get(&gw, "/r").await, 502, "bad_gateway").await;
    // The next request gets its own answer too (no connection left in a broken state).
    tokio::time::sleep(Duration::from_millis(20)).await;
    common::error_body(common::get(&gw, "/r").await, 502, "bad_gateway").await;
}

#[tokio::test]
async fn idle_connections_the_upstream_closed_are_swept() {
    let users = common::upstream_closing_idle("users", Duration::from_millis(50)).await;
    let gw = common::proxy_all(&users.url()).await;
    assert_eq!(get_n(&gw, "/x", 1).await[0].0, 200);
    let pools = gw.gateway().state().pools.clone();
    // The connection is idle in its pool; the upstream closes it after 50 ms.
    assert_eq!(pools.sweep(tokio::time::Instant::now()), 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(pools.sweep(tokio::time::Instant::now()), 1);
    assert_eq!(pools.sweep(tokio::time::Instant::now()), 0);
    // The next request opens a new connection and is served.
    assert_eq!(get_n(&gw, "/x", 1).await[0].0, 200);
    assert_eq!(users.connections(), 2);
}
