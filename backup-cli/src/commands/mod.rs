//! One module per verb, each short: resolve arguments over the config,
//! call the core, print the result.

pub(crate) mod backup;
pub(crate) mod hooks;
pub(crate) mod init;
pub(crate) mod list;
pub(crate) mod pg;
pub(crate) mod prune;
pub(crate) mod restore;
pub(crate) mod schedule;
pub(crate) mod status;
pub(crate) mod verify;

use std::sync::Arc;

use backup_core::{ByteSize, Error, Selector, Sink, Verdict};

use crate::Context;

/// The sink from `--to/--from` or the config.
pub(crate) fn sink(ctx: &Context, arg: Option<&str>, flag: &str) -> Result<Arc<dyn Sink>, Error> {
    if arg.is_none() {
        // Taking the sink from the config needs one profile.
        ctx.require_profile()?;
    }
    let url = arg.map(str::to_string).or_else(|| ctx.settings.sink.clone()).ok_or_else(|| Error::Usage {
        message: format!("no sink: pass {flag} URL (file:///var/backups/app, s3://bucket/prefix, gs://…, spaces://…) or set sink in lifeboat.toml"),
    })?;
    let opts = ctx.settings.sink_options.clone().unwrap_or_default();
    backup_core::sink_from_url(&url, &opts)
}

/// The source name to look for: `--source`, else the config's `name`, else
/// the name the config's source gets by default.
pub(crate) fn source_name(ctx: &Context, arg: Option<&str>) -> Result<Option<String>, Error> {
    if let Some(a) = arg {
        return Ok(Some(a.to_string()));
    }
    if ctx.ambiguous.is_some() {
        return Ok(None);
    }
    if let Some(n) = &ctx.settings.name {
        return Ok(Some(n.clone()));
    }
    match &ctx.settings.source {
        Some(url) => {
            let sources = backup_core::sources_from_url(url, &Default::default())?;
            Ok((sources.len() == 1).then(|| sources[0].default_name()))
        }
        None => Ok(None),
    }
}

pub(crate) fn min_size(ctx: &Context, arg: Option<&str>) -> Result<u64, Error> {
    match arg {
        Some(s) => ByteSize::parse(s).map(|b| b.0).map_err(|m| Error::Usage {
            message: format!("--min-size: {m}"),
        }),
        None => Ok(ctx
            .settings
            .min_size
            .map(|b| b.0)
            .unwrap_or(backup_core::verify::size::DEFAULT_MIN_SIZE)),
    }
}

pub(crate) fn selector(id: Option<String>, latest: bool) -> Result<Selector, Error> {
    match (id, latest) {
        (Some(_), true) => Err(Error::Usage {
            message: "give a backup id or --latest, not both".into(),
        }),
        (Some(id), false) => Ok(Selector::Id(id)),
        (None, _) => Ok(Selector::Latest),
    }
}

pub(crate) fn verdict_summary(verdicts: &[Verdict]) -> String {
    verdicts
        .iter()
        .map(|v| format!("{}:{}", v.verifier, if v.passed { "pass" } else { "fail" }))
        .collect::<Vec<_>>()
        .join(",")
}

pub(crate) fn print_json(value: &impl serde::Serialize) {
    let text = serde_json::to_string_pretty(value).expect("serializable");
    println!("{}", backup_core::redact::text(&text));
}

/// Accept `"1 KiB"` or `1024` from the bindings for a size or duration flag.
pub(crate) fn string_or_number<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<String>, D::Error> {
    use serde::Deserialize;
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        N(u64),
        S(String),
    }
    Ok(Option::<Raw>::deserialize(d)?.map(|r| match r {
        Raw::N(n) => n.to_string(),
        Raw::S(s) => s,
    }))
}
