//! The RBAC kinds through the real kube client: discovery, validation (rules need verbs, a binding's
//! roleRef never changes), defaults, names with colons, server-side printing, the bootstrap
//! `cluster-admin` policy and ClusterRole aggregation.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod common;

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::discovery::{Discovery, Scope};
use serde_json::{Value, json};

use autopilot_testkit::ApiServer;
use common::{api_error, assert_refused, column_names, eventually};

fn object<T: serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).unwrap()
}

#[tokio::test]
async fn rbac_kinds_are_discovered_with_their_scope() {
    let server = ApiServer::start().await.unwrap();
    let discovery = Discovery::new(server.client()).run().await.unwrap();
    let rbac: Vec<_> = discovery
        .groups()
        .filter(|g| g.name() == "rbac.authorization.k8s.io")
        .flat_map(|g| g.recommended_resources())
        .collect();
    let scope = |kind: &str| {
        let (_, caps) = rbac.iter().find(|(r, _)| r.kind == kind).unwrap();
        caps.scope.clone()
    };
    assert_eq!(scope("Role"), Scope::Namespaced);
    assert_eq!(scope("RoleBinding"), Scope::Namespaced);
    assert_eq!(scope("ClusterRole"), Scope::Cluster);
    assert_eq!(scope("ClusterRoleBinding"), Scope::Cluster);

    let request = http::Request::get("/apis/rbac.authorization.k8s.io/v1")
        .body(Vec::new())
        .unwrap();
    let list: Value = server.client().request(request).await.unwrap();
    let roles = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "clusterroles")
        .unwrap();
    assert_eq!(roles["verbs"].as_array().unwrap().len(), 8);
    assert!(roles.get("shortNames").is_none() && roles.get("categories").is_none());
}

#[tokio::test]
async fn policy_rules_are_validated() {
    let server = ApiServer::start().await.unwrap();
    let roles: Api<Role> = Api::namespaced(server.client(), "default");
    let no_verbs = object(json!({
        "metadata": {"name": "reader"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": []}]
    }));
    let status = api_error(
        roles
            .create(&PostParams::default(), &no_verbs)
            .await
            .unwrap_err(),
    );
    assert_eq!(status.code, 422);
    assert_eq!(
        status.message,
        "Role.rbac.authorization.k8s.io \"reader\" is invalid: rules[0].verbs: Required value: verbs must contain at least one value"
    );

    // Names are path segments: colons are fine, slashes are not.
    let cluster_roles: Api<ClusterRole> = Api::all(server.client());
    let system = object(json!({
        "metadata": {"name": "system:autopilot:reader"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
                  {"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]
    }));
    let created = cluster_roles
        .create(&PostParams::default(), &system)
        .await
        .unwrap();
    assert_eq!(
        created.metadata.name.as_deref(),
        Some("system:autopilot:reader")
    );
    let fetched = cluster_roles.get("system:autopilot:reader").await.unwrap();
    assert_eq!(fetched.rules.unwrap().len(), 2);
    let slashed = object(json!({"metadata": {"name": "a/b"}}));
    let status = api_error(
        cluster_roles
            .create(&PostParams::default(), &slashed)
            .await
            .unwrap_err(),
    );
    let ending = r#"metadata.name: Invalid value: "a/b": may not contain '/'"#;
    assert_refused(&status, 422, ending);
}

#[tokio::test]
async fn a_bindings_role_ref_never_changes() {
    let server = ApiServer::start().await.unwrap();
    let bindings: Api<RoleBinding> = Api::namespaced(server.client(), "default");
    let binding = object(json!({
        "metadata": {"name": "readers"},
        "roleRef": {"kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "User", "name": "jane"}]
    }));
    let created = bindings
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    // Defaults fill the API groups the object left out.
    assert_eq!(
        created.role_ref.api_group.as_deref(),
        Some("rbac.authorization.k8s.io")
    );
    assert_eq!(
        created.subjects.unwrap()[0].api_group.as_deref(),
        Some("rbac.authorization.k8s.io")
    );

    let params = PatchParams::default();
    let more_subjects =
        json!({"subjects": [{"kind": "User", "name": "jane"}, {"kind": "Group", "name": "devs"}]});
    let patched = bindings
        .patch("readers", &params, &Patch::Merge(&more_subjects))
        .await
        .unwrap();
    assert_eq!(patched.subjects.unwrap().len(), 2);

    let other_role = json!({"roleRef": {"name": "edit"}});
    let status = api_error(
        bindings
            .patch("readers", &params, &Patch::Merge(&other_role))
            .await
            .unwrap_err(),
    );
    assert_eq!(status.reason, "Invalid");
    let ending = r#"roleRef: Invalid value: rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", Kind:"ClusterRole", Name:"edit"}: cannot change roleRef"#;
    assert_refused(&status, 422, ending);
    assert_eq!(bindings.get("readers").await.unwrap().role_ref.name, "view");

    // A ClusterRoleBinding may only grant a ClusterRole, and its service accounts need a namespace.
    let cluster_bindings: Api<ClusterRoleBinding> = Api::all(server.client());
    let wrong = object(json!({
        "metadata": {"name": "ops"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "ops"},
        "subjects": [{"kind": "ServiceAccount", "name": "op"}]
    }));
    let status = api_error(
        cluster_bindings
            .create(&PostParams::default(), &wrong)
            .await
            .unwrap_err(),
    );
    assert_eq!(
        status.message,
        "ClusterRoleBinding.rbac.authorization.k8s.io \"ops\" is invalid: [roleRef.kind: Unsupported value: \"Role\": supported values: \"ClusterRole\", subjects[0].namespace: Required value]"
    );
}

#[tokio::test]
async fn rbac_objects_print_like_the_server_and_delete_with_a_status() {
    let server = ApiServer::start().await.unwrap();
    let cluster_roles: Api<ClusterRole> = Api::all(server.client());
    let role = object(json!({"metadata": {"name": "reader"}, "rules": []}));
    cluster_roles
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    let table = |path: &'static str| {
        let client = server.client();
        async move {
            let request = http::Request::get(path)
                .header("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
                .body(Vec::new())
                .unwrap();
            client.request::<Value>(request).await.unwrap()
        }
    };
    let roles = table("/apis/rbac.authorization.k8s.io/v1/clusterroles").await;
    assert_eq!(column_names(&roles), ["Name", "Created At"]);
    let names: Vec<&Value> = roles["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| &row["cells"][0])
        .collect();
    assert_eq!(names, [&json!("cluster-admin"), &json!("reader")]);

    let bindings: Api<ClusterRoleBinding> = Api::all(server.client());
    let binding = object(json!({
        "metadata": {"name": "readers"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "op", "namespace": "ops"}]
    }));
    bindings
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    let printed = table("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings").await;
    let cells = &printed["rows"][1]["cells"];
    assert_eq!(
        (&cells[0], &cells[1], &cells[5]),
        (
            &json!("readers"),
            &json!("ClusterRole/reader"),
            &json!("ops/op")
        )
    );

    // Deleting answers a Status, as for the other kinds without graceful deletion.
    let deleted = cluster_roles
        .delete("reader", &DeleteParams::default())
        .await
        .unwrap();
    assert!(deleted.is_right(), "{deleted:?}");
}

#[tokio::test]
async fn a_fresh_server_has_the_cluster_admin_policy() {
    let server = ApiServer::start().await.unwrap();
    let role = Api::<ClusterRole>::all(server.client())
        .get("cluster-admin")
        .await
        .unwrap();
    let rules = role.rules.unwrap();
    assert_eq!(rules[0].verbs, ["*"]);
    assert_eq!(
        rules[1].non_resource_urls.as_deref(),
        Some(&["*".to_string()][..])
    );
    let binding = Api::<ClusterRoleBinding>::all(server.client())
        .get("cluster-admin")
        .await
        .unwrap();
    assert_eq!(binding.subjects.unwrap()[0].name, "system:masters");
}

#[tokio::test]
async fn aggregated_cluster_roles_collect_the_rules_of_the_roles_they_select() {
    let server = ApiServer::start().await.unwrap();
    let roles: Api<ClusterRole> = Api::all(server.client());
    let params = PostParams::default();
    let aggregated = object(json!({
        "metadata": {"name": "monitoring"},
        "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"example.com/aggregate-to-monitoring": "true"}}]}
    }));
    roles.create(&params, &aggregated).await.unwrap();
    let part = |name: &str, resource: &str| {
        object::<ClusterRole>(json!({
            "metadata": {"name": name, "labels": {"example.com/aggregate-to-monitoring": "true"}},
            "rules": [{"apiGroups": [""], "resources": [resource], "verbs": ["get", "list"]},
                      {"apiGroups": [""], "resources": ["events"], "verbs": ["list"]}]
        }))
    };
    roles
        .create(&params, &part("pods-reader", "pods"))
        .await
        .unwrap();
    roles
        .create(&params, &part("b-services-reader", "services"))
        .await
        .unwrap();
    let resources = |role: ClusterRole| -> Vec<String> {
        role.rules
            .unwrap_or_default()
            .into_iter()
            .flat_map(|rule| rule.resources.unwrap_or_default())
            .collect()
    };
    // In the picked roles' name order, the shared rule once.
    eventually("the rules are aggregated", || async {
        resources(roles.get("monitoring").await.unwrap()) == ["services", "events", "pods"]
    })
    .await;
    roles
        .delete("b-services-reader", &DeleteParams::default())
        .await
        .unwrap();
    eventually("a deleted role's rules go", || async {
        resources(roles.get("monitoring").await.unwrap()) == ["pods", "events"]
    })
    .await;
}
