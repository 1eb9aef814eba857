//! Reading the documentation: prose outside code blocks, sections,
//! tables, JSON examples, links and GitHub's heading anchors.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

/// The lines of `doc` outside fenced code blocks.
pub fn prose(doc: &str) -> impl Iterator<Item = &str> {
    let mut fenced = false;
    doc.lines().filter(move |line| {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            return false;
        }
        !fenced
    })
}

/// The text under `heading` (a whole line such as `## Close codes`), up to
/// the next heading of the same or a higher level outside code blocks.
pub fn section<'a>(doc: &'a str, heading: &str) -> &'a str {
    let level = heading.chars().take_while(|c| *c == '#').count();
    let start = doc
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("no `{heading}` section"))
        + heading.len()
        + 2;
    let rest = &doc[start..];
    let mut fenced = false;
    let mut at = 0;
    for line in rest.split_inclusive('\n') {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        }
        let hashes = line.chars().take_while(|c| *c == '#').count();
        if !fenced && (1..=level).contains(&hashes) && line[hashes..].starts_with(' ') {
            return &rest[..at];
        }
        at += line.len();
    }
    rest
}

/// The first cell of each body row of the tables in `text`: the code spans
/// in it, or the whole cell when it has none.
pub fn first_cells(text: &str) -> BTreeSet<String> {
    let mut cells = BTreeSet::new();
    let mut in_body = false;
    for line in prose(text) {
        let Some(row) = line.trim().strip_prefix('|') else {
            in_body = false;
            continue;
        };
        let cell = row.split('|').next().unwrap_or("").trim();
        if cell.starts_with("---") {
            in_body = true;
            continue;
        }
        if !in_body {
            continue;
        }
        let spans: Vec<&str> = cell.split('`').skip(1).step_by(2).collect();
        if spans.is_empty() {
            cells.insert(cell.to_string());
        }
        cells.extend(spans.into_iter().map(String::from));
    }
    cells
}

/// The frame types documented as `### \`Name\`` headings in a section.
pub fn frame_headings(section: &str) -> BTreeSet<String> {
    prose(section)
        .filter_map(|l| l.strip_prefix("### `"))
        .filter_map(|l| l.split('`').next())
        .map(String::from)
        .collect()
}

/// The ```json blocks of `text`, each as one string.
pub fn json_blocks(text: &str) -> Vec<String> {
    text.split("```json\n")
        .skip(1)
        .map(|block| block.split("```").next().unwrap().to_string())
        .collect()
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces
/// to hyphens.
pub fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors GitHub gives the headings of `doc`; a repeated heading gets
/// `-1`, `-2`, ...
pub fn anchors(doc: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for line in prose(doc) {
        let hashes = line.chars().take_while(|c| *c == '#').count();
        if hashes == 0 || line.chars().nth(hashes) != Some(' ') {
            continue;
        }
        let base = slug(&line[hashes..]);
        let mut anchor = base.clone();
        let mut n = 0;
        while !seen.insert(anchor.clone()) {
            n += 1;
            anchor = format!("{base}-{n}");
        }
    }
    seen
}

/// The targets of the inline links `[text](target)` of `doc`, outside code.
pub fn links(doc: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in prose(doc) {
        let text: String = line.split('`').step_by(2).collect::<Vec<_>>().join("");
        for (at, _) in text.match_indices("](") {
            let rest = &text[at + 2..];
            if let Some(end) = rest.find(')') {
                found.push(rest[..end].to_string());
            }
        }
    }
    found
}

/// `path` with `.` and `..` resolved, without touching the file system.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::ParentDir => assert!(out.pop(), "{} leaves the repository", path.display()),
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_sections_and_anchors_are_read_as_github_shows_them() {
        let table = "| code | x |\n|---|---|\n| `1000` | a |\n| 201 | b |\n| `130` (SIGINT) / `143` | c |\n";
        let cells: Vec<String> = first_cells(table).into_iter().collect();
        assert_eq!(cells, ["1000", "130", "143", "201"]);
        let doc = "# T\n\n## A\n\ntext\n```sh\n# a comment, not a heading\n```\n### A.1\n\n## B\n";
        assert_eq!(
            section(doc, "## A"),
            "\ntext\n```sh\n# a comment, not a heading\n```\n### A.1\n\n"
        );
        assert_eq!(slug("`GET /api/v1/events`"), "get-apiv1events");
        assert_eq!(slug("Resume with `since`"), "resume-with-since");
        let anchors = anchors("# X\n## Y\n## Y\n```\n# not\n```\n");
        assert_eq!(anchors.into_iter().collect::<Vec<_>>(), ["x", "y", "y-1"]);
        let found = links("[a](b.md) `[c](d.md)` [e](#f)\n```\n[g](h)\n```\n");
        assert_eq!(found, ["b.md", "#f"]);
        assert_eq!(
            normalize(Path::new("docs/../README.md")),
            PathBuf::from("README.md")
        );
    }
}
