//! Shared test fixtures: real upstream servers that behave on command, and the real gateway
//! started on `127.0.0.1:0` from a YAML config.
#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use gatehouse::app::Gatehouse;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

type TestBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// A running test upstream.
pub struct Upstream {
    /// Its address.
    pub addr: SocketAddr,
    /// Requests it has received.
    pub hits: Arc<AtomicUsize>,
    /// Connections it has accepted.
    pub connections: Arc<AtomicUsize>,
}

impl Upstream {
    /// Requests received so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// `http://addr`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// An upstream speaking HTTP/1.1 and h2c that answers by path:
/// - `/hang`: never answers;
/// - `/slow/MS`: answers after MS milliseconds;
/// - `/status/CODE`: answers CODE with a JSON body;
/// - `/stream/N`: N chunks of 1 KiB, 20 ms apart;
/// - `/headers`: echo with `Server`, `X-Powered-By`, `Connection: x-hop` and `X-Hop` set;
/// - `/reflect`: the request body sent back as it came, with the request's `Content-Type`, and
///   what framed it in `X-Seen-Content-Length` / `X-Seen-Transfer-Encoding`; the request
///   header `X-Reflect-Encoding` becomes the response's `Content-Encoding`, and
///   `X-Reflect-Chunked: 1` sends the body in two chunks without `Content-Length`;
/// - `/json/N`: `{"id": 1, "secret": "s", "filler": "x…"}` with N filler bytes (`?chunked=1`:
///   in 1 KiB chunks without `Content-Length`);
/// - anything else: a JSON echo of method, path, query, headers, version, body length.
///
/// Request headers shape any answer: `X-Reply-Cache-Control` and `X-Reply-Set-Cookie` come
/// back as `Cache-Control` and `Set-Cookie`; `X-Reply-Size: N` answers N bytes of `x` (with
/// `Content-Length`) instead of the echo.
pub async fn upstream(name: &'static str) -> Upstream {
    serve_upstream(name, None).await
}

/// An HTTP/1.1 upstream that closes keep-alive connections idle for more than `idle`, like
/// servers with a short keep-alive timeout do; answers like [`upstream`].
pub async fn upstream_closing_idle(name: &'static str, idle: Duration) -> Upstream {
    serve_upstream(name, Some(idle)).await
}

async fn serve_upstream(name: &'static str, idle_close: Option<Duration>) -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind upstream");
    let addr = listener.local_addr().expect("addr");
    let hits = Arc::new(AtomicUsize::new(0));
    let connections = Arc::new(AtomicUsize::new(0));
    let (h, c) = (hits.clone(), connections.clone());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            c.fetch_add(1, Ordering::SeqCst);
            let hits = h.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<Incoming>| {
                    hits.fetch_add(1, Ordering::SeqCst);
                    answer(name, request)
                });
                let io = TokioIo::new(stream);
                match idle_close {
                    // hyper's header read timeout also runs while a keep-alive connection
                    // waits for its next request: exactly a short keep-alive timeout.
                    Some(idle) => {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .timer(hyper_util::rt::TokioTimer::new())
                            .header_read_timeout(idle)
                            .serve_connection(io, service)
                            .await;
                    }
                    None => {
                        let _ = auto::Builder::new(TokioExecutor::new())
                            .serve_connection(io, service)
                            .await;
                    }
                }
            });
        }
    });
    Upstream {
        addr,
        hits,
        connections,
    }
}

fn json_response(status: StatusCode, value: Value) -> Response<TestBody> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(value.to_string())).boxed())
        .expect("response")
}

async fn answer(name: &str, request: Request<Incoming>) -> Result<Response<TestBody>, Infallible> {
    let size = request
        .headers()
        .get("x-reply-size")
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    // `x-reply-header-NAME: value` asks for a `NAME: value` field on the answer.
    let extra: Vec<(HeaderName, HeaderValue)> = request
        .headers()
        .iter()
        .filter_map(|(name, value)| {
            let asked = name.as_str().strip_prefix("x-reply-header-")?;
            Some((
                HeaderName::from_bytes(asked.as_bytes()).ok()?,
                value.clone(),
            ))
        })
        .collect();
    let mut response = match size {
        Some(size) => Response::builder()
            .header("content-type", "application/octet-stream")
            .body(Full::new(Bytes::from(vec![b'x'; size])).boxed())
            .expect("response"),
        None => answer_by_path(name, request).await?,
    };
    for (name, value) in extra {
        response.headers_mut().insert(name, value);
    }
    Ok(response)
}

async fn answer_by_path(
    name: &str,
    request: Request<Incoming>,
) -> Result<Response<TestBody>, Infallible> {
    let path = request.uri().path().to_owned();
    if path == "/hang" {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    if let Some(ms) = path.strip_prefix("/slow/") {
        let ms: u64 = ms.parse().unwrap_or(100);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if let Some(code) = path.strip_prefix("/status/") {
        let status = code
            .parse::<u16>()
            .ok()
            .and_then(|c| StatusCode::from_u16(c).ok())
            .unwrap_or(StatusCode::OK);
        return Ok(json_response(
            status,
            json!({"upstream": name, "status": status.as_u16()}),
        ));
    }
    if let Some(n) = path.strip_prefix("/stream/") {
        let n: usize = n.parse().unwrap_or(3);
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(1);
        tokio::spawn(async move {
            for _ in 0..n {
                if tx
                    .send(Ok(Frame::data(Bytes::from(vec![b'x'; 1024]))))
                    .await
                    .is_err()
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        let stream = tokio_stream_from(rx);
        return Ok(Response::builder()
            .header("content-type", "application/octet-stream")
            .body(StreamBody::new(stream).boxed())
            .expect("response"));
    }
    if path == "/reflect" {
        return Ok(reflect(request).await);
    }
    if let Some(n) = path.strip_prefix("/json/") {
        let n: usize = n.parse().unwrap_or(10);
        let chunked = request.uri().query() == Some("chunked=1");
        let text = json!({"id": 1, "secret": "s", "filler": "x".repeat(n)}).to_string();
        let builder = Response::builder().header("content-type", "application/json");
        if !chunked {
            return Ok(builder
                .body(Full::new(Bytes::from(text)).boxed())
                .expect("response"));
        }
        let chunks: Vec<Result<Frame<Bytes>, Infallible>> = text
            .into_bytes()
            .chunks(1024)
            .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
            .collect();
        let stream = futures_util::stream::iter(chunks);
        return Ok(builder
            .body(StreamBody::new(stream).boxed())
            .expect("response"));
    }
    let method = request.method().to_string();
    let query = request.uri().query().map(str::to_owned);
    let version = format!("{:?}", request.version());
    let headers: serde_json::Map<String, Value> = request
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), Value::from(v.to_str().unwrap_or("<binary>"))))
        .collect();
    // Names sent more than once (`headers` keeps the last value of each).
    let repeated: Vec<String> = request
        .headers()
        .keys()
        .filter(|name| request.headers().get_all(*name).iter().count() > 1)
        .map(ToString::to_string)
        .collect();
    let body = request.into_body().collect().await.map(|b| b.to_bytes());
    let body_len = body.as_ref().map(|b| b.len()).unwrap_or(0);
    let echo = json!({
        "upstream": name, "method": method, "path": path, "query": query,
        "version": version, "headers": headers, "repeated": repeated, "body_len": body_len,
    });
    let mut response = json_response(StatusCode::OK, echo);
    if path == "/headers" {
        let h = response.headers_mut();
        h.insert("server", "test-upstream".parse().expect("value"));
        h.insert("x-powered-by", "tests".parse().expect("value"));
        h.insert("connection", "x-hop".parse().expect("value"));
        h.insert("x-hop", "1".parse().expect("value"));
    }
    Ok(response)
}

/// `/reflect`: the request body back, with what framed it.
async fn reflect(request: Request<Incoming>) -> Response<TestBody> {
    let headers = request.headers().clone();
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let seen = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none")
            .to_owned()
    };
    let mut builder = Response::builder()
        .header("x-seen-content-length", seen("content-length"))
        .header("x-seen-transfer-encoding", seen("transfer-encoding"));
    if let Some(ct) = headers.get("content-type") {
        builder = builder.header("content-type", ct);
    }
    if let Some(encoding) = headers.get("x-reflect-encoding") {
        builder = builder.header("content-encoding", encoding);
    }
    if headers.get("x-reflect-chunked").is_some() {
        let half = body.len() / 2;
        let chunks = vec![
            Ok::<_, Infallible>(Frame::data(body.slice(..half))),
            Ok(Frame::data(body.slice(half..))),
        ];
        let stream = futures_util::stream::iter(chunks);
        return builder
            .body(StreamBody::new(stream).boxed())
            .expect("response");
    }
    builder.body(Full::new(body).boxed()).expect("response")
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// An upstream that accepts connections, reads the request, and resets the connection.
pub async fn resetting_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                drop(stream);
            });
        }
    });
    addr
}

/// An address nothing listens on: connections are refused.
pub fn refusing_address() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    addr
}

/// Starts the real gateway from `yaml` (its `listen` should be `127.0.0.1:0`). Unless the
/// config says otherwise, the access log is off to keep test output readable.
pub async fn gateway(yaml: &str) -> Gatehouse {
    let yaml = if yaml.contains("observability") {
        yaml.to_owned()
    } else {
        format!("observability: {{ access_log: off }}\n{yaml}")
    };
    let yaml = yaml.as_str();
    let config = gatehouse::config::load_str("test.yaml", yaml)
        .unwrap_or_else(|errors| panic!("test config is invalid:\n{errors}"));
    Gatehouse::start(config).await.expect("gateway starts")
}

/// The gateway with one service at `url` (`http://host:port`) behind a catch-all route.
pub async fn proxy_all(url: &str) -> Gatehouse {
    gateway(&format!(
        "listen: 127.0.0.1:0\nservices:\n  svc: {{ url: \"{url}\" }}\nroutes:\n  - {{ path: /**, service: svc }}\n"
    ))
    .await
}

/// `GET` of `path` on the gateway's first listener.
pub async fn get(gateway: &Gatehouse, path: &str) -> reqwest::Response {
    client()
        .get(format!("{}{path}", base(gateway)))
        .send()
        .await
        .expect("response")
}

/// A listener whose accept queue is full and never accepted: the kernel drops further SYNs, so
/// connecting to it hangs. Keep the connections it returns (they fill the queue) alive.
pub async fn stuck_listener() -> (tokio::net::TcpListener, Vec<tokio::net::TcpStream>) {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.1:0".parse().expect("addr"))
        .expect("bind");
    let listener = socket.listen(0).expect("listen");
    let addr = listener.local_addr().expect("addr");
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(Ok(stream)) = tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            fillers.push(stream);
        }
    }
    (listener, fillers)
}

/// The base URL of the gateway's first listener.
pub fn base(gateway: &Gatehouse) -> String {
    format!("http://{}", gateway.listeners[0])
}

/// A client that does not follow redirects and does not pool across tests.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// Sends raw bytes on a new connection and returns everything the gateway answered before
/// closing (or `wait` elapsing).
pub async fn raw(addr: SocketAddr, bytes: &[u8], wait: Duration) -> String {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(bytes).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(wait, stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// The JSON error body of a gateway error response, checked for the SPEC §4.2 shape.
pub async fn error_body(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "status");
    assert_eq!(
        response.headers()["content-type"],
        "application/json",
        "errors are JSON"
    );
    let request_id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body: Value = response.json().await.expect("json error body");
    assert_eq!(body["error"]["status"], status);
    assert_eq!(body["error"]["code"], code);
    assert!(body["error"]["message"].is_string());
    assert_eq!(
        body["error"]["request_id"].as_str().map(str::to_owned),
        request_id,
        "error body carries the request id"
    );
    body
}
