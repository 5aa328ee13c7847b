//! `gatehouse demo`: sample services on loopback and a gateway in front of them, with
//! ready-to-paste `curl` commands. No files needed. One service has two targets, one of them
//! flaky, to show retries and the circuit breaker at work.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::app::{Gatehouse, StartError};
use crate::config;

/// The port the demo gateway prefers; a free one is used when it is taken.
const PREFERRED_PORT: u16 = 8080;
/// The port the demo admin API prefers.
const PREFERRED_ADMIN_PORT: u16 = 9901;

/// A sample service of the demo.
#[derive(Debug, Clone, Copy)]
pub enum SampleService {
    /// `/users`, `/users/{id}`.
    Users,
    /// `/orders`, `/orders/{id}`, `?userId=`.
    Orders,
    /// `/products`, `/products/{id}`.
    Products,
    /// `/inventory`, `/inventory/{id}`.
    Inventory,
}

impl SampleService {
    fn name(self) -> &'static str {
        match self {
            Self::Users => "users",
            Self::Orders => "orders",
            Self::Products => "products",
            Self::Inventory => "inventory",
        }
    }

    fn records(self) -> Vec<Value> {
        match self {
            Self::Users => vec![
                json!({"id": 1, "name": "Ada Lovelace", "email": "ada@example.com"}),
                json!({"id": 2, "name": "Alan Turing", "email": "alan@example.com"}),
                json!({"id": 3, "name": "Grace Hopper", "email": "grace@example.com"}),
            ],
            Self::Orders => vec![
                json!({"id": 101, "userId": 1, "productId": 7, "quantity": 2}),
                json!({"id": 102, "userId": 1, "productId": 9, "quantity": 1}),
                json!({"id": 103, "userId": 2, "productId": 7, "quantity": 5}),
            ],
            Self::Products => vec![
                json!({"id": 7, "name": "Keyboard", "price": 49.0}),
                json!({"id": 9, "name": "Monitor", "price": 199.0}),
            ],
            Self::Inventory => vec![
                json!({"id": 7, "productId": 7, "inStock": 12}),
                json!({"id": 9, "productId": 9, "inStock": 0}),
            ],
        }
    }

    /// Answers one request like a small JSON API would.
    fn answer(self, method: &Method, path: &str, query: Option<&str>) -> (StatusCode, Value) {
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let records = self.records();
        match (method, segments.as_slice()) {
            (&Method::GET, [collection]) if *collection == self.name() => {
                let user_filter = query
                    .and_then(|q| q.split('&').find_map(|p| p.strip_prefix("userId=")))
                    .and_then(|v| v.parse::<i64>().ok());
                let items: Vec<Value> = records
                    .into_iter()
                    .filter(|r| user_filter.is_none_or(|u| r["userId"] == u))
                    .collect();
                (StatusCode::OK, Value::Array(items))
            }
            (&Method::GET, [collection, id]) if *collection == self.name() => {
                let wanted = id.parse::<i64>().ok();
                match records
                    .into_iter()
                    .find(|r| wanted.is_some() && r["id"].as_i64() == wanted)
                {
                    Some(record) => (StatusCode::OK, record),
                    None => (
                        StatusCode::NOT_FOUND,
                        json!({"error": format!("no {} with id {id}", self.name())}),
                    ),
                }
            }
            (&Method::POST, [collection]) if *collection == self.name() => {
                (StatusCode::CREATED, json!({"created": true}))
            }
            _ => (StatusCode::NOT_FOUND, json!({"error": "not found"})),
        }
    }
}

/// How a sample target behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Answers every request.
    Healthy,
    /// Answers 503 to two requests out of three (its `/health` stays up: it is flaky, not
    /// down).
    Flaky,
}

/// Serves a sample service on `listener` forever; `label` names the target in the answers'
/// `served_by`.
pub async fn serve_sample(
    listener: TcpListener,
    service: SampleService,
    label: &'static str,
    behaviour: Behaviour,
) {
    let count = Arc::new(AtomicU64::new(0));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let count = count.clone();
        tokio::spawn(async move {
            let handler = service_fn(move |request: Request<Incoming>| {
                let count = count.clone();
                async move {
                    let path = request.uri().path();
                    let failing = behaviour == Behaviour::Flaky
                        && path != "/health"
                        && count.fetch_add(1, Ordering::Relaxed) % 3 != 2;
                    let (status, mut body) = if path == "/health" {
                        (StatusCode::OK, json!({"status": "ok"}))
                    } else if failing {
                        (
                            StatusCode::SERVICE_UNAVAILABLE,
                            json!({"error": "flaky target: try again"}),
                        )
                    } else {
                        service.answer(request.method(), path, request.uri().query())
                    };
                    if let Value::Object(map) = &mut body {
                        map.insert("served_by".into(), label.into());
                    }
                    let response = Response::builder()
                        .status(status)
                        .header("content-type", "application/json")
                        .body(Full::new(Bytes::from(body.to_string())))
                        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())));
                    // Drain the request body so keep-alive connections stay usable.
                    let _ = request.into_body().collect().await;
                    Ok::<_, Infallible>(response)
                }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), handler)
                .await;
        });
    }
}

fn free_port(preferred: u16) -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", preferred))
        .or_else(|_| std::net::TcpListener::bind(("127.0.0.1", 0)))
        .and_then(|l| l.local_addr())
        .map_or(0, |a| a.port())
}

/// The credentials of one demo run: made up at start, printed in the curl commands.
#[derive(Debug, Clone)]
pub struct DemoCredentials {
    /// The HS256 secret of the JWT-protected routes.
    pub jwt_secret: String,
    /// The API key of the `demo-app` consumer.
    pub api_key: String,
}

impl DemoCredentials {
    /// Fresh random credentials.
    pub fn generate() -> Self {
        Self {
            jwt_secret: format!("demo-{}", uuid::Uuid::new_v4().simple()),
            api_key: format!("demo-key-{}", uuid::Uuid::new_v4().simple()),
        }
    }

    /// A demo token for `sub` with `scope`, valid for a day.
    pub fn token(&self, sub: &str, scope: &str) -> Result<String, String> {
        super::token::sign(&super::token::TokenRequest {
            secret: self.jwt_secret.clone(),
            sub: Some(sub.to_owned()),
            scope: Some(scope.to_owned()),
            claims: Vec::new(),
            ttl: std::time::Duration::from_secs(24 * 3600),
            alg: "HS256".to_owned(),
        })
    }
}

/// The demo's sample targets: users, orders, products, and the two inventory targets (the
/// second one flaky).
pub const SAMPLES: [(SampleService, &str, Behaviour); 5] = [
    (SampleService::Users, "users", Behaviour::Healthy),
    (SampleService::Orders, "orders", Behaviour::Healthy),
    (SampleService::Products, "products", Behaviour::Healthy),
    (SampleService::Inventory, "inventory-a", Behaviour::Healthy),
    (SampleService::Inventory, "inventory-b", Behaviour::Flaky),
];

/// The demo's config, with the targets of [`SAMPLES`] at `targets`.
pub fn demo_config(
    listen: u16,
    admin: u16,
    targets: [SocketAddr; 5],
    credentials: &DemoCredentials,
) -> String {
    let [users, orders, products, inventory_a, inventory_b] = targets;
    let key_hash = super::hash_key::hash_key(&credentials.api_key);
    let secret = &credentials.jwt_secret;
    format!(
        r#"# The `gatehouse demo` config.
listen: 127.0.0.1:{listen}
admin:
  listen: 127.0.0.1:{admin}
plugins:
  security_headers: {{}}
consumers:
  demo-app:
    keys: ["{key_hash}"]
    groups: [partners]
services:
  users:
    url: http://{users}
  orders:
    url: http://{orders}
  products:
    url: http://{products}
  inventory:                       # two targets; b fails 2 requests out of 3
    targets:
      - url: http://{inventory_a}
      - url: http://{inventory_b}
    retries: {{ attempts: 2, backoff: 10ms }}
    health: {{ path: /health, interval: 5s }}
  inventory-b:                     # the flaky target alone, behind a circuit breaker
    url: http://{inventory_b}
    circuit_breaker: {{ failure_ratio: 0.5, min_requests: 6, window: 10s, open_for: 15s }}
routes:
  - name: users
    path: /api/users/**
    service: users
    strip_prefix: /api
    plugins:
      cache: {{ ttl: 30s }}
  - name: user-by-id
    path: /api/v1/users/{{id}}
    methods: [GET]
    service: users
    rewrite: /users/{{id}}
    plugins:
      response_transform:
        headers: {{ set: {{ X-Api-Version: v1 }} }}
        body:
          rename: {{ /name: /fullName }}
          select: [/id, /fullName]
  - name: orders
    path: /api/orders/**
    methods: [GET, POST]
    service: orders
    strip_prefix: /api
    plugins:
      auth:
        jwt:
          algorithms: [HS256]
          secret: "{secret}"
      authorize:
        methods:
          POST: {{ scopes: [orders:write] }}
  - name: partner-products
    path: /partner/products/**
    methods: [GET]
    service: products
    strip_prefix: /partner
    plugins:
      auth: {{ api_key: {{}} }}
  - name: products
    path: /api/products/**
    methods: [GET]
    service: products
    strip_prefix: /api
    plugins:
      rate_limit: {{ limits: [5/10s], key: ip }}
  - name: inventory
    path: /api/inventory/**
    methods: [GET]
    service: inventory
    strip_prefix: /api
  - name: flaky-inventory
    path: /flaky/inventory/**
    methods: [GET]
    service: inventory-b
    strip_prefix: /flaky
  - name: status
    path: /status
    respond: {{ status: 200, body: "gatehouse demo is up" }}
"#
    )
}

/// Runs the demo until Ctrl-C.
pub async fn run() -> Result<(), StartError> {
    let mut addrs = Vec::new();
    for (service, label, behaviour) in SAMPLES {
        let listener =
            TcpListener::bind(("127.0.0.1", 0))
                .await
                .map_err(|error| StartError::Bind {
                    addr: "127.0.0.1:0".into(),
                    error,
                })?;
        let addr = listener.local_addr().map_err(|error| StartError::Bind {
            addr: "127.0.0.1:0".into(),
            error,
        })?;
        addrs.push(addr);
        tokio::spawn(serve_sample(listener, service, label, behaviour));
    }
    let targets = [addrs[0], addrs[1], addrs[2], addrs[3], addrs[4]];
    let credentials = DemoCredentials::generate();
    let text = demo_config(
        free_port(PREFERRED_PORT),
        free_port(PREFERRED_ADMIN_PORT),
        targets,
        &credentials,
    );
    // Signing with a fresh HS256 secret cannot fail; the message would show in the curls.
    let sign = |sub: &str, scope: &str| {
        credentials
            .token(sub, scope)
            .unwrap_or_else(|err| format!("<cannot sign a demo token: {err}>"))
    };
    let reader = sign("ada", "orders:read");
    let writer = sign("grace", "orders:read orders:write");
    let key = &credentials.api_key;
    let config = config::load_str("demo.yaml", &text).map_err(StartError::Config)?;
    let gateway = Gatehouse::start(config).await?;
    let base = format!("http://{}", gateway.listeners[0]);
    println!(
        "Gatehouse demo is running. Sample services: users, orders, products, inventory (two targets, one flaky).\n"
    );
    println!("Try:");
    println!("  curl -i {base}/api/users                # X-Cache: MISS, then HIT with Age");
    println!("  curl -i {base}/api/users/1");
    println!("  curl -i {base}/api/v1/users/2        # rewritten to /users/2, body reshaped");
    println!("  curl -i '{base}/api/orders?userId=1'   # 401: needs a token");
    println!("  curl -i -H 'Authorization: Bearer {reader}' '{base}/api/orders?userId=1'");
    println!(
        "  curl -i -X POST -H 'Authorization: Bearer {reader}' {base}/api/orders   # 403: reader token lacks orders:write"
    );
    println!("  curl -i -X POST -H 'Authorization: Bearer {writer}' {base}/api/orders");
    println!("  curl -i -H 'X-API-Key: {key}' {base}/partner/products/9");
    println!("  curl -i {base}/api/products/7");
    println!(
        "  for i in 1 2 3 4 5 6 7; do curl -s -o /dev/null -w '%{{http_code}} ' {base}/api/products/7; done; echo   # 5/10s, then 429"
    );
    println!(
        "  for i in 1 2 3 4 5 6; do curl -s {base}/api/inventory/7; echo; done   # all 200: inventory-b's 503s are retried on inventory-a"
    );
    println!(
        "  for i in $(seq 12); do curl -s -o /dev/null -w '%{{http_code}} ' {base}/flaky/inventory/7; done; echo   # inventory-b alone: 503s, then the breaker opens (503 from the gateway, Retry-After)"
    );
    println!("  curl -i -X DELETE {base}/api/products/7   # 405 with Allow");
    println!("  curl -i {base}/nowhere                 # 404, JSON error");
    println!("  curl -i {base}/status");
    if let Some(admin) = gateway.admin {
        println!("  curl -i http://{admin}/health");
    }
    println!("\nThe config in use:\n\n{text}");
    println!("Press Ctrl-C to stop.");
    gateway
        .run_until_signalled()
        .await
        .map_err(|error| StartError::Bind {
            addr: "signals".into(),
            error,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_config_is_valid() {
        let addr: SocketAddr = "127.0.0.1:9".parse().expect("addr");
        let text = demo_config(8080, 9901, [addr; 5], &DemoCredentials::generate());
        let config = config::load_str("demo.yaml", &text).expect("valid demo config");
        let state = crate::runtime::State::dry_run();
        crate::runtime::compile(&config, &state).expect("compiles");
    }

    #[test]
    fn sample_services_answer_like_an_api() {
        let (status, body) =
            SampleService::Orders.answer(&Method::GET, "/orders", Some("userId=1"));
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body.as_array().map(Vec::len), Some(2));
        let (status, _) = SampleService::Users.answer(&Method::GET, "/users/99", None);
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}
