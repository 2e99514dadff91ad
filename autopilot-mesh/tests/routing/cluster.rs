//! A test cluster (either backend) with the mesh CRDs, an owning custom resource, and checks every
//! provider shares.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use autopilot_mesh::{
    Feature, MeshProvider, Route, RouteChange, RouterError, RouterOptions, TrafficRouter,
    WeightError, Weights, crds, router_for,
};
use autopilot_testkit::{Backend, TestCluster};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::core::NamespaceResourceScope;
use kube::{Api, Client, CustomResource, Resource, ResourceExt};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The custom resource that owns the routing objects in these tests.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, JsonSchema)]
#[kube(
    group = "test.autopilot.rs",
    version = "v1",
    kind = "Rollout",
    namespaced
)]
pub struct RolloutSpec {
    pub app: String,
}

pub const APP: &str = "podinfo";
pub const PORT: u16 = 9898;

pub struct Cluster {
    /// Kept alive for the test's duration.
    pub _server: TestCluster,
    pub client: Client,
    pub owner: Rollout,
    pub route: Route,
}

/// The CRDs the routers' objects must pass. On the real backend these are the upstream manifests, with
/// their schemas and CEL rules: the Gateway API's (`AUTOPILOT_GATEWAY_API_CHANNEL`, `standard` by default,
/// or `experimental`) and Istio's VirtualService and DestinationRule, from the folder
/// `scripts/upstream-crds` prints (`AUTOPILOT_UPSTREAM_CRDS`); SMI publishes none, so TrafficSplit is
/// ours. On the in-process backend they are ours (`autopilot-mesh/crds/`).
fn mesh_crds(backend: Backend) -> Vec<CustomResourceDefinition> {
    if backend == Backend::InProcess {
        return crds::all();
    }
    let folder = PathBuf::from(std::env::var_os("AUTOPILOT_UPSTREAM_CRDS").expect(
        "AUTOPILOT_UPSTREAM_CRDS names the upstream CRDs: export AUTOPILOT_UPSTREAM_CRDS=$(scripts/upstream-crds)",
    ));
    let channel =
        std::env::var("AUTOPILOT_GATEWAY_API_CHANNEL").unwrap_or_else(|_| "standard".to_owned());
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder.join("gateway-api").join(&channel))
        .unwrap_or_else(|e| panic!("Gateway API channel {channel:?}: {e}"))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    files.push(folder.join("istio/customresourcedefinitions.gen.yaml"));
    let wanted = |name: &str| {
        name.ends_with(".gateway.networking.k8s.io")
            || name == "virtualservices.networking.istio.io"
            || name == "destinationrules.networking.istio.io"
    };
    let mut upstream: Vec<CustomResourceDefinition> = files
        .iter()
        .flat_map(|file| {
            let text = std::fs::read_to_string(file).unwrap();
            serde_saphyr::from_multiple::<Value>(&text).unwrap()
        })
        .filter(|document| document["kind"] == "CustomResourceDefinition")
        .map(|document| serde_json::from_value::<CustomResourceDefinition>(document).unwrap())
        .filter(|crd| wanted(&crd.name_any()))
        .collect();
    upstream.push(crds::traffic_split());
    upstream
}

/// Installed once per test binary: the tests of a binary share the real server.
static MESH_CRDS: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

pub async fn cluster() -> Cluster {
    let server = TestCluster::start().await.unwrap();
    match server.backend() {
        Backend::InProcess => {
            for crd in mesh_crds(Backend::InProcess) {
                server.install_crd(&crd).await.unwrap();
            }
        }
        Backend::Real => {
            MESH_CRDS
                .get_or_init(|| async {
                    for crd in mesh_crds(Backend::Real) {
                        server.install_crd(&crd).await.unwrap();
                    }
                })
                .await;
        }
    }
    server.install::<Rollout>().await.unwrap();
    let client = server.client();
    let rollouts: Api<Rollout> = Api::default_namespaced(client.clone());
    let rollout = Rollout::new("podinfo-rollout", RolloutSpec { app: APP.into() });
    let owner = rollouts
        .create(&PostParams::default(), &rollout)
        .await
        .unwrap();
    let route = Route::owned_by(&owner, APP, PORT).unwrap();
    Cluster {
        _server: server,
        client,
        owner,
        route,
    }
}

pub trait Namespaced:
    Resource<Scope = NamespaceResourceScope, DynamicType = ()>
    + Clone
    + std::fmt::Debug
    + Serialize
    + DeserializeOwned
{
}

impl<K> Namespaced for K where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + Serialize
        + DeserializeOwned
{
}

/// A fresh cluster and the router for `provider`.
pub async fn routed(
    provider: MeshProvider,
    options: RouterOptions,
) -> (Cluster, Arc<dyn TrafficRouter>) {
    let c = cluster().await;
    let router = router_for(provider, c.client.clone(), options).unwrap();
    (c, router)
}

impl Cluster {
    pub fn api<K: Namespaced>(&self) -> Api<K> {
        Api::default_namespaced(self.client.clone())
    }

    /// The stored object as JSON.
    pub async fn json<K: Namespaced>(&self, name: &str) -> Value {
        serde_json::to_value(self.api::<K>().get(name).await.unwrap()).unwrap()
    }

    pub async fn resource_version<K: Namespaced>(&self, name: &str) -> String {
        self.api::<K>()
            .get(name)
            .await
            .unwrap()
            .resource_version()
            .unwrap()
    }

    /// A user's edit: a JSON merge patch under another field manager.
    pub async fn user_edit<K: Namespaced>(&self, name: &str, patch: Value) {
        let params = PatchParams {
            field_manager: Some("kubectl-edit".into()),
            ..Default::default()
        };
        self.api::<K>()
            .patch(name, &params, &Patch::Merge(&patch))
            .await
            .unwrap();
    }

    /// A user's server-side apply of `spec` fields under another field manager, taking over
    /// conflicting fields as `kubectl apply --server-side --force-conflicts` does.
    pub async fn user_apply<K: Namespaced>(&self, name: &str, spec: Value) {
        let body = serde_json::json!({
            "apiVersion": K::api_version(&()),
            "kind": K::kind(&()),
            "metadata": {"name": name},
            "spec": spec,
        });
        self.api::<K>()
            .patch(
                name,
                &PatchParams::apply("platform-team").force(),
                &Patch::Apply(&body),
            )
            .await
            .unwrap();
    }

    /// Checks that the object is controlled by the Rollout.
    pub async fn assert_owned<K: Namespaced>(&self, name: &str) {
        let object = self.api::<K>().get(name).await.unwrap();
        let owners = object.owner_references();
        assert_eq!(owners.len(), 1, "{name}: {owners:?}");
        assert_eq!(Some(&owners[0].uid), self.owner.metadata.uid.as_ref());
        assert_eq!(owners[0].controller, Some(true));
    }

    /// Deletes the owning Rollout.
    pub async fn delete_owner(&self) {
        let rollouts: Api<Rollout> = self.api();
        rollouts
            .delete(&self.owner.name_any(), &DeleteParams::background())
            .await
            .unwrap();
    }

    /// Waits until the garbage collector removed the objects.
    pub async fn wait_until_collected<K: Namespaced>(&self, names: &[String]) {
        let api = self.api::<K>();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        for name in names {
            while api.get_opt(name).await.unwrap().is_some() {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{name} was not garbage-collected"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Shifts the split from 0 to 100 % canary in steps of 10 and reads each split back.
pub async fn shift_weights(router: &dyn TrafficRouter, route: &Route) {
    for canary in (0..=100).step_by(10) {
        let set = router
            .set_weights(route, 100 - canary, canary)
            .await
            .unwrap();
        assert_eq!((set.primary(), set.canary()), (100 - canary, canary));
        assert_eq!(router.weights(route).await.unwrap(), set);
    }
}

/// Invalid splits fail with a typed error and leave the object untouched.
pub async fn assert_invalid_weights_write_nothing<K: Namespaced>(
    cluster: &Cluster,
    router: &dyn TrafficRouter,
) {
    let before = cluster.resource_version::<K>(APP).await;
    for (primary, canary) in [(60, 50), (101, 0), (0, 101), (40, 40)] {
        let error = router
            .set_weights(&cluster.route, primary, canary)
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                RouterError::InvalidWeights(WeightError::Range { .. } | WeightError::Sum { .. })
            ),
            "{primary}/{canary}: {error:?}"
        );
        assert!(error.is_permanent());
    }
    assert_eq!(cluster.resource_version::<K>(APP).await, before);
}

/// `change` needs `feature`, which the router lacks: a typed error, and the object is untouched.
pub async fn assert_unsupported_writes_nothing<K: Namespaced>(
    cluster: &Cluster,
    router: &dyn TrafficRouter,
    change: RouteChange,
    feature: Feature,
) {
    assert!(!router.supports(feature));
    let before = cluster.resource_version::<K>(APP).await;
    let error = router.apply(&cluster.route, change).await.unwrap_err();
    assert!(
        matches!(error, RouterError::Unsupported { provider, feature: f } if provider == router.provider() && f == feature),
        "{error:?}"
    );
    assert!(error.is_permanent());
    assert_eq!(cluster.resource_version::<K>(APP).await, before);
}

pub fn weights(primary: u32, canary: u32) -> Weights {
    Weights::new(primary, canary).unwrap()
}
