//! What happens after each backup run: Prometheus metrics, notifications,
//! retention. None of them can fail the backup: their problems are logged.

use std::sync::Arc;
use std::time::Duration;

use crate::metrics::{self, RunMetrics};
use crate::notify::{self, Event};
use crate::retention;
use crate::{Catalog, Error, Manifest, Selector, Sink};

pub(super) async fn after_backup(
    env: &super::Env,
    name: &str,
    sink: Option<&Arc<dyn Sink>>,
    result: Result<&Manifest, &Error>,
    took: Duration,
    retention: Option<&crate::retention::RetentionPolicy>,
) {
    let s = &env.settings;
    if let Some(m) = &s.metrics {
        let mut run = RunMetrics::new(name, result.is_ok(), took.as_secs_f64());
        match result {
            Ok(manifest) => {
                run.size_bytes = Some(manifest.artifact.stored_size);
                run.last_success = Some(manifest.started_at);
                run.last_verified = manifest.verified().then_some(manifest.started_at);
            }
            Err(_) => {
                // The last success is the newest backup in the sink, whatever
                // this run did.
                if let Some(sink) = sink
                    && let Ok(e) = Catalog::new(sink.clone())
                        .find(Some(name), &Selector::Latest)
                        .await
                {
                    run.last_success = Some(e.manifest.started_at);
                    run.last_verified = e.manifest.verified().then_some(e.manifest.started_at);
                }
            }
        }
        let text = run.render();
        if let Some(dir) = &m.textfile_dir {
            match metrics::write_textfile(dir, name, &text) {
                Ok(p) => tracing::debug!(file = %p.display(), "metrics written"),
                Err(e) => {
                    tracing::warn!(error = %e.display_chain(), "metrics not written; the backup's result stands")
                }
            }
        }
        if let Some(url) = &m.pushgateway
            && let Err(e) = metrics::push(url, name, &text).await
        {
            tracing::warn!(error = %e, "metrics not pushed; the backup's result stands");
        }
    }
    if let Some(n) = &s.notify {
        let event = match result {
            Ok(m) => Event::new(
                "backup",
                name,
                m.verified(),
                format!(
                    "backup {} {}: {} stored, {} tables, {} rows",
                    m.backup_id,
                    if m.verified() {
                        "verified"
                    } else {
                        "committed but its restore drill FAILED (not verified)"
                    },
                    super::human_bytes(m.artifact.stored_size),
                    m.fingerprint.tables.len(),
                    m.fingerprint.total_rows()
                ),
            )
            .with("backup_id", m.backup_id.clone())
            .with("size_bytes", m.artifact.stored_size)
            .with("duration_ms", took.as_millis() as u64)
            .with(
                "sink",
                sink.map(|s| s.location().to_string()).unwrap_or_default(),
            ),
            Err(e) => Event::new("backup", name, false, e.display_chain())
                .with("exit_code", e.exit_code())
                .with("error_kind", e.kind().as_str())
                .with(
                    "sink",
                    sink.map(|s| s.location().to_string()).unwrap_or_default(),
                ),
        };
        notify::notify(n, &event).await;
    }
    if let (Ok(_), Some(policy), Some(sink)) = (result, retention.or(s.retention.as_ref()), sink) {
        apply_retention(sink, name, policy).await;
    }
}

/// Retention after a backup, when the policy asks for it (`after_backup`);
/// never fails the run.
pub(super) async fn apply_retention(
    sink: &Arc<dyn Sink>,
    name: &str,
    policy: &crate::retention::RetentionPolicy,
) {
    if !(policy.after_backup && policy.has_rules()) {
        return;
    }
    match retention::prune(sink, name, policy, chrono::Utc::now(), false).await {
        Ok(r) => {
            tracing::info!(source = %name, sink = %sink.location(), deleted = r.deleted.len(), kept = r.decisions.iter().filter(|d| d.keep).count(), "retention applied")
        }
        Err(e) => {
            tracing::warn!(source = %name, sink = %sink.location(), error = %e.display_chain(), "retention not applied; nothing was deleted after the failure")
        }
    }
}
