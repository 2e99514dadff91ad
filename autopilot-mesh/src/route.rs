//! What a router routes: the app, its services, the split between them and request matches.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Resource;

/// The routing target of one app: traffic addressed to the apex service `<app>` is split between the
/// services `<app>-primary` and `<app>-canary`, all on `port`, in `namespace`.
///
/// The routing objects are owned by `owner` (usually the custom resource driving the rollout), so
/// deleting it lets the garbage collector remove them.
///
/// ```
/// use autopilot_mesh::Route;
///
/// let route = Route::new("shop", "podinfo", 9898);
/// assert_eq!(route.primary_service(), "podinfo-primary");
/// assert_eq!(route.canary_service(), "podinfo-canary");
/// assert!(route.owner.is_none());
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Route {
    /// Namespace of the app, its services and the routing objects.
    pub namespace: String,
    /// App name: the apex service and the routing objects are named after it.
    pub app: String,
    /// Service port traffic is addressed to.
    pub port: u16,
    /// Owner reference put on every routing object.
    pub owner: Option<OwnerReference>,
}

impl Route {
    /// A route without owner.
    pub fn new(namespace: impl Into<String>, app: impl Into<String>, port: u16) -> Self {
        Self {
            namespace: namespace.into(),
            app: app.into(),
            port,
            owner: None,
        }
    }

    /// A route in `owner`'s namespace whose objects `owner` controls (they are deleted with it).
    ///
    /// Fails when `owner` has no namespace, name or uid yet (it was never stored).
    ///
    /// ```
    /// use autopilot_mesh::Route;
    /// use k8s_openapi::api::core::v1::ConfigMap;
    /// use kube::api::ObjectMeta;
    ///
    /// let owner = ConfigMap {
    ///     metadata: ObjectMeta {
    ///         name: Some("rollout".into()),
    ///         namespace: Some("shop".into()),
    ///         uid: Some("7d3c1a4e".into()),
    ///         ..Default::default()
    ///     },
    ///     ..Default::default()
    /// };
    /// let route = Route::owned_by(&owner, "podinfo", 9898).unwrap();
    /// assert_eq!(route.namespace, "shop");
    /// assert_eq!(route.owner.unwrap().controller, Some(true));
    /// ```
    pub fn owned_by<K>(owner: &K, app: impl Into<String>, port: u16) -> Result<Self, RouteError>
    where
        K: Resource<DynamicType = ()>,
    {
        let namespace = owner
            .meta()
            .namespace
            .clone()
            .ok_or(RouteError::NotStored)?;
        // No blockOwnerDeletion: setting it needs RBAC on the owner's finalizers.
        let reference = owner
            .controller_owner_ref(&())
            .ok_or(RouteError::NotStored)?;
        Ok(Self::new(namespace, app, port).with_owner(reference))
    }

    /// The same route with `owner` as the owner of its objects.
    pub fn with_owner(mut self, owner: OwnerReference) -> Self {
        self.owner = Some(owner);
        self
    }

    /// Name of the apex service and of the routing objects: `<app>`.
    pub fn apex_service(&self) -> &str {
        &self.app
    }

    /// Service of the stable version: `<app>-primary`.
    pub fn primary_service(&self) -> String {
        format!("{}-primary", self.app)
    }

    /// Service of the new version: `<app>-canary`.
    pub fn canary_service(&self) -> String {
        format!("{}-canary", self.app)
    }
}

/// Why a [`Route`] could not be built.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// The owner has no namespace, name or uid, so it cannot own anything yet.
    #[error("the owning object has no namespace, name or uid (was it stored?)")]
    NotStored,
}

/// A primary/canary split in percent: each in 0..=100, together 100.
///
/// ```
/// use autopilot_mesh::{WeightError, Weights};
///
/// let w = Weights::new(90, 10).unwrap();
/// assert_eq!((w.primary(), w.canary()), (90, 10));
/// assert_eq!(Weights::canary_share(25).unwrap(), Weights::new(75, 25).unwrap());
/// assert_eq!(Weights::new(60, 50), Err(WeightError::Sum { primary: 60, canary: 50 }));
/// assert_eq!(Weights::new(120, 0), Err(WeightError::Range { primary: 120, canary: 0 }));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Weights {
    primary: u8,
    canary: u8,
}

impl Weights {
    /// All traffic to the primary.
    pub const PRIMARY: Weights = Weights {
        primary: 100,
        canary: 0,
    };

    /// All traffic to the canary.
    pub const CANARY: Weights = Weights {
        primary: 0,
        canary: 100,
    };

    /// A validated split.
    pub fn new(primary: u32, canary: u32) -> Result<Self, WeightError> {
        if primary > 100 || canary > 100 {
            return Err(WeightError::Range { primary, canary });
        }
        if primary + canary != 100 {
            return Err(WeightError::Sum { primary, canary });
        }
        // Both are at most 100 here, so they fit in a u8.
        Ok(Self {
            primary: primary as u8,
            canary: canary as u8,
        })
    }

    /// `canary` percent to the canary, the rest to the primary.
    pub fn canary_share(canary: u32) -> Result<Self, WeightError> {
        Self::new(100u32.saturating_sub(canary), canary).map_err(|_| WeightError::Range {
            primary: 100u32.saturating_sub(canary),
            canary,
        })
    }

    /// The split that relative weights (as Gateway API and SMI use them) amount to, rounded to whole
    /// percent.
    ///
    /// ```
    /// use autopilot_mesh::Weights;
    ///
    /// assert_eq!(Weights::from_relative(3, 1).unwrap(), Weights::new(75, 25).unwrap());
    /// assert!(Weights::from_relative(0, 0).is_err());
    /// ```
    pub fn from_relative(primary: i64, canary: i64) -> Result<Self, WeightError> {
        let total = primary.checked_add(canary).filter(|t| *t > 0);
        match total {
            Some(total) if primary >= 0 && canary >= 0 => {
                let share = (primary as f64 * 100.0 / total as f64).round() as u32;
                Self::new(share, 100 - share.min(100))
            }
            _ => Err(WeightError::Relative { primary, canary }),
        }
    }

    /// Percent of traffic to the primary.
    pub fn primary(&self) -> u32 {
        self.primary.into()
    }

    /// Percent of traffic to the canary.
    pub fn canary(&self) -> u32 {
        self.canary.into()
    }
}

/// Why a primary/canary split is invalid.
#[derive(thiserror::Error, Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightError {
    /// A weight is above 100.
    #[error("weights must be within 0..=100, got primary {primary} and canary {canary}")]
    Range {
        /// The primary weight given.
        primary: u32,
        /// The canary weight given.
        canary: u32,
    },
    /// Relative weights are negative or all zero.
    #[error(
        "relative weights must be non-negative and not all zero, got primary {primary} and canary {canary}"
    )]
    Relative {
        /// The primary weight found.
        primary: i64,
        /// The canary weight found.
        canary: i64,
    },
    /// The weights do not add up to 100.
    #[error("weights must sum to 100, got primary {primary} + canary {canary}")]
    Sum {
        /// The primary weight given.
        primary: u32,
        /// The canary weight given.
        canary: u32,
    },
}

/// The share of requests copied to the canary while the primary serves them: in (0, 100].
///
/// ```
/// use autopilot_mesh::MirrorShare;
///
/// assert_eq!(MirrorShare::new(25.0).unwrap().percent(), 25.0);
/// assert!(MirrorShare::new(0.0).is_err());
/// assert!(MirrorShare::new(f64::NAN).is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MirrorShare(f64);

impl MirrorShare {
    /// Mirror every request.
    pub const ALL: MirrorShare = MirrorShare(100.0);

    /// A validated share in percent.
    pub fn new(percent: f64) -> Result<Self, MirrorShareError> {
        if percent > 0.0 && percent <= 100.0 {
            Ok(Self(percent))
        } else {
            Err(MirrorShareError(percent))
        }
    }

    /// The share in percent.
    pub fn percent(&self) -> f64 {
        self.0
    }
}

/// A mirror share outside (0, 100].
#[derive(thiserror::Error, Debug, Clone, Copy, PartialEq)]
#[error("mirror share must be within (0, 100] percent, got {0}")]
pub struct MirrorShareError(pub f64);

/// A request condition that sends matching requests to the canary (A/B testing).
///
/// ```
/// use autopilot_mesh::{RequestMatch, ValueMatch};
///
/// let by_header = RequestMatch::header("x-canary", ValueMatch::Exact("insider".into()));
/// let by_cookie = RequestMatch::cookie("canary", "always");
/// assert_ne!(by_header, by_cookie);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestMatch {
    /// A request header satisfies a condition.
    Header {
        /// Header name (matched case-insensitively by the proxies).
        name: String,
        /// The condition on its value.
        value: ValueMatch,
    },
    /// The `Cookie` header carries `name=value`.
    Cookie {
        /// Cookie name.
        name: String,
        /// Exact cookie value.
        value: String,
    },
}

impl RequestMatch {
    /// A header condition.
    pub fn header(name: impl Into<String>, value: ValueMatch) -> Self {
        Self::Header {
            name: name.into(),
            value,
        }
    }

    /// A cookie condition.
    pub fn cookie(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self::Cookie {
            name: name.into(),
            value: value.into(),
        }
    }

    /// The condition as a header name and value condition (cookies become a regex on `cookie`).
    pub(crate) fn as_header(&self) -> (String, ValueMatch) {
        match self {
            Self::Header { name, value } => (name.to_ascii_lowercase(), value.clone()),
            Self::Cookie { name, value } => (
                "cookie".to_owned(),
                ValueMatch::Regex(format!(
                    "^(.*?;\\s*)?({}={})(;.*)?$",
                    escape_regex(name),
                    escape_regex(value)
                )),
            ),
        }
    }
}

/// A condition on a string value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ValueMatch {
    /// Equal to this.
    Exact(String),
    /// Starts with this.
    Prefix(String),
    /// Matches this RE2 regular expression (whole value).
    Regex(String),
}

impl ValueMatch {
    /// The condition as an anchored regular expression.
    pub(crate) fn to_regex(&self) -> String {
        match self {
            Self::Exact(v) => format!("^{}$", escape_regex(v)),
            Self::Prefix(v) => format!("^{}.*", escape_regex(v)),
            Self::Regex(v) => v.clone(),
        }
    }
}

/// Escapes RE2 meta characters so `text` matches literally.
fn escape_regex(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_becomes_an_anchored_regex_on_the_cookie_header() {
        let (name, value) = RequestMatch::cookie("canary", "a.b").as_header();
        assert_eq!(name, "cookie");
        assert_eq!(
            value,
            ValueMatch::Regex("^(.*?;\\s*)?(canary=a\\.b)(;.*)?$".into())
        );
    }

    #[test]
    fn prefix_and_exact_become_escaped_regexes() {
        assert_eq!(ValueMatch::Prefix("v1.2".into()).to_regex(), "^v1\\.2.*");
        assert_eq!(ValueMatch::Exact("a+b".into()).to_regex(), "^a\\+b$");
    }

    #[test]
    fn an_owner_that_was_never_stored_cannot_own_routes() {
        use k8s_openapi::api::core::v1::ConfigMap;
        let mut owner = ConfigMap::default();
        owner.metadata.name = Some("rollout".into());
        owner.metadata.namespace = Some("shop".into());
        assert_eq!(
            Route::owned_by(&owner, "podinfo", 80),
            Err(RouteError::NotStored)
        );
    }

    #[test]
    fn canary_share_rejects_more_than_everything() {
        assert_eq!(
            Weights::canary_share(101),
            Err(WeightError::Range {
                primary: 0,
                canary: 101
            })
        );
        assert_eq!(Weights::canary_share(0), Ok(Weights::PRIMARY));
        assert_eq!(Weights::canary_share(100), Ok(Weights::CANARY));
    }
}
