use autopilot_mesh::{ConfigError, Feature, GatewayRef, MeshProvider, RouterOptions, router_for};

use crate::cluster::cluster;

#[tokio::test]
async fn the_configured_provider_picks_the_router_and_unknown_ones_are_errors() {
    let c = cluster().await;
    let options = RouterOptions::default().with_gateway(GatewayRef::new("ingress", "public"));
    for name in ["istio", "linkerd", "smi", "gatewayapi", " Istio "] {
        let provider: MeshProvider = name.parse().unwrap();
        let router = router_for(provider, c.client.clone(), options.clone()).unwrap();
        assert_eq!(router.provider(), provider);
        assert_eq!(
            router.supports(Feature::Mirroring),
            matches!(provider, MeshProvider::Istio | MeshProvider::GatewayApi)
        );
    }
    for name in ["consul", "", "gateway api"] {
        assert_eq!(
            name.parse::<MeshProvider>(),
            Err(ConfigError::UnknownProvider(name.into()))
        );
    }
    let error = router_for(
        MeshProvider::GatewayApi,
        c.client.clone(),
        RouterOptions::default(),
    )
    .unwrap_err();
    assert_eq!(error, ConfigError::MissingGateway);

    // The configuration file spells providers the same way.
    let parsed: Vec<MeshProvider> =
        serde_json::from_str(r#"["istio","linkerd","smi","gatewayapi"]"#).unwrap();
    assert_eq!(parsed, MeshProvider::ALL);
    assert!(serde_json::from_str::<MeshProvider>(r#""nginx""#).is_err());
    assert_eq!(
        serde_json::to_string(&MeshProvider::GatewayApi).unwrap(),
        r#""gatewayapi""#
    );
}
