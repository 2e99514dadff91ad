//! The Lease protocol: acquire, renew, step down, release.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::{LeaderElectionConfig, LeaderError, LeaderStatus, Leadership};

/// The outcome of one acquire-or-renew attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Attempt {
    /// We hold the Lease (acquired or renewed).
    Held,
    /// Someone else holds an unexpired Lease.
    HeldByOther(String),
    /// Another writer got in between our read and our write; try again later.
    Conflict,
}

/// The parts of the Lease record whose change proves the holder is alive.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Record {
    holder: Option<String>,
    renew_time: Option<MicroTime>,
    transitions: Option<i32>,
    duration: Duration,
}

/// Contends for one Lease. Use [`LeaderElector::spawn`] to run it in the background, or drive the single
/// steps yourself.
#[derive(Debug)]
pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaderElectionConfig,
    /// The last record seen and when (on our clock) it was first seen.
    observed: Option<(Record, Instant)>,
}

impl LeaderElector {
    /// An elector for the Lease named in `config`, which is validated here.
    pub fn new(client: Client, config: LeaderElectionConfig) -> Result<Self, LeaderError> {
        config.validate()?;
        Ok(Self {
            api: Api::namespaced(client, &config.lease_namespace),
            config,
            observed: None,
        })
    }

    /// The settings this elector uses.
    pub fn config(&self) -> &LeaderElectionConfig {
        &self.config
    }

    fn api_error(&self, source: kube::Error) -> LeaderError {
        LeaderError::Api {
            namespace: self.config.lease_namespace.clone(),
            name: self.config.lease_name.clone(),
            source,
        }
    }

    async fn read(&self) -> Result<Option<Lease>, LeaderError> {
        self.api
            .get_opt(&self.config.lease_name)
            .await
            .map_err(|e| self.api_error(e))
    }

    /// Replaces the Lease unless anyone wrote it since `lease` was read (its `resourceVersion` is the
    /// precondition); `None` on such a conflict.
    async fn write(&self, lease: &Lease) -> Result<Option<Lease>, LeaderError> {
        match self
            .api
            .replace(&self.config.lease_name, &PostParams::default(), lease)
            .await
        {
            Ok(written) => Ok(Some(written)),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(None),
            Err(e) => Err(self.api_error(e)),
        }
    }

    /// Remembers the record and restarts the expiry clock when it changed.
    fn observe(&mut self, spec: Option<&LeaseSpec>) {
        let spec = spec.cloned().unwrap_or_default();
        let record = Record {
            holder: spec.holder_identity.filter(|h| !h.is_empty()),
            renew_time: spec.renew_time,
            transitions: spec.lease_transitions,
            duration: spec
                .lease_duration_seconds
                .and_then(|s| u64::try_from(s).ok())
                .map_or(self.config.lease_duration, Duration::from_secs),
        };
        if self
            .observed
            .as_ref()
            .is_none_or(|(seen, _)| *seen != record)
        {
            self.observed = Some((record, Instant::now()));
        }
    }

    fn observed_expired(&self) -> bool {
        self.observed
            .as_ref()
            .is_none_or(|(record, at)| at.elapsed() >= record.duration)
    }

    /// Makes one attempt to acquire the Lease or renew it; returns whether this replica holds it afterwards.
    async fn try_acquire_or_renew(&mut self) -> Result<Attempt, LeaderError> {
        let now = MicroTime(Timestamp::now());
        let identity = self.config.identity.clone();
        let Some(mut lease) = self.read().await? else {
            return self.create(now).await;
        };
        self.observe(lease.spec.as_ref());
        let spec = lease.spec.take().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let ours = holder.as_deref() == Some(identity.as_str());
        if let Some(other) = holder.as_ref().filter(|_| !ours)
            && !self.observed_expired()
        {
            return Ok(Attempt::HeldByOther(other.clone()));
        }
        lease.spec = Some(LeaseSpec {
            acquire_time: if ours {
                spec.acquire_time.clone()
            } else {
                Some(now.clone())
            },
            holder_identity: Some(identity),
            lease_duration_seconds: Some(self.config.lease_seconds()),
            lease_transitions: if ours {
                spec.lease_transitions
            } else {
                Some(spec.lease_transitions.unwrap_or(0).saturating_add(1))
            },
            renew_time: Some(now),
            ..spec
        });
        let Some(updated) = self.write(&lease).await? else {
            return Ok(Attempt::Conflict);
        };
        self.observe(updated.spec.as_ref());
        if !ours {
            info!(lease = %self.config.lease_name, identity = %self.config.identity, "acquired lease");
        }
        Ok(Attempt::Held)
    }

    async fn create(&mut self, now: MicroTime) -> Result<Attempt, LeaderError> {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(self.config.lease_name.clone()),
                namespace: Some(self.config.lease_namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.config.identity.clone()),
                lease_duration_seconds: Some(self.config.lease_seconds()),
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        match self.api.create(&PostParams::default(), &lease).await {
            Ok(created) => {
                self.observe(created.spec.as_ref());
                info!(lease = %self.config.lease_name, identity = %self.config.identity, "created and acquired lease");
                Ok(Attempt::Held)
            }
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(Attempt::Conflict),
            Err(e) => Err(self.api_error(e)),
        }
    }

    /// Makes one attempt to acquire or renew the Lease; `true` when this replica holds it afterwards.
    pub async fn try_lead(&mut self) -> Result<bool, LeaderError> {
        Ok(self.try_acquire_or_renew().await? == Attempt::Held)
    }

    /// Gives the Lease up if this replica holds it: clears `holderIdentity` so a standby takes over at its
    /// next attempt. Returns whether a release was written.
    pub async fn release(&mut self) -> Result<bool, LeaderError> {
        let Some(mut lease) = self.read().await? else {
            return Ok(false);
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(false);
        };
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return Ok(false);
        }
        spec.holder_identity = None;
        spec.acquire_time = None;
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        spec.lease_duration_seconds = Some(1);
        // On a conflict someone else wrote the Lease since we read it: it is no longer ours to release.
        let released = self.write(&lease).await?.is_some();
        if released {
            info!(lease = %self.config.lease_name, identity = %self.config.identity, "released lease");
        }
        Ok(released)
    }

    /// Runs the election in a background task until the returned guard is released or dropped.
    pub fn spawn(self) -> LeaseGuard {
        let (status_tx, status_rx) = watch::channel(LeaderStatus::Starting);
        let (stop_tx, stop_rx) = oneshot::channel();
        let task = tokio::spawn(self.run(status_tx, stop_rx));
        LeaseGuard {
            leadership: Leadership {
                status: status_rx,
                _always: None,
            },
            stop: Some(stop_tx),
            task: Some(task),
        }
    }

    async fn run(
        mut self,
        status: watch::Sender<LeaderStatus>,
        mut stop: oneshot::Receiver<()>,
    ) -> Result<bool, LeaderError> {
        // The start of the last successful renewal; only set while leading.
        let mut renewed_at: Option<Instant> = None;
        let mut next = Instant::now();
        let publish = |new: LeaderStatus| {
            status.send_if_modified(|current| std::mem::replace(current, new) != new);
        };
        loop {
            // While leading, wake up at the renew deadline too, to step down on time if renewals fail.
            let deadline = renewed_at.map(|at| at + self.config.renew_deadline);
            tokio::select! {
                _ = &mut stop => break,
                () = tokio::time::sleep_until(deadline.map_or(next, |d| d.min(next))) => {}
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                warn!("could not renew the lease before the renew deadline, stepping down");
                renewed_at = None;
                publish(LeaderStatus::Standby);
            }
            let started = Instant::now();
            // A hung request must not keep a leader leading past its renew deadline.
            let attempt_deadline = renewed_at.unwrap_or(started) + self.config.renew_deadline;
            match tokio::time::timeout_at(attempt_deadline, self.try_acquire_or_renew()).await {
                Ok(Ok(Attempt::Held)) => {
                    renewed_at = Some(started);
                    publish(LeaderStatus::Leader);
                }
                Ok(Ok(Attempt::HeldByOther(holder))) => {
                    if renewed_at.take().is_some() {
                        warn!(%holder, "the lease is held by another replica, stepping down");
                    }
                    publish(LeaderStatus::Standby);
                }
                Ok(Ok(Attempt::Conflict)) => {
                    debug!("lost a race for the lease");
                    if renewed_at.is_none() {
                        publish(LeaderStatus::Standby);
                    }
                }
                Ok(Err(error)) => warn!(error = %error, "lease request failed"),
                Err(_) => warn!("lease request timed out"),
            }
            next = started + self.config.retry_period;
        }
        // Stop leading before the release, so no handler starts while a standby takes over.
        status.send_replace(LeaderStatus::Standby);
        if renewed_at.is_some() {
            return self.release().await;
        }
        Ok(false)
    }
}

/// Owns a running election. [`LeaseGuard::release`] ends it cleanly; dropping it stops renewing without
/// releasing, as a crash would.
#[derive(Debug)]
pub struct LeaseGuard {
    leadership: Leadership,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<bool, LeaderError>>>,
}

impl LeaseGuard {
    /// A view of this replica's status.
    pub fn leadership(&self) -> Leadership {
        self.leadership.clone()
    }

    /// Stops contending and, if this replica leads, clears the Lease's holder so a standby takes over at once.
    /// Returns whether a release was written.
    pub async fn release(mut self) -> Result<bool, LeaderError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.map_err(LeaderError::Task)?,
            None => Ok(false),
        }
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
