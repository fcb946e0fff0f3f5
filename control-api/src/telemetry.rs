//! Log set-up: JSON lines for Lambda, readable text locally, written off the request path.

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

/// Installs the global subscriber: JSON to stdout (CloudWatch), text to stderr (a terminal,
/// leaving stdout to what the command prints). Lines are handed to a writer thread, so a request
/// never waits on stdout; the thread drains within microseconds, well before Lambda
/// freezes the sandbox after the response. Keep the guard alive for the process.
pub fn init(format: LogFormat) -> WorkerGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = match format {
        LogFormat::Json => tracing_appender::non_blocking(std::io::stdout()),
        LogFormat::Text => tracing_appender::non_blocking(std::io::stderr()),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let installed = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
        LogFormat::Text => builder.with_ansi(false).try_init(),
    };
    // A second init (tests) keeps the first subscriber; that is fine.
    drop(installed);
    guard
}
