//! `loadtest --junit FILE`: the run as JUnit XML, one test case for the
//! run's validity and one per threshold, for CI systems that show those.

use crate::client::loadtest::report::Report;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// The report as a JUnit XML document.
pub fn render(r: &Report) -> String {
    let mut cases = Vec::new();
    let run_failure = r
        .invalid_reason
        .as_ref()
        .map(|reason| format!("<failure message=\"{}\"/>", escape(reason)));
    cases.push(("run is valid".to_string(), run_failure));
    for v in &r.thresholds {
        let failure = (!v.ok).then(|| format!("<failure message=\"actual {}\"/>", v.actual));
        cases.push((v.threshold.clone(), failure));
    }
    let failures = cases.iter().filter(|(_, f)| f.is_some()).count();
    let time = r.config.duration_s;
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    xml.push_str(&format!(
        "<testsuites name=\"pytake loadtest\" tests=\"{}\" failures=\"{failures}\" time=\"{time}\">\n",
        cases.len()
    ));
    xml.push_str(&format!(
        "  <testsuite name=\"pytake loadtest\" tests=\"{}\" failures=\"{failures}\" time=\"{time}\">\n",
        cases.len()
    ));
    for (name, failure) in cases {
        let name = escape(&name);
        match failure {
            Some(f) => xml.push_str(&format!(
                "    <testcase classname=\"pytake.loadtest\" name=\"{name}\">{f}</testcase>\n"
            )),
            None => xml.push_str(&format!(
                "    <testcase classname=\"pytake.loadtest\" name=\"{name}\"/>\n"
            )),
        }
    }
    xml.push_str("  </testsuite>\n</testsuites>\n");
    xml
}
