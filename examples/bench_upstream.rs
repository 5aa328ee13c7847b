//! A minimal upstream for the load benchmark (`bench/run.sh`).
//!
//! An HTTP/1.1 keep-alive server that answers every request, whatever its method or path, with
//! `200 OK` and the same small JSON body (with `Content-Length`). It does as little work as
//! possible so that the benchmark measures the proxy in front of it, not the upstream.
//!
//! ```text
//! cargo run --release --example bench_upstream -- 127.0.0.1:9001
//! ```
//!
//! The address defaults to `127.0.0.1:9001`. The server prints `listening on ADDR` once bound
//! and runs until killed.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The fixed response body: about 100 bytes of JSON.
const BODY: &[u8] =
    br#"{"id":42,"name":"Ada Lovelace","email":"ada@example.com","role":"admin","team":"core","active":true}"#;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Answers every request with the fixed body; the request body, if any, is ignored.
async fn handle(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut resp = Response::new(Full::new(Bytes::from_static(BODY)));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(resp)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .as_deref()
        .unwrap_or("127.0.0.1:9001")
        .parse()?;
    let listener = TcpListener::bind(addr).await?;
    println!("listening on {}", listener.local_addr()?);

    loop {
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(err) => {
                // Typically EMFILE under heavy load: report it and keep serving.
                eprintln!("accept: {err}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        // Latency matters more than batching for a benchmark upstream.
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            // `keep_alive` is on by default; errors (client resets) are not interesting here.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(handle))
                .await;
        });
    }
}
