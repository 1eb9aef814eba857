//! `--junit FILE` with the run's nodes: the shared JUnit rendering
//! (`cli::junit`: a test case for validity and one per threshold), plus the
//! node count and each node's figures as the suite's `<properties>`, named
//! by their JSON paths as in the CSV (`config.nodes`, `nodes.0.url`, ...).

use super::summary::node_fields;
use crate::client::loadtest::report::Report;

/// The report as a JUnit XML document, with the nodes' properties.
pub fn render(r: &Report) -> String {
    let xml = crate::cli::junit::render(r);
    let mut properties = String::from("    <properties>\n");
    for (name, value) in node_fields(r) {
        properties.push_str(&format!(
            "      <property name=\"{}\" value=\"{}\"/>\n",
            escape(&name),
            escape(&value)
        ));
    }
    properties.push_str("    </properties>\n");
    // JUnit puts a suite's properties before its test cases: right after
    // the `<testsuite ...>` line.
    let at = xml
        .find("\n  <testsuite ")
        .and_then(|start| xml[start + 1..].find('\n').map(|end| start + 1 + end + 1));
    match at {
        Some(at) => format!("{}{properties}{}", &xml[..at], &xml[at..]),
        None => xml,
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}
