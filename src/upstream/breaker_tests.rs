use std::sync::Arc;
use std::time::Duration;

use tokio::time::{Instant, advance};

use super::*;

fn settings(min_requests: u32) -> BreakerSettings {
    BreakerSettings {
        failure_ratio: 0.5,
        min_requests,
        window: Duration::from_secs(10),
        open_for: Duration::from_secs(30),
    }
}

fn service(min_requests: u32) -> Arc<ServiceState> {
    let service = Arc::new(ServiceState::default());
    service
        .breaker()
        .configure("svc", Some(settings(min_requests)));
    service
}

fn admit(service: &Arc<ServiceState>) -> Result<Permit, GatewayError> {
    service.breaker().admit(service, Instant::now)
}

fn record(service: &ServiceState, outcome: Outcome) {
    service.breaker().record(outcome, Instant::now());
}

fn retry_after(err: GatewayError) -> String {
    let response = err.into_response("id");
    response.headers()[http::header::RETRY_AFTER]
        .to_str()
        .expect("ascii")
        .to_owned()
}

#[tokio::test(start_paused = true)]
async fn opens_on_the_failure_ratio_once_the_window_has_enough_requests() {
    let service = service(10);
    for _ in 0..5 {
        record(&service, Outcome::Status(200));
    }
    for _ in 0..4 {
        record(&service, Outcome::Status(502));
    }
    assert_eq!(
        service.breaker().state(Instant::now()).0,
        CircuitState::Closed,
        "9 requests: under min_requests"
    );
    record(&service, Outcome::ConnectFailure);
    let (state, left) = service.breaker().state(Instant::now());
    assert_eq!(state, CircuitState::Open, "5 of 10 failed");
    assert_eq!(left, Some(Duration::from_secs(30)));
    let err = admit(&service).expect_err("open");
    assert_eq!(err.kind(), ErrorKind::ServiceUnavailable);
    assert_eq!(retry_after(err), "30");
    advance(Duration::from_millis(28_500)).await;
    assert_eq!(retry_after(admit(&service).expect_err("open")), "2");
}

#[tokio::test(start_paused = true)]
async fn stays_closed_under_the_ratio() {
    let service = service(4);
    for _ in 0..100 {
        record(&service, Outcome::Status(200));
        record(&service, Outcome::Status(200));
        record(&service, Outcome::Status(500));
    }
    assert_eq!(service.breaker().window_counts(Instant::now()), (300, 100));
    assert_eq!(
        service.breaker().state(Instant::now()).0,
        CircuitState::Closed
    );
    assert!(admit(&service).is_ok());
}

#[tokio::test(start_paused = true)]
async fn old_buckets_leave_the_window() {
    let service = service(4);
    for _ in 0..3 {
        record(&service, Outcome::Reset);
    }
    assert_eq!(service.breaker().window_counts(Instant::now()), (3, 3));
    advance(Duration::from_secs(5)).await;
    record(&service, Outcome::Status(200));
    assert_eq!(service.breaker().window_counts(Instant::now()), (4, 3));
    advance(Duration::from_millis(5_500)).await;
    assert_eq!(
        service.breaker().window_counts(Instant::now()),
        (1, 0),
        "the failures are over 10 s old"
    );
    record(&service, Outcome::Reset);
    assert_eq!(
        service.breaker().state(Instant::now()).0,
        CircuitState::Closed,
        "1 of 2 failed but min_requests is 4"
    );
}

#[tokio::test(start_paused = true)]
async fn half_open_lets_a_few_probes_through_and_a_success_closes() {
    let service = service(1);
    record(&service, Outcome::Timeout);
    assert!(admit(&service).is_err());
    advance(Duration::from_secs(30)).await;
    assert_eq!(
        service.breaker().state(Instant::now()).0,
        CircuitState::HalfOpen
    );
    let probes: Vec<Permit> = (0..MAX_PROBES)
        .map(|_| admit(&service).expect("probe"))
        .collect();
    assert!(probes.iter().all(Permit::is_probe));
    let err = admit(&service).expect_err("probe slots are taken");
    assert_eq!(retry_after(err), "1");
    drop(probes);
    let probe = admit(&service).expect("slots given back");
    record(&service, Outcome::Status(204));
    drop(probe);
    assert_eq!(
        service.breaker().state(Instant::now()).0,
        CircuitState::Closed
    );
    assert_eq!(
        service.breaker().window_counts(Instant::now()),
        (0, 0),
        "closing starts an empty window"
    );
    assert!(!admit(&service).expect("closed").is_probe());
}

#[tokio::test(start_paused = true)]
async fn a_failed_probe_opens_again() {
    let service = service(1);
    record(&service, Outcome::Status(503));
    advance(Duration::from_secs(31)).await;
    let probe = admit(&service).expect("probe");
    record(&service, Outcome::Status(503));
    drop(probe);
    let (state, left) = service.breaker().state(Instant::now());
    assert_eq!(state, CircuitState::Open);
    assert_eq!(left, Some(Duration::from_secs(30)));
}

#[tokio::test(start_paused = true)]
async fn outcomes_while_open_and_client_failures_change_nothing() {
    let service = service(1);
    record(&service, Outcome::Reset);
    advance(Duration::from_secs(10)).await;
    record(&service, Outcome::Status(200));
    assert_eq!(
        service.breaker().state(Instant::now()).0,
        CircuitState::Open
    );
    let fresh = self::service(1);
    record(&fresh, Outcome::Client);
    assert_eq!(fresh.breaker().window_counts(Instant::now()), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn reconfiguring_keeps_unchanged_settings_and_resets_changed_ones() {
    let service = service(1);
    record(&service, Outcome::Reset);
    service.breaker().configure("svc", Some(settings(1)));
    assert_eq!(
        service.breaker().state(Instant::now()).0,
        CircuitState::Open,
        "same settings: the open circuit carries over"
    );
    service.breaker().configure("svc", Some(settings(2)));
    assert_eq!(
        service.breaker().state(Instant::now()).0,
        CircuitState::Closed
    );
    service.breaker().configure("svc", None);
    for _ in 0..10 {
        record(&service, Outcome::Reset);
    }
    assert!(admit(&service).is_ok(), "off: never opens");
}

#[tokio::test(start_paused = true)]
async fn buckets_saturate_instead_of_overflowing() {
    let service = service(1_000_000_000);
    for _ in 0..(SATURATED + 10) {
        service.breaker().count(false, 5_000_000);
    }
    let bucket_ms = service.breaker().bucket_ms.load(Relaxed);
    let (total, failures) = service.breaker().window_counts_at(5_000_000 / bucket_ms);
    assert_eq!((total, failures), (SATURATED, 0));
}

#[test]
fn closed_admission_needs_no_clock() {
    let service = Arc::new(ServiceState::default());
    service.breaker().configure("svc", Some(settings(5)));
    let permit = service
        .breaker()
        .admit(&service, || panic!("the closed path reads no clock"));
    assert!(permit.is_ok());
}
