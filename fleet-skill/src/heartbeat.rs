//! `fleet heartbeat`: gathers this host's facts (EC2 instance and image from IMDSv2, the
//! NixOS revision, the service's health, the boot time, this CLI's version) and posts
//! them to the control API as `action: heartbeat`. Run by a systemd timer on each host.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use control_api::contract::{
    AgentVersion, AmiId, BootTime, Ec2InstanceId, HeartbeatReport, HostRevision, ServiceState,
};

use crate::config::Lookup;
use crate::error::FleetError;

/// Where NixOS keeps the revision of the running system (`system.configurationRevision`).
pub const DEFAULT_REVISION_FILE: &str = "/run/current-system/configurationRevision";
/// The bot's service, as systemd words its state.
pub const DEFAULT_HEALTH_COMMAND: &str = "systemctl is-active clawdinator.service";
/// How long the health command may take before it counts as `failed`.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(10);
/// The standard IMDS endpoint override of the AWS SDKs (tests: a loopback double).
pub const IMDS_ENDPOINT_VAR: &str = "AWS_EC2_METADATA_SERVICE_ENDPOINT";

/// Why the facts could not be gathered. Never carries the IMDS session token.
#[derive(Debug, thiserror::Error)]
pub enum GatherError {
    #[error("cannot read {what} from the EC2 instance metadata service (IMDSv2): {detail}")]
    Imds { what: &'static str, detail: String },
    #[error("the instance metadata service answered {what} with {value:?}, which is not one")]
    BadImds { what: &'static str, value: String },
    #[error("cannot read the boot time from /proc/stat: {0}")]
    BootTime(String),
}

/// Everything the report needs, gathered now.
pub fn gather(lookup: Lookup<'_>) -> Result<HeartbeatReport, FleetError> {
    let (ec2_id, ami) = instance_identity(lookup)?;
    let ec2_instance_id = Ec2InstanceId::parse(&ec2_id).map_err(|_| GatherError::BadImds {
        what: "instance-id",
        value: ec2_id.clone(),
    })?;
    let ami = AmiId::parse(&ami).map_err(|_| GatherError::BadImds {
        what: "ami-id",
        value: ami.clone(),
    })?;
    let revision_file = lookup("FLEET_REVISION_FILE")
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_REVISION_FILE.to_owned());
    let health = lookup("FLEET_HEALTH_COMMAND")
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_HEALTH_COMMAND.to_owned());
    Ok(HeartbeatReport {
        ec2_instance_id,
        ami,
        revision: revision(&revision_file),
        service: service_state(&health, HEALTH_TIMEOUT),
        booted_at: boot_time()?,
        agent: AgentVersion::parse(env!("CARGO_PKG_VERSION"))
            .expect("the crate version is a version"),
    })
}

/// The instance id and AMI id, through the SDK's IMDSv2 client (token first, then each
/// path with the token header), on a short budget: a host that cannot reach its own
/// metadata has nothing to report.
fn instance_identity(lookup: Lookup<'_>) -> Result<(String, String), GatherError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| imds_error("anything", &e))?;
    runtime.block_on(async {
        let config = aws_config::provider_config::ProviderConfig::default()
            .with_http_client(control_api::aws_http::https_client());
        let mut builder = aws_config::imds::Client::builder()
            .configure(&config)
            .max_attempts(2)
            .connect_timeout(Duration::from_secs(1))
            .read_timeout(Duration::from_secs(2));
        if let Some(url) = lookup(IMDS_ENDPOINT_VAR).filter(|s| !s.trim().is_empty()) {
            builder = builder
                .endpoint(url.trim())
                .map_err(|e| imds_error("its endpoint", &*e))?;
        }
        let client = builder.build();
        let id = client
            .get("/latest/meta-data/instance-id")
            .await
            .map_err(|e| imds_error("instance-id", &e))?;
        let ami = client
            .get("/latest/meta-data/ami-id")
            .await
            .map_err(|e| imds_error("ami-id", &e))?;
        Ok((
            id.as_ref().trim().to_owned(),
            ami.as_ref().trim().to_owned(),
        ))
    })
}

/// An IMDS failure with its causes on one line (the SDK's top error only says which
/// step failed; the cause says why: refused, timed out, …).
fn imds_error(what: &'static str, e: &(dyn std::error::Error + 'static)) -> GatherError {
    let mut detail = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !detail.contains(&text) {
            detail.push_str(": ");
            detail.push_str(&text);
        }
        cause = c.source();
    }
    GatherError::Imds { what, detail }
}

/// The revision in `path`, or empty when there is none (a system not built from git).
fn revision(path: &str) -> HostRevision {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    // A revision that is not a plain commit is reported as none rather than not at all.
    HostRevision::parse(text.trim())
        .unwrap_or_else(|_| HostRevision::parse("").expect("empty is valid"))
}

/// Runs the health command (split on whitespace, no shell): exit 0 is `active`, else the
/// first word of its output when it is a systemd state, else `failed`. A command that
/// cannot start or outlives `timeout` is `failed` too: the service is not known to work.
pub fn service_state(command: &str, timeout: Duration) -> ServiceState {
    let failed = || ServiceState::parse("failed").expect("a state");
    let mut words = command.split_whitespace();
    let Some(program) = words.next() else {
        return failed();
    };
    let child = Command::new(program)
        .args(words)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut child) = child else {
        return failed();
    };
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                // Killing and reaping is all that is left to do; either may fail if it
                // just exited, which changes nothing.
                let _ = child.kill();
                let _ = child.wait();
                return failed();
            }
        }
    };
    if status.success() {
        return ServiceState::parse(ServiceState::ACTIVE).expect("a state");
    }
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        // What systemctl printed; unreadable output just means no word.
        let _ = stdout.by_ref().take(4096).read_to_string(&mut out);
    }
    out.split_whitespace()
        .next()
        .and_then(|w| ServiceState::parse(w).ok())
        .unwrap_or_else(failed)
}

/// The boot time from `/proc/stat`'s `btime` (seconds since the epoch), RFC 3339.
fn boot_time() -> Result<BootTime, GatherError> {
    let stat =
        std::fs::read_to_string("/proc/stat").map_err(|e| GatherError::BootTime(e.to_string()))?;
    let secs: i64 = stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| GatherError::BootTime("no btime line".to_owned()))?;
    let time = chrono::DateTime::from_timestamp(secs, 0)
        .ok_or_else(|| GatherError::BootTime(format!("btime {secs} is no time")))?;
    BootTime::parse(&time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .map_err(|e| GatherError::BootTime(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_is_the_commands_exit_and_word() {
        let t = Duration::from_secs(5);
        assert_eq!(service_state("true", t).as_str(), "active");
        assert_eq!(service_state("false", t).as_str(), "failed");
        let dir = std::env::temp_dir().join(format!("fleet-health-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("inactive");
        std::fs::write(&script, "#!/bin/sh\necho inactive\nexit 3\n").unwrap();
        let word = service_state(&format!("sh {}", script.display()), t);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(word.as_str(), "inactive");
        assert_eq!(service_state("printf activating", t).as_str(), "active");
        assert_eq!(
            service_state("/nonexistent/health-check", t).as_str(),
            "failed"
        );
        assert_eq!(service_state("", t).as_str(), "failed");
        let started = Instant::now();
        assert_eq!(
            service_state("sleep 5", Duration::from_millis(200)).as_str(),
            "failed"
        );
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[test]
    fn revision_and_boot_time() {
        assert_eq!(revision("/nonexistent/revision").as_str(), "");
        assert!(boot_time().is_ok());
    }
}
