//! Request paths: which endpoint a URL path names.

/// A path under `/api` or `/apis` that addresses resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcePath {
    /// API group ("" for core).
    pub group: String,
    /// Version.
    pub version: String,
    /// Namespace segment, when the path has one.
    pub namespace: Option<String>,
    /// Plural resource name.
    pub plural: String,
    /// Object name.
    pub name: Option<String>,
    /// Subresource (`status`, `scale`, `finalize`).
    pub subresource: Option<String>,
    /// Whether the legacy `/watch/` prefix was used.
    pub watch: bool,
}

/// The endpoint a path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/version`.
    Version,
    /// `/healthz`, `/livez`, `/readyz`.
    Health,
    /// `/api`.
    CoreVersions,
    /// `/apis`.
    Groups,
    /// `/apis/{group}`.
    Group(String),
    /// `/api/v1`, `/apis/{group}/{version}`.
    GroupVersion(String, String),
    /// `/openapi/v2`.
    OpenApiV2,
    /// `/openapi/v3`.
    OpenApiV3Index,
    /// `/openapi/v3/api/v1`, `/openapi/v3/apis/{group}/{version}`.
    OpenApiV3(String, String),
    /// A resource path.
    Resource(ResourcePath),
    /// Anything else.
    Unknown,
}

/// Names the endpoint of `path`.
pub fn route(path: &str) -> Route {
    let segments: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    match segments.as_slice() {
        ["version"] => Route::Version,
        ["healthz" | "livez" | "readyz", ..] => Route::Health,
        ["api"] => Route::CoreVersions,
        ["apis"] => Route::Groups,
        ["apis", group] => Route::Group((*group).to_string()),
        ["api", version] => Route::GroupVersion(String::new(), (*version).to_string()),
        ["apis", group, version] => {
            Route::GroupVersion((*group).to_string(), (*version).to_string())
        }
        ["openapi", "v2"] => Route::OpenApiV2,
        ["openapi", "v3"] => Route::OpenApiV3Index,
        ["openapi", "v3", "api", version] => {
            Route::OpenApiV3(String::new(), (*version).to_string())
        }
        ["openapi", "v3", "apis", group, version] => {
            Route::OpenApiV3((*group).to_string(), (*version).to_string())
        }
        ["api", version, rest @ ..] => resource("", version, rest),
        ["apis", group, version, rest @ ..] => resource(group, version, rest),
        _ => Route::Unknown,
    }
}

fn resource(group: &str, version: &str, rest: &[&str]) -> Route {
    let (watch, rest) = match rest {
        ["watch", rest @ ..] => (true, rest),
        _ => (false, rest),
    };
    let namespace_subresource =
        group.is_empty() && matches!(rest, ["namespaces", _, "status" | "finalize"]);
    let (namespace, rest) = match rest {
        ["namespaces", namespace, rest @ ..] if !rest.is_empty() && !namespace_subresource => {
            (Some((*namespace).to_string()), rest)
        }
        _ => (None, rest),
    };
    let owned = |s: &&str| (*s).to_string();
    let (plural, name, subresource) = match rest {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some(owned(name)), None),
        [plural, name, sub] => (*plural, Some(owned(name)), Some(owned(sub))),
        _ => return Route::Unknown,
    };
    Route::Resource(ResourcePath {
        group: group.to_string(),
        version: version.to_string(),
        namespace,
        plural: plural.to_string(),
        name,
        subresource,
        watch,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource_path(path: &str) -> ResourcePath {
        match route(path) {
            Route::Resource(r) => r,
            other => panic!("{path} routed to {other:?}"),
        }
    }

    #[test]
    fn namespaced_and_cluster_paths() {
        let p = resource_path("/apis/apps/v1/namespaces/ns/deployments/web/status");
        assert_eq!(
            (p.group.as_str(), p.namespace.as_deref(), p.plural.as_str()),
            ("apps", Some("ns"), "deployments")
        );
        assert_eq!(
            (p.name.as_deref(), p.subresource.as_deref()),
            (Some("web"), Some("status"))
        );
        let ns = resource_path("/api/v1/namespaces/team-a");
        assert_eq!(
            (ns.plural.as_str(), ns.name.as_deref()),
            ("namespaces", Some("team-a"))
        );
        let ns_status = resource_path("/api/v1/namespaces/team-a/status");
        assert_eq!(ns_status.subresource.as_deref(), Some("status"));
        assert!(ns_status.namespace.is_none());
        let all = resource_path("/api/v1/pods");
        assert!(all.namespace.is_none() && all.name.is_none());
        let watch = resource_path("/api/v1/watch/namespaces/ns/pods");
        assert!(watch.watch);
        assert_eq!(watch.namespace.as_deref(), Some("ns"));
    }

    #[test]
    fn discovery_paths() {
        assert_eq!(
            route("/apis/apps/v1"),
            Route::GroupVersion("apps".into(), "v1".into())
        );
        assert_eq!(route("/api"), Route::CoreVersions);
        assert_eq!(route("/apis/apps/v1/a/b/c/d"), Route::Unknown);
    }
}
