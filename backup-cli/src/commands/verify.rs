use backup_core::Error;
use backup_core::ops::Env;
use backup_core::ops::drill::{self, DrillArgs};
use backup_core::ops::verify::{self, VerifyArgs, VerifyOutput};
use clap::Args;

#[derive(Debug, Args)]
pub(crate) struct VerifyCmd {
    #[command(flatten)]
    args: VerifyArgs,
    /// Print the verdicts as JSON on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct DrillCmd {
    #[command(flatten)]
    args: DrillArgs,
    /// Print the verdicts as JSON on stdout.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(env: &Env, c: VerifyCmd) -> Result<(), Error> {
    let out = verify::run(env, &c.args).await?;
    print(&out, c.json, "verified");
    Ok(())
}

pub(crate) async fn run_drill(env: &Env, c: DrillCmd) -> Result<(), Error> {
    let out = drill::run(env, &c.args).await?;
    print(&out, c.json, "drilled");
    Ok(())
}

fn print(out: &VerifyOutput, json: bool, what: &str) {
    if json {
        super::print_json(out);
    } else {
        println!("backup {} of {} {what}:", out.backup_id, out.source);
        for v in &out.verdicts {
            println!(
                "  ok  {:<17} {} ({} ms)",
                v.verifier, v.detail, v.duration_ms
            );
        }
    }
}
