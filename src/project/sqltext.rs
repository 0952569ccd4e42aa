//! Where a model's SQL code is and where it is not: comments, quoted text and Postgres dollar
//! quoting are skipped by one scanner, so `check_model` (one statement, a query) and dbt's
//! `{{ ref() }}` finder agree on what is code.

/// The length of the comment, quoted literal or identifier, or dollar-quoted string that `rest`
/// starts with; 0 when it starts with code. An unclosed one runs to the end.
pub(crate) fn skipped(rest: &str) -> usize {
    if rest.starts_with("--") {
        rest.find('\n').unwrap_or(rest.len())
    } else if rest.starts_with("/*") {
        rest.find("*/").map(|e| e + 2).unwrap_or(rest.len())
    } else if rest.starts_with(['\'', '"']) {
        let q = &rest[..1];
        let mut end = 1;
        loop {
            match rest[end..].find(q) {
                // A doubled quote is an escaped quote inside the literal.
                Some(p) if rest[end + p + 1..].starts_with(q) => end += p + 2,
                Some(p) => break end + p + 1,
                None => break rest.len(),
            }
        }
    } else if let Some(tag) = dollar_tag(rest) {
        rest[tag.len()..].find(tag).map(|e| e + 2 * tag.len()).unwrap_or(rest.len())
    } else {
        0
    }
}

/// The bytes that may start something `skipped` skips (all ASCII).
pub(crate) const STARTS: [char; 5] = ['-', '/', '\'', '"', '$'];

/// `$tag$` at the start of `s` (Postgres dollar quoting), if there.
fn dollar_tag(s: &str) -> Option<&str> {
    let end = s.strip_prefix('$')?.find('$')? + 2;
    s[1..end - 1].chars().all(|c| c.is_alphanumeric() || c == '_').then(|| &s[..end])
}

#[cfg(test)]
mod tests {
    use super::skipped;

    #[test]
    fn comments_quotes_and_dollar_quoting_are_skipped_whole() {
        assert_eq!(skipped("-- a\nSELECT"), 4);
        assert_eq!(skipped("/* a */ x"), 7);
        assert_eq!(skipped("'it''s' x"), 7);
        assert_eq!(skipped("\"a\"\"b\" x"), 6);
        assert_eq!(skipped("$$a;b$$ x"), 7);
        assert_eq!(skipped("$x$ $$ $x$ y"), 10);
        assert_eq!(skipped("$1 + 2"), 0, "a parameter is code");
        assert_eq!(skipped("'open"), 5);
        assert_eq!(skipped("SELECT"), 0);
    }
}
