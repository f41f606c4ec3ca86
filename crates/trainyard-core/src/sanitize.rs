//! Child output (pipeline, model server) made fit for an error message that may reach an API
//! body: terminal escape sequences and other control characters removed, local filesystem
//! paths reduced to their file name (`<path>/trainer.py`), so that answers carry neither
//! colour codes nor the layout of the machine.

/// Removes ANSI escape sequences (CSI `ESC [ ... final`, OSC `ESC ] ... BEL|ESC \`, and
/// two-byte `ESC x`) and control characters other than newline and tab.
pub fn strip_escapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.next() {
                Some('[') => {
                    // Parameters and intermediates, then one final byte in @..~.
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
                Some(']') => {
                    while let Some(c) = chars.next() {
                        if c == '\u{7}' {
                            break;
                        }
                        if c == '\u{1b}' && chars.peek() == Some(&'\\') {
                            chars.next();
                            break;
                        }
                    }
                }
                _ => {}
            },
            // The 8-bit CSI.
            '\u{9b}' => {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            '\n' | '\t' => out.push(c),
            '\r' => {}
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

fn starts_path(prev: Option<char>) -> bool {
    matches!(
        prev,
        None | Some(' ' | '\t' | '\n' | '"' | '\'' | '(' | '[' | '=' | ',' | '`' | '<')
    )
}

fn ends_path(c: char) -> bool {
    c.is_whitespace() || matches!(c, '"' | '\'' | ')' | ']' | ',' | ':' | ';' | '`' | '>')
}

/// Replaces absolute paths (`/a/b/c.py`, two or more segments) by `<path>/c.py`.
pub fn strip_paths(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let prev = i.checked_sub(1).map(|p| chars[p]);
        if chars[i] == '/' && starts_path(prev) {
            let end = (i..chars.len())
                .find(|&j| ends_path(chars[j]))
                .unwrap_or(chars.len());
            let path: String = chars[i..end].iter().collect();
            let segments = path.split('/').filter(|s| !s.is_empty()).count();
            if segments >= 2 {
                let name = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
                out.push_str("<path>/");
                out.push_str(name);
                i = end;
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// [`strip_escapes`] then [`strip_paths`].
pub fn child_output(text: &str) -> String {
    strip_paths(&strip_escapes(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_paths() {
        let raw = "\u{1b}[31mERROR\u{1b}[0m: \u{1b}]0;title\u{7}boom\r\n  File \"/home/ci/proj/.venv-tf/lib/python3.10/site-packages/tfx/x.py\", line 3\nopen /tmp/trainyard-x/run/1/pipeline.json: denied\nsee http://127.0.0.1:8500/v1/models and a/b/c and 1/2";
        let clean = child_output(raw);
        assert_eq!(
            clean,
            "ERROR: boom\n  File \"<path>/x.py\", line 3\nopen <path>/pipeline.json: denied\nsee http://127.0.0.1:8500/v1/models and a/b/c and 1/2"
        );
        assert!(!clean.contains('\u{1b}'));
        assert_eq!(child_output("plain / text /x"), "plain / text /x");
    }
}
