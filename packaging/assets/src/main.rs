//! Generates the man pages and shell completions of `zerolog` and `zerologd` from their clap
//! definitions (`zerologd::cli`), for the packages:
//!
//! ```sh
//! cargo run -p zerolog-assets -- target/assets
//! ```
//!
//! writes `OUTDIR/man/{zerolog,zerologd}.1` (plus one page per subcommand, e.g.
//! `zerolog-forwarder.1`) and `OUTDIR/completions/{zerolog,zerologd}.{bash,zsh,fish}`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap_complete::Shell;

fn main() -> ExitCode {
    let Some(out) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: zerolog-assets OUTDIR");
        return ExitCode::from(2);
    };
    match generate(&out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("zerolog-assets: {}: {e}", out.display());
            ExitCode::FAILURE
        }
    }
}

fn generate(out: &Path) -> std::io::Result<()> {
    let man = out.join("man");
    let completions = out.join("completions");
    std::fs::create_dir_all(&man)?;
    std::fs::create_dir_all(&completions)?;
    for cmd in [
        zerologd::cli::zerolog_command(),
        zerologd::cli::zerologd_command(),
    ] {
        // One page for the command and one per subcommand (`zerolog-forwarder.1`, ...).
        clap_mangen::generate_to(cmd.clone(), &man)?;
        let name = cmd.get_name().to_string();
        for (shell, ext) in [
            (Shell::Bash, "bash"),
            (Shell::Zsh, "zsh"),
            (Shell::Fish, "fish"),
        ] {
            let mut file = std::fs::File::create(completions.join(format!("{name}.{ext}")))?;
            clap_complete::generate(shell, &mut cmd.clone(), &name, &mut file);
        }
    }
    Ok(())
}
