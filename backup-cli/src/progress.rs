//! A progress bar on stderr, drawn only on a terminal.

use std::sync::Mutex;
use std::time::Duration;

use backup_core::{Phase, Progress};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Debug, Default)]
pub(crate) struct Bar {
    bar: Mutex<Option<ProgressBar>>,
    /// The task this bar follows (a source name), shown before the phase.
    task: Option<String>,
}

impl Progress for Bar {
    fn start(&self, phase: Phase, total: Option<u64>) {
        let bar = match total {
            Some(t) => ProgressBar::with_draw_target(Some(t), ProgressDrawTarget::stderr())
                .with_style(
                    ProgressStyle::with_template(
                        "{msg:>9} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                    )
                    .expect("valid template")
                    .progress_chars("=> "),
                ),
            None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()).with_style(
                ProgressStyle::with_template(
                    "{msg:>9} {spinner} {bytes} {bytes_per_sec} {elapsed}",
                )
                .expect("valid template"),
            ),
        };
        bar.set_message(match &self.task {
            Some(t) => format!("{t} {}", phase.as_str()),
            None => phase.as_str().to_string(),
        });
        bar.enable_steady_tick(Duration::from_millis(200));
        if let Some(old) = self.bar.lock().expect("bar lock").replace(bar) {
            old.finish_and_clear();
        }
    }

    fn advance(&self, bytes: u64) {
        if let Some(b) = self.bar.lock().expect("bar lock").as_ref() {
            b.inc(bytes);
        }
    }

    fn finish(&self, _phase: Phase) {
        if let Some(b) = self.bar.lock().expect("bar lock").take() {
            b.finish_and_clear();
        }
    }

    fn task(&self, name: &str) -> Option<std::sync::Arc<dyn Progress>> {
        Some(std::sync::Arc::new(Bar {
            bar: Mutex::new(None),
            task: Some(name.to_string()),
        }))
    }
}
