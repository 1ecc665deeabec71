//! Leases in the sink, for several hosts sharing one bucket.
//!
//! - **The writer's lease** (`<source>/lease.json`, [`Lease`]): `prune`
//!   and `mirror` (into its target) hold it while they delete or write.
//!   It is taken with a create-only put; a live run renews it every third
//!   of its time to live with a conditional put on the version it last
//!   wrote (`PutMode::Update`), so exactly one host holds it. A lease not
//!   renewed past its expiry (plus [`SKEW_GRACE`] for clocks that
//!   disagree) is taken over, again with a conditional put on the version
//!   read: of several hosts taking over, one wins. A holder whose renewal
//!   finds the lease changed has lost it, and stops before its next
//!   deletion ([`Lease::ensure`]). A lease held by a process of this very
//!   host that no longer runs (killed) is taken over at once.
//! - **Readers' marks** (`<source>/readers/<id>.json`, [`ReaderMark`]):
//!   a restore or verify says which backup it is reading, until when, and
//!   renews that while it reads; `prune` keeps a backup with a live mark.
//!
//! The time to live is 5 minutes (`LIFEBOAT_LEASE_TTL`, seconds, for a
//! sink whose runs take longer between two steps, and for tests).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::sink::{PutOptions, Sink, SinkExt};

/// How much later than its recorded expiry a lease is taken over: clocks
/// of different hosts disagree.
pub const SKEW_GRACE: Duration = Duration::from_secs(30);

fn ttl() -> Duration {
    std::env::var("LIFEBOAT_LEASE_TTL")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|s| *s >= 1)
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(300))
}

/// The lease's key.
pub fn lease_key(source: &str) -> String {
    format!("{}/lease.json", crate::layout::source_prefix(source))
}

/// The prefix of readers' marks.
pub fn readers_prefix(source: &str) -> String {
    format!("{}/readers", crate::layout::source_prefix(source))
}

/// What a lease or mark object holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeaseBody {
    /// This holding's random id.
    pub id: String,
    /// The host.
    pub host: String,
    /// The process.
    pub pid: u32,
    /// `prune`, `mirror`, `restore`, `verify`.
    pub operation: String,
    /// Readers: the backup being read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_id: Option<String>,
    /// When it was taken.
    pub acquired_at: DateTime<Utc>,
    /// Until when, unless renewed.
    pub expires_at: DateTime<Utc>,
    /// The time to live it is renewed with, in seconds.
    #[serde(default)]
    pub ttl_secs: u64,
}

impl LeaseBody {
    fn new(operation: &str, backup_id: Option<&str>, ttl: Duration) -> Self {
        let now = Utc::now();
        Self {
            id: format!("{:016x}", rand::random::<u64>()),
            host: crate::rt::host_name(),
            pid: std::process::id(),
            operation: operation.to_string(),
            backup_id: backup_id.map(str::to_string),
            acquired_at: now,
            expires_at: now + chrono::Duration::from_std(ttl).unwrap_or_default(),
            ttl_secs: ttl.as_secs(),
        }
    }

    fn renewed(&self, ttl: Duration) -> Self {
        let mut b = self.clone();
        b.expires_at = Utc::now() + chrono::Duration::from_std(ttl).unwrap_or_default();
        b
    }

    /// Still holding at `now`: its expiry plus a grace for clocks that
    /// disagree ([`SKEW_GRACE`], or its time to live when shorter) not
    /// passed.
    pub fn live(&self, now: DateTime<Utc>) -> bool {
        let grace = match self.ttl_secs {
            0 => SKEW_GRACE,
            t => SKEW_GRACE.min(Duration::from_secs(t)),
        };
        self.expires_at + chrono::Duration::from_std(grace).unwrap_or_default() > now
    }

    /// Held by a process of this host that no longer runs (killed): its
    /// lease need not be waited out. (A reused pid only makes us wait.)
    fn dead_here(&self) -> bool {
        self.host == crate::rt::host_name()
            && self.pid != std::process::id()
            && !std::path::Path::new(&format!("/proc/{}", self.pid)).exists()
    }

    fn holder(&self) -> String {
        format!("{} (pid {})", self.host, self.pid)
    }

    fn bytes(&self) -> Bytes {
        Bytes::from(serde_json::to_vec_pretty(self).expect("serializes"))
    }
}

/// The version of `key` now and its body, read consistently (the version
/// before and after the read agree), or `None` when it is gone.
async fn read_versioned(sink: &dyn Sink, key: &str) -> Result<Option<(String, Option<LeaseBody>)>> {
    for _ in 0..5 {
        let before = match sink.head(key).await {
            Ok(i) => i.version,
            Err(Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let raw = match sink.get_bytes(key).await {
            Ok(r) => r,
            Err(Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let after = match sink.head(key).await {
            Ok(i) => i.version,
            Err(Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        if let (Some(b), Some(a)) = (before, after)
            && a == b
        {
            return Ok(Some((a, serde_json::from_slice(&raw).ok())));
        }
    }
    Err(Error::sink_err(
        sink.location(),
        format!("{key} keeps changing; cannot read it consistently"),
    ))
}

/// The version `put_versioned` returned, else the one `head` reports.
async fn version_after(sink: &dyn Sink, key: &str, v: Option<String>) -> Result<String> {
    match v {
        Some(v) => Ok(v),
        None => sink.head(key).await?.version.ok_or_else(|| {
            Error::sink_err(
                sink.location(),
                "the sink reports no object versions: leases need them",
            )
        }),
    }
}

/// A writer's lease on one source in one sink, renewed while held.
#[derive(Debug)]
pub struct Lease {
    sink: Arc<dyn Sink>,
    key: String,
    source: String,
    version: Arc<tokio::sync::Mutex<String>>,
    lost: Arc<AtomicBool>,
    renewal: tokio::task::JoinHandle<()>,
}

impl Lease {
    /// Take the lease on `source` in `sink` for `operation`, taking over one
    /// that expired.
    ///
    /// # Errors
    /// [`Error::Leased`] (exit 1) when another host holds it; sink errors.
    pub async fn acquire(sink: Arc<dyn Sink>, source: &str, operation: &str) -> Result<Lease> {
        Self::acquire_for(sink, source, operation, ttl()).await
    }

    /// [`acquire`](Self::acquire) with a time to live of `ttl`.
    ///
    /// # Errors
    /// As [`acquire`](Self::acquire).
    pub async fn acquire_for(
        sink: Arc<dyn Sink>,
        source: &str,
        operation: &str,
        ttl: Duration,
    ) -> Result<Lease> {
        let key = lease_key(source);
        for _ in 0..5 {
            let body = LeaseBody::new(operation, None, ttl);
            match sink
                .put_versioned(&key, body.bytes(), PutOptions::create_only())
                .await
            {
                Ok(v) => {
                    let v = version_after(&*sink, &key, v).await?;
                    let lease = Self::start(sink, key, source, body, v, ttl);
                    crate::failpoint::pause("lease:acquired").await;
                    return Ok(lease);
                }
                Err(Error::AlreadyExists { .. }) => {}
                Err(e) => return Err(e),
            }
            let Some((version, held)) = read_versioned(&*sink, &key).await? else {
                continue;
            };
            if let Some(h) = &held
                && h.live(Utc::now())
                && !h.dead_here()
            {
                return Err(Error::Leased {
                    sink: sink.location().to_string(),
                    source_name: source.to_string(),
                    holder: h.holder(),
                    operation: h.operation.clone(),
                    until: h.expires_at.to_rfc3339(),
                });
            }
            // Expired (or unreadable): take it over, if nobody else does first.
            match sink
                .put_versioned(&key, body.bytes(), PutOptions::update(version))
                .await
            {
                Ok(v) => {
                    tracing::warn!(
                        source,
                        previous = %held.as_ref().map(|h| format!("{} ({}, expired {})", h.holder(), h.operation, h.expires_at.to_rfc3339())).unwrap_or_else(|| "unreadable".into()),
                        "took over a lease that was not renewed"
                    );
                    let v = version_after(&*sink, &key, v).await?;
                    return Ok(Self::start(sink, key, source, body, v, ttl));
                }
                Err(Error::Precondition { .. } | Error::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::sink_err(
            sink.location(),
            format!("the lease {key} is contended; try again"),
        ))
    }

    fn start(
        sink: Arc<dyn Sink>,
        key: String,
        source: &str,
        body: LeaseBody,
        version: String,
        ttl: Duration,
    ) -> Lease {
        let version = Arc::new(tokio::sync::Mutex::new(version));
        let lost = Arc::new(AtomicBool::new(false));
        let renewal = tokio::spawn({
            let (sink, key, version, lost) =
                (sink.clone(), key.clone(), version.clone(), lost.clone());
            async move {
                loop {
                    tokio::time::sleep(ttl / 3).await;
                    let mut v = version.lock().await;
                    let next = body.renewed(ttl);
                    match sink
                        .put_versioned(&key, next.bytes(), PutOptions::update(v.clone()))
                        .await
                    {
                        Ok(nv) => match version_after(&*sink, &key, nv).await {
                            Ok(nv) => *v = nv,
                            Err(e) => {
                                tracing::warn!(error = %e.display_chain(), "lease renewed, its new version unknown")
                            }
                        },
                        Err(Error::Precondition { .. } | Error::NotFound { .. }) => {
                            tracing::error!(%key, "the lease was taken over by another host: stopping before the next deletion");
                            lost.store(true, Ordering::SeqCst);
                            return;
                        }
                        Err(e) => {
                            tracing::warn!(%key, error = %e.display_chain(), "could not renew the lease; trying again")
                        }
                    }
                }
            }
        });
        crate::failpoint::point("lease:acquired");
        Lease {
            sink,
            key,
            source: source.to_string(),
            version,
            lost,
            renewal,
        }
    }

    /// `Ok` while the lease is still held; call it before each deletion.
    ///
    /// # Errors
    /// [`Error::Leased`] once another host took it over.
    pub fn ensure(&self) -> Result<()> {
        if self.lost.load(Ordering::SeqCst) {
            return Err(Error::Leased {
                sink: self.sink.location().to_string(),
                source_name: self.source.clone(),
                holder: "another host".into(),
                operation: "its own run (this run's lease expired and was taken over)".into(),
                until: "it is done".into(),
            });
        }
        Ok(())
    }

    /// Give the lease back (deleted if it is still ours).
    pub async fn release(self) {
        self.renewal.abort();
        let v = self.version.lock().await.clone();
        if !self.lost.load(Ordering::SeqCst)
            && let Ok(info) = self.sink.head(&self.key).await
            && info.version.as_deref() == Some(v.as_str())
        {
            let _ = self.sink.delete(&self.key).await;
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // Not released (an error, a cancelled run): stop renewing; the
        // lease expires on its own.
        self.renewal.abort();
    }
}

/// A reader's mark: `prune` keeps the backup it names while it lives.
#[derive(Debug)]
pub struct ReaderMark {
    sink: Arc<dyn Sink>,
    key: String,
    renewal: tokio::task::JoinHandle<()>,
}

impl ReaderMark {
    /// Mark `backup_id` of `source` as being read by `operation`. Best
    /// effort: a sink that refuses the mark does not stop the read.
    pub async fn place(
        sink: Arc<dyn Sink>,
        source: &str,
        backup_id: &str,
        operation: &str,
    ) -> Option<ReaderMark> {
        let ttl = ttl();
        let body = LeaseBody::new(operation, Some(backup_id), ttl);
        let key = format!("{}/{}.json", readers_prefix(source), body.id);
        if let Err(e) = sink.put(&key, body.bytes(), PutOptions::default()).await {
            tracing::warn!(error = %e.display_chain(), "could not mark the backup as being read; a prune elsewhere may delete it meanwhile");
            return None;
        }
        let renewal = tokio::spawn({
            let (sink, key) = (sink.clone(), key.clone());
            async move {
                loop {
                    tokio::time::sleep(ttl / 3).await;
                    let _ = sink
                        .put(&key, body.renewed(ttl).bytes(), PutOptions::default())
                        .await;
                }
            }
        });
        Some(ReaderMark { sink, key, renewal })
    }

    /// Remove the mark.
    pub async fn remove(self) {
        self.renewal.abort();
        let _ = self.sink.delete(&self.key).await;
    }
}

impl Drop for ReaderMark {
    fn drop(&mut self) {
        self.renewal.abort();
    }
}

/// The backups of `source` live readers' marks name, with who reads them;
/// expired marks are removed.
pub async fn live_readers(sink: &dyn Sink, source: &str) -> Result<Vec<LeaseBody>> {
    let now = Utc::now();
    let mut out = Vec::new();
    for o in sink.list(&readers_prefix(source)).await? {
        let Ok(raw) = sink.get_bytes(&o.key).await else {
            continue;
        };
        match serde_json::from_slice::<LeaseBody>(&raw) {
            Ok(b) if b.live(now) => out.push(b),
            _ => {
                let _ = sink.delete(&o.key).await;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn race(sink: Arc<dyn Sink>) {
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let s = sink.clone();
                tokio::spawn(async move { Lease::acquire(s, "app", "prune").await })
            })
            .collect();
        let mut won = Vec::new();
        for t in tasks {
            match t.await.unwrap() {
                Ok(l) => won.push(l),
                Err(e) => assert_eq!(e.kind(), crate::ErrorKind::Locked, "{e}"),
            }
        }
        assert_eq!(won.len(), 1, "exactly one of eight racers holds the lease");
        let l = won.pop().unwrap();
        l.ensure().unwrap();
        l.release().await;
        // Released: the next one gets it at once.
        Lease::acquire(sink.clone(), "app", "prune")
            .await
            .unwrap()
            .release()
            .await;
    }

    #[tokio::test]
    async fn of_eight_racers_exactly_one_holds_the_lease_local() {
        let dir = tempfile::tempdir().unwrap();
        let sink = crate::sink_from_url(
            &format!("file://{}", dir.path().display()),
            &Default::default(),
        )
        .unwrap();
        race(sink).await;
    }

    #[tokio::test]
    async fn an_expired_lease_is_taken_over_and_its_holder_learns_it() {
        let dir = tempfile::tempdir().unwrap();
        let sink = crate::sink_from_url(
            &format!("file://{}", dir.path().display()),
            &Default::default(),
        )
        .unwrap();
        // A holder that died long ago.
        let mut dead = LeaseBody::new("prune", None, Duration::from_secs(1));
        dead.expires_at = Utc::now() - chrono::Duration::minutes(10);
        sink.put(&lease_key("app"), dead.bytes(), PutOptions::create_only())
            .await
            .unwrap();
        let l = Lease::acquire(sink.clone(), "app", "mirror").await.unwrap();
        // A live one is respected.
        let e = Lease::acquire(sink.clone(), "app", "prune")
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Leased { .. }), "{e}");
        assert_eq!(e.exit_code(), 1);
        l.release().await;
        // A holder whose lease someone else took (its renewal came too
        // late): its renewal notices, and `ensure` stops its deletions.
        let l = Lease::acquire_for(sink.clone(), "app", "prune", Duration::from_secs(1))
            .await
            .unwrap();
        let other = LeaseBody::new("prune", None, Duration::from_secs(600));
        sink.put(&lease_key("app"), other.bytes(), PutOptions::default())
            .await
            .unwrap();
        let mut lost = false;
        for _ in 0..60 {
            if l.ensure().is_err() {
                lost = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(lost, "the renewal did not notice the takeover");
        assert_eq!(l.ensure().unwrap_err().kind(), crate::ErrorKind::Locked);
        // It does not delete the other holder's lease on release.
        l.release().await;
        assert!(sink.head(&lease_key("app")).await.is_ok());
    }
}
