//! The canary operator.
//!
//! - No cluster configured: runs the embedded demo (in-process API server, synthetic traffic, a real
//!   Prometheus) and exits when both rollouts are done.
//! - `KUBECONFIG` set, `--kubeconfig FILE` given, or running in a pod: runs as an operator against
//!   that cluster, configured like every autopilot operator (flags, `AUTOPILOT_*`, a YAML file).
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
    let mut args: Vec<String> = std::env::args().collect();
    if args.iter().any(|arg| arg == "--print-crd") {
        use kube::CustomResourceExt;
        print!(
            "{}",
            serde_saphyr::to_string(&autopilot_examples::canary::spec::Canary::crd())?
        );
        return Ok(());
    }
    let kubeconfig = match args.iter().position(|arg| arg == "--kubeconfig") {
        Some(at) if at + 1 < args.len() => {
            let path = args.remove(at + 1);
            args.remove(at);
            Some(path)
        }
        _ => None,
    };
    let in_cluster = std::env::var_os("KUBERNETES_SERVICE_HOST").is_some();
    if kubeconfig.is_none() && std::env::var_os("KUBECONFIG").is_none() && !in_cluster {
        return run_demo().await;
    }

    let file = std::env::var("AUTOPILOT_CONFIG")
        .ok()
        .map(std::fs::read_to_string)
        .transpose()?;
    let config =
        OperatorConfig::from_sources(file.as_deref(), |name| std::env::var(name).ok(), args)?;
    autopilot::observability::init_logging(&config.log)?;
    let client = match kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)?;
            let options = kube::config::KubeConfigOptions::default();
            kube::Client::try_from(
                kube::Config::from_custom_kubeconfig(kubeconfig, &options).await?,
            )?
        }
        None => kube::Client::try_default().await?,
    };
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
