// The binaries are linked as zerolog's examples are: see crates/zerolog/build.rs.
include!("crates/zerolog/build.rs");
