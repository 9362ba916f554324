//! The README's "Reliability" retry table is the one in the `fal_client::retry` module docs.

/// `[`X`](target)` → `` `X` ``.
fn strip_links(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(start) = rest.find("[`") {
        let Some(close) = rest[start..].find("`](") else {
            break;
        };
        let Some(end) = rest[start + close..].find(')') else {
            break;
        };
        out.push_str(&rest[..start]);
        out.push_str(&rest[start + 1..start + close + 1]);
        rest = &rest[start + close + end + 1..];
    }
    out.push_str(rest);
    out
}

fn table_after<'a>(lines: impl Iterator<Item = &'a str>, heading: &str) -> Vec<String> {
    lines
        .skip_while(|l| !l.contains(heading))
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .map(strip_links)
        .collect()
}

#[test]
fn readme_retry_table_matches_the_retry_module_docs() {
    let readme = include_str!("../README.md");
    let retry = include_str!("../src/retry.rs");
    let docs = table_after(
        retry
            .lines()
            .filter_map(|l| l.strip_prefix("//! ").or(l.strip_prefix("//!"))),
        "# Decision table",
    );
    let readme = table_after(readme.lines(), "### Retries");
    assert!(docs.len() >= 8, "{docs:#?}");
    assert_eq!(
        readme, docs,
        "update README.md's Reliability section to match src/retry.rs"
    );
}
