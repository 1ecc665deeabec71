use backup_core::Error;
use backup_core::ops::Env;
use backup_core::ops::doctor::{self, DoctorArgs};
use clap::Args;

#[derive(Debug, Args)]
pub(crate) struct DoctorCmd {
    #[command(flatten)]
    args: DoctorArgs,
    /// Print the reports as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(env: &Env, c: DoctorCmd) -> Result<(), Error> {
    let reports = doctor::run(env, &c.args).await?;
    if c.json {
        super::print_json(&reports);
    } else {
        for r in &reports {
            println!("{}", r.sink);
            for ch in &r.checks {
                println!(
                    "  {:<4} {:<12} {}",
                    if ch.ok { "ok" } else { "FAIL" },
                    ch.name,
                    ch.detail
                );
            }
        }
    }
    match doctor::problems(&reports) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
