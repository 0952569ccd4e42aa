use std::process::ExitCode;

// Rows are many small allocations on several threads; mimalloc's thread-local heaps beat
// glibc's arenas by a wide margin there (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    sluice::cli::start()
}
