pub fn configure() {
    println!("cargo:rerun-if-changed=build/main.rs");
    println!("cargo:rerun-if-env-changed=PROFILE");

    // zerolog: on Linux with glibc, the platform defines and (with GCC) the LTO flags. See
    // ../README.md.
    let lto = linux_cxxflags();

    // Note that by default `libzmq` builds without `libsodium` by instead
    // relying on `tweetnacl`. However since this `tweetnacl` [has never been
    // audited nor is ready for production](https://github.com/zeromq/libzmq/issues/3006),
    // we link against `libsodium` to enable `ZMQ_CURVE`.
    //
    // zerolog: the libsodium that `libsodium-sys-stable` builds (from the source it ships,
    // statically), so that libzmq has CURVE (see ../README.md).
    zeromq_src::Build::new()
        .with_libsodium(Some(libsodium()))
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

/// Where `libsodium-sys-stable` put libsodium's headers and static library, from its `links`
/// metadata (`cargo:include`, `cargo:lib`). It builds libsodium from the release tarball in its
/// crate (`./configure && make`, no download) unless `SODIUM_LIB_DIR` or
/// `SODIUM_USE_PKG_CONFIG` tells it to take an installed one, and then it may not say where the
/// headers are.
fn libsodium() -> zeromq_src::LibLocation {
    let dir = |name: &str| {
        std::env::var_os(name).unwrap_or_else(|| {
            panic!(
                "{} is not set: libsodium-sys-stable did not build libsodium from source \
                 (SODIUM_LIB_DIR or SODIUM_USE_PKG_CONFIG set?); zerolog's libzmq needs its \
                 headers and static library for CURVE",
                name
            )
        })
    };
    // LibLocation::new takes the library directory first.
    zeromq_src::LibLocation::new(dir("DEP_SODIUM_LIB"), dir("DEP_SODIUM_INCLUDE"))
}

/// On Linux with glibc: what libzmq's own CMake build detects there and zeromq-src leaves out
/// (it writes an empty platform.hpp), as `-D` flags; and, when the C++ compiler is GCC,
/// `-flto=auto -ffat-lto-objects`: the objects then link as usual (any linker), and a program
/// linked with GCC's LTO gets libzmq's small hot functions (`msg_t::size`, the pipe reads and
/// writes) inlined across its source files. Returns whether it added the LTO flags.
fn linux_cxxflags() -> bool {
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
    let mut flags: Vec<String> = DEFINES.iter().map(|d| format!("-D{d}")).collect();
    // The compiler cc will pick (CXX, CXX_<target>, or c++), as GCC or not.
    let lto = cc::Build::new().cpp(true).get_compiler().is_like_gnu();
    if lto {
        flags.extend(["-flto=auto".into(), "-ffat-lto-objects".into()]);
    }
    append_cxxflags(&target, &flags);
    lto
}

/// Passes `flags` to the C++ compiler through the CXXFLAGS variable that the `cc` crate reads
/// for `target`, after what the environment already put there.
fn append_cxxflags(target: &str, flags: &[String]) {
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
    let mut all = names
        .iter()
        .find_map(|name| std::env::var(name).ok())
        .unwrap_or_default();
    for f in flags {
        all.push(' ');
        all.push_str(f);
    }
    // The most specific name, which cc reads first. The build script is single-threaded.
    std::env::set_var(&names[0], all.trim_start());
}

fn main() {
    configure()
}
