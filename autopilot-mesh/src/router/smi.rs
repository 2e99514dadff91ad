//! SMI routing: a TrafficSplit `<app>` for the apex service `<app>` with the backends
//! `<app>-primary` and `<app>-canary`.

use async_trait::async_trait;
use kube::Client;

use super::{Feature, RouteChange, RouterError, TrafficRouter, Writer, check_supported};
use crate::provider::MeshProvider;
use crate::resources::smi::{TrafficSplit, TrafficSplitBackend, TrafficSplitSpec};
use crate::route::{Route, Weights};

/// Routes with an SMI `split.smi-spec.io/v1alpha2` TrafficSplit (integer weights).
///
/// It writes `service` and `backends`; other fields (such as `matches`) stay with whoever set them.
/// TrafficSplit has no request matching or mirroring: those changes fail with
/// [`RouterError::Unsupported`] before anything is written.
///
/// ```no_run
/// # async fn demo(client: kube::Client) -> Result<(), Box<dyn std::error::Error>> {
/// use autopilot_mesh::{MeshProvider, Route, SmiRouter, TrafficRouter};
///
/// let router = SmiRouter::new(client, "autopilot", MeshProvider::Smi);
/// let route = Route::new("shop", "podinfo", 9898);
/// router.ensure(&route).await?; // TrafficSplit podinfo: podinfo-primary 100, podinfo-canary 0
/// router.set_weights(&route, 50, 50).await?;
/// router.reset(&route).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct SmiRouter {
    writer: Writer,
    provider: MeshProvider,
}

impl SmiRouter {
    /// A router applying as `field_manager`, reporting itself as `provider` (`Smi`, or `Linkerd` when
    /// Linkerd's SMI extension carries the traffic).
    pub fn new(client: Client, field_manager: impl Into<String>, provider: MeshProvider) -> Self {
        Self {
            writer: Writer::new(client, field_manager),
            provider,
        }
    }
}

#[async_trait]
impl TrafficRouter for SmiRouter {
    fn provider(&self) -> MeshProvider {
        self.provider
    }

    fn supports(&self, feature: Feature) -> bool {
        match feature {
            Feature::RequestMatching | Feature::Mirroring => false,
        }
    }

    async fn weights(&self, route: &Route) -> Result<Weights, RouterError> {
        let split: TrafficSplit = self.writer.get_existing(route, &route.app).await?;
        read_weights(&split, route)
    }

    async fn apply(&self, route: &Route, change: RouteChange) -> Result<Weights, RouterError> {
        check_supported(self, &change)?;
        let applied = self
            .writer
            .apply(route, &route.app, |current: Option<&TrafficSplit>| {
                let spec = edit(current.map(|s| &s.spec), route, &change);
                TrafficSplit::new(&route.app, spec)
            })
            .await?;
        read_weights(&applied, route)
    }
}

/// The part of the TrafficSplit we apply: `service` and `backends` after `change`.
pub(crate) fn edit(
    current: Option<&TrafficSplitSpec>,
    route: &Route,
    change: &RouteChange,
) -> TrafficSplitSpec {
    let existing = current.map(|s| s.backends.as_slice()).unwrap_or_default();
    let weights = match change {
        RouteChange::Weights(w) => Some(*w),
        RouteChange::Reset => Some(Weights::PRIMARY),
        _ if existing
            .iter()
            .any(|b| b.service == route.primary_service()) =>
        {
            None
        }
        _ => Some(Weights::PRIMARY),
    };
    let backends = match weights {
        None => existing.to_vec(),
        Some(w) => [
            (route.primary_service(), w.primary()),
            (route.canary_service(), w.canary()),
        ]
        .into_iter()
        .map(|(service, weight)| {
            let mut backend = existing
                .iter()
                .find(|b| b.service == service)
                .cloned()
                .unwrap_or_else(|| TrafficSplitBackend {
                    service,
                    ..Default::default()
                });
            backend.weight = weight.into();
            backend
        })
        .collect(),
    };
    TrafficSplitSpec {
        service: route.apex_service().to_owned(),
        backends,
        ..Default::default()
    }
}

fn read_weights(split: &TrafficSplit, route: &Route) -> Result<Weights, RouterError> {
    let weight_of = |service: String| {
        split
            .spec
            .backends
            .iter()
            .find(|b| b.service == service)
            .map(|b| b.weight)
    };
    let primary = weight_of(route.primary_service())
        .ok_or_else(|| RouterError::missing_route("TrafficSplit", route))?;
    let canary = weight_of(route.canary_service()).unwrap_or(0);
    Ok(Weights::from_relative(primary, canary)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ensure_keeps_an_existing_split_and_weights_replace_it() {
        let route = Route::new("shop", "podinfo", 9898);
        let fresh = edit(None, &route, &RouteChange::Ensure);
        assert_eq!(fresh.service, "podinfo");
        let split: Vec<_> = fresh
            .backends
            .iter()
            .map(|b| (b.service.as_str(), b.weight))
            .collect();
        assert_eq!(split, [("podinfo-primary", 100), ("podinfo-canary", 0)]);

        let shifted = edit(
            Some(&fresh),
            &route,
            &RouteChange::Weights(Weights::new(20, 80).unwrap()),
        );
        assert_eq!(edit(Some(&shifted), &route, &RouteChange::Ensure), shifted);
        assert_eq!(shifted.backends[1].weight, 80);
    }
}
