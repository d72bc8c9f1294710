//! What zerologd hands each element it runs: the element's whole configuration, typed, in a
//! JSON file under the runtime directory (`zerolog forwarder --config FILE`). The types are the
//! elements' own ([`ForwarderConfig`], [`ReceiverConfig`], [`WorkerConfig`]): the same ones
//! zerolog 0.3's command-line flags are turned into and a program embedding an element builds
//! in code, so no option exists twice and none is lost on the way to a child.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::forwarder::ForwarderConfig;
use crate::receiver::ReceiverConfig;
use crate::worker::WorkerConfig;

/// One element's configuration, as written to and read from its file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "element", content = "config", rename_all = "lowercase")]
// One per process, read once at start: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum ElementConfig {
    /// `zerolog forwarder`.
    Forwarder(ForwarderConfig),
    /// `zerolog receiver`.
    Receiver(ReceiverConfig),
    /// `zerolog worker`.
    Worker(WorkerConfig),
}

/// A configuration file that cannot be read or is not what it should be.
#[derive(Debug, thiserror::Error)]
#[error("configuration file {path}: {message}")]
pub struct ConfigFileError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong, with the line and column where the JSON says.
    pub message: String,
}

impl ElementConfig {
    /// The subcommand that runs it: `forwarder`, `receiver` or `worker`.
    pub fn element(&self) -> &'static str {
        match self {
            ElementConfig::Forwarder(_) => "forwarder",
            ElementConfig::Receiver(_) => "receiver",
            ElementConfig::Worker(_) => "worker",
        }
    }

    /// The configuration less what may change without a restart (the forwarder's count of
    /// subscriptions to wait for, which only matters at start): programs whose configurations
    /// differ only there are the same program.
    pub fn without_startup(&self) -> ElementConfig {
        let mut c = self.clone();
        if let ElementConfig::Forwarder(f) = &mut c {
            f.wait_subscribers = 0;
        }
        c
    }

    /// The file's text: one JSON object.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("configurations serialize")
    }

    /// Parses a file's text.
    pub fn from_json(text: &str) -> Result<ElementConfig, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Reads the file at `path`.
    pub fn load(path: &Path) -> Result<ElementConfig, ConfigFileError> {
        let err = |message: String| ConfigFileError {
            path: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        Self::from_json(&text).map_err(|e| err(e.to_string()))
    }

    /// Writes the file at `path` whole or not at all (a temporary file, then a rename), readable
    /// by the user the element runs as. No fsync: zerologd writes it anew before every start,
    /// from its daemon loop, which must not wait on the disk.
    ///
    /// The file is readable by everyone (0644, in a directory of 0755), whatever the umask:
    /// the element may run as another user than the one writing it. It holds no secret.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let readable = |mode| std::fs::Permissions::from_mode(mode);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
            std::fs::set_permissions(dir, readable(0o755))?;
        }
        let tmp = path.with_extension("json.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.set_permissions(readable(0o644))?;
        f.write_all(self.to_json().as_bytes())?;
        std::fs::rename(&tmp, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_with_a_wrong_or_unknown_field_is_refused_with_its_position() {
        let e = ElementConfig::from_json(
            r#"{"element": "receiver", "config": {"topics": [], "hwn": 5}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("unknown field `hwn`") && e.contains("line 1"),
            "{e}"
        );
        let e = ElementConfig::from_json(r#"{"element": "router", "config": {}}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("router"), "{e}");
    }

    #[test]
    fn defaults_fill_what_a_file_leaves_out() {
        let c = ElementConfig::from_json(r#"{"element": "forwarder", "config": {}}"#).unwrap();
        assert_eq!(c, ElementConfig::Forwarder(ForwarderConfig::default()));
    }

    #[test]
    fn save_then_load_is_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config/w.json");
        let c = ElementConfig::Worker(WorkerConfig {
            backend: "ipc:///run/zerolog/all.sock".parse().unwrap(),
            command: vec!["file".into(), "/var/log/x".into()],
            directory: None,
            framing: crate::worker::OutputFraming::Nul,
            receive: crate::worker::Receive::Joined(b" ".to_vec()),
            queue_bytes: 5 << 20,
            max_message_size: 1000,
            delivery: crate::delivery::Delivery::Acked,
            with_seq: true,
            curve: None,
        });
        c.save(&path).unwrap();
        assert_eq!(ElementConfig::load(&path).unwrap(), c);
        let e = ElementConfig::load(&dir.path().join("missing.json")).unwrap_err();
        assert!(e.to_string().contains("missing.json"), "{e}");
    }
}
