//! OpenTofu as the roll runs it: the four commands the deploy has always used, run in the
//! infra directory with the binary from `TOFU`. Plan and apply write to the run's log as
//! they go; show and output are read.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::domain::roll::ports::{Tofu, TofuError, TofuInstance};

/// The `tofu` binary and the directory it runs in (`--dir`).
pub struct TofuCli {
    bin: String,
    dir: PathBuf,
}

impl TofuCli {
    pub fn new(bin: String, dir: PathBuf) -> Self {
        Self { bin, dir }
    }

    /// Runs `tofu ARGS` to the end off the async runtime; its stdout when `read`, else
    /// stdout goes to the log (our stderr, so stdout keeps only the roll's own lines).
    async fn run(&self, args: Vec<String>, read: bool) -> Result<String, TofuError> {
        let mut cmd = Command::new(&self.bin);
        cmd.args(&args).current_dir(&self.dir).stdin(Stdio::null());
        if !read {
            cmd.stdout(std::io::stderr());
        }
        let what = format!("tofu {}", args.first().map_or("", String::as_str));
        let out = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .map_err(|e| TofuError(format!("{what} did not finish ({e})")))?
            .map_err(|e| TofuError(format!("{what} could not be started ({e})")))?;
        let err = String::from_utf8_lossy(&out.stderr);
        eprint!("{err}");
        if !out.status.success() {
            let tail: Vec<&str> = err.lines().rev().take(3).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(TofuError(format!(
                "{what} failed ({}): {}",
                out.status,
                tail.join(" / ")
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Tofu for TofuCli {
    async fn plan(
        &self,
        replace: &str,
        instance_amis: &BTreeMap<String, String>,
        plan_file: &str,
    ) -> Result<(), TofuError> {
        let amis = serde_json::to_string(instance_amis).expect("a map of strings serializes");
        let args = [
            "plan",
            "-input=false",
            "-lock-timeout=10m",
            &format!("-replace={replace}"),
            "-var",
            &format!("instance_amis={amis}"),
            &format!("-out={plan_file}"),
        ];
        self.run(args.map(str::to_owned).to_vec(), false)
            .await
            .map(drop)
    }

    async fn show(&self, plan_file: &str) -> Result<String, TofuError> {
        let args = ["show", "-json", plan_file];
        self.run(args.map(str::to_owned).to_vec(), true).await
    }

    async fn apply(&self, plan_file: &str) -> Result<(), TofuError> {
        let args = ["apply", "-input=false", "-lock-timeout=10m", plan_file];
        self.run(args.map(str::to_owned).to_vec(), false)
            .await
            .map(drop)
    }

    async fn instances(&self) -> Result<BTreeMap<String, TofuInstance>, TofuError> {
        let args = ["output", "-json", "instances"];
        let json = self.run(args.map(str::to_owned).to_vec(), true).await?;
        serde_json::from_str(&json).map_err(|e| {
            TofuError(format!(
                "tofu output -json instances was not the instances map ({e})"
            ))
        })
    }

    fn discard(&self, plan_file: &str) {
        let _ = std::fs::remove_file(self.dir.join(plan_file));
    }
}
