//! The `parley` binary: see `parley --help`.

/// jemalloc instead of the system allocator (ADR 6): memory allocated on one thread and freed
/// on another (a read's rows, a decoded event) is a pattern the system allocator serves slowly.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    parley_api::cli::run().await
}
