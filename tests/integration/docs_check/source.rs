//! Reading the source: constants, enum variants, routes and statuses, by
//! text, so that whatever is added to the code is seen without being
//! listed anywhere.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use axum::http::StatusCode;

use crate::support::repo_root;

/// `source` without its `#[cfg(test)]` module: tests build routers and
/// answers of their own.
pub fn without_tests(source: &str) -> &str {
    source.split("#[cfg(test)]").next().unwrap()
}

/// The text of the non-test `.rs` files under `dir` (relative to the
/// repository), recursively, without their test modules.
pub fn sources(dir: &str) -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs")
                && !path.to_string_lossy().ends_with("tests.rs")
            {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&repo_root().join(dir), &mut files);
    files.sort();
    files
        .into_iter()
        .map(|p| without_tests(&std::fs::read_to_string(&p).unwrap()).to_string())
        .collect()
}

/// `const NAME: ty = VALUE;` in `source`, public or not, as (name, value).
pub fn constants(source: &str, ty: &str) -> Vec<(String, String)> {
    let marker = format!(": {ty} = ");
    source
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            let rest = line.strip_prefix("pub ").unwrap_or(line);
            let (name, value) = rest.strip_prefix("const ")?.split_once(&marker)?;
            Some((name.to_string(), value.trim_end_matches(';').to_string()))
        })
        .collect()
}

/// The variants of `pub enum name` in `source`.
pub fn enum_variants(source: &str, name: &str) -> Vec<String> {
    let start = source
        .find(&format!("pub enum {name} {{"))
        .unwrap_or_else(|| panic!("no enum {name}"));
    let body = &source[start..];
    let body = &body[body.find('{').unwrap() + 1..];
    let mut depth = 0;
    let mut variants = Vec::new();
    for line in body.lines() {
        let trimmed = line.trim();
        if depth == 0 && trimmed.starts_with('}') {
            break;
        }
        if depth == 0 && trimmed.starts_with(|c: char| c.is_ascii_uppercase()) {
            let end = trimmed
                .find(|c: char| !c.is_ascii_alphanumeric())
                .unwrap_or(trimmed.len());
            variants.push(trimmed[..end].to_string());
        }
        depth += line.matches(['{', '(']).count() as i32 - line.matches(['}', ')']).count() as i32;
    }
    variants
}

/// `PayloadTooLarge` as serde's `rename_all = "snake_case"` writes it.
pub fn snake_case(camel: &str) -> String {
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// The `(METHOD, path)` pairs of every `.route(path, method(..)...)` in a
/// router's source.
pub fn routes(source: &str) -> BTreeSet<(String, String)> {
    let mut found = BTreeSet::new();
    for (at, _) in source.match_indices(".route(") {
        let call = &source[at + ".route(".len()..];
        let mut depth = 1;
        let end = call
            .char_indices()
            .find(|&(_, c)| {
                depth += match c {
                    '(' => 1,
                    ')' => -1,
                    _ => 0,
                };
                depth == 0
            })
            .map(|(i, _)| i)
            .expect("a closed .route(");
        let call = &call[..end];
        let path = call.split('"').nth(1).expect("a route path literal");
        let before_ok = |i: usize| {
            i == 0 || !call[..i].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        };
        let mut methods = 0;
        for method in ["get", "post", "put", "patch", "delete"] {
            for (i, _) in call.match_indices(&format!("{method}(")) {
                if before_ok(i) {
                    found.insert((method.to_ascii_uppercase(), path.to_string()));
                    methods += 1;
                }
            }
        }
        assert!(methods > 0, "route {path}: no method found in `{call}`");
    }
    found
}

/// What a status constant such as `URI_TOO_LONG` stands for.
pub fn status_number(name: &str) -> u16 {
    (100..600)
        .find(|&n| {
            StatusCode::from_u16(n)
                .ok()
                .and_then(|s| s.canonical_reason())
                .is_some_and(|r| r.to_ascii_uppercase().replace([' ', '-'], "_") == name)
        })
        .unwrap_or_else(|| panic!("unknown status constant {name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A constant, variant, route or status added to the code is seen.
    #[test]
    fn the_parsers_see_what_is_added() {
        let source = "pub mod close {\n    pub const NEW: u16 = 4010;\n}\nconst X: u8 = 130;";
        assert_eq!(
            constants(source, "u16"),
            [("NEW".to_string(), "4010".to_string())]
        );
        assert_eq!(
            constants(source, "u8"),
            [("X".to_string(), "130".to_string())]
        );
        let source = "pub enum E {\n    /// doc (x)\n    A,\n    B { x: u8 },\n    C(Value),\n    D {\n        y: u8,\n    },\n}";
        assert_eq!(enum_variants(source, "E"), ["A", "B", "C", "D"]);
        let source = r#".route("/health", get(health::get_health))
            .route("/x/{id}", get(x::get_x).post(x::post_x).delete(x::delete_x))"#;
        let found: Vec<String> = routes(source)
            .into_iter()
            .map(|(m, p)| format!("{m} {p}"))
            .collect();
        assert_eq!(
            found,
            [
                "DELETE /x/{id}",
                "GET /health",
                "GET /x/{id}",
                "POST /x/{id}"
            ]
        );
        assert_eq!(status_number("URI_TOO_LONG"), 414);
        assert_eq!(snake_case("PayloadTooLarge"), "payload_too_large");
        assert_eq!(without_tests("a\n#[cfg(test)]\nmod tests;"), "a\n");
    }
}
