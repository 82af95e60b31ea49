//! Leader election on a `coordination.k8s.io/v1` Lease, so that more than one operator
//! replica can run and only one reconciles. It follows client-go's `leaderelection`:
//!
//! ```text
//! candidate: every retry period, read the Lease
//!   absent                                   ─► create it holding it         ─► leader
//!   held by another, and seen changing within
//!   the last lease duration (our own clock)  ─► wait
//!   otherwise (expired, released, or ours)   ─► update it, conditional on the
//!                                               resourceVersion read (409: someone else won)
//! leader: run the work; renew every retry period
//!   no successful renewal within the renew deadline, or the Lease taken ─► drop the work at
//!   once (reconciles in flight are cancelled, not awaited), report the loss (the process
//!   exits and its next incarnation campaigns again)
//!   shutdown ─► signal the work to stop and let it drain, still renewing (a loss meanwhile
//!   drops it), then release the Lease (holder cleared) for a fast handover
//! ```
//!
//! Expiry is judged by when *this* process last saw the Lease change, never by comparing
//! `renewTime` with its own clock, so clock skew between nodes does not matter. The renew
//! deadline is shorter than the lease duration: a leader that cannot renew stops before
//! anyone else may take over. Two things keep that margin: the leader counts its deadline
//! from when it *sent* its last successful renewal (a follower counts from when it saw the
//! change, which is later), and on a loss the work is dropped rather than drained (a
//! reconcile can take longer than the 5 s between renew deadline and lease duration).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client};
use tokio::time::Instant;

use crate::metrics::Metrics;

/// Where the Lease is, who we are, and the timings.
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    /// Namespace of the Lease (the operator's own).
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This candidate's identity (its pod name).
    pub identity: String,
    /// How long a Lease holds without renewal.
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it steps down.
    pub renew_deadline: Duration,
    /// How often candidates try to acquire and the leader renews.
    pub retry_period: Duration,
}

impl LeaseSettings {
    /// client-go's default timings (15 s lease, 10 s renew deadline, 2 s retry).
    pub fn new(namespace: &str, name: &str, identity: &str) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// Why the leader stopped leading.
#[derive(Debug, thiserror::Error)]
pub enum LeadershipLost {
    /// Another candidate holds the Lease now.
    #[error("the Lease {0} is held by another operator now")]
    Taken(String),
    /// Renewals kept failing until the renew deadline passed.
    #[error("could not renew the Lease {lease} within {deadline:?}: {last_error}")]
    NotRenewed {
        /// The Lease.
        lease: String,
        /// The renew deadline.
        deadline: Duration,
        /// The last failure.
        last_error: String,
    },
    /// The work ended on its own while leading.
    #[error("the controller stopped on its own")]
    WorkEnded,
}

/// A future that completes when the work must stop.
pub type StopSignal = Pin<Box<dyn Future<Output = ()> + Send + Sync>>;

/// Waits to become leader, then runs `work` until `shutdown` completes (`Ok`, the Lease is
/// released) or leadership is lost (`Err`). On shutdown `work`'s stop signal completes and
/// `work` is awaited (it may drain); on a loss `work` is dropped at once, wherever it is.
pub async fn run_as_leader<W, F>(
    client: Client,
    settings: LeaseSettings,
    metrics: &Metrics,
    shutdown: impl Future<Output = ()>,
    work: W,
) -> Result<(), LeadershipLost>
where
    W: FnOnce(StopSignal) -> F,
    F: Future<Output = ()>,
{
    let mut elector = Elector::new(client, settings);
    tokio::pin!(shutdown);
    loop {
        match elector.try_acquire_or_renew().await {
            Ok(true) => break,
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(lease = %elector.settings.name, %error, "could not read or write the Lease")
            }
        }
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            () = tokio::time::sleep(elector.settings.retry_period) => {}
        }
    }
    tracing::info!(lease = %elector.settings.name, identity = %elector.settings.identity, "became leader");
    metrics.is_leader.set(1);

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut work = Box::pin(work(Box::pin(async move {
        // A dropped sender stops the work too.
        let _ = stopped.await;
    })));
    let outcome = {
        // Renewing runs beside the work, so a slow API server never pauses reconciles.
        let renewals = elector.keep_renewing();
        tokio::pin!(renewals);
        let outcome = tokio::select! {
            () = &mut work => Err(LeadershipLost::WorkEnded),
            () = &mut shutdown => Ok(()),
            lost = &mut renewals => Err(lost),
        };
        if outcome.is_ok() {
            // A clean shutdown lets reconciles in flight finish; we still lead meanwhile,
            // so keep renewing, and give up waiting should the Lease be lost.
            drop(stop);
            tokio::select! {
                () = &mut work => outcome,
                lost = &mut renewals => Err(lost),
            }
        } else {
            outcome
        }
    };
    // Dropping the work cancels it at once (the controller aborts its reconcile tasks): after
    // a loss someone else may lead within `lease_duration - renew_deadline`, too short to
    // wait for reconciles in flight. After a clean drain this drops a finished future.
    drop(work);
    metrics.is_leader.set(0);
    match &outcome {
        // Still the holder: hand over at once rather than after the lease duration.
        Ok(()) | Err(LeadershipLost::WorkEnded) => {
            if let Err(error) = elector.release().await {
                tracing::warn!(lease = %elector.settings.name, %error, "could not release the Lease");
            }
            tracing::info!(lease = %elector.settings.name, "stopped leading");
        }
        Err(lost) => tracing::error!(lease = %elector.settings.name, %lost, "lost leadership"),
    }
    outcome
}

/// One candidate's view of the Lease.
struct Elector {
    api: Api<Lease>,
    settings: LeaseSettings,
    /// The Lease's resourceVersion when we last saw it change, and when that was.
    observed: Option<(String, Instant)>,
    /// When we sent the requests of our last successful acquisition or renewal: the Lease
    /// is ours from then, not from when the answer came.
    renewed_at: Option<Instant>,
}

impl Elector {
    fn new(client: Client, settings: LeaseSettings) -> Self {
        Self {
            api: Api::namespaced(client, &settings.namespace),
            settings,
            observed: None,
            renewed_at: None,
        }
    }

    fn lease_seconds(&self) -> i32 {
        i32::try_from(self.settings.lease_duration.as_secs().max(1)).unwrap_or(i32::MAX)
    }

    /// Takes or renews the Lease; `Ok(false)` when another candidate holds it.
    async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        // Taken before any request: the renewTime we write and the instant our deadline
        // counts from are both when we asked.
        let asked = Instant::now();
        let now = MicroTime(Timestamp::now());
        let Some(mut lease) = self.api.get_opt(&self.settings.name).await? else {
            let mut lease = Lease {
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.settings.identity.clone()),
                    lease_duration_seconds: Some(self.lease_seconds()),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
                ..Lease::default()
            };
            lease.metadata.name = Some(self.settings.name.clone());
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(created) => {
                    self.observe(&created);
                    self.renewed_at = Some(asked);
                    Ok(true)
                }
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
                Err(error) => Err(error),
            };
        };
        self.observe(&lease);
        let mut spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let is_ours = holder.as_deref() == Some(self.settings.identity.as_str());
        if let (Some(_), false) = (&holder, is_ours) {
            let duration = spec
                .lease_duration_seconds
                .and_then(|s| u64::try_from(s).ok())
                .map_or(self.settings.lease_duration, Duration::from_secs);
            let seen_change = self.observed.as_ref().map(|(_, at)| at.elapsed());
            if seen_change.is_some_and(|elapsed| elapsed < duration) {
                return Ok(false);
            }
        }
        if !is_ours {
            spec.acquire_time = Some(now.clone());
            if holder.is_some() {
                spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            }
        }
        spec.holder_identity = Some(self.settings.identity.clone());
        spec.lease_duration_seconds = Some(self.lease_seconds());
        spec.renew_time = Some(now);
        lease.spec = Some(spec);
        // `replace` sends the resourceVersion read: a concurrent writer makes this a 409.
        match self
            .api
            .replace(&self.settings.name, &PostParams::default(), &lease)
            .await
        {
            Ok(updated) => {
                self.observe(&updated);
                self.renewed_at = Some(asked);
                Ok(true)
            }
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Renews every retry period; returns once leadership is lost: the Lease taken, or no
    /// successful renewal within the renew deadline.
    async fn keep_renewing(&mut self) -> LeadershipLost {
        let deadline = self.settings.renew_deadline;
        loop {
            tokio::time::sleep(self.settings.retry_period).await;
            // Counted from when the last successful renewal (or the acquisition) was sent.
            let last_renewal = self.renewed_at.unwrap_or_else(Instant::now);
            let until = last_renewal + deadline;
            let last_error = match tokio::time::timeout_at(until, self.try_acquire_or_renew()).await
            {
                Ok(Ok(true)) => continue,
                Ok(Ok(false)) => return LeadershipLost::Taken(self.settings.name.clone()),
                Ok(Err(error)) => error.to_string(),
                Err(_) => "the API server did not answer in time".to_owned(),
            };
            tracing::warn!(lease = %self.settings.name, error = %last_error, "could not renew the Lease");
            if Instant::now() >= until {
                return LeadershipLost::NotRenewed {
                    lease: self.settings.name.clone(),
                    deadline,
                    last_error,
                };
            }
        }
    }

    /// Notes when the Lease last changed, by our clock.
    fn observe(&mut self, lease: &Lease) {
        let version = lease.metadata.resource_version.clone().unwrap_or_default();
        if self.observed.as_ref().map(|(v, _)| v) != Some(&version) {
            self.observed = Some((version, Instant::now()));
        }
    }

    /// Clears the holder (if it is still us), so a successor need not wait for expiry.
    async fn release(&mut self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.settings.name).await? else {
            return Ok(());
        };
        let mut spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.settings.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        lease.spec = Some(spec);
        self.api
            .replace(&self.settings.name, &PostParams::default(), &lease)
            .await?;
        Ok(())
    }
}
