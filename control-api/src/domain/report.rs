//! A roll's (or a plan's) report: one document per run, written by `control-api roll` to
//! `--report`, to the workflow's step summary and to the state bucket as
//! `reports/<request_id>.json`; the API's `run`/`runs`, `fleet wait` and the chat message
//! are read from it. Plain data plus the human sentences every reader shows.

use serde::{Deserialize, Serialize};

/// The state-store prefix of reports; the S3 event notification listens on it.
pub const REPORTS_PREFIX: &str = "reports/";

/// The state-store key of a run's report.
pub fn report_key(request_id: &str) -> String {
    format!("{REPORTS_PREFIX}{request_id}.json")
}

/// The request id in a report key (`reports/<request_id>.json`), if it is one.
pub fn request_id_of_key(key: &str) -> Option<&str> {
    let id = key.strip_prefix(REPORTS_PREFIX)?.strip_suffix(".json")?;
    (!id.is_empty() && !id.contains('/')).then_some(id)
}

/// Whether the run applied (a roll) or only planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RollMode {
    #[default]
    Apply,
    Plan,
}

impl RollMode {
    /// The workflow's `mode` input, and the word people read.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Apply => "apply",
            Self::Plan => "plan",
        }
    }

    pub fn is_apply(&self) -> bool {
        *self == Self::Apply
    }
}

/// How the whole run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RollOutcome {
    /// Every host of the target is ready on the new image (or, for a plan, planned).
    Succeeded,
    /// Stopped at a host (not ready, or a plan guard); put back where it could be.
    Stopped,
    /// Stopped, and the put-back failed too: a host needs a human.
    NeedsHuman,
}

/// How one host ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostOutcome {
    Ready,
    Failed,
    RolledBack,
    RollbackFailed,
    Skipped,
    /// Plan mode only: planned, nothing applied.
    Planned,
}

/// What a plan would do to one host (plan mode; also kept for an applied roll).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PlanSummary {
    /// Resource addresses per kind of change.
    pub replaced: Vec<String>,
    pub created: Vec<String>,
    pub destroyed: Vec<String>,
    pub changed: Vec<String>,
}

impl PlanSummary {
    /// `replace aws_instance.host["clawdinator-2"]; change …`, or `no changes`: what a
    /// plan would do, by kind, with the addresses.
    pub fn sentence(&self) -> String {
        let kinds = [
            ("replace", &self.replaced),
            ("create", &self.created),
            ("destroy", &self.destroyed),
            ("change", &self.changed),
        ];
        let parts: Vec<String> = kinds
            .iter()
            .filter(|(_, addresses)| !addresses.is_empty())
            .map(|(verb, addresses)| format!("{verb} {}", addresses.join(", ")))
            .collect();
        if parts.is_empty() {
            "no changes".to_owned()
        } else {
            parts.join("; ")
        }
    }
}

/// One host's line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostReport {
    /// The registry id.
    pub id: String,
    pub from_ami: Option<String>,
    pub to_ami: Option<String>,
    pub old_ec2_instance_id: Option<String>,
    pub new_ec2_instance_id: Option<String>,
    pub outcome: HostOutcome,
    /// One human sentence; set for every outcome but `ready`.
    pub reason: Option<String>,
    pub ready_after_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<PlanSummary>,
    /// The instance a put-back started on `from_ami` (`rolled_back`, `rollback_failed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub put_back_ec2_instance_id: Option<String>,
}

/// The report of one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollReport {
    pub request_id: String,
    /// `all` or a registry id.
    pub target: String,
    pub ami: String,
    #[serde(default)]
    pub mode: RollMode,
    /// The commit deployed (full SHA), when the run was pinned to one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    pub outcome: RollOutcome,
    pub hosts: Vec<HostReport>,
    /// The workflow run's page, when the roll ran in one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_url: Option<String>,
}

/// `4m12s`, `45s`, `1h03m`: how long a host took, for humans.
pub fn human_duration(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

impl HostReport {
    /// `clawdinator-2 ready on ami-… in 4m12s`, `clawdinator-babelfish not touched`, …
    pub fn sentence(&self) -> String {
        let ami = |a: &Option<String>| a.clone().unwrap_or_else(|| "?".to_owned());
        let why = self
            .reason
            .as_deref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default();
        match self.outcome {
            HostOutcome::Ready => match self.ready_after_secs {
                Some(s) => format!(
                    "{} ready on {} in {}",
                    self.id,
                    ami(&self.to_ami),
                    human_duration(s)
                ),
                None => format!("{} ready on {}", self.id, ami(&self.to_ami)),
            },
            HostOutcome::Failed => {
                format!("{} not ready{why}; left on {}", self.id, ami(&self.to_ami))
            }
            HostOutcome::RolledBack => {
                format!(
                    "{} not ready{why}; put back on {}",
                    self.id,
                    ami(&self.from_ami)
                )
            }
            HostOutcome::RollbackFailed => format!(
                "{} not ready, and the put-back on {} failed too{why}: needs a human",
                self.id,
                ami(&self.from_ami)
            ),
            HostOutcome::Skipped => format!("{} not touched{why}", self.id),
            HostOutcome::Planned => {
                let changes = self
                    .plan
                    .as_ref()
                    .map(|p| format!(": {}", p.sentence()))
                    .unwrap_or_default();
                format!(
                    "{} would go to {}{changes}{why}",
                    self.id,
                    ami(&self.to_ami)
                )
            }
        }
    }
}

impl RollReport {
    /// The one-line headline: `deploy of all on ami-… succeeded` / `stopped` / `needs a human`.
    pub fn headline(&self) -> String {
        let verb = match self.mode {
            RollMode::Apply => "deploy",
            RollMode::Plan => "plan",
        };
        let ended = match self.outcome {
            RollOutcome::Succeeded => "succeeded",
            RollOutcome::Stopped => "stopped",
            RollOutcome::NeedsHuman => "stopped, a host needs a human",
        };
        format!("{verb} of {} on {} {ended}", self.target, self.ami)
    }

    /// The headline, then one sentence per host: what `fleet wait`, `run` and the chat show.
    pub fn summary_lines(&self) -> Vec<String> {
        std::iter::once(self.headline())
            .chain(self.hosts.iter().map(HostReport::sentence))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(id: &str, outcome: HostOutcome) -> HostReport {
        HostReport {
            id: id.to_owned(),
            from_ami: Some("ami-0aaaaaaa".to_owned()),
            to_ami: Some("ami-0bbbbbbb".to_owned()),
            old_ec2_instance_id: None,
            new_ec2_instance_id: None,
            outcome,
            reason: None,
            ready_after_secs: Some(252),
            plan: None,
            put_back_ec2_instance_id: None,
        }
    }

    #[test]
    fn report_keys_round_trip() {
        assert_eq!(report_key("r-1"), "reports/r-1.json");
        assert_eq!(request_id_of_key("reports/r-1.json"), Some("r-1"));
        assert_eq!(request_id_of_key("reports/a/b.json"), None);
        assert_eq!(request_id_of_key("heartbeats/x.json"), None);
        assert_eq!(request_id_of_key("reports/.json"), None);
    }

    #[test]
    fn sentences_say_what_happened() {
        assert_eq!(
            host("clawdinator-2", HostOutcome::Ready).sentence(),
            "clawdinator-2 ready on ami-0bbbbbbb in 4m12s"
        );
        let mut back = host("clawdinator-2", HostOutcome::RolledBack);
        back.reason = Some("service failed".to_owned());
        assert_eq!(
            back.sentence(),
            "clawdinator-2 not ready (service failed); put back on ami-0aaaaaaa"
        );
        assert_eq!(
            host("clawdinator-babelfish", HostOutcome::Skipped).sentence(),
            "clawdinator-babelfish not touched"
        );
        let mut planned = host("clawdinator-2", HostOutcome::Planned);
        planned.plan = Some(PlanSummary {
            replaced: vec![r#"aws_instance.host["clawdinator-2"]"#.to_owned()],
            changed: vec!["aws_route53_record.a".to_owned(), "aws_eip.b".to_owned()],
            ..PlanSummary::default()
        });
        assert_eq!(
            planned.sentence(),
            r#"clawdinator-2 would go to ami-0bbbbbbb: replace aws_instance.host["clawdinator-2"]; change aws_route53_record.a, aws_eip.b"#
        );
        planned.plan = Some(PlanSummary::default());
        assert_eq!(
            planned.sentence(),
            "clawdinator-2 would go to ami-0bbbbbbb: no changes"
        );
        assert_eq!(human_duration(45), "45s");
        assert_eq!(human_duration(3780), "1h03m");
    }
}
