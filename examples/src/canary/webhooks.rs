//! Calling the analysis webhooks: a 2xx answer within the timeout passes, anything else fails.

use std::time::Duration;

use serde_json::json;

use super::spec::{Webhook, WebhookType};

/// Why a webhook did not pass.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The timeout is not a duration.
    #[error("webhook {name}: invalid timeout `{timeout}`")]
    Timeout {
        /// The webhook.
        name: String,
        /// What was configured.
        timeout: String,
    },
    /// No answer in time, or no connection.
    #[error("webhook {name} unreachable: {source}")]
    Unreachable {
        /// The webhook.
        name: String,
        /// What the client said.
        #[source]
        source: reqwest::Error,
    },
    /// An answer other than 2xx.
    #[error("webhook {name} answered {status}")]
    Refused {
        /// The webhook.
        name: String,
        /// The HTTP status.
        status: u16,
    },
}

/// What a webhook is told about the rollout.
#[derive(Clone, Debug)]
pub struct Payload<'a> {
    /// The Canary's name.
    pub name: &'a str,
    /// Its namespace.
    pub namespace: &'a str,
    /// Its current phase.
    pub phase: &'a str,
}

/// Calls every webhook of `type_`, in order; the first failure is returned.
///
/// # Errors
/// The first webhook that did not answer 2xx in time.
pub async fn call_all(
    http: &reqwest::Client,
    webhooks: &[Webhook],
    type_: WebhookType,
    payload: &Payload<'_>,
) -> Result<(), WebhookError> {
    for webhook in webhooks.iter().filter(|hook| hook.type_ == type_) {
        call(http, webhook, payload).await?;
    }
    Ok(())
}

/// Calls one webhook.
///
/// # Errors
/// When it does not answer 2xx within its timeout.
pub async fn call(
    http: &reqwest::Client,
    webhook: &Webhook,
    payload: &Payload<'_>,
) -> Result<(), WebhookError> {
    let timeout =
        autopilot::config::parse_duration(&webhook.timeout).map_err(|_| WebhookError::Timeout {
            name: webhook.name.clone(),
            timeout: webhook.timeout.clone(),
        })?;
    let body = json!({
        "name": payload.name,
        "namespace": payload.namespace,
        "phase": payload.phase,
        "type": webhook.type_,
        "metadata": webhook.metadata,
    });
    let response = http
        .post(&webhook.url)
        .timeout(timeout.max(Duration::from_millis(1)))
        .json(&body)
        .send()
        .await
        .map_err(|source| WebhookError::Unreachable {
            name: webhook.name.clone(),
            source,
        })?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(WebhookError::Refused {
            name: webhook.name.clone(),
            status: response.status().as_u16(),
        })
    }
}
