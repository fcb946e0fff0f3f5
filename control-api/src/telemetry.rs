//! Log set-up: JSON lines for Lambda, readable text locally, written off the request path.

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// Lines the writer thread may fall behind by. The queue is a bounded channel whose every
/// slot (32 bytes) is written when it is made, so its size is resident from start-up:
/// tracing-appender's default (128,000) was 4 MiB and a third of the Lambda's cold start;
/// 4,096 was still 128 KiB. A request writes one or two lines and the thread drains them
/// within microseconds, so 256 is never full unless stdout stalls, and then a request
/// waits for room rather than an audit line being dropped (`lossy(false)`).
const QUEUED_LINES: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

/// Installs the global subscriber: JSON to stdout (CloudWatch), text to stderr (a terminal,
/// leaving stdout to what the command prints). Lines are handed to a writer thread, so a request
/// does not wait on stdout; the thread drains within microseconds, well before Lambda
/// freezes the sandbox after the response. Keep the guard alive for the process.
pub fn init(format: LogFormat) -> WorkerGuard {
    let queue = NonBlockingBuilder::default()
        .buffered_lines_limit(QUEUED_LINES)
        .lossy(false);
    let (writer, guard) = match format {
        LogFormat::Json => queue.finish(std::io::stdout()),
        LogFormat::Text => queue.finish(std::io::stderr()),
    };
    // A second init (tests) keeps the first subscriber; that is fine.
    let _installed = match format {
        LogFormat::Json => tracing::subscriber::set_global_default(json_subscriber(writer)).is_ok(),
        LogFormat::Text => {
            let filter = EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(writer)
                .with_ansi(false)
                .try_init()
                .is_ok()
        }
    };
    guard
}

/// Info, but the AWS SDK's own warnings only at error: each is hundreds of characters of
/// resolver and connector internals (its credential chain warns for every provider it
/// tries), and `outbound::aws` already logs one line per failed call with its reason.
/// `RUST_LOG` overrides it (`RUST_LOG=info,aws_config=debug` shows them all).
const DEFAULT_FILTER: &str = "info,aws_config=error,aws_smithy_runtime=error";

/// The Lambda's JSON-lines subscriber (one flat object per event) writing to `writer`;
/// tests use it to read the audit line exactly as CloudWatch gets it.
pub fn json_subscriber<W>(writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .finish()
}
