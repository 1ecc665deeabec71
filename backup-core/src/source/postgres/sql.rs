//! Just enough SQL lexing to handle the scripts `pg_restore -f -` and
//! `pg_dumpall --globals-only` write: split them into statements (quotes,
//! `E''` escapes, dollar quotes, nested comments, psql meta-commands and
//! `COPY … FROM stdin` data), and find or replace identifiers by position
//! without ever touching a string literal.

/// What a token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    /// An unquoted word: a keyword or an identifier, folded to lower case.
    Word(String),
    /// A `"quoted"` identifier, unescaped.
    Quoted(String),
    /// A string literal (`'…'`, `E'…'`, `$tag$…$tag$`), unescaped.
    Str(String),
    /// Anything else: a number, an operator, punctuation.
    Other(String),
}

/// One token and where it is in its statement (byte offsets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    pub kind: Kind,
    pub start: usize,
    pub end: usize,
}

impl Token {
    /// The keyword this token is, if it is an unquoted word.
    pub fn word(&self) -> Option<&str> {
        match &self.kind {
            Kind::Word(w) => Some(w),
            _ => None,
        }
    }

    /// Whether this is the keyword `kw` (lower case).
    pub fn is(&self, kw: &str) -> bool {
        self.word() == Some(kw)
    }

    /// The identifier this token names (a word as PostgreSQL folds it, or a
    /// quoted name as written).
    pub fn ident(&self) -> Option<&str> {
        match &self.kind {
            Kind::Word(w) | Kind::Quoted(w) => Some(w),
            _ => None,
        }
    }
}

/// Double-quoted identifier, as `quote_ident` would (always quoted).
pub(crate) fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Single-quoted literal (standard_conforming_strings on).
pub(crate) fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || !c.is_ascii()
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '$' || !c.is_ascii()
}

/// The end (byte offset) of a dollar-quote opening tag at `i` (`$$`,
/// `$tag$`), or `None` when `$` starts something else (`$1`).
fn dollar_tag(s: &str, i: usize) -> Option<usize> {
    for (k, c) in s[i + 1..].char_indices() {
        if c == '$' {
            return Some(i + 1 + k + 1);
        }
        let ok = if k == 0 {
            is_ident_start(c)
        } else {
            c.is_ascii_alphanumeric() || c == '_' || !c.is_ascii()
        };
        if !ok {
            return None;
        }
    }
    None
}

/// Tokens of one statement. Comments and whitespace are skipped; an
/// unterminated quote runs to the end.
pub(crate) fn tokenize(s: &str) -> Vec<Token> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        let c = s[i..].chars().next().expect("in bounds");
        let start = i;
        if c.is_whitespace() {
            i += c.len_utf8();
        } else if s[i..].starts_with("--") {
            i = s[i..].find('\n').map_or(s.len(), |n| i + n + 1);
        } else if s[i..].starts_with("/*") {
            i = skip_block_comment(s, i);
        } else if c == '\'' || ((c == 'E' || c == 'e') && b.get(i + 1) == Some(&b'\'')) {
            let escapes = c != '\'';
            let (value, end) = string_literal(s, if escapes { i + 1 } else { i }, escapes);
            i = end;
            out.push(Token {
                kind: Kind::Str(value),
                start,
                end,
            });
        } else if c == '"' {
            let (value, end) = quoted_ident(s, i);
            i = end;
            out.push(Token {
                kind: Kind::Quoted(value),
                start,
                end,
            });
        } else if c == '$'
            && let Some(tag_end) = dollar_tag(s, i)
        {
            let tag = &s[i..tag_end];
            let body_end = s[tag_end..].find(tag).map_or(s.len(), |n| tag_end + n);
            let value = s[tag_end..body_end].to_string();
            i = (body_end + tag.len()).min(s.len());
            out.push(Token {
                kind: Kind::Str(value),
                start,
                end: i,
            });
        } else if is_ident_start(c) {
            let end = s[i..]
                .char_indices()
                .find(|(_, ch)| !is_ident_char(*ch))
                .map_or(s.len(), |(n, _)| i + n);
            out.push(Token {
                kind: Kind::Word(s[i..end].to_ascii_lowercase()),
                start,
                end,
            });
            i = end;
        } else if c.is_ascii_digit() {
            let end = s[i..]
                .char_indices()
                .find(|(_, ch)| !(ch.is_ascii_alphanumeric() || *ch == '.' || *ch == '_'))
                .map_or(s.len(), |(n, _)| i + n);
            out.push(Token {
                kind: Kind::Other(s[i..end].to_string()),
                start,
                end,
            });
            i = end;
        } else {
            i += c.len_utf8();
            out.push(Token {
                kind: Kind::Other(c.to_string()),
                start,
                end: i,
            });
        }
    }
    out
}

fn skip_block_comment(s: &str, mut i: usize) -> usize {
    // Block comments nest in PostgreSQL.
    let mut depth = 0;
    while i < s.len() {
        if s[i..].starts_with("/*") {
            depth += 1;
            i += 2;
        } else if s[i..].starts_with("*/") {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += s[i..].chars().next().map_or(1, char::len_utf8);
        }
    }
    s.len()
}

/// A `'…'` literal starting at `i` (the quote): its value and its end.
fn string_literal(s: &str, i: usize, escapes: bool) -> (String, usize) {
    let mut value = String::new();
    let mut chars = s[i + 1..].char_indices().peekable();
    while let Some((k, c)) = chars.next() {
        match c {
            '\\' if escapes => {
                if let Some((_, n)) = chars.next() {
                    value.push(match n {
                        'n' => '\n',
                        't' => '\t',
                        'r' => '\r',
                        'b' => '\u{8}',
                        'f' => '\u{c}',
                        other => other,
                    });
                }
            }
            '\'' => {
                if let Some((_, '\'')) = chars.peek() {
                    chars.next();
                    value.push('\'');
                } else {
                    return (value, i + 1 + k + 1);
                }
            }
            other => value.push(other),
        }
    }
    (value, s.len())
}

fn quoted_ident(s: &str, i: usize) -> (String, usize) {
    let mut value = String::new();
    let mut chars = s[i + 1..].char_indices().peekable();
    while let Some((k, c)) = chars.next() {
        if c == '"' {
            if let Some((_, '"')) = chars.peek() {
                chars.next();
                value.push('"');
            } else {
                return (value, i + 1 + k + 1);
            }
        } else {
            value.push(c);
        }
    }
    (value, s.len())
}

/// Split a script into statements, without their `;`, comments kept inside
/// but leading comments and whitespace dropped. psql meta-commands
/// (`\connect`, `\restrict`, …) and the data after `COPY … FROM stdin` (up
/// to `\.`) are skipped.
pub(crate) fn split_statements(script: &str) -> Vec<String> {
    let mut out = Vec::new();
    let s = script;
    let b = s.as_bytes();
    let mut i = 0;
    let mut start: Option<usize> = None;
    while i < s.len() {
        let c = s[i..].chars().next().expect("in bounds");
        if start.is_none() {
            // Between statements: whitespace, comments, meta-commands.
            if c.is_whitespace() {
                i += c.len_utf8();
                continue;
            }
            if s[i..].starts_with("--") {
                i = s[i..].find('\n').map_or(s.len(), |n| i + n + 1);
                continue;
            }
            if s[i..].starts_with("/*") {
                i = skip_block_comment(s, i);
                continue;
            }
            if c == '\\' {
                i = s[i..].find('\n').map_or(s.len(), |n| i + n + 1);
                continue;
            }
            start = Some(i);
        }
        if s[i..].starts_with("--") {
            i = s[i..].find('\n').map_or(s.len(), |n| i + n + 1);
        } else if s[i..].starts_with("/*") {
            i = skip_block_comment(s, i);
        } else if c == '\'' {
            let escapes = i > 0
                && matches!(b[i - 1], b'E' | b'e')
                && (i < 2 || !is_ident_char(b[i - 2] as char));
            i = string_literal(s, i, escapes).1;
        } else if c == '"' {
            i = quoted_ident(s, i).1;
        } else if c == '$'
            && (i == 0 || !is_ident_char(b[i - 1] as char))
            && let Some(tag_end) = dollar_tag(s, i)
        {
            let tag = &s[i..tag_end];
            i = s[tag_end..]
                .find(tag)
                .map_or(s.len(), |n| tag_end + n + tag.len());
        } else if c == ';' {
            let stmt = s[start.take().expect("in a statement")..i]
                .trim()
                .to_string();
            i += 1;
            if is_copy_from_stdin(&stmt) {
                // The data runs to a line holding only `\.`.
                let rest = &s[i..];
                i = match rest.find("\n\\.\n") {
                    Some(n) => i + n + 4,
                    None if rest.trim_start().starts_with("\\.") => {
                        i + rest.find("\\.").expect("found") + 2
                    }
                    None => s.len(),
                };
            }
            if !stmt.is_empty() {
                out.push(stmt);
            }
        } else {
            i += c.len_utf8();
        }
    }
    if let Some(st) = start {
        let stmt = s[st..].trim();
        if !stmt.is_empty() {
            out.push(stmt.to_string());
        }
    }
    out
}

fn is_copy_from_stdin(stmt: &str) -> bool {
    let t = tokenize(stmt);
    t.first().is_some_and(|f| f.is("copy"))
        && t.windows(2).any(|w| w[0].is("from") && w[1].is("stdin"))
}

/// `stmt` with every identifier that follows the keyword `DATABASE` and
/// names `from` replaced by `to` (quoted). Literals are never touched, so a
/// comment that mentions the name keeps it.
pub(crate) fn rename_database(stmt: &str, from: &str, to: &str) -> String {
    let tokens = tokenize(stmt);
    let mut out = String::with_capacity(stmt.len() + to.len());
    let mut last = 0;
    for w in tokens.windows(2) {
        if w[0].is("database") && w[1].ident() == Some(from) {
            out.push_str(&stmt[last..w[1].start]);
            out.push_str(&quote_ident(to));
            last = w[1].end;
        }
    }
    out.push_str(&stmt[last..]);
    out
}

/// The identifier right after the keyword sequence `kws` (`["create",
/// "database"]`) at the start of `tokens`.
pub(crate) fn ident_after<'a>(tokens: &'a [Token], kws: &[&str]) -> Option<&'a str> {
    if tokens.len() <= kws.len() || !kws.iter().zip(tokens).all(|(k, t)| t.is(k)) {
        return None;
    }
    tokens[kws.len()].ident()
}

/// Role names a comma-separated list of grantees starting at `tokens[i]`
/// names, stopping at the first token that is not part of it. `PUBLIC` and
/// the `CURRENT_USER`-like keywords are not roles; `GROUP` is noise.
pub(crate) fn role_list(tokens: &[Token], mut i: usize) -> Vec<String> {
    let mut out = Vec::new();
    while i < tokens.len() {
        if tokens[i].is("group") {
            i += 1;
            continue;
        }
        match &tokens[i].kind {
            Kind::Word(w)
                if matches!(
                    w.as_str(),
                    "public" | "current_user" | "session_user" | "current_role"
                ) => {}
            Kind::Word(w) | Kind::Quoted(w) => out.push(w.clone()),
            _ => break,
        }
        i += 1;
        if tokens
            .get(i)
            .is_some_and(|t| t.kind == Kind::Other(",".into()))
        {
            i += 1;
        } else {
            break;
        }
    }
    out
}

/// Every role a schema statement needs to exist: owners (`OWNER TO r`),
/// grantees and revokees, `GRANTED BY`, `FOR ROLE` in default privileges,
/// policies' `TO` lists, user mappings and `ALTER ROLE r IN DATABASE`.
pub(crate) fn roles_needed(stmt: &str) -> Vec<String> {
    let t = tokenize(stmt);
    let mut out = Vec::new();
    for (i, tok) in t.iter().enumerate() {
        let next = t.get(i + 1);
        match tok.word() {
            Some("owner") if next.is_some_and(|n| n.is("to")) => out.extend(role_list(&t, i + 2)),
            Some("granted") if next.is_some_and(|n| n.is("by")) => out.extend(role_list(&t, i + 2)),
            Some("for")
                if next.is_some_and(|n| n.is("role") || n.is("user"))
                    && t.first().is_some_and(|f| f.is("alter")) =>
            {
                out.extend(role_list(&t, i + 2))
            }
            _ => {}
        }
    }
    let first = t.first().and_then(Token::word);
    let second = t.get(1).and_then(Token::word);
    match (first, second) {
        (Some("grant"), _) | (Some("revoke"), _) => {
            // The list after the last TO/FROM at the top level.
            let kw = if first == Some("grant") { "to" } else { "from" };
            if let Some(k) = t.iter().rposition(|x| x.is(kw)) {
                out.extend(role_list(&t, k + 1));
            }
        }
        (Some("alter"), Some("default")) => {
            // ALTER DEFAULT PRIVILEGES … GRANT … TO r / REVOKE … FROM r
            for (kw, list) in [("grant", "to"), ("revoke", "from")] {
                if t.iter().any(|x| x.is(kw))
                    && let Some(k) = t.iter().rposition(|x| x.is(list))
                {
                    out.extend(role_list(&t, k + 1));
                }
            }
        }
        (Some("create"), Some("policy")) | (Some("alter"), Some("policy")) => {
            if let Some(k) = t.iter().position(|x| x.is("to")) {
                out.extend(role_list(&t, k + 1));
            }
        }
        (Some("create"), Some("user")) if t.get(2).is_some_and(|x| x.is("mapping")) => {
            // CREATE USER MAPPING FOR r SERVER s
            if let Some(k) = t.iter().position(|x| x.is("for")) {
                out.extend(role_list(&t, k + 1));
            }
        }
        (Some("alter"), Some("role")) | (Some("alter"), Some("user")) => {
            if let Some(r) = t.get(2).and_then(Token::ident)
                && !matches!(r, "all" | "current_user" | "session_user" | "current_role")
            {
                out.push(r.to_string());
            }
        }
        (Some("set"), Some("session")) if t.get(2).is_some_and(|x| x.is("authorization")) => {
            out.extend(role_list(&t, 3));
        }
        _ => {}
    }
    out.retain(|r| r != "default");
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_split_on_top_level_semicolons_only() {
        let script = "SET client_encoding = 'UTF8';\n\\connect -reuse-previous=on \"dbname='a;b'\"\n\
            -- a comment; with a semicolon\n\
            COMMENT ON DATABASE x IS 'it''s; here';\n\
            CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql;\n\
            /* outer /* nested; */ still; */ SELECT E'a\\';b', \"q;\"\"x\";\n\
            COPY t (a) FROM stdin;\n1;2\n\\.\n\
            SELECT $$x$$";
        let s = split_statements(script);
        assert_eq!(
            s,
            vec![
                "SET client_encoding = 'UTF8'",
                "COMMENT ON DATABASE x IS 'it''s; here'",
                "CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql",
                "SELECT E'a\\';b', \"q;\"\"x\"",
                "COPY t (a) FROM stdin",
                "SELECT $$x$$",
            ]
        );
    }

    #[test]
    fn database_names_are_replaced_only_where_they_name_the_database() {
        let stmt = "COMMENT ON DATABASE \"we\"\"ird db\" IS 'DATABASE \"we\"\"ird db\" is ours'";
        assert_eq!(
            rename_database(stmt, "we\"ird db", "x__lifeboat_restore_1"),
            "COMMENT ON DATABASE \"x__lifeboat_restore_1\" IS 'DATABASE \"we\"\"ird db\" is ours'"
        );
        let stmt = "ALTER ROLE r IN DATABASE shop SET work_mem TO '8MB'";
        assert_eq!(
            rename_database(stmt, "shop", "s2"),
            "ALTER ROLE r IN DATABASE \"s2\" SET work_mem TO '8MB'"
        );
        // Unquoted names fold to lower case, as PostgreSQL reads them.
        assert_eq!(
            rename_database("GRANT CONNECT ON DATABASE Shop TO app", "shop", "n"),
            "GRANT CONNECT ON DATABASE \"n\" TO app"
        );
        assert_eq!(
            rename_database("GRANT CONNECT ON DATABASE other TO app", "shop", "n"),
            "GRANT CONNECT ON DATABASE other TO app"
        );
    }

    #[test]
    fn roles_are_found_in_owner_grant_and_policy_statements() {
        assert_eq!(
            roles_needed("ALTER TABLE public.t OWNER TO app_owner"),
            vec!["app_owner"]
        );
        assert_eq!(
            roles_needed(
                "GRANT SELECT,INSERT ON TABLE public.t TO reader, \"Writer\" WITH GRANT OPTION"
            ),
            vec!["Writer", "reader"]
        );
        assert_eq!(
            roles_needed("REVOKE ALL ON SCHEMA public FROM PUBLIC"),
            Vec::<String>::new()
        );
        assert_eq!(
            roles_needed("GRANT CONNECT ON DATABASE \"d\" TO reader GRANTED BY boss"),
            vec!["boss", "reader"]
        );
        assert_eq!(
            roles_needed(
                "ALTER DEFAULT PRIVILEGES FOR ROLE app IN SCHEMA s GRANT SELECT ON TABLES TO ro"
            ),
            vec!["app", "ro"]
        );
        assert_eq!(
            roles_needed("CREATE POLICY p ON public.t TO tenant USING (true)"),
            vec!["tenant"]
        );
        assert_eq!(
            roles_needed("ALTER ROLE r IN DATABASE d SET work_mem TO '8MB'"),
            vec!["r"]
        );
        assert_eq!(
            roles_needed("CREATE TABLE t (owner text)"),
            Vec::<String>::new()
        );
        assert_eq!(
            roles_needed("COMMENT ON TABLE t IS 'OWNER TO nobody'"),
            Vec::<String>::new()
        );
    }
}
