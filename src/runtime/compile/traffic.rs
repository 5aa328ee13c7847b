//! Where traffic goes, compiled: a service's `balance` and `hash_on`, a route's `service` or
//! `split` (with `sticky`), and its `mirror`.

use std::collections::HashMap;
use std::sync::Arc;

use super::Errors;
use crate::config::{Balance as BalanceSetting, Route, Service};
use crate::pipeline::mirror::Mirror;
use crate::pipeline::split::{ServiceChoice, Split};
use crate::upstream::{Balance, RequestKey, ServiceRuntime};

/// The balancing algorithm of a service (validation has checked that `hash` has `hash_on`).
pub(super) fn balance(service: &Service, errors: &mut Errors<'_>) -> Balance {
    match service
        .balance
        .as_ref()
        .map(|b| b.value)
        .unwrap_or_default()
    {
        BalanceSetting::RoundRobin => Balance::RoundRobin,
        BalanceSetting::LeastRequest => Balance::LeastRequest,
        BalanceSetting::Random => Balance::Random,
        BalanceSetting::Ewma => Balance::Ewma,
        BalanceSetting::Hash => match &service.hash_on {
            Some(hash_on) => match RequestKey::compile(&hash_on.value) {
                Ok(key) => Balance::Hash(key),
                Err(message) => {
                    errors.at(hash_on.referenced, message);
                    Balance::RoundRobin
                }
            },
            None => Balance::RoundRobin,
        },
    }
}

/// The route's `service`, or its `split`; `None` when it has neither or names a service that
/// did not compile (already reported).
pub(super) fn destination(
    route: &Route,
    services: &HashMap<String, Arc<ServiceRuntime>>,
    errors: &mut Errors<'_>,
) -> Option<ServiceChoice> {
    if let Some(name) = &route.service {
        return services.get(&name.value).cloned().map(ServiceChoice::One);
    }
    let split = &route.split.as_ref()?.value;
    let mut sides = Vec::with_capacity(split.len());
    for side in split {
        sides.push((
            services.get(&side.service.value)?.clone(),
            side.weight.value,
        ));
    }
    let sticky = match &route.sticky {
        Some(sticky) => match RequestKey::compile(&sticky.value) {
            Ok(key) => Some(key),
            Err(message) => {
                errors.at(sticky.referenced, message);
                None
            }
        },
        None => None,
    };
    Split::new(sides, sticky).map(ServiceChoice::Split)
}

/// The route's `mirror`, when its service compiled.
pub(super) fn mirror(
    route: &Route,
    services: &HashMap<String, Arc<ServiceRuntime>>,
) -> Option<Mirror> {
    let mirror = &route.mirror.as_ref()?.value;
    let service = services.get(&mirror.service.value)?;
    Some(Mirror::new(service.clone(), mirror.percent.value))
}
