//! The command line (clap derive): `fleet [--caller C] status [--json] | deploy <target> [--ami A] | chat <text>`.
//!
//! Values are parsed with the control API's own types, so a bad target or AMI is a usage
//! error (exit 2) before anything is sent. The control token has no flag on purpose:
//! arguments show in `ps` and shell history.

use clap::{Parser, Subcommand};
use control_api::domain::request::{AmiId, Caller, Target};

const ENVIRONMENT_HELP: &str = "\
Environment:
  FLEET_CONTROL_URL         control API URL (required)
  FLEET_CONTROL_TOKEN_FILE  file holding the control token (default /run/agenix/clawdinator-control-token)
  FLEET_CONTROL_TOKEN       the control token itself, if no token file is set
  AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION
                            invoker credentials: when present, requests are SigV4-signed
  FLEET_AGENIX_DIR          where the agenix AWS key files are (default /run/agenix)
  FLEET_INSTANCE_NAME_FILE  default caller (default /etc/clawdinator/instance-name)

Exit codes: 0 done, 1 refused, 2 usage or configuration, 3 server or network failure.";

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
    Deploy {
        /// `all` or an instance id such as clawdinator-2.
        #[arg(value_parser = parse_target)]
        target: Target,
        /// Deploy this AMI instead of the latest one.
        #[arg(long, value_name = "AMI_ID", value_parser = parse_ami)]
        ami: Option<AmiId>,
    },
    /// Run a chat message such as '/fleet deploy clawdinator-2'.
    Chat {
        /// The user's message, exactly as typed, as one argument.
        #[arg(allow_hyphen_values = true, value_name = "MESSAGE")]
        text: String,
    },
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
                ami: None
            }
        ));
        for bad in [
            &["fleet", "deploy", "ALL"][..],
            &["fleet", "deploy", "x;reboot"],
            &["fleet", "deploy", "all", "--ami", "ami-123"],
            &["fleet", "--caller", "a b", "status"],
            &["fleet", "deploy"],
            &["fleet"],
        ] {
            let e = Cli::try_parse_from(bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad:?}");
        }
    }

    #[test]
    fn chat_text_that_looks_like_a_flag() {
        // After `--` anything is the message, and the chat parser judges it.
        let cli = Cli::try_parse_from(["fleet", "chat", "--", "--caller=clawdinator-9"]).unwrap();
        assert!(cli.caller.is_none());
        assert!(matches!(cli.command, Command::Chat { text } if text == "--caller=clawdinator-9"));
        // Without it, a defined flag is a flag: one argument can set it but then there is
        // no message, so it is still a usage error and nothing runs.
        let e = Cli::try_parse_from(["fleet", "chat", "--caller=clawdinator-9"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        // Other dash-led text is the message.
        let cli = Cli::try_parse_from(["fleet", "chat", "-rf /"]).unwrap();
        assert!(matches!(cli.command, Command::Chat { text } if text == "-rf /"));
    }
}
