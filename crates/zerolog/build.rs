// Links zerolog's programs (and examples, which the bench runs as peers) with GCC's link-time
// optimisation when the vendored libzmq was compiled for it (vendor/zmq-sys/README.md).
// libzmq's per-message path is many small functions in separate files (`msg_t::size`,
// `pipe_t::read`, `ypipe_t::flush` ...) that only LTO can inline into each other: it takes
// about 15 % off the CPU per message of the whole pipeline (bench/README.md). Only in the
// release profile (what is installed and benchmarked): with the dev profile's full debug
// info, such a link takes about a minute. Test and bench binaries, and debug builds, link as
// usual, from the plain code the objects also carry.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // DEP_ZMQ_LTO is set by zmq-sys's build script (`links = "zmq"`).
    let release = std::env::var("PROFILE").as_deref() == Ok("release");
    let lto = release && std::env::var("DEP_ZMQ_LTO").as_deref() == Ok("gcc");
    if lto {
        // Only the kinds of target this package has (cargo refuses the others): the root
        // package's binaries, the zerolog crate's examples.
        let kinds = [("bins", "src/bin"), ("examples", "examples")];
        for (kind, _) in kinds
            .iter()
            .filter(|(_, dir)| std::path::Path::new(dir).is_dir())
        {
            // GCC's LTO needs its own linker plugin: the BFD linker, not the rust-lld that
            // rustc picks by default on x86_64 Linux since 1.90.
            println!("cargo:rustc-link-arg-{kind}=-fuse-ld=bfd");
            println!("cargo:rustc-link-arg-{kind}=-flto=auto");
        }
    }
    // For `--version`, so that a benchmark result can be matched to the kind of build.
    let link = if lto {
        "libzmq: linked with GCC LTO"
    } else {
        "libzmq: linked without LTO"
    };
    println!("cargo:rustc-env=ZEROLOG_LIBZMQ_LINK={link}");
}
