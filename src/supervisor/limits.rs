//! File descriptors: zerologd holds two pipes per program (its stdout and stderr), so the
//! number of programs a topology may run is bounded by `RLIMIT_NOFILE`. zerologd lifts its
//! soft limit to the hard one at start ([`zerolog::process::raise_fd_limit`]; its children
//! inherit it) and refuses a topology that cannot fit, at `--check`, at start and at reload,
//! rather than failing program by program.

/// Descriptors zerologd needs besides its programs' pipes: the control and notify sockets,
/// control and metrics clients, the reaper, signal pipes, stats files being read, and room
/// for a spawn in progress.
pub const FIXED_FDS: u64 = 128;

/// Descriptors zerologd holds per program.
pub const FDS_PER_PROGRAM: u64 = 2;

/// The descriptors a topology of `programs` programs needs in zerologd.
pub fn needed(programs: usize) -> u64 {
    FIXED_FDS + FDS_PER_PROGRAM * programs as u64
}

/// `Err` with what to do when `programs` programs do not fit `limit` descriptors.
pub fn check(programs: usize, limit: u64) -> Result<(), String> {
    let need = needed(programs);
    if need <= limit {
        return Ok(());
    }
    Err(format!(
        "the topology runs {programs} processes, for which zerologd needs about {need} file \
         descriptors ({FDS_PER_PROGRAM} per process and {FIXED_FDS} of its own), but its limit \
         is {limit}: raise it (LimitNOFILE= in the systemd unit, ulimit -n in a shell) or run \
         fewer processes (numprocs)"
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_topology_fits_its_limit_or_says_what_to_do() {
        assert!(super::check(10, 1024).is_ok());
        assert!(super::check(448, 1024).is_ok());
        let e = super::check(449, 1024).unwrap_err();
        assert!(
            e.contains("449 processes") && e.contains("LimitNOFILE="),
            "{e}"
        );
    }
}
