//! The admin API (SPEC §5) on its own listener: `/health` and `/ready` for now.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// What the admin API reads from the running gateway.
pub struct AdminState {
    /// Set once every listener is up and a config is loaded.
    pub ready: AtomicBool,
    /// The bearer token every endpoint but `/health` requires, when set.
    pub token: Option<String>,
}

impl AdminState {
    /// Admin state with `token`, not ready yet.
    pub fn new(token: Option<String>) -> Arc<Self> {
        Arc::new(Self {
            ready: AtomicBool::new(false),
            token,
        })
    }
}

/// The admin API's routes.
pub fn router(state: Arc<AdminState>) -> Router {
    let protected = Router::new()
        .route("/ready", get(ready))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/health", get(health))
        .merge(protected)
        .fallback(not_found)
        .with_state(state)
}

/// Serves the admin API on `listener` until `shutdown`.
pub async fn serve(listener: TcpListener, state: Arc<AdminState>, shutdown: CancellationToken) {
    let app = router(state);
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
    if let Err(err) = result {
        tracing::error!(%err, "admin listener failed");
    }
}

/// The admin listener's address for logs.
pub fn describe(addr: SocketAddr) -> String {
    format!("admin API on http://{addr}")
}

async fn health() -> impl IntoResponse {
    axum::Json(json!({"status": "ok"}))
}

async fn ready(State(state): State<Arc<AdminState>>) -> Response {
    if state.ready.load(Ordering::Acquire) {
        axum::Json(json!({"status": "ready"})).into_response()
    } else {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            "not ready",
        )
    }
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "not_found", "no such admin endpoint")
}

async fn require_token(
    State(state): State<Arc<AdminState>>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(expected) = &state.token {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
            let mut response = error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a valid admin bearer token is required",
            );
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"gatehouse-admin\""),
            );
            return response;
        }
    }
    next.run(request).await
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({"error": {"status": status.as_u16(), "code": code, "message": message}});
    (status, axum::Json(body)).into_response()
}
