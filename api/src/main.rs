//! The `parley` binary: see `parley --help`.

/// jemalloc instead of the system allocator (ADR 6): read models allocate rows on blocking
/// threads that the HTTP workers free, a pattern the system allocator serves slowly.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    parley_api::cli::run().await
}
