//! The command line (clap derive): `fleet [--caller C] status | deploy | rollback | plan | runs | audit | lock | unlock | queue | cancel | wait | chat | heartbeat`.
//!
//! Values are parsed with the control API's own types, so a bad target or AMI is a usage
//! error (exit 2) before anything is sent. The control token has no flag on purpose:
//! arguments show in `ps` and shell history.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use control_api::contract::{
    AmiId, Caller, Revision, Target, AUDIT_LIMIT, DEFAULT_TTL_SECS, MAX_TTL_SECS, RUNS_LIMIT,
};

use crate::wait::{RunRef, WaitOptions};

const ENVIRONMENT_HELP: &str = "\
Environment:
  FLEET_CONTROL_URL         control API URL (required): http://127.0.0.1:8787 for the local
                            server (`scripts/local-fleet`), else the Lambda's
                            Function URL https://<id>.lambda-url.<region>.on.aws/
  FLEET_CONTROL_TOKEN_FILE  file holding the control token (default /run/agenix/clawdinator-control-token)
  FLEET_CONTROL_TOKEN       the control token itself, if no token file is set (for the
                            local server: the CONTROL_API_TOKEN that `serve` prints)
  AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION
                            invoker credentials: when present, requests are SigV4-signed
  FLEET_AGENIX_DIR          where the agenix AWS key files are (default /run/agenix)
  FLEET_INSTANCE_NAME_FILE  default caller (default /etc/clawdinator/instance-name)

Exit codes:
  0  done; for wait and --wait: the run concluded success
  1  refused (by the API or locally by policy); for wait and --wait: the run concluded
     anything but success (failure, cancelled, timed_out, ...)
  2  usage or configuration; nothing was sent
  3  server or network failure; for wait and --wait also: the wait timed out, or polls
     failed 5 times in a row (the run itself goes on)";

const WAIT_HELP: &str = "\
Progress goes to stderr: on a terminal one line is redrawn in place (spinner, status,
current step, elapsed time); otherwise a line is written only when the status or step
changes. A run not yet visible for a request id is asked for again for up to 60 s;
a server that dispatches nothing (a dry run: nothing_dispatched) ends the wait at once.
Failed polls (network, 5xx) are retried; 5 in a row, or a refusal, end the wait.
The last line on stdout is the summary: conclusion, duration, run URL.

Exit: 0 the run concluded success; 1 it concluded anything else, there is no run to
follow (a dry run), or the API refused; 2 a bad id; 3 the wait timed out or polls kept
failing (the run itself goes on).";

const HEARTBEAT_HELP: &str = "\
Environment (besides the control URL and token):
  AWS_EC2_METADATA_SERVICE_ENDPOINT  the instance metadata service (IMDSv2; default the
                                     SDK's, http://169.254.169.254)
  FLEET_REVISION_FILE   the NixOS revision (default /run/current-system/configurationRevision;
                        missing: reported empty)
  FLEET_HEALTH_COMMAND  the health check, split on whitespace, no shell (default
                        `systemctl is-active clawdinator.service`); exit 0 is active, else
                        its first output word, else failed; 10 s at most

Exit: 0 recorded; 1 refused by the API; 2 configuration; 3 the metadata service, the
API or the network failed.";

#[derive(Debug, Parser)]
#[command(
    name = "fleet",
    version,
    about = "Deploy and inspect the clawdinator fleet through the control API",
    after_help = ENVIRONMENT_HELP
)]
pub struct Cli {
    /// Who is asking: a bot's instance id or a human's handle. Defaults to this host's
    /// instance name, when it has one.
    #[arg(long, global = true, value_name = "CALLER", value_parser = parse_caller)]
    pub caller: Option<Caller>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show every instance, its state, AMI and drift flags.
    Status {
        /// Print the API's JSON answer instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Queue a deploy of one instance or of `all`.
    #[command(after_help = "Exit with --wait: as for `fleet wait` once the deploy is queued.")]
    Deploy {
        /// `all` or an instance id such as clawdinator-2.
        #[arg(value_parser = parse_target)]
        target: Target,
        /// Deploy this fleet image instead of the latest one (the API's `ami_override`;
        /// `--ami` is an alias).
        #[arg(long, alias = "ami", value_name = "AMI_ID", value_parser = parse_ami)]
        ami_override: Option<AmiId>,
        /// Deploy this commit (a full 40-hex SHA on GITHUB_REF's history) instead of the
        /// branch's current one; humans only.
        #[arg(long, value_name = "SHA", value_parser = parse_revision)]
        revision: Option<Revision>,
        #[command(flatten)]
        queue: QueueArgs,
        #[command(flatten)]
        wait: FollowArgs,
    },
    /// Redeploy one instance or `all` on the fleet image before its current one.
    #[command(after_help = "Exit with --wait: as for `fleet wait` once the rollback is queued.")]
    Rollback {
        /// `all` (every host must be on the same image) or an instance id.
        #[arg(value_parser = parse_target)]
        target: Target,
        /// Run the workflow of this commit (full 40-hex SHA); humans only.
        #[arg(long, value_name = "SHA", value_parser = parse_revision)]
        revision: Option<Revision>,
        #[command(flatten)]
        queue: QueueArgs,
        #[command(flatten)]
        wait: FollowArgs,
    },
    /// Plan a deploy of one instance or of `all`: the same checks and workflow, then
    /// `tofu plan` per host and nothing applied; its report says what each host would
    /// get. Bots may plan any target (a plan changes nothing); a lock only warns.
    #[command(
        after_help = "Exit with --wait: as for `fleet wait` once the plan is queued; the report's lines say what each host would get."
    )]
    Plan {
        /// `all` or an instance id such as clawdinator-2.
        #[arg(value_parser = parse_target)]
        target: Target,
        /// Plan this fleet image instead of the latest one (`--ami` is an alias).
        #[arg(long, alias = "ami", value_name = "AMI_ID", value_parser = parse_ami)]
        ami_override: Option<AmiId>,
        /// Plan this commit (a full 40-hex SHA on GITHUB_REF's history); humans only.
        #[arg(long, value_name = "SHA", value_parser = parse_revision)]
        revision: Option<Revision>,
        #[command(flatten)]
        wait: FollowArgs,
    },
    /// List recent deploy workflow runs, newest first.
    Runs {
        /// How many runs, 1 to 50.
        #[arg(
            long,
            value_name = "N",
            default_value_t = RUNS_LIMIT.default,
            value_parser = clap::value_parser!(u8).range(1..=i64::from(RUNS_LIMIT.max))
        )]
        limit: u8,
        /// Print the API's JSON answer instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// List recent audit records, newest first (humans only).
    Audit {
        /// How many records, 1 to 100.
        #[arg(
            long,
            value_name = "N",
            default_value_t = AUDIT_LIMIT.default,
            value_parser = clap::value_parser!(u8).range(1..=i64::from(AUDIT_LIMIT.max))
        )]
        limit: u8,
        /// Print the API's JSON answer instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Hold deploys of a host (or `all`) while you work on it; humans lock anything, a
    /// bot only its own host.
    Lock {
        /// `all` or an instance id.
        #[arg(value_parser = parse_target)]
        target: Target,
        /// Why, for whoever is held up (1 to 200 characters).
        #[arg(long)]
        reason: String,
        /// How long the lock holds, 1 to 86400 seconds.
        #[arg(
            long,
            value_name = "N",
            default_value_t = DEFAULT_TTL_SECS,
            value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_TTL_SECS))
        )]
        ttl_secs: u32,
    },
    /// Release a lock (humans: any lock; a bot: the one it holds on its own host).
    Unlock {
        #[arg(value_parser = parse_target)]
        target: Target,
    },
    /// List the queued deploys, next first, and the deploy they wait behind.
    Queue {
        /// Print the API's JSON answer instead of the list.
        #[arg(long)]
        json: bool,
    },
    /// Remove a queued deploy (its requester, or any human).
    Cancel {
        /// The request id the queued deploy printed.
        #[arg(value_name = "REQUEST_ID", value_parser = parse_request_id)]
        request_id: String,
    },
    /// Follow a deploy run until it completes (a queued request: its position until it
    /// is dispatched).
    #[command(after_help = WAIT_HELP)]
    Wait {
        /// A run id (all digits) or the request id a deploy printed (a UUID).
        #[arg(value_name = "REQUEST_ID|RUN_ID", value_parser = parse_run)]
        run: RunRef,
        #[command(flatten)]
        timing: Timing,
    },
    /// Report this host to the control API (its EC2 instance, image, NixOS revision,
    /// service health, boot time), then exit. Run by a systemd timer on each host.
    #[command(after_help = HEARTBEAT_HELP)]
    Heartbeat,
    /// Run a chat message such as '/fleet deploy clawdinator-2'.
    Chat {
        /// The user's message, exactly as typed, as one argument.
        #[arg(
            allow_hyphen_values = true,
            value_name = "MESSAGE",
            required_unless_present = "stdin",
            conflicts_with = "stdin"
        )]
        text: Option<String>,
        /// Read the message from standard input instead (one trailing line break is
        /// dropped): how a bot passes chat text without building a shell line from it.
        #[arg(long)]
        stdin: bool,
    },
}

#[derive(Debug, Args)]
pub struct QueueArgs {
    /// Queue behind a deploy run already in flight instead of being refused (humans only).
    #[arg(long)]
    pub queue: bool,
}

#[derive(Debug, Args)]
pub struct FollowArgs {
    /// Then follow the run like `fleet wait` does.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up after this many seconds (fractions allowed) [default: 3600]
    #[arg(long, value_name = "SECS", requires = "wait", value_parser = parse_seconds)]
    pub timeout: Option<Duration>,
    /// With --wait: ask for the run's state every this many seconds (fractions allowed) [default: 5]
    #[arg(long, value_name = "SECS", requires = "wait", value_parser = parse_seconds)]
    pub interval: Option<Duration>,
}

impl FollowArgs {
    /// The wait to do after the request, if one was asked for.
    pub fn options(&self) -> Option<WaitOptions> {
        let defaults = WaitOptions::default();
        self.wait.then(|| WaitOptions {
            timeout: self.timeout.unwrap_or(defaults.timeout),
            interval: self.interval.unwrap_or(defaults.interval),
        })
    }
}

#[derive(Debug, Args)]
pub struct Timing {
    /// Give up after this many seconds (fractions allowed).
    #[arg(long, value_name = "SECS", default_value = "3600", value_parser = parse_seconds)]
    pub timeout: Duration,
    /// Ask for the run's state every this many seconds (fractions allowed).
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_seconds)]
    pub interval: Duration,
}

impl Timing {
    pub fn options(&self) -> WaitOptions {
        WaitOptions {
            timeout: self.timeout,
            interval: self.interval,
        }
    }
}

fn parse_caller(s: &str) -> Result<Caller, String> {
    Caller::parse(s).map_err(|e| e.to_string())
}

fn parse_target(s: &str) -> Result<Target, String> {
    Target::parse(s).map_err(|e| e.to_string())
}

fn parse_ami(s: &str) -> Result<AmiId, String> {
    AmiId::parse(s).map_err(|e| e.to_string())
}

fn parse_revision(s: &str) -> Result<Revision, String> {
    Revision::parse(s).map_err(|e| e.to_string())
}

fn parse_request_id(s: &str) -> Result<String, String> {
    match RunRef::parse(s) {
        Ok(RunRef::RequestId(id)) => Ok(id.to_string()),
        _ => Err("must be a request id (a UUID)".to_owned()),
    }
}

fn parse_run(s: &str) -> Result<RunRef, String> {
    RunRef::parse(s).map_err(|e| e.to_string())
}

/// Longest timeout or interval: a day.
const MAX_SECONDS: f64 = 86_400.0;

/// Plain decimal seconds, `5` or `0.05`, from 0.01 to a day. Fractions are for tests and
/// impatient people; exponents, signs and `inf` are not numbers anyone means here.
fn parse_seconds(s: &str) -> Result<Duration, String> {
    let plain = match s.split_once('.') {
        Some((whole, fraction)) => {
            !whole.is_empty()
                && !fraction.is_empty()
                && (whole.bytes().chain(fraction.bytes())).all(|c| c.is_ascii_digit())
        }
        None => !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()),
    };
    let secs = s.parse::<f64>().ok().filter(|_| plain && s.len() <= 12);
    match secs {
        Some(secs) if (0.01..=MAX_SECONDS).contains(&secs) => Ok(Duration::from_secs_f64(secs)),
        _ => Err("must be a number of seconds from 0.01 to 86400, such as 5 or 0.5".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn values_use_the_api_rules() {
        let ok = Cli::try_parse_from(["fleet", "--caller", "human:ops", "deploy", "all"]).unwrap();
        assert!(matches!(
            ok.command,
            Command::Deploy {
                target: Target::All,
                ami_override: None,
                revision: None,
                queue: QueueArgs { queue: false },
                wait: FollowArgs { wait: false, .. },
            }
        ));
        for bad in [
            &["fleet", "deploy", "ALL"][..],
            &["fleet", "deploy", "x;reboot"],
            &["fleet", "deploy", "all", "--ami", "ami-123"],
            &["fleet", "deploy", "all", "--ami-override", "ami-123"],
            &["fleet", "--caller", "a b", "status"],
            &["fleet", "deploy"],
            &["fleet"],
            &["fleet", "rollback"],
            &["fleet", "rollback", "all", "--ami", "ami-0123456789abcdef0"],
            &[
                "fleet",
                "rollback",
                "all",
                "--ami-override",
                "ami-0123456789abcdef0",
            ],
            &["fleet", "runs", "--limit", "0"],
            &["fleet", "runs", "--limit", "51"],
            &["fleet", "audit", "--limit", "101"],
            &["fleet", "wait"],
            &["fleet", "wait", "abc"],
            &["fleet", "wait", "0"],
            &["fleet", "wait", "12", "--interval", "0"],
            &["fleet", "wait", "12", "--timeout", "-1"],
            &["fleet", "wait", "12", "--timeout", "1e3"],
            &["fleet", "wait", "12", "--timeout", "inf"],
            // Timing belongs to a wait.
            &["fleet", "deploy", "all", "--timeout", "5"],
            &["fleet", "rollback", "all", "--interval", "1"],
        ] {
            let e = Cli::try_parse_from(bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad:?}");
        }
    }

    #[test]
    fn plan_takes_a_target_an_image_a_revision_and_a_wait() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let cli = Cli::try_parse_from([
            "fleet",
            "plan",
            "clawdinator-2",
            "--ami-override",
            "ami-0123456789abcdef0",
            "--revision",
            sha,
            "--wait",
        ])
        .unwrap();
        let Command::Plan {
            target,
            ami_override,
            revision,
            wait,
        } = cli.command
        else {
            panic!("not a plan")
        };
        assert_eq!(target.as_str(), "clawdinator-2");
        assert_eq!(ami_override.unwrap().as_str(), "ami-0123456789abcdef0");
        assert_eq!(revision.unwrap().as_str(), sha);
        assert!(wait.options().is_some());
        for bad in [
            &["fleet", "plan"][..],
            &["fleet", "plan", "ALL"],
            &["fleet", "plan", "all", "--revision", "main"],
            // A plan is never queued.
            &["fleet", "plan", "all", "--queue"],
        ] {
            assert_eq!(
                Cli::try_parse_from(bad).unwrap_err().exit_code(),
                2,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_image_override_has_the_apis_name_and_the_old_one() {
        let ami = "ami-0123456789abcdef0";
        for flag in ["--ami-override", "--ami"] {
            let cli = Cli::try_parse_from(["fleet", "deploy", "all", flag, ami]).unwrap();
            let Command::Deploy { ami_override, .. } = cli.command else {
                panic!("not a deploy")
            };
            assert_eq!(ami_override.unwrap().as_str(), ami, "{flag}");
        }
        let mut help = Vec::new();
        Cli::command()
            .find_subcommand_mut("deploy")
            .unwrap()
            .write_long_help(&mut help)
            .unwrap();
        let help = String::from_utf8(help).unwrap();
        assert!(help.contains("--ami-override <AMI_ID>"), "{help}");
        assert!(help.contains("`--ami` is an alias"), "{help}");
    }

    #[test]
    fn limits_are_the_contracts() {
        for (action, limit) in [("runs", RUNS_LIMIT), ("audit", AUDIT_LIMIT)] {
            let parsed = |args: &[&str]| {
                let cli = Cli::try_parse_from([&["fleet", action][..], args].concat())?;
                Ok::<u8, clap::Error>(match cli.command {
                    Command::Runs { limit, .. } | Command::Audit { limit, .. } => limit,
                    _ => panic!("not {action}"),
                })
            };
            assert_eq!(parsed(&[]).unwrap(), limit.default);
            let max = limit.max.to_string();
            assert_eq!(parsed(&["--limit", &max]).unwrap(), limit.max);
            let over = (limit.max + 1).to_string();
            assert!(parsed(&["--limit", &over]).is_err());
            let help = Cli::command()
                .find_subcommand_mut(action)
                .unwrap()
                .render_long_help()
                .to_string();
            assert!(help.contains(&format!("1 to {}", limit.max)), "{help}");
            assert!(
                help.contains(&format!("[default: {}]", limit.default)),
                "{help}"
            );
        }
    }

    #[test]
    fn waits_take_ids_and_decimal_seconds() {
        let cli = Cli::try_parse_from(["fleet", "wait", "123"]).unwrap();
        let Command::Wait { run, timing } = cli.command else {
            panic!("not a wait")
        };
        assert_eq!(run, RunRef::RunId(123));
        assert_eq!(timing.options(), WaitOptions::default());
        let cli = Cli::try_parse_from([
            "fleet",
            "deploy",
            "clawdinator-2",
            "--queue",
            "--wait",
            "--interval",
            "0.05",
            "--timeout",
            "90",
        ])
        .unwrap();
        let Command::Deploy { queue, wait, .. } = cli.command else {
            panic!("not a deploy")
        };
        assert!(queue.queue);
        assert_eq!(
            wait.options(),
            Some(WaitOptions {
                timeout: Duration::from_secs(90),
                interval: Duration::from_millis(50),
            })
        );
        for (text, ok) in [
            ("5", true),
            ("0.01", true),
            ("86400", true),
            ("0.001", false),
            ("86401", false),
            (".5", false),
            ("5.", false),
            ("0x10", false),
            ("1_000", false),
            ("", false),
            ("NaN", false),
        ] {
            assert_eq!(parse_seconds(text).is_ok(), ok, "{text:?}");
        }
    }

    #[test]
    fn chat_text_that_looks_like_a_flag() {
        // After `--` anything is the message, and the chat parser judges it.
        let cli = Cli::try_parse_from(["fleet", "chat", "--", "--caller=clawdinator-9"]).unwrap();
        assert!(cli.caller.is_none());
        assert!(
            matches!(cli.command, Command::Chat { text: Some(text), .. } if text == "--caller=clawdinator-9")
        );
        // Without it, a defined flag is a flag: one argument can set it but then there is
        // no message, so it is still a usage error and nothing runs.
        let e = Cli::try_parse_from(["fleet", "chat", "--caller=clawdinator-9"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        // Other dash-led text is the message.
        let cli = Cli::try_parse_from(["fleet", "chat", "-rf /"]).unwrap();
        assert!(matches!(cli.command, Command::Chat { text: Some(text), .. } if text == "-rf /"));
    }

    #[test]
    fn chat_takes_its_message_from_stdin_or_an_argument_never_both() {
        let cli = Cli::try_parse_from(["fleet", "chat", "--stdin"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Chat {
                text: None,
                stdin: true
            }
        ));
        for args in [
            &["fleet", "chat"][..],
            &["fleet", "chat", "--stdin", "/fleet status"],
        ] {
            let e = Cli::try_parse_from(args).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{args:?}");
        }
    }
}
