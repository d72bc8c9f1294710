//! The sequence numbers `zerolog loggen` writes into its lines (`seq=CONN.N`: the connection
//! and a per-connection count from 0), which the `null` worker and the tests read back to find
//! what was lost or duplicated.

/// What precedes the numbers in a line.
pub const PREFIX: &[u8] = b"seq=";

/// Finds `seq=CONN.N` in a message.
pub fn parse(msg: &[u8]) -> Option<(u32, u64)> {
    // Built once: building a searcher per message showed in the counting sink's profile.
    static SEQ: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(PREFIX));
    let at = SEQ.find(msg)? + PREFIX.len();
    let rest = &msg[at..];
    let dot = rest.iter().position(|&b| b == b'.')?;
    let conn = std::str::from_utf8(&rest[..dot]).ok()?.parse().ok()?;
    let end = rest[dot + 1..]
        .iter()
        .position(|b| !b.is_ascii_digit())
        .map_or(rest.len(), |p| dot + 1 + p);
    let n = std::str::from_utf8(&rest[dot + 1..end])
        .ok()?
        .parse()
        .ok()?;
    Some((conn, n))
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_the_numbers() {
        assert_eq!(super::parse(b"x seq=1.22"), Some((1, 22)));
        assert_eq!(
            super::parse(b"<134>1 - h app 0 - - seq=0.7 abcdef"),
            Some((0, 7))
        );
        assert_eq!(super::parse(b"seq=x.1"), None);
        assert_eq!(super::parse(b"no numbers"), None);
    }
}
