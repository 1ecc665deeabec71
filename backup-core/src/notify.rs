//! Notifications: a Slack incoming webhook (seed 004's coloured
//! success/failure message) and a generic JSON webhook. Failures always
//! notify; successes when configured. A failing webhook never fails the
//! run: it is logged, with the webhook's host only (webhook URLs are
//! secrets).

use serde::{Deserialize, Serialize};

/// Where notifications go. In `lifeboat.toml`, a `[notify]` table.
#[derive(Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct NotifyConfig {
    /// A Slack incoming-webhook URL (use `${SLACK_WEBHOOK_URL}`).
    pub slack_webhook: Option<String>,
    /// A URL that receives the event as JSON (POST).
    pub webhook: Option<String>,
    /// Also notify on success.
    pub on_success: bool,
}

impl std::fmt::Debug for NotifyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotifyConfig")
            .field(
                "slack_webhook",
                &self.slack_webhook.as_ref().map(|_| "<set>"),
            )
            .field("webhook", &self.webhook.as_ref().map(|u| host_of(u)))
            .field("on_success", &self.on_success)
            .finish()
    }
}

/// What happened, as sent to webhooks.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Event {
    /// `backup`, `status`, …
    pub command: String,
    /// The source name.
    pub source: String,
    /// `ok` or `failed` (or `unhealthy`).
    pub result: String,
    /// One line for people.
    pub message: String,
    /// The host that ran.
    pub host: String,
    /// When.
    pub at: chrono::DateTime<chrono::Utc>,
    /// Structured details (backup id, size, location, exit code, …).
    pub details: serde_json::Map<String, serde_json::Value>,
}

impl Event {
    /// An event.
    pub fn new(command: &str, source: &str, ok: bool, message: impl Into<String>) -> Self {
        Self {
            command: command.into(),
            source: source.into(),
            result: if ok { "ok" } else { "failed" }.into(),
            message: message.into(),
            host: crate::rt::host_name(),
            at: chrono::Utc::now(),
            details: serde_json::Map::new(),
        }
    }

    /// Add a detail.
    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.details.insert(key.into(), value.into());
        self
    }

    fn ok(&self) -> bool {
        self.result == "ok"
    }

    fn slack_payload(&self) -> serde_json::Value {
        let fields: Vec<serde_json::Value> = self
            .details
            .iter()
            .map(|(k, v)| {
                let value = match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                serde_json::json!({"title": k, "value": value, "short": value.len() < 40})
            })
            .collect();
        let icon = if self.ok() {
            ":white_check_mark:"
        } else {
            ":rotating_light:"
        };
        serde_json::json!({
            "text": format!("{icon} lifeboat {} of {} {} on {}", self.command, self.source, self.result, self.host),
            "attachments": [{
                "color": if self.ok() { "good" } else { "danger" },
                "title": format!("{} {}: {}", self.command, self.result, self.source),
                "text": self.message,
                "fields": fields,
                "ts": self.at.timestamp(),
            }]
        })
    }
}

fn host_of(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| "<invalid url>".into())
}

/// Send `event` where `cfg` says, if it should be sent. Never fails: each
/// delivery problem is logged (host only). Returns how many deliveries
/// succeeded.
pub async fn notify(cfg: &NotifyConfig, event: &Event) -> usize {
    if event.ok() && !cfg.on_success {
        return 0;
    }
    let client = match reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "cannot build an HTTP client for notifications");
            return 0;
        }
    };
    let mut sent = 0;
    let targets = [
        (cfg.slack_webhook.as_deref(), "slack", event.slack_payload()),
        (
            cfg.webhook.as_deref(),
            "webhook",
            serde_json::to_value(event).expect("event serializes"),
        ),
    ];
    for (url, kind, body) in targets {
        let Some(url) = url else { continue };
        // A webhook URL is itself a secret (Slack's is the credential).
        crate::redact::register(url);
        let body = crate::redact::text(&body.to_string()).into_owned();
        let result = client
            .post(url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        match result {
            Ok(r) if r.status().is_success() => sent += 1,
            Ok(r) => {
                tracing::warn!(kind, host = %host_of(url), status = %r.status(), "notification was refused; the run's result stands")
            }
            Err(e) => {
                tracing::warn!(kind, host = %host_of(url), error = %e.without_url(), "notification failed; the run's result stands")
            }
        }
    }
    sent
}
