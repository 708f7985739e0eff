//! The Corefile edit, as a pure function of the text: add (or refresh) one marked server block
//! forwarding `hyperos.local` and `clusterset.local` to crossdns, or take it out again. Nothing
//! outside the markers is ever rewritten, and a Corefile this reader does not understand is
//! refused rather than guessed at.
//!
//! The reader knows as much of the Caddyfile syntax CoreDNS uses as the edit needs: tokens split
//! on white space, `"quoted strings"` (with `\` escapes, spanning lines), `#` comments at the
//! start of a token, `{`/`}` as tokens of their own (so `{$ENV}` is a plain word), server blocks
//! and `(snippets)` as keys followed by a braced body, and top-level `import` lines.

use std::net::SocketAddr;

use crate::core::Zone;

/// The line that opens the block crossdns manages.
pub const BEGIN_MARKER: &str = "# BEGIN nauti-crossdns";
/// The line that closes it.
pub const END_MARKER: &str = "# END nauti-crossdns";
/// What follows the begin marker on its line: for whoever reads the ConfigMap.
const BEGIN_NOTE: &str = "(added by `crossdns wire-coredns`, removed by `crossdns unwire-coredns`; edits between these lines are overwritten)";

/// Port of a server block without one (`dns://` or no scheme).
const DNS_PORT: u16 = 53;

/// Why a Corefile is left alone.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CorefileError {
    /// A quoted string never ends.
    #[error("line {line}: a quoted string is not closed")]
    UnclosedQuote {
        /// Where it starts (1-based).
        line: usize,
    },
    /// A `}` closes nothing.
    #[error("line {line}: `}}` closes no block")]
    StrayClose {
        /// Where (1-based).
        line: usize,
    },
    /// A `{` is never closed.
    #[error("line {line}: the block opened here is not closed")]
    UnclosedBlock {
        /// Where it opens (1-based).
        line: usize,
    },
    /// Server keys without a braced body: valid for a Corefile of a single block, but there is
    /// then no way to add a second one without rewriting the first.
    #[error("line {line}: server block `{keys}` has no braces")]
    BlockWithoutBraces {
        /// Where its keys start (1-based).
        line: usize,
        /// The keys.
        keys: String,
    },
    /// The markers are not one begin line followed by one end line at the top level.
    #[error("line {line}: {problem}")]
    Markers {
        /// Where (1-based).
        line: usize,
        /// What is wrong with them.
        problem: &'static str,
    },
    /// A server block outside the markers already serves one of the zones on the same port,
    /// which CoreDNS would refuse to load next to ours.
    #[error(
        "line {line}: `{key}` already serves {zone} in a block crossdns does not manage; remove it or forward the zone by hand"
    )]
    ZoneTaken {
        /// Where the block's keys start (1-based).
        line: usize,
        /// The conflicting key, as written.
        key: String,
        /// The zone.
        zone: &'static str,
    },
}

/// The block crossdns manages, markers included, for a server listening on `port`.
pub fn managed_block(forward_to: SocketAddr, port: u16) -> String {
    let keys: Vec<String> = Zone::ALL
        .iter()
        .map(|zone| format!("{}:{port}", zone.apex()))
        .collect();
    format!(
        "{BEGIN_MARKER} {BEGIN_NOTE}\n{keys} {{\n    errors\n    forward . {forward_to}\n}}\n{END_MARKER}\n",
        keys = keys.join(" "),
    )
}

/// The Corefile with the managed block forwarding both zones to `forward_to`, on the port of
/// the root zone's server block (53 when there is none). `None` when it is already there as
/// wanted. A block that differs (another address, edits inside it) is replaced where it is.
pub fn wire(corefile: &str, forward_to: SocketAddr) -> Result<Option<String>, CorefileError> {
    let parsed = parse(corefile)?;
    let port = parsed.serving_port();
    parsed.check_zones_free(port)?;
    let block = managed_block(forward_to, port);
    let edited = match parsed.managed {
        Some(span) if corefile[span.clone()] == block => return Ok(None),
        Some(span) => format!(
            "{}{block}{}",
            &corefile[..span.start],
            &corefile[span.end..]
        ),
        None if corefile.is_empty() || corefile.ends_with('\n') => format!("{corefile}{block}"),
        None => format!("{corefile}\n{block}"),
    };
    Ok(Some(edited))
}

/// The Corefile without the managed block; `None` when it holds none.
pub fn unwire(corefile: &str) -> Result<Option<String>, CorefileError> {
    let parsed = parse(corefile)?;
    Ok(parsed
        .managed
        .map(|span| format!("{}{}", &corefile[..span.start], &corefile[span.end..])))
}

/// What the edit needs to know of a Corefile.
#[derive(Debug)]
struct Parsed {
    /// Server blocks outside the managed one.
    blocks: Vec<ServerBlock>,
    /// Byte span of the managed block, begin line to end line and its newline.
    managed: Option<std::ops::Range<usize>>,
}

#[derive(Debug)]
struct ServerBlock {
    line: usize,
    keys: Vec<String>,
}

/// A server key split into what matters here: `dns://Zone.:1053` → (`zone`, 1053).
#[derive(Debug, PartialEq, Eq)]
struct ServerAddress {
    zone: String,
    port: u16,
}

fn server_address(key: &str) -> Option<ServerAddress> {
    let (scheme, rest) = match key.split_once("://") {
        Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
        None => (String::from("dns"), key),
    };
    // Other transports (tls, grpc, https, quic) listen elsewhere and cannot clash with ours.
    if scheme != "dns" {
        return None;
    }
    let (zone, port) = match rest.rsplit_once(':') {
        Some((zone, port)) => (zone, port.parse().ok()?),
        None => (rest, DNS_PORT),
    };
    let zone = zone.trim_end_matches('.').to_ascii_lowercase();
    Some(ServerAddress { zone, port })
}

impl Parsed {
    /// The port of the root zone's block, else of the first DNS block, else 53.
    fn serving_port(&self) -> u16 {
        let addresses: Vec<ServerAddress> = self
            .blocks
            .iter()
            .flat_map(|block| block.keys.iter())
            .filter(|key| !key.starts_with('('))
            .filter_map(|key| server_address(key))
            .collect();
        addresses
            .iter()
            .find(|address| address.zone.is_empty())
            .or(addresses.first())
            .map_or(DNS_PORT, |address| address.port)
    }

    fn check_zones_free(&self, port: u16) -> Result<(), CorefileError> {
        for block in &self.blocks {
            for key in block.keys.iter().filter(|key| !key.starts_with('(')) {
                let Some(address) = server_address(key) else {
                    continue;
                };
                let taken = Zone::ALL
                    .into_iter()
                    .find(|zone| address.zone == zone.apex() && address.port == port);
                if let Some(zone) = taken {
                    return Err(CorefileError::ZoneTaken {
                        line: block.line,
                        key: key.clone(),
                        zone: zone.apex(),
                    });
                }
            }
        }
        Ok(())
    }
}

#[derive(Debug, PartialEq, Eq)]
enum TokenKind {
    Word(String),
    Open,
    Close,
    /// A comment; `start` is the byte offset of its line.
    Comment {
        text: String,
        line_start: usize,
    },
}

#[derive(Debug)]
struct Token {
    kind: TokenKind,
    line: usize,
}

fn tokenize(text: &str) -> Result<Vec<Token>, CorefileError> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut line = 1;
    let mut line_start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        if byte == b'\n' {
            line += 1;
            i += 1;
            line_start = i;
            continue;
        }
        if byte.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let token_line = line;
        if byte == b'#' {
            let end = text[i..].find('\n').map_or(text.len(), |n| i + n);
            tokens.push(Token {
                kind: TokenKind::Comment {
                    text: text[i..end].trim_end().to_owned(),
                    line_start,
                },
                line: token_line,
            });
            i = end;
            continue;
        }
        let mut word = Vec::new();
        while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
            if bytes[i] == b'"' {
                i += 1;
                loop {
                    match bytes.get(i) {
                        None => return Err(CorefileError::UnclosedQuote { line: token_line }),
                        Some(b'"') => break,
                        Some(b'\\') if bytes.get(i + 1).is_some() => {
                            word.push(bytes[i + 1]);
                            i += 2;
                        }
                        Some(&other) => {
                            if other == b'\n' {
                                line += 1;
                                line_start = i + 1;
                            }
                            word.push(other);
                            i += 1;
                        }
                    }
                }
                i += 1;
            } else {
                word.push(bytes[i]);
                i += 1;
            }
        }
        let kind = match word.as_slice() {
            b"{" => TokenKind::Open,
            b"}" => TokenKind::Close,
            _ => TokenKind::Word(String::from_utf8_lossy(&word).into_owned()),
        };
        tokens.push(Token {
            kind,
            line: token_line,
        });
    }
    Ok(tokens)
}

/// Where the markers were seen.
#[derive(Default)]
struct Markers {
    begin: Option<(usize, usize)>,
    end: Option<(usize, usize)>,
}

fn parse(text: &str) -> Result<Parsed, CorefileError> {
    let tokens = tokenize(text)?;
    let mut blocks = Vec::new();
    let mut markers = Markers::default();
    // Blocks inside the markers are ours, and not checked against ours.
    let mut inside_managed = false;
    let mut keys: Vec<String> = Vec::new();
    let mut keys_line = 0;
    let mut last_key_line = 0;
    let mut expecting_another = false;
    let mut depth = 0usize;
    let mut open_line = 0;
    let mut index = 0;
    while let Some(token) = tokens.get(index) {
        index += 1;
        match &token.kind {
            TokenKind::Comment {
                text: comment,
                line_start,
            } => {
                let marker = if comment.starts_with(BEGIN_MARKER) {
                    Some(true)
                } else if comment.starts_with(END_MARKER) {
                    Some(false)
                } else {
                    None
                };
                let Some(is_begin) = marker else { continue };
                let misplaced = |problem| CorefileError::Markers {
                    line: token.line,
                    problem,
                };
                if depth > 0 || !keys.is_empty() {
                    return Err(misplaced("a crossdns marker inside a server block"));
                }
                if is_begin {
                    if markers.begin.is_some() {
                        return Err(misplaced("a second crossdns begin marker"));
                    }
                    markers.begin = Some((token.line, *line_start));
                    inside_managed = true;
                } else {
                    if markers.begin.is_none() || markers.end.is_some() {
                        return Err(misplaced("a crossdns end marker without a begin marker"));
                    }
                    let after = text_end_of_line(text_from(text, *line_start));
                    markers.end = Some((token.line, *line_start + after));
                    inside_managed = false;
                }
            }
            TokenKind::Open => {
                if depth == 0 {
                    if keys.is_empty() {
                        return Err(CorefileError::BlockWithoutBraces {
                            line: token.line,
                            keys: String::from("{"),
                        });
                    }
                    open_line = token.line;
                    if !inside_managed {
                        blocks.push(ServerBlock {
                            line: keys_line,
                            keys: std::mem::take(&mut keys),
                        });
                    }
                    keys.clear();
                    expecting_another = false;
                }
                depth += 1;
            }
            TokenKind::Close => {
                if depth == 0 {
                    return Err(CorefileError::StrayClose { line: token.line });
                }
                depth -= 1;
            }
            TokenKind::Word(word) if depth == 0 => {
                if keys.is_empty() && word == "import" {
                    // A top-level `import` takes the rest of its line.
                    while tokens
                        .get(index)
                        .is_some_and(|next| next.line == token.line)
                    {
                        index += 1;
                    }
                    continue;
                }
                if keys.is_empty() {
                    keys_line = token.line;
                } else if !expecting_another && token.line != last_key_line {
                    // Keys go on to the next line only after a trailing comma: this word is a
                    // directive of a block that has no braces.
                    return Err(CorefileError::BlockWithoutBraces {
                        line: keys_line,
                        keys: keys.join(" "),
                    });
                }
                expecting_another = word.ends_with(',');
                last_key_line = token.line;
                let key = word.trim_end_matches(',');
                if !key.is_empty() {
                    keys.push(key.to_owned());
                }
            }
            TokenKind::Word(_) => {}
        }
    }
    if depth > 0 {
        return Err(CorefileError::UnclosedBlock { line: open_line });
    }
    if !keys.is_empty() {
        return Err(CorefileError::BlockWithoutBraces {
            line: keys_line,
            keys: keys.join(" "),
        });
    }
    let managed = match (markers.begin, markers.end) {
        (None, _) => None,
        (Some((line, _)), None) => {
            return Err(CorefileError::Markers {
                line,
                problem: "a crossdns begin marker without an end marker",
            });
        }
        (Some((_, start)), Some((_, end))) => Some(start..end),
    };
    Ok(Parsed { blocks, managed })
}

fn text_from(text: &str, offset: usize) -> &str {
    text.get(offset..).unwrap_or_default()
}

/// The length of `text`'s first line, its newline included.
fn text_end_of_line(text: &str) -> usize {
    text.find('\n').map_or(text.len(), |n| n + 1)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// The Corefile of a kubeadm cluster.
    const KUBEADM: &str = r#".:53 {
    errors
    health {
       lameduck 5s
    }
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
    prometheus :9153
    forward . /etc/resolv.conf {
       max_concurrent 1000
    }
    cache 30 {
       disable success cluster.local
       disable denial cluster.local
    }
    loop
    reload
    loadbalance
}
"#;

    fn crossdns() -> SocketAddr {
        "10.96.0.53:53".parse().unwrap()
    }

    #[test]
    fn wiring_appends_one_marked_block_on_the_root_zones_port() {
        let wired = wire(KUBEADM, crossdns()).unwrap().unwrap();
        assert!(wired.starts_with(KUBEADM), "the rest is untouched");
        let added = &wired[KUBEADM.len()..];
        assert_eq!(added, managed_block(crossdns(), 53));
        assert!(added.starts_with(BEGIN_MARKER));
        assert!(added.ends_with(&format!("{END_MARKER}\n")));
        assert!(added.contains("hyperos.local:53 clusterset.local:53 {\n"));
        assert!(added.contains("    forward . 10.96.0.53:53\n"));
        // What we wrote reads back as ours.
        let parsed = parse(&wired).unwrap();
        assert_eq!(parsed.managed, Some(KUBEADM.len()..wired.len()));
        assert_eq!(parsed.blocks.len(), 1);
    }

    #[test]
    fn wiring_twice_changes_nothing() {
        let wired = wire(KUBEADM, crossdns()).unwrap().unwrap();
        assert_eq!(wire(&wired, crossdns()).unwrap(), None);
    }

    #[test]
    fn a_new_address_replaces_the_block_in_place() {
        let wired = wire(KUBEADM, crossdns()).unwrap().unwrap();
        let foreign_after = format!("{wired}example.org:53 {{\n    whoami\n}}\n");
        let moved: SocketAddr = "[fd00:96::53]:5353".parse().unwrap();
        let rewired = wire(&foreign_after, moved).unwrap().unwrap();
        assert_eq!(
            rewired,
            format!(
                "{KUBEADM}{}example.org:53 {{\n    whoami\n}}\n",
                managed_block(moved, 53)
            )
        );
        assert!(rewired.contains("forward . [fd00:96::53]:5353\n"));
    }

    #[test]
    fn unwiring_restores_the_corefile_byte_for_byte() {
        let wired = wire(KUBEADM, crossdns()).unwrap().unwrap();
        assert_eq!(unwire(&wired).unwrap().unwrap(), KUBEADM);
        assert_eq!(unwire(KUBEADM).unwrap(), None, "nothing to remove");
    }

    #[test]
    fn edits_around_the_block_survive_a_rewire_and_an_unwire() {
        let wired = wire(KUBEADM, crossdns()).unwrap().unwrap();
        // Someone edits the Corefile afterwards: a plugin in the root block, a block after ours.
        let edited = wired.replace("    loadbalance\n", "    loadbalance\n    log\n")
            + "# a comment of theirs\nexample.org {\n    file /etc/db.example\n}\n";
        assert_eq!(wire(&edited, crossdns()).unwrap(), None);
        let unwired = unwire(&edited).unwrap().unwrap();
        assert_eq!(
            unwired,
            KUBEADM.replace("    loadbalance\n", "    loadbalance\n    log\n")
                + "# a comment of theirs\nexample.org {\n    file /etc/db.example\n}\n"
        );
    }

    #[test]
    fn edits_inside_the_block_are_overwritten() {
        let wired = wire(KUBEADM, crossdns()).unwrap().unwrap();
        let tampered = wired.replace(
            "    errors\n    forward",
            "    errors\n    log\n    forward",
        );
        let rewired = wire(&tampered, crossdns()).unwrap().unwrap();
        assert_eq!(rewired, wired);
    }

    #[test]
    fn the_port_follows_the_root_block_and_defaults_to_53() {
        let corefile = "cluster.local:1053 {\n    whoami\n}\n.:5300 {\n    whoami\n}\n";
        let wired = wire(corefile, crossdns()).unwrap().unwrap();
        assert!(wired.contains("hyperos.local:5300 clusterset.local:5300 {"));
        let corefile = "dns://cluster.local:1053 {\n    whoami\n}\n";
        let wired = wire(corefile, crossdns()).unwrap().unwrap();
        assert!(wired.contains("hyperos.local:1053 clusterset.local:1053 {"));
        let wired = wire(". {\n    whoami\n}\n", crossdns()).unwrap().unwrap();
        assert!(wired.contains("hyperos.local:53 clusterset.local:53 {"));
        let wired = wire("", crossdns()).unwrap().unwrap();
        assert_eq!(wired, managed_block(crossdns(), 53));
    }

    #[test]
    fn a_corefile_without_a_final_newline_gets_one_before_the_block() {
        let corefile = ".:53 {\n    whoami\n}";
        let wired = wire(corefile, crossdns()).unwrap().unwrap();
        assert_eq!(
            wired,
            format!("{corefile}\n{}", managed_block(crossdns(), 53))
        );
    }

    #[test]
    fn snippets_imports_quotes_and_env_placeholders_are_read() {
        let corefile = r#"(common) {
    errors
    log "{remote} }"
}
import common-extra.conf
.:{$DNS_PORT} {
    import common
    hosts {
        10.0.0.1 "quoted { brace"
    }
}
"#;
        let wired = wire(corefile, crossdns()).unwrap().unwrap();
        assert!(wired.starts_with(corefile));
        assert_eq!(parse(corefile).unwrap().blocks.len(), 2);
    }

    #[test]
    fn keys_may_span_lines_after_a_comma() {
        let corefile = "example.org:53,\n  example.net:53 {\n    whoami\n}\n";
        let parsed = parse(corefile).unwrap();
        assert_eq!(parsed.blocks[0].keys, ["example.org:53", "example.net:53"]);
    }

    #[test]
    fn a_zone_already_served_by_someone_else_is_refused() {
        let corefile = format!("{KUBEADM}clusterset.local:53 {{\n    forward . 10.0.0.9\n}}\n");
        assert_eq!(
            wire(&corefile, crossdns()).unwrap_err(),
            CorefileError::ZoneTaken {
                line: 24,
                key: "clusterset.local:53".into(),
                zone: "clusterset.local",
            }
        );
        // On another port it does not clash.
        let corefile = format!("{KUBEADM}clusterset.local:1053 {{\n    whoami\n}}\n");
        assert!(wire(&corefile, crossdns()).is_ok());
    }

    #[test]
    fn a_corefile_it_cannot_read_is_refused() {
        let cases = [
            (
                ".:53 {\n    whoami\n",
                CorefileError::UnclosedBlock { line: 1 },
            ),
            (".:53 {\n}\n}\n", CorefileError::StrayClose { line: 3 }),
            (
                ".:53 {\n    log \"open\n}\n",
                CorefileError::UnclosedQuote { line: 2 },
            ),
            (
                ".:53\nwhoami\n",
                CorefileError::BlockWithoutBraces {
                    line: 1,
                    keys: ".:53".into(),
                },
            ),
            (
                "{\n}\n",
                CorefileError::BlockWithoutBraces {
                    line: 1,
                    keys: "{".into(),
                },
            ),
        ];
        for (corefile, error) in cases {
            assert_eq!(wire(corefile, crossdns()).unwrap_err(), error, "{corefile}");
            assert_eq!(unwire(corefile).unwrap_err(), error, "{corefile}");
        }
    }

    #[test]
    fn broken_markers_are_refused() {
        let block = managed_block(crossdns(), 53);
        let begin_only = format!("{KUBEADM}{}", block.replace(END_MARKER, "# gone"));
        let end_only = format!("{KUBEADM}{}", block.replace(BEGIN_MARKER, "# gone"));
        let twice = format!("{KUBEADM}{block}{block}");
        let inside = KUBEADM.replace("    loop\n", &format!("    loop\n{block}"));
        for (corefile, line) in [(begin_only, 24), (end_only, 29), (twice, 30), (inside, 21)] {
            let error = wire(&corefile, crossdns()).unwrap_err();
            assert!(
                matches!(error, CorefileError::Markers { line: l, .. } if l == line),
                "{error:?} for\n{corefile}"
            );
            assert!(unwire(&corefile).is_err());
        }
    }
}
