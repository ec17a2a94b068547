//! The `parley` binary: see `parley --help`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    parley_api::cli::run().await
}
