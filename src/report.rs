//! Machine-readable output: JSON text for the `--json` flags (pure, no I/O).
//!
//! Small and dependency-free on purpose: every document sockit prints is a
//! flat object or an array of them, built from these escapes.

/// A JSON string literal for `s`, quotes included.
pub fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON array of already-encoded items.
pub fn json_array<I: IntoIterator<Item = String>>(items: I) -> String {
    let v: Vec<String> = items.into_iter().collect();
    format!("[{}]", v.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_json_requires() {
        assert_eq!(
            json_str("a\"b\\c\n\u{1}é"),
            "\"a\\\"b\\\\c\\u000a\\u0001é\""
        );
        assert_eq!(
            json_array(vec!["1".to_string(), "{}".to_string()]),
            "[1,{}]"
        );
        assert_eq!(json_array(Vec::new()), "[]");
    }
}
