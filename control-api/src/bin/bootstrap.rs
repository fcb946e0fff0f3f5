//! The AWS Lambda entry point (`bootstrap` for the provided.al2023 runtime).

// One thread: Lambda hands a sandbox one event at a time, and no worker pool to spawn
// keeps cold starts short.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    control_api::inbound::lambda::run().await
}
