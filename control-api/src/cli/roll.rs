//! `control-api roll`: checks the arguments (usage errors change nothing), runs the
//! domain's roll on OpenTofu, the state bucket's heartbeats and the wall clock, then writes
//! the report to `--report`, to `$GITHUB_STEP_SUMMARY` and to `reports/<request_id>.json`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, Context};
use clap::{Args, ValueEnum};

use super::{load_registry, Failure};
use crate::domain::ports::StateStore;
use crate::domain::readiness::ReadinessTiming;
use crate::domain::report::{report_key, RollMode, RollOutcome, RollReport};
use crate::domain::request::{AmiId, Revision, Target};
use crate::domain::roll::order::roll_order;
use crate::domain::roll::ports::StoredHeartbeats;
use crate::domain::roll::summary::markdown;
use crate::domain::roll::{self, GateTiming, RollPorts, RollSpec};
use crate::outbound::aws::{load_sdk_config, s3_client};
use crate::outbound::state::S3State;
use crate::outbound::tofu::TofuCli;
use crate::outbound::SystemClock;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    Apply,
    Plan,
}

#[derive(Debug, Args)]
pub struct RollArgs {
    /// `all` or a registry id.
    #[arg(long)]
    target: String,
    #[arg(long)]
    ami: String,
    /// Names the report: `reports/<request_id>.json` in FLEET_STATE_BUCKET.
    #[arg(long)]
    request_id: String,
    /// The host to roll first, alone; default the registry's first id of the target.
    #[arg(long)]
    canary: Option<String>,
    #[arg(long, default_value_t = 900)]
    health_timeout_secs: u64,
    /// How long the canary must stay ready before the rest follow.
    #[arg(long, default_value_t = 120)]
    soak_secs: u64,
    /// Leave a host that did not become ready as it is instead of putting it back.
    #[arg(long)]
    no_auto_rollback: bool,
    /// Also write the report (JSON) to this file.
    #[arg(long)]
    report: Option<PathBuf>,
    /// The OpenTofu configuration; the binary is $TOFU (default `tofu`).
    #[arg(long, default_value = "infra")]
    dir: PathBuf,
    /// `plan`: plan every host of the target, apply nothing.
    #[arg(long, value_enum, default_value = "apply")]
    mode: ModeArg,
    /// The commit (40 hex) the hosts' heartbeats must report once replaced.
    #[arg(long)]
    revision: Option<String>,
    #[arg(long, default_value = "nix/instances.json")]
    registry: PathBuf,
    /// How often heartbeats are read.
    #[arg(long, default_value_t = 10)]
    poll_secs: u64,
}

/// The request id as the workflow accepts it: it becomes part of an S3 key.
fn request_id_ok(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"._-".contains(&c))
}

/// Every argument checked before anything runs; an error names what is wrong.
fn spec(args: &RollArgs) -> Result<RollSpec, Failure> {
    let registry = load_registry(&args.registry)?;
    let target =
        Target::parse(&args.target).map_err(|e| anyhow!("target {:?}: {e}", args.target))?;
    let hosts =
        roll_order(&registry, &target, args.canary.as_deref()).map_err(anyhow::Error::from)?;
    let ami = AmiId::parse(&args.ami).map_err(|e| anyhow!("--ami {:?}: {e}", args.ami))?;
    if !request_id_ok(&args.request_id) {
        return Err(anyhow!("--request-id must match ^[A-Za-z0-9._-]{{1,128}}$").into());
    }
    let revision = match &args.revision {
        Some(r) => Some(
            Revision::parse(r)
                .map_err(|e| anyhow!("--revision: {e}"))?
                .to_string(),
        ),
        None => None,
    };
    if args.health_timeout_secs == 0 || args.poll_secs == 0 {
        return Err(anyhow!("--health-timeout-secs and --poll-secs must be at least 1").into());
    }
    Ok(RollSpec {
        request_id: args.request_id.clone(),
        target: target.as_str().to_owned(),
        hosts,
        registry_ids: registry.iter().map(|(id, _)| id.to_string()).collect(),
        ami: ami.to_string(),
        revision,
        timing: GateTiming {
            timeout: Duration::from_secs(args.health_timeout_secs),
            soak: Duration::from_secs(args.soak_secs),
            poll: Duration::from_secs(args.poll_secs),
            stale: ReadinessTiming::default().stale,
        },
        auto_rollback: !args.no_auto_rollback,
        mode: match args.mode {
            ModeArg::Apply => RollMode::Apply,
            ModeArg::Plan => RollMode::Plan,
        },
    })
}

/// The workflow run's page, when running in GitHub Actions.
fn run_url() -> Option<String> {
    let var = |k| std::env::var(k).ok().filter(|v: &String| !v.is_empty());
    Some(format!(
        "{}/{}/actions/runs/{}",
        var("GITHUB_SERVER_URL")?,
        var("GITHUB_REPOSITORY")?,
        var("GITHUB_RUN_ID")?
    ))
}

pub fn run(args: RollArgs) -> Result<(), Failure> {
    let spec = spec(&args)?;
    let bucket = std::env::var("FLEET_STATE_BUCKET")
        .ok()
        .filter(|b| !b.is_empty())
        .context("FLEET_STATE_BUCKET is not set: heartbeats are read from it and the report is written to it")?;
    let bin = std::env::var("TOFU")
        .ok()
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| "tofu".to_owned());
    if !args.dir.is_dir() {
        return Err(anyhow!("--dir {} is not a directory", args.dir.display()).into());
    }
    // Progress to stderr (the run's log); stdout gets only the report's sentences.
    let _logs = crate::telemetry::init(crate::telemetry::LogFormat::Text);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let (report, stored) = runtime.block_on(async {
        let state = S3State::new(s3_client(&load_sdk_config().await), bucket);
        let tofu = TofuCli::new(bin, args.dir.clone());
        let ports = RollPorts {
            tofu: &tofu,
            heartbeats: &StoredHeartbeats(&state),
            clock: &SystemClock,
        };
        let mut report = roll::roll(&ports, &spec).await;
        report.run_url = run_url();
        let body = serde_json::to_vec_pretty(&report).expect("a report serializes");
        let stored = state.put(&report_key(&report.request_id), body).await;
        (
            report,
            stored.map_err(|e| anyhow!("report not stored in the state bucket: {e}")),
        )
    });
    finish(&report, args.report.as_deref(), stored)
}

/// Writes the report's other copies and prints it; the exit says how the roll ended.
fn finish(
    report: &RollReport,
    file: Option<&Path>,
    stored: anyhow::Result<()>,
) -> Result<(), Failure> {
    let mut problems: Vec<anyhow::Error> = stored.err().into_iter().collect();
    if let Some(path) = file {
        let json = serde_json::to_string_pretty(report).expect("a report serializes");
        if let Err(e) = std::fs::write(path, json + "\n") {
            problems.push(anyhow!("report not written to {}: {e}", path.display()));
        }
    }
    if let Some(summary) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|s| !s.is_empty()) {
        if let Err(e) = append(Path::new(&summary), &markdown(report)) {
            problems.push(anyhow!("step summary not written: {e}"));
        }
    }
    for line in report.summary_lines() {
        println!("{line}");
    }
    for p in &problems {
        eprintln!("control-api: error: {p:#}");
    }
    match report.outcome {
        RollOutcome::NeedsHuman => Err(Failure::NeedsHuman(report.summary_lines())),
        RollOutcome::Stopped => Err(Failure::Check(vec![report.headline()])),
        RollOutcome::Succeeded => match problems.into_iter().next() {
            Some(e) => Err(Failure::Error(e)),
            None => Ok(()),
        },
    }
}

fn append(path: &Path, text: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(text.as_bytes())
}
