//! The canary operator.
//!
//! - No cluster configured: runs the embedded demo (in-process API server, synthetic traffic, a real
//!   Prometheus) and exits when both rollouts are done.
//! - A kubeconfig named (`--kubeconfig`, `AUTOPILOT_KUBECONFIG`, `kubeconfig:` in the config file, or
//!   `KUBECONFIG`) or running in a pod: runs as an operator against that cluster, configured like every
//!   autopilot operator (flags, `AUTOPILOT_*`, a YAML file).
//!
//! ```sh
//! cargo run --example canary                                   # the demo
//! cargo run --example canary -- --print-crd | kubectl apply -f - # install the Canary CRD
//! cargo run --example canary -- --kubeconfig ~/.kube/config --mesh-provider istio \
//!     --prometheus-url http://localhost:9090                    # a real cluster
//! ```

use autopilot::Operator;
use autopilot::config::OperatorConfig;
use autopilot_examples::canary::demo::{self, DemoOptions};
use autopilot_examples::canary::phases::{Deps, handlers};
use autopilot_examples::canary::{http_client, operator};
use autopilot_mesh::{GatewayRef, MeshProvider, RouterOptions, router_for};
use autopilot_metrics::{ClientOptions, PrometheusClient};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args().any(|arg| arg == "--print-crd") {
        use kube::CustomResourceExt;
        print!(
            "{}",
            serde_saphyr::to_string(&autopilot_examples::canary::spec::Canary::crd())?
        );
        return Ok(());
    }
    let config = OperatorConfig::load()?;
    let in_cluster = std::env::var_os("KUBERNETES_SERVICE_HOST").is_some();
    if config.kubeconfig.is_none() && std::env::var_os("KUBECONFIG").is_none() && !in_cluster {
        return run_demo().await;
    }
    autopilot::observability::init_logging(&config.log)?;
    let client = config.client().await?;
    let mesh: MeshProvider = config.mesh_provider.to_string().parse()?;
    let mut options = RouterOptions::default();
    // Gateway API routes attach to the Gateway named by CANARY_GATEWAY (`namespace/name`).
    if let Ok(gateway) = std::env::var("CANARY_GATEWAY") {
        let (namespace, name) = gateway.split_once('/').ok_or_else(|| {
            anyhow::anyhow!("CANARY_GATEWAY must be namespace/name, not {gateway:?}")
        })?;
        options = options.with_gateway(GatewayRef::new(namespace, name));
    }
    let deps = Deps {
        router: router_for(mesh, client.clone(), options)?,
        prometheus: PrometheusClient::new(&config.prometheus_url, ClientOptions::default())?,
        queries: mesh.metrics_provider(),
        http: http_client()?,
    };
    operator(Operator::new(client, config, handlers()), deps)
        .run()
        .await?;
    Ok(())
}

async fn run_demo() -> anyhow::Result<()> {
    let mut options = DemoOptions::default();
    if let Ok(provider) = std::env::var("AUTOPILOT_MESH_PROVIDER") {
        options.provider = provider.parse()?;
    }
    let mut out = std::io::stdout();
    demo::run(options, &mut out).await
}
