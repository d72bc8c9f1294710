pub fn configure() {
    println!("cargo:rerun-if-changed=build/main.rs");
    println!("cargo:rerun-if-env-changed=PROFILE");

    // zerolog: what libzmq's own CMake build detects on Linux with glibc, and zeromq-src
    // leaves out (it writes an empty platform.hpp). See ../README.md.
    let lto = linux_platform_defines();

    // Note that by default `libzmq` builds without `libsodium` by instead
    // relying on `tweetnacl`. However since this `tweetnacl` [has never been
    // audited nor is ready for production](https://github.com/zeromq/libzmq/issues/3006),
    // we link against `libsodium` to enable `ZMQ_CURVE`.
    zeromq_src::Build::new()
        .with_libsodium(None)
        // zerolog: the DRAFT API, for ZMQ_IN_BATCH_SIZE / ZMQ_OUT_BATCH_SIZE (see
        // ../README.md).
        .enable_draft(true)
        .build();

    // zerolog: the objects carry GCC's LTO IR (next to the plain code); say so to the crates
    // that link libzmq (DEP_ZMQ_LTO), which may then link their programs with `-flto`.
    if lto {
        println!("cargo:lto=gcc");
    }
}

/// Passes the defines to the C++ compiler through the CXXFLAGS variable that the `cc` crate
/// reads for this target, after what the environment already put there. With GCC, also
/// `-flto=auto -ffat-lto-objects`: the objects then link as usual (any linker), and a program
/// linked with GCC's LTO gets libzmq's small hot functions (`msg_t::size`, the pipe reads and
/// writes) inlined across its source files. Returns whether it did.
fn linux_platform_defines() -> bool {
    let target = std::env::var("TARGET").unwrap();
    if !(target.contains("linux") && target.ends_with("-gnu")) {
        return false;
    }
    const DEFINES: &[&str] = &[
        // Mailbox wake-ups through an eventfd instead of a socketpair.
        "ZMQ_HAVE_EVENTFD",
        "ZMQ_HAVE_EVENTFD_CLOEXEC",
        // Descriptors not inherited by the programs a worker runs.
        "ZMQ_IOTHREAD_POLLER_USE_EPOLL_CLOEXEC",
        "ZMQ_HAVE_SOCK_CLOEXEC",
        "ZMQ_HAVE_O_CLOEXEC",
        "HAVE_ACCEPT4",
        // Named threads (ZMQbg/IO/0, ZMQbg/Reaper) in top -H, perf and /proc.
        "ZMQ_HAVE_PTHREAD_SETNAME_2",
        // Timers (reconnect, linger, send and receive timeouts) on the monotonic clock, not on
        // gettimeofday, which jumps when the wall clock is set.
        "HAVE_CLOCK_GETTIME",
    ];
    // The variables cc reads, most specific first; it takes the first one set.
    let underscored = target.replace('-', "_");
    let names = [
        format!("CXXFLAGS_{target}"),
        format!("CXXFLAGS_{underscored}"),
        "TARGET_CXXFLAGS".into(),
        "CXXFLAGS".into(),
    ];
    for name in &names {
        println!("cargo:rerun-if-env-changed={name}");
    }
    let mut flags = names
        .iter()
        .find_map(|name| std::env::var(name).ok())
        .unwrap_or_default();
    for d in DEFINES {
        flags.push_str(" -D");
        flags.push_str(d);
    }
    // The compiler cc will pick (CXX, CXX_<target>, or c++), as GCC or not.
    let gcc = cc::Build::new().cpp(true).get_compiler().is_like_gnu();
    if gcc {
        flags.push_str(" -flto=auto -ffat-lto-objects");
    }
    // The most specific name, which cc reads first. The build script is single-threaded.
    std::env::set_var(format!("CXXFLAGS_{target}"), flags.trim_start());
    gcc
}

fn main() {
    configure()
}
