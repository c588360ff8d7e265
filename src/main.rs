//! The `gleaner` binary: parse the command line, run it, map errors to exit
//! codes (0 done, 1 internal error, 2 unusable config or state directory).

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    tune_malloc();
    cli::main()
}

/// Keeps glibc's heap from holding on to freed memory. By default glibc
/// raises its mmap threshold to the size of each large block freed (up to
/// 32 MiB), after which page buffers of a few hundred KiB come from the
/// heap, and the long-lived allocations between them keep the heap from
/// shrinking: a 55,000-article pass peaked at 124 MiB, 82 with this (and
/// with the arenas capped at one per core, as many as run at once). Left
/// alone when GLIBC_TUNABLES is set: the user has chosen.
fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("GLIBC_TUNABLES").is_none() {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let arenas = libc::c_int::try_from(cores.max(2)).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt only sets allocator parameters; it is called
        // before any other thread exists.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
            libc::mallopt(libc::M_ARENA_MAX, arenas);
        }
    }
}
