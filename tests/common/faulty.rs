//! Upstreams that fail on command, for the retry, timeout and upstream-TLS tests: each
//! answers by its current [`Mode`] (switchable at run time, or scripted request by request),
//! counts the requests it got, and speaks HTTP/1.1 and h2c, or TLS with the ALPN protocols
//! it is given.
#![allow(dead_code, unreachable_pub)]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::json;
use tokio::net::TcpListener;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type FaultyBody = http_body_util::combinators::BoxBody<Bytes, BoxError>;

/// How a faulty upstream answers a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A JSON echo: name, method, path, version, `Host`, SNI, body length and checksum.
    Echo,
    /// This status with a small JSON body naming the upstream.
    Status(u16),
    /// Reads the request, then closes the connection without answering.
    Close,
    /// Never answers.
    Hang,
    /// Answers after this many milliseconds (an echo).
    Slow(u64),
    /// Response headers promising 10 000 bytes, 1 000 of them, then the connection breaks.
    Truncate,
}

/// A running faulty upstream.
pub struct Faulty {
    /// Its address.
    pub addr: SocketAddr,
    name: &'static str,
    tls: bool,
    state: Arc<Shared>,
}

struct Shared {
    mode: Mutex<Mode>,
    script: Mutex<VecDeque<Mode>>,
    hits: AtomicUsize,
    connections: AtomicUsize,
}

impl Shared {
    /// The mode for the next request: the script's next entry, else the current mode.
    fn next_mode(&self) -> Mode {
        let scripted = self.script.lock().expect("script").pop_front();
        scripted.unwrap_or_else(|| *self.mode.lock().expect("mode"))
    }
}

impl Faulty {
    /// Requests received so far (including those it failed).
    pub fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// Answers every later request by `mode`.
    pub fn set(&self, mode: Mode) {
        *self.state.mode.lock().expect("mode") = mode;
    }

    /// Answers the next requests by `modes`, one each, then by the current mode again.
    pub fn script(&self, modes: &[Mode]) {
        self.state.script.lock().expect("script").extend(modes);
    }

    /// `http://addr` or `https://addr`.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The upstream's name, as its answers carry it.
    pub fn name(&self) -> &'static str {
        self.name
    }
}

/// A plain upstream (HTTP/1.1 and h2c) answering by `mode` until told otherwise.
pub async fn faulty(name: &'static str, mode: Mode) -> Faulty {
    serve(name, mode, None).await
}

/// A TLS upstream presenting `cert_pem` (with `key_pem`) and offering `alpn` (e.g.
/// `[b"h2", b"http/1.1"]`), answering by `mode`.
pub async fn faulty_tls(
    name: &'static str,
    mode: Mode,
    cert_pem: &str,
    key_pem: &str,
    alpn: &[&[u8]],
) -> Faulty {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .expect("certificate PEM");
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("key PEM");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server certificate");
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    serve(name, mode, Some(acceptor)).await
}

/// A self-signed certificate for `names` and its key, PEM: trusted by nobody.
pub fn self_signed(names: &[&str]) -> (String, String) {
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let made = rcgen::generate_simple_self_signed(names).expect("self-signed certificate");
    (made.cert.pem(), made.signing_key.serialize_pem())
}

async fn serve(
    name: &'static str,
    mode: Mode,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
) -> Faulty {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let state = Arc::new(Shared {
        mode: Mutex::new(mode),
        script: Mutex::new(VecDeque::new()),
        hits: AtomicUsize::new(0),
        connections: AtomicUsize::new(0),
    });
    let shared = state.clone();
    let tls = acceptor.is_some();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            shared.connections.fetch_add(1, Ordering::SeqCst);
            let shared = shared.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                match acceptor {
                    None => serve_connection(TokioIo::new(stream), shared, name, None).await,
                    Some(acceptor) => {
                        let Ok(stream) = acceptor.accept(stream).await else {
                            return;
                        };
                        let sni = stream.get_ref().1.server_name().map(str::to_owned);
                        serve_connection(TokioIo::new(stream), shared, name, sni).await;
                    }
                }
            });
        }
    });
    Faulty {
        addr,
        name,
        tls,
        state,
    }
}

async fn serve_connection<I>(io: I, shared: Arc<Shared>, name: &'static str, sni: Option<String>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = service_fn(move |request: Request<Incoming>| {
        shared.hits.fetch_add(1, Ordering::SeqCst);
        let mode = shared.next_mode();
        answer(name, mode, sni.clone(), request)
    });
    let _ = auto::Builder::new(TokioExecutor::new())
        .serve_connection(io, service)
        .await;
}

async fn answer(
    name: &'static str,
    mode: Mode,
    sni: Option<String>,
    request: Request<Incoming>,
) -> Result<Response<FaultyBody>, BoxError> {
    match mode {
        Mode::Echo => Ok(echo(name, sni, request).await),
        Mode::Slow(ms) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(echo(name, sni, request).await)
        }
        Mode::Status(code) => {
            let _ = request.into_body().collect().await;
            let status = StatusCode::from_u16(code).expect("status");
            let body = json!({"upstream": name, "status": code}).to_string();
            Ok(Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .header("x-upstream", name)
                .body(full(body))
                .expect("response"))
        }
        Mode::Close => {
            let _ = request.into_body().collect().await;
            Err("closing without an answer".into())
        }
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Err("hung".into())
        }
        Mode::Truncate => {
            // The first 1 000 bytes, flushed with the headers; the break comes a little later.
            let body = StreamBody::new(futures_util::stream::unfold(0, |step| async move {
                match step {
                    0 => Some((Ok(Frame::data(Bytes::from(vec![b'x'; 1000]))), 1)),
                    1 => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        Some((Err::<Frame<Bytes>, BoxError>("broken mid-body".into()), 2))
                    }
                    _ => None,
                }
            }));
            Ok(Response::builder()
                .header("content-length", "10000")
                .header("x-upstream", name)
                .body(BodyExt::boxed(body))
                .expect("response"))
        }
    }
}

/// The echo: who answered, what came, and a checksum of the body to compare with what the
/// client sent.
async fn echo(name: &str, sni: Option<String>, request: Request<Incoming>) -> Response<FaultyBody> {
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let version = format!("{:?}", request.version());
    let host = request
        .headers()
        .get("host")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.to_string()));
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let value = json!({
        "upstream": name, "method": method, "path": path, "version": version, "host": host,
        "sni": sni, "body_len": body.len(), "body_sum": checksum(&body),
    });
    Response::builder()
        .header("content-type", "application/json")
        .header("x-upstream", name)
        .body(full(value.to_string()))
        .expect("response")
}

/// A checksum of `bytes` (FNV-1a, 64 bits) as hex: tells whether a body arrived intact.
pub fn checksum(bytes: &[u8]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

fn full(text: String) -> FaultyBody {
    Full::new(Bytes::from(text))
        .map_err(|never: Infallible| match never {})
        .boxed()
}
