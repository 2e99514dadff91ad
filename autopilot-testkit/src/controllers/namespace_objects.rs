//! What kube-controller-manager puts in every active namespace: the `default` ServiceAccount (the
//! service account controller) and the `kube-root-ca.crt` ConfigMap (the root CA publisher). Both
//! come back when deleted, the ConfigMap's content is restored when changed, and both go with their
//! namespace.

use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::meta;
use crate::store::{Change, EventType};
use crate::write::WriteParams;

/// The ServiceAccount pods run as when they name none.
const DEFAULT_SERVICE_ACCOUNT: &str = "default";
/// The ConfigMap holding the CA bundle that verifies the API server.
const ROOT_CA_CONFIG_MAP: &str = "kube-root-ca.crt";

const DESCRIPTION_ANNOTATION: &str = "kubernetes.io/description";
const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";
const MANAGER: &str = "kube-controller-manager";

/// A self-signed test CA (`CN=kubernetes`, EC P-256); the server speaks plain HTTP, so nothing is signed by it.
const ROOT_CA_CERTIFICATE: &str = "-----BEGIN CERTIFICATE-----
MIIBkDCCATegAwIBAgIUYZcmeVpcwCIAf5fkbFY7IBxgxOowCgYIKoZIzj0EAwIw
FTETMBEGA1UEAwwKa3ViZXJuZXRlczAgFw0yNjExMjUxNzAyNTBaGA8yMTI2MTEw
MTE3MDI1MFowFTETMBEGA1UEAwwKa3ViZXJuZXRlczBZMBMGByqGSM49AgEGCCqG
SM49AwEHA0IABMsz06n3sP3GZiftz+FIZkMJnsFPOHjnnEksHJ4KirYwAhQCH3Tt
TcbF1cMA6C6qAzO1eeQFAYEHjFjgjaattIyjYzBhMB0GA1UdDgQWBBQXwKk0KeeP
YzpjMFz219eBX9QMYTAfBgNVHSMEGDAWgBQXwKk0KeePYzpjMFz219eBX9QMYTAP
BgNVHRMBAf8EBTADAQH/MA4GA1UdDwEB/wQEAwICpDAKBggqhkjOPQQDAgNHADBE
AiARTQVpRV5vTJsnxgjHczBr6ZgPF0X6NYjPwEhMsw0//AIgcpQsfJ2lRwzVp3cv
eRAWVjc1aNul2T8m0UArLGulQmo=
-----END CERTIFICATE-----
";

pub(super) fn on_change(cluster: &Cluster, change: &Change) {
    let (namespace, name) = (&change.key.0, &change.key.1);
    match (&*change.storage, change.event) {
        ("/namespaces", EventType::Added) => ensure(cluster, name),
        ("/serviceaccounts", EventType::Deleted)
            if name == DEFAULT_SERVICE_ACCOUNT && active(cluster, namespace) =>
        {
            create_service_account(cluster, namespace);
        }
        ("/configmaps", EventType::Deleted)
            if name == ROOT_CA_CONFIG_MAP && active(cluster, namespace) =>
        {
            create_root_ca(cluster, namespace);
        }
        ("/configmaps", EventType::Modified)
            if name == ROOT_CA_CONFIG_MAP
                && !change.summary().deleting
                && !publishes_root_ca(change.stored().object()) =>
        {
            restore_root_ca(cluster, namespace);
        }
        _ => {}
    }
}

pub(super) fn sweep(cluster: &Cluster) {
    let Some(namespaces) = cluster.builtin("", "namespaces") else {
        return;
    };
    for (_, name) in cluster.store.keys(&namespaces.storage, None) {
        ensure(cluster, &name);
    }
}

/// Creates what is missing in `namespace`, unless it is gone or being deleted.
fn ensure(cluster: &Cluster, namespace: &str) {
    if !active(cluster, namespace) {
        return;
    }
    for (plural, name) in [
        ("serviceaccounts", DEFAULT_SERVICE_ACCOUNT),
        ("configmaps", ROOT_CA_CONFIG_MAP),
    ] {
        let present = cluster.builtin("", plural).is_some_and(|resource| {
            let key = (namespace.to_string(), name.to_string());
            cluster.store.get(&resource.storage, &key).is_some()
        });
        if present {
            continue;
        }
        if plural == "serviceaccounts" {
            create_service_account(cluster, namespace);
        } else {
            create_root_ca(cluster, namespace);
        }
    }
}

fn active(cluster: &Cluster, namespace: &str) -> bool {
    cluster.builtin("", "namespaces").is_some_and(|namespaces| {
        let key = (String::new(), namespace.to_string());
        cluster
            .store
            .get(&namespaces.storage, &key)
            .is_some_and(|ns| !ns.summary.deleting)
    })
}

fn create(cluster: &Cluster, plural: &str, namespace: &str, object: Value) {
    let Some(resource) = cluster.builtin("", plural) else {
        return;
    };
    let params = WriteParams {
        dry_run: false,
        field_manager: MANAGER.to_string(),
    };
    if let Err(error) = cluster.create(&resource, Some(namespace), object, &params) {
        // Someone created it first, or the namespace went away meanwhile.
        tracing::debug!(%error, namespace, plural, "cannot create a namespace's default object");
    }
}

fn create_service_account(cluster: &Cluster, namespace: &str) {
    let account = json!({
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": { "name": DEFAULT_SERVICE_ACCOUNT },
    });
    create(cluster, "serviceaccounts", namespace, account);
}

fn create_root_ca(cluster: &Cluster, namespace: &str) {
    let config_map = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": ROOT_CA_CONFIG_MAP,
            "annotations": { DESCRIPTION_ANNOTATION: DESCRIPTION },
        },
        "data": { "ca.crt": ROOT_CA_CERTIFICATE },
    });
    create(cluster, "configmaps", namespace, config_map);
}

/// Whether the ConfigMap holds exactly the CA bundle and says what it is for.
fn publishes_root_ca(config_map: &Value) -> bool {
    config_map.get("data") == Some(&json!({ "ca.crt": ROOT_CA_CERTIFICATE }))
        && config_map
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(DESCRIPTION_ANNOTATION))
            .is_some()
}

/// Puts the CA bundle back, as the publisher does after someone changed it.
fn restore_root_ca(cluster: &Cluster, namespace: &str) {
    let Some(resource) = cluster.builtin("", "configmaps") else {
        return;
    };
    let result = cluster.edit(
        &resource,
        Some(namespace),
        ROOT_CA_CONFIG_MAP,
        |config_map| {
            config_map["data"] = json!({ "ca.crt": ROOT_CA_CERTIFICATE });
            config_map.as_object_mut().map(|o| o.remove("binaryData"));
            let annotations = meta::metadata_mut(config_map)
                .entry("annotations")
                .or_insert_with(|| json!({}));
            if let Some(annotations) = annotations.as_object_mut() {
                annotations
                    .entry(DESCRIPTION_ANNOTATION)
                    .or_insert_with(|| json!(DESCRIPTION));
            }
        },
    );
    if let Err(error) = result {
        tracing::debug!(%error, namespace, "cannot restore the root CA config map");
    }
}
