//! A `.env` parser with python-dotenv's rules, which is what Dify's `.env` files are written
//! for: `$` is literal (so `DB_PASSWORD=Pa$w0rd` stays intact), only `${VAR}` and
//! `${VAR:-default}` are expanded, single quotes are literal, double quotes take escapes, and
//! quoted values may span lines.

/// One assignment: key, value, and the 1-based line where it starts.
pub type Assignment = (String, String, usize);

/// Why a file could not be parsed: the 1-based line and what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

/// Parses `text`; `${VAR}` looks at earlier keys of the same file, then `environment`.
pub fn parse(
    text: &str,
    environment: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Assignment>, ParseError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out: Vec<Assignment> = Vec::new();
    let (mut i, mut line) = (0usize, 1usize);
    while i < chars.len() {
        // Skip blank space, blank lines and comment lines.
        match chars[i] {
            '\n' => {
                line += 1;
                i += 1;
                continue;
            }
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            _ => {}
        }
        let start_line = line;
        let error = |message: String| ParseError { line: start_line, message };
        let rest: String = chars[i..].iter().take(7).collect();
        if rest.starts_with("export ") || rest.starts_with("export\t") {
            i += 7;
            while i < chars.len() && (chars[i] == ' ' || chars[i] == '\t') {
                i += 1;
            }
        }
        let key_start = i;
        while i < chars.len() && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '_' | '.' | '-')) {
            i += 1;
        }
        let key: String = chars[key_start..i].iter().collect();
        while i < chars.len() && (chars[i] == ' ' || chars[i] == '\t') {
            i += 1;
        }
        if key.is_empty() || i >= chars.len() || chars[i] != '=' {
            let shown: String = chars[key_start..].iter().take_while(|c| **c != '\n').collect();
            return Err(error(format!("cannot parse {shown:?}: expected KEY=value")));
        }
        i += 1;
        while i < chars.len() && (chars[i] == ' ' || chars[i] == '\t') {
            i += 1;
        }
        let lookup = |name: &str| {
            out.iter()
                .rev()
                .find(|(k, _, _)| k == name)
                .map(|(_, v, _)| v.clone())
                .or_else(|| environment(name))
        };
        let value = match chars.get(i) {
            Some(&quote @ ('\'' | '"')) => {
                i += 1;
                let mut raw = String::new();
                loop {
                    let Some(&c) = chars.get(i) else {
                        return Err(error(format!("{key}: the {quote} quote is never closed")));
                    };
                    i += 1;
                    if c == '\n' {
                        line += 1;
                    }
                    if c == quote {
                        break;
                    }
                    if c == '\\'
                        && let Some(&next) = chars.get(i)
                    {
                        i += 1;
                        let unescaped = match (quote, next) {
                            ('\'', '\'') => Some('\''),
                            ('\'', '\\') => Some('\\'),
                            ('"', 'n') => Some('\n'),
                            ('"', 't') => Some('\t'),
                            ('"', 'r') => Some('\r'),
                            ('"', '"') => Some('"'),
                            ('"', '\\') => Some('\\'),
                            _ => None,
                        };
                        match unescaped {
                            Some(c) => raw.push(c),
                            None => {
                                raw.push('\\');
                                raw.push(next);
                            }
                        }
                        continue;
                    }
                    raw.push(c);
                }
                // Only a comment may follow the closing quote.
                while i < chars.len() && chars[i] != '\n' {
                    if chars[i] == '#' {
                        while i < chars.len() && chars[i] != '\n' {
                            i += 1;
                        }
                        break;
                    }
                    if !chars[i].is_whitespace() {
                        return Err(error(format!("{key}: unexpected text after the closing quote")));
                    }
                    i += 1;
                }
                if quote == '"' { expand(&raw, &lookup) } else { raw }
            }
            _ => {
                let mut raw = String::new();
                while i < chars.len() && chars[i] != '\n' {
                    // ` #` starts a comment; a `#` inside a word is part of the value.
                    if chars[i] == '#' && raw.ends_with([' ', '\t']) {
                        while i < chars.len() && chars[i] != '\n' {
                            i += 1;
                        }
                        break;
                    }
                    raw.push(chars[i]);
                    i += 1;
                }
                expand(raw.trim_end(), &lookup)
            }
        };
        out.push((key, value, start_line));
    }
    Ok(out)
}

/// Expands `${NAME}` and `${NAME:-default}`; anything else, `$NAME` included, is literal.
fn expand(raw: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return out;
        };
        let inner = &after[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (inner, None),
        };
        let value = lookup(name).filter(|v| !v.is_empty() || default.is_none());
        out.push_str(&value.or(default.map(str::to_owned)).unwrap_or_default());
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> Vec<(String, String, usize)> {
        parse(text, &|name| (name == "HOME").then(|| "/home/kiln".to_owned())).expect("parses")
    }

    fn values(text: &str) -> Vec<(String, String)> {
        parse_ok(text).into_iter().map(|(k, v, _)| (k, v)).collect()
    }

    fn pair(k: &str, v: &str) -> (String, String) {
        (k.to_owned(), v.to_owned())
    }

    #[test]
    fn dollar_signs_are_literal_unless_braced() {
        assert_eq!(
            values("DB_PASSWORD=Pa$w0rd\nX=a$$b\n"),
            [pair("DB_PASSWORD", "Pa$w0rd"), pair("X", "a$$b")]
        );
        assert_eq!(
            values("A=1\nB=${A}-${HOME}-${MISSING:-fallback}-${MISSING}\n"),
            [pair("A", "1"), pair("B", "1-/home/kiln-fallback-")]
        );
        assert_eq!(values("S='${HOME} $x'\n"), [pair("S", "${HOME} $x")], "single quotes are literal");
    }

    #[test]
    fn quotes_comments_exports_and_lines() {
        let parsed = parse_ok(
            "# comment\n\nexport A = plain value # note\nB=\"two\nlines \\\"q\\\"\"\nC='it\\'s' # c\nD=a#b\nE=\n",
        );
        let expected = [
            ("A", "plain value", 3),
            ("B", "two\nlines \"q\"", 4),
            ("C", "it's", 6),
            ("D", "a#b", 7),
            ("E", "", 8),
        ];
        assert_eq!(parsed.len(), expected.len());
        for ((k, v, l), (ek, ev, el)) in parsed.iter().zip(expected) {
            assert_eq!((k.as_str(), v.as_str(), *l), (ek, ev, el));
        }
    }

    #[test]
    fn errors_name_the_line() {
        let error = parse("A=1\nnot an assignment\n", &|_| None).expect_err("fails");
        assert_eq!(error.line, 2);
        assert!(error.message.contains("expected KEY=value"), "{}", error.message);
        let error = parse("A=1\nB=\"open\n", &|_| None).expect_err("fails");
        assert_eq!(error.line, 2);
        assert!(error.message.contains("never closed"));
    }
}
