//! The user documentation (README.md, docs/) against the code. The docs
//! are written by hand; these checks read the source and the docs and fail
//! when a route, frame type, error code, close code, status or exit code
//! exists in one and not the other, when an example no longer parses with
//! the wire types, or when a link points at nothing. Parsing the source
//! (rather than listing the items here) is what makes a newly added code
//! fail until it is documented.

mod markdown;
mod source;

use pytake::protocol::campaigns::{CampaignMetrics, CampaignPerformance};
use pytake::protocol::dashboard::{Overview, Series};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use pytake::protocol::api::{ErrorBody, EventsPage, Health, PublishResponse};
use pytake::protocol::frames::CLIENT_MESSAGE_TYPES;
use pytake::protocol::{ClientFrame, ErrorCode, ServerFrame};
use serde_json::Value;

use crate::support::repo_root;
use markdown::{anchors, first_cells, frame_headings, json_blocks, links, normalize, section};
use source::{constants, enum_variants, routes, snake_case, sources, status_number, without_tests};

/// The user documentation: README.md and docs/*.md, relative to the
/// repository.
fn documents() -> Vec<String> {
    let mut docs = vec!["README.md".to_string()];
    for entry in std::fs::read_dir(repo_root().join("docs")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".md") {
            docs.push(format!("docs/{name}"));
        }
    }
    docs.sort();
    docs
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo_root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Asserts that `documented` is exactly `defined`, naming the difference.
fn assert_same(what: &str, doc: &str, defined: &BTreeSet<String>, documented: &BTreeSet<String>) {
    let missing: Vec<_> = defined.difference(documented).collect();
    let extra: Vec<_> = documented.difference(defined).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: in the code but not in {doc}: {missing:?}; in {doc} but not in the code: {extra:?}"
    );
}

#[test]
fn every_close_code_is_documented() {
    let mut defined = BTreeSet::new();
    // The protocol's codes, and any the gateway keeps to itself (1011).
    let mut files = vec![read("src/protocol/codes.rs")];
    files.extend(sources("src/server/gateway"));
    for source in &files {
        for (_, value) in constants(source, "u16") {
            defined.insert(value);
        }
    }
    assert!(
        defined.contains("4001") && defined.contains("1011"),
        "{defined:?}"
    );
    let doc = read("docs/protocol.md");
    let documented = first_cells(section(&doc, "## Close codes"));
    assert_same("close codes", "docs/protocol.md", &defined, &documented);
}

#[test]
fn every_error_code_is_documented() {
    let variants = enum_variants(&read("src/protocol/codes.rs"), "ErrorCode");
    let defined: BTreeSet<String> = variants.iter().map(|v| snake_case(v)).collect();
    for name in &defined {
        serde_json::from_value::<ErrorCode>(Value::from(name.as_str()))
            .unwrap_or_else(|e| panic!("`{name}` is not an ErrorCode on the wire: {e}"));
    }
    let doc = read("docs/protocol.md");
    let documented = first_cells(section(&doc, "## Error codes"));
    assert_same("error codes", "docs/protocol.md", &defined, &documented);
}

#[test]
fn every_frame_type_is_documented() {
    let frames = read("src/protocol/frames.rs");
    let client: BTreeSet<String> = enum_variants(&frames, "ClientFrame").into_iter().collect();
    let listed: BTreeSet<String> = CLIENT_MESSAGE_TYPES.iter().map(|t| t.to_string()).collect();
    assert_eq!(
        client, listed,
        "ClientFrame and CLIENT_MESSAGE_TYPES differ"
    );
    let server: BTreeSet<String> = enum_variants(&frames, "ServerFrame").into_iter().collect();
    assert!(
        server.contains("Welcome") && server.contains("Error"),
        "{server:?}"
    );
    let doc = read("docs/protocol.md");
    let documented = frame_headings(section(&doc, "## Client frames"));
    assert_same("client frames", "docs/protocol.md", &client, &documented);
    let documented = frame_headings(section(&doc, "## Server frames"));
    assert_same("server frames", "docs/protocol.md", &server, &documented);
}

#[test]
fn the_protocol_examples_parse_as_frames() {
    let doc = read("docs/protocol.md");
    for block in json_blocks(section(&doc, "## Frames")) {
        ClientFrame::parse(&block).unwrap_or_else(|e| panic!("{e}: {block}"));
    }
    for (heading, client) in [("## Client frames", true), ("## Server frames", false)] {
        let frames = section(&doc, heading);
        for name in frame_headings(frames) {
            let sub = section(frames, &format!("### `{name}`"));
            for payload in json_blocks(sub) {
                let text = format!(r#"{{"message_type":"{name}","payload":{payload}}}"#);
                let parsed = match client {
                    true => ClientFrame::parse(&text).map(|_| ()),
                    false => ServerFrame::parse(&text)
                        .map(|_| ())
                        .map_err(|e| e.to_string()),
                };
                parsed.unwrap_or_else(|e| panic!("`{name}` example: {e}: {payload}"));
            }
        }
    }
}

/// `value` without the envelope's `timestamp`, which is stamped on sending.
fn unstamped(mut value: Value) -> Value {
    value.as_object_mut().unwrap().remove("timestamp");
    value
}

#[test]
fn the_example_session_is_what_the_server_sends() {
    let doc = read("docs/protocol.md");
    let session = section(&doc, "## An example session");
    let (mut client, mut server) = (0, 0);
    for line in session.lines() {
        if let Some(text) = line.strip_prefix("> {").map(|t| format!("{{{t}")) {
            ClientFrame::parse(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
            client += 1;
        }
        if let Some(text) = line.strip_prefix("< {").map(|t| format!("{{{t}")) {
            let frame = ServerFrame::parse(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
            // What the server would send for this frame, field for field.
            let sent: Value = serde_json::from_str(&frame.to_text()).unwrap();
            let shown: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(unstamped(sent), unstamped(shown), "{text}");
            server += 1;
        }
    }
    assert!(
        client >= 8 && server >= 12,
        "{client} client, {server} server frames"
    );
}

#[test]
fn every_route_is_documented_and_every_documented_route_exists() {
    let defined: BTreeSet<String> = routes(without_tests(&read("src/server/api/mod.rs")))
        .into_iter()
        .map(|(method, path)| format!("{method} {path}"))
        .collect();
    assert!(defined.contains("POST /api/v1/events"), "{defined:?}");
    let doc = read("docs/api.md");
    let documented = first_cells(section(&doc, "## Routes"));
    assert_same("routes", "docs/api.md", &defined, &documented);
}

#[test]
fn every_status_code_is_documented() {
    let mut defined = BTreeSet::new();
    for source in sources("src/server") {
        for (at, _) in source.match_indices("StatusCode::") {
            let rest = &source[at + "StatusCode::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                .collect();
            if !name.is_empty() {
                defined.insert(status_number(&name).to_string());
            }
        }
    }
    // The HTTP parser's own answers, which the server rewrites as JSON:
    // `"414" => "..."` arms.
    for line in read("src/server/http/parse_errors.rs").lines() {
        let arm = line
            .trim()
            .strip_prefix('"')
            .and_then(|l| l.split_once("\" =>"));
        if let Some((code, _)) = arm.filter(|(c, _)| c.len() == 3) {
            if code.chars().all(|c| c.is_ascii_digit()) {
                defined.insert(code.to_string());
            }
        }
    }
    assert!(
        defined.contains("431") && defined.contains("422"),
        "{defined:?}"
    );
    let doc = read("docs/api.md");
    let documented = first_cells(section(&doc, "## Status codes"));
    assert_same("statuses", "docs/api.md", &defined, &documented);
}

#[test]
fn the_api_examples_parse_as_replies() {
    let doc = read("docs/api.md");
    let blocks = json_blocks(&doc);
    assert!(blocks.len() >= 6, "{} json examples", blocks.len());
    for block in blocks {
        let value: Value = serde_json::from_str(&block).unwrap_or_else(|e| panic!("{e}: {block}"));
        let parsed = if value.get("error").is_some() {
            serde_json::from_value::<ErrorBody>(value).map(|_| ())
        } else if value.get("ids").is_some() {
            serde_json::from_value::<PublishResponse>(value).map(|_| ())
        } else if value.get("events").is_some_and(Value::is_array) {
            serde_json::from_value::<EventsPage>(value).map(|_| ())
        } else if value.get("kpis").is_some() {
            serde_json::from_value::<Overview>(value).map(|_| ())
        } else if value.get("points").is_some() {
            serde_json::from_value::<Series>(value).map(|_| ())
        } else if value.get("health_score").is_some() {
            serde_json::from_value::<CampaignMetrics>(value).map(|_| ())
        } else if value.get("online_count").is_some() {
            serde_json::from_value::<pytake::protocol::presence::PresenceList>(value).map(|_| ())
        } else if value.get("top_errors").is_some() {
            serde_json::from_value::<CampaignPerformance>(value).map(|_| ())
        } else {
            serde_json::from_value::<Health>(value).map(|_| ())
        };
        parsed.unwrap_or_else(|e| panic!("{e}: {block}"));
    }
}

#[test]
fn every_exit_code_is_documented() {
    let defined: BTreeSet<String> = constants(&read("src/cli/exit.rs"), "u8")
        .into_iter()
        .map(|(_, value)| value)
        .collect();
    assert!(defined.contains("99"), "{defined:?}");
    let documented = first_cells(&read("docs/exit-codes.md"));
    let missing: Vec<_> = defined.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "exit codes not in docs/exit-codes.md: {missing:?}"
    );
}

#[test]
fn links_point_at_files_and_headings_that_exist() {
    let mut broken = Vec::new();
    for doc in &documents() {
        let text = read(doc);
        let dir = Path::new(doc).parent().unwrap();
        for link in links(&text) {
            if link.contains("://") || link.starts_with("mailto:") {
                continue;
            }
            let (file, anchor) = link.split_once('#').unwrap_or((&link, ""));
            let target = if file.is_empty() {
                PathBuf::from(doc)
            } else {
                normalize(&dir.join(file))
            };
            let relative = target.display().to_string();
            if !repo_root().join(&target).exists() {
                broken.push(format!("{doc}: ({link}): no file {relative}"));
                continue;
            }
            if !anchor.is_empty()
                && relative.ends_with(".md")
                && !anchors(&read(&relative)).contains(anchor)
            {
                broken.push(format!(
                    "{doc}: ({link}): no heading #{anchor} in {relative}"
                ));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_readme_stands_alone() {
    let readme = read("README.md");
    for doc in documents() {
        let text = read(&doc);
        assert!(
            !text.contains("../shared") && !text.contains("DESIGN.md"),
            "{doc} points outside the repository"
        );
    }
    // It opens with the two commands a newcomer runs on a fresh machine.
    let first_block = readme
        .split("```sh\n")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    let commands: Vec<&str> = first_block
        .lines()
        .map(|l| l.split('#').next().unwrap().trim())
        .collect();
    assert_eq!(
        commands,
        ["cargo run --release -- serve --demo", "cargo test"]
    );
    assert!(readme.contains("cargo install --path ."));
    // The curl examples work on a fresh demo server: history from the start.
    for doc in ["README.md", "docs/api.md"] {
        for line in read(doc).lines().filter(|l| l.contains("since=")) {
            assert!(
                line.contains("since=0"),
                "{doc}: `{line}` skips what a fresh server has"
            );
        }
    }
}

/// The README's command table names every command and subcommand the
/// binary has, and no other: a command added without a line there fails.
#[test]
fn the_readme_lists_every_command() {
    let readme = read("README.md");
    let table: BTreeSet<String> = readme
        .lines()
        .skip_while(|l| !l.starts_with("## Commands and options"))
        .take_while(|l| !l.starts_with("## Settings"))
        .filter(|l| l.starts_with("| `pytake "))
        .flat_map(|l| {
            let cell = l.split('|').nth(1).unwrap_or("");
            // `pytake config show [--origin]`, `config check [FILE]`: a
            // command and maybe a subcommand, in lowercase words.
            let mut names = Vec::new();
            for code in cell.split('`').skip(1).step_by(2) {
                let words: Vec<&str> = code
                    .split_whitespace()
                    .filter(|w| *w != "pytake" && w.chars().all(|c| c.is_ascii_lowercase()))
                    .collect();
                if let Some(command) = words.first() {
                    names.push(command.to_string());
                }
                if let [command, sub, ..] = words.as_slice() {
                    names.push(format!("{command} {sub}"));
                }
            }
            names
        })
        .collect();
    let mut defined = BTreeSet::new();
    for sub in pytake::cli::command().get_subcommands() {
        defined.insert(sub.get_name().to_string());
        for inner in sub.get_subcommands() {
            defined.insert(format!("{} {}", sub.get_name(), inner.get_name()));
        }
    }
    assert_eq!(
        table, defined,
        "README.md's command table against the binary"
    );
}
