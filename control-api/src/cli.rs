//! The `control-api` command line: `serve` (local server) and the checks the deploy workflow runs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::app;
use crate::config::{AwsSettings, Mode, Settings};
use crate::domain::lock::read_locks;
use crate::domain::ports::{AwsError, FleetReader};
use crate::domain::registry::Registry;
use crate::domain::request::{AmiId, RequestError, Target};
use crate::domain::retention::{plan_retention, KeepReason};
use crate::outbound::aws::{load_sdk_config, s3_client, Ec2Fleet};
use crate::outbound::dispatch::AnyWorkflow;
use crate::outbound::state::S3State;
use crate::telemetry::{self, LogFormat};

mod roll;

#[derive(Debug, Parser)]
#[command(
    name = "control-api",
    version,
    about = "Fleet control API: local server and fleet checks"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the control API on 127.0.0.1:$PORT (default 8787), the same handler as the Lambda.
    Serve {
        /// First seed a local fleet into the AWS emulator at AWS_ENDPOINT_URL (loopback
        /// only): hosts, two images, a state bucket, bootstrap bundles. `scripts/local-fleet`.
        #[cfg(feature = "test-support")]
        #[arg(long)]
        local_fleet: bool,
    },
    /// Check the fleet registry and that every host has its nix/hosts/<host>.nix.
    CheckRegistry {
        #[arg(long, default_value = "nix/instances.json")]
        registry: PathBuf,
        /// Defaults to the `hosts` folder beside the registry.
        #[arg(long)]
        hosts_dir: Option<PathBuf>,
    },
    /// Print the newest fleet image (owners=self, tag FLEET_IMAGE_TAG_KEY=FLEET_IMAGE_TAG_VALUE).
    LatestAmi,
    /// Check that an AMI is a fleet image (owned by this account, with the fleet image tag);
    /// the deploy workflow runs it on `ami_override` before anything is replaced.
    CheckAmi {
        #[arg(long)]
        ami: String,
    },
    /// AMI retention: keep the newest N fleet images and every image backing an instance;
    /// deregister the rest and delete their snapshots. A dry run unless --apply.
    PruneAmis {
        #[arg(long, default_value_t = 6)]
        keep: usize,
        #[arg(long)]
        apply: bool,
    },
    /// Check that no lock holds a host a deploy of TARGET would touch (an `all` lock
    /// holds every host; a deploy of `all` is held by any lock). Reads the locks in
    /// FLEET_STATE_BUCKET; exit 1 naming the holder, reason and expiry when locked.
    CheckLock {
        #[arg(long)]
        target: String,
    },
    /// Validate deploy workflow inputs: target `all` or a registry id, AMI empty or ami-….
    CheckInputs {
        #[arg(long)]
        target: String,
        #[arg(long, default_value = "")]
        ami_override: String,
        #[arg(long, default_value = "nix/instances.json")]
        registry: PathBuf,
    },
    /// Roll a new image over the target's hosts through OpenTofu, canary first, each
    /// waited for by its heartbeat; stop at the first sick host and put it back. Exit 1:
    /// stopped; 2: usage; 3: the put-back failed too (a host needs a human).
    Roll(roll::RollArgs),
}

/// How a command failed: a check that found problems (exit 1), an error (exit 2), or a
/// stopped roll whose put-back failed too, so a host needs a human (exit 3).
#[derive(Debug)]
pub enum Failure {
    Check(Vec<String>),
    Error(anyhow::Error),
    NeedsHuman(Vec<String>),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Self::Error(e)
    }
}

impl From<AwsError> for Failure {
    fn from(e: AwsError) -> Self {
        Self::Error(e.into())
    }
}

pub fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        #[cfg(feature = "test-support")]
        Command::Serve { local_fleet } => serve(local_fleet).map_err(Failure::Error),
        #[cfg(not(feature = "test-support"))]
        Command::Serve {} => serve(false).map_err(Failure::Error),
        Command::LatestAmi => latest_ami(),
        Command::CheckAmi { ami } => check_ami(&ami),
        Command::PruneAmis { keep, apply } => prune_amis(keep, apply),
        Command::CheckRegistry {
            registry,
            hosts_dir,
        } => check_registry(&registry, hosts_dir.as_deref()),
        Command::CheckInputs {
            target,
            ami_override,
            registry,
        } => check_inputs(&target, &ami_override, &registry),
        Command::Roll(args) => roll::run(args),
        Command::CheckLock { target } => check_lock(&target),
    }
}

fn serve(local_fleet: bool) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let _logs = telemetry::init(LogFormat::Text);
        let mut settings = Settings::from_env()?;
        let generated = settings.control_token.is_none().then(|| {
            let token = format!("local-{}", uuid::Uuid::new_v4().simple());
            settings.control_token = Some(token.clone());
            token
        });
        let port: u16 = match std::env::var("PORT") {
            Ok(p) if !p.is_empty() => p.parse().with_context(|| format!("PORT must be a port number, got {p:?}"))?,
            _ => 8787,
        };
        let seeded = if local_fleet {
            Some(seed_local_fleet(&mut settings).await?)
        } else {
            None
        };
        let registry_source = settings.registry_source.clone();
        let drain_every = settings.queue_drain;
        let api = Arc::new(app::build(settings, Mode::Local).await?);
        tokio::spawn(drain_on_a_timer(Arc::clone(&api), drain_every));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .with_context(|| format!("cannot listen on 127.0.0.1:{port}"))?;
        let addr = listener.local_addr()?;
        let dispatch = match &api.ports().workflow {
            AnyWorkflow::GitHub(_) => "GitHub",
            AnyWorkflow::DryRun(_) => "dry run (GITHUB_TOKEN not set)",
            AnyWorkflow::NotConfigured(_) => "not configured",
        };
        // The banner goes to stdout, once; logs go to stderr and never carry the token.
        println!("control-api listening on http://{addr} (registry: {registry_source}; dispatch: {dispatch})");
        if let Some(seeded) = &seeded {
            println!("{seeded}");
        }
        banner(addr, generated.as_deref(), seeded.is_some());
        tracing::info!(%addr, "listening");
        crate::inbound::local::serve(api, listener, shutdown_signal()).await?;
        tracing::info!("stopped");
        Ok(())
    })
}

/// The local server's stand-in for the Lambda's schedule: drains the deploy queue
/// every `every` (a lease whose run ended without its report's event ends here).
async fn drain_on_a_timer(api: Arc<app::App>, every: std::time::Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match api.scheduled().await {
            Ok(report) if report.dispatched.is_empty() && report.dropped.is_empty() => {}
            Ok(report) => {
                tracing::info!(dispatched = ?report.dispatched, dropped = ?report.dropped, "queue drained")
            }
            Err(e) => tracing::warn!(error = %e, "queue drain failed; the next tick tries again"),
        }
    }
}

/// The token to export and what to try first.
fn banner(addr: std::net::SocketAddr, generated: Option<&str>, local_fleet: bool) {
    match generated {
        Some(token) => {
            println!("CONTROL_API_TOKEN was not set; this run accepts the generated token:");
            println!("  export CONTROL_API_TOKEN={token}");
        }
        None => println!("  (the token is the CONTROL_API_TOKEN you set)"),
    }
    if local_fleet {
        println!("try, in another shell (cargo build -p fleet-skill first if target/debug/fleet is missing):");
        println!(
            "  export FLEET_CONTROL_URL=http://{addr} FLEET_CONTROL_TOKEN=\"$CONTROL_API_TOKEN\""
        );
        println!("  target/debug/fleet status");
        println!("  target/debug/fleet deploy clawdinator-2");
        println!("  target/debug/fleet audit");
        println!("Ctrl-C stops the API and the emulator.");
    } else {
        println!(
            "try: curl -sS http://{addr}/ -H \"Authorization: Bearer $CONTROL_API_TOKEN\" -H 'content-type: application/json' -d '{{\"action\":\"deploy\",\"target\":\"clawdinator-2\"}}'"
        );
        println!(
            "(status needs AWS: scripts/local-fleet runs the whole product on a local emulator)"
        );
    }
}

#[cfg(feature = "test-support")]
async fn seed_local_fleet(
    settings: &mut Settings,
) -> anyhow::Result<crate::test_support::local_fleet::Seeded> {
    use crate::test_support::local_fleet;
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    let sdk = crate::outbound::aws::load_local_sdk_config().await;
    let seeded = local_fleet::seed(&endpoint, &sdk, &settings.registry, &settings.aws).await?;
    settings.aws.state_bucket = Some(local_fleet::STATE_BUCKET.to_owned());
    settings.aws.bootstrap_bucket = Some(local_fleet::BOOTSTRAP_BUCKET.to_owned());
    Ok(seeded)
}

#[cfg(not(feature = "test-support"))]
async fn seed_local_fleet(_: &mut Settings) -> anyhow::Result<std::convert::Infallible> {
    unreachable!("--local-fleet exists only with the test-support feature")
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return ctrl_c.await.unwrap_or(()),
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await.unwrap_or(());
}

/// The EC2-side tools' common set-up: settings from the environment, one current-thread
/// runtime, the SDK and the fleet reader, then `f`.
fn with_ec2<T>(
    f: impl AsyncFnOnce(&Ec2Fleet, &AwsSettings) -> Result<T, Failure>,
) -> Result<T, Failure> {
    let settings = Settings::from_env().map_err(anyhow::Error::from)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let sdk = load_sdk_config().await;
        let ec2 = Ec2Fleet::new(&sdk, settings.aws.clone());
        f(&ec2, &settings.aws).await
    })
}

fn latest_ami() -> Result<(), Failure> {
    with_ec2(async |ec2, aws| match ec2.latest_image().await? {
        Some(image) => {
            println!("{}", image.id);
            Ok(())
        }
        None => Err(Failure::Check(vec![format!(
            "no image owned by this account has tag {}={}",
            aws.image_tag_key, aws.image_tag_value
        )])),
    })
}

fn check_ami(ami: &str) -> Result<(), Failure> {
    let ami = AmiId::parse(ami).map_err(|e| Failure::Check(vec![e.to_string()]))?;
    with_ec2(async |ec2, _| match ec2.fleet_image(ami.as_str()).await? {
        Some(image) => {
            println!(
                "{} is a fleet image ({})",
                image.id,
                image.name.as_deref().unwrap_or("-")
            );
            Ok(())
        }
        None => Err(Failure::Check(vec![
            RequestError::UnknownAmi(ami).to_string()
        ])),
    })
}

fn prune_amis(keep: usize, apply: bool) -> Result<(), Failure> {
    with_ec2(async |ec2, _| {
        // Every lookup before any deletion: a failed one aborts with nothing deleted.
        let images = ec2.fleet_image_records().await?;
        let ids: Vec<String> = images.iter().map(|i| i.id.clone()).collect();
        let in_use = ec2.images_in_use(&ids).await?;
        let plan = plan_retention(images, &in_use, keep);
        for (image, reason) in &plan.keep {
            let why = match reason {
                KeepReason::Newest { rank } => format!("newest {rank}/{keep}"),
                KeepReason::InUse { instances } => format!("backs {}", instances.join(", ")),
            };
            println!(
                "keep    {} {} ({why})",
                image.id,
                image.name.as_deref().unwrap_or("-")
            );
        }
        let verb = if apply { "delete " } else { "would delete" };
        for image in &plan.delete {
            println!(
                "{verb} {} {} created {} snapshots [{}]",
                image.id,
                image.name.as_deref().unwrap_or("-"),
                image.created.as_deref().unwrap_or("?"),
                image.snapshots.join(", ")
            );
        }
        if apply {
            for image in &plan.delete {
                ec2.deregister_image(&image.id).await?;
            }
            for snapshot in &plan.delete_snapshots {
                ec2.delete_snapshot(snapshot).await?;
            }
        }
        println!(
            "{} image(s) kept, {} {} with {} snapshot(s){}",
            plan.keep.len(),
            plan.delete.len(),
            if apply { "deleted" } else { "to delete" },
            plan.delete_snapshots.len(),
            if apply {
                ""
            } else {
                " (dry run; --apply to delete)"
            }
        );
        Ok(())
    })
}

fn load_registry(path: &Path) -> Result<Registry, Failure> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read registry {}", path.display()))?;
    Registry::from_json(&text).map_err(|e| match e {
        crate::domain::registry::RegistryError::Invalid(problems) => Failure::Check(
            problems
                .into_iter()
                .map(|p| format!("{}: {p}", path.display()))
                .collect(),
        ),
        other => Failure::Check(vec![format!("{}: {other}", path.display())]),
    })
}

fn check_registry(path: &Path, hosts_dir: Option<&Path>) -> Result<(), Failure> {
    let registry = load_registry(path)?;
    let hosts_dir = hosts_dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| path.parent().unwrap_or(Path::new(".")).join("hosts"));
    let missing: Vec<String> = registry
        .iter()
        .filter_map(|(id, entry)| {
            let file = hosts_dir.join(format!("{}.nix", entry.host));
            (!file.is_file()).then(|| format!("{id}: host file {} is missing", file.display()))
        })
        .collect();
    if !missing.is_empty() {
        return Err(Failure::Check(missing));
    }
    println!(
        "registry {} ok: {} instance(s)",
        path.display(),
        registry.len()
    );
    Ok(())
}

fn check_lock(target: &str) -> Result<(), Failure> {
    let target = Target::parse(target).map_err(|e| Failure::Check(vec![format!("target: {e}")]))?;
    let settings = Settings::from_env().map_err(anyhow::Error::from)?;
    let bucket = settings.aws.state_bucket.clone().ok_or_else(|| {
        anyhow::anyhow!("FLEET_STATE_BUCKET is not set: it names the bucket that holds the locks")
    })?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let locks = runtime.block_on(async {
        let sdk = load_sdk_config().await;
        read_locks(&S3State::new(s3_client(&sdk), bucket)).await
    })?;
    let now = chrono::Utc::now();
    let held: Vec<String> = locks
        .iter()
        .filter(|l| !l.expired(now) && l.covers(&target))
        .map(|l| format!("locked: {}", l.sentence()))
        .collect();
    if !held.is_empty() {
        return Err(Failure::Check(held));
    }
    println!("no lock holds a deploy of {target}");
    Ok(())
}

fn check_inputs(target: &str, ami_override: &str, registry_path: &Path) -> Result<(), Failure> {
    let registry = load_registry(registry_path)?;
    let mut problems = Vec::new();
    let target = Target::parse(target).and_then(|t| t.resolve(&registry));
    if let Err(e) = &target {
        problems.push(format!("target: {e}"));
    }
    if !ami_override.is_empty() {
        if let Err(e) = AmiId::parse(ami_override) {
            problems.push(e.to_string());
        }
    }
    match target {
        Ok(target) if problems.is_empty() => {
            println!("inputs ok: target={target} ami_override={ami_override}");
            Ok(())
        }
        _ => Err(Failure::Check(problems)),
    }
}
