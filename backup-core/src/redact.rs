//! The one place secrets are taken out of text that leaves the process.
//!
//! Everything Lifeboat prints, logs, writes to a log file, sends to a
//! webhook or returns as an error message to a binding passes through
//! [`text`], which removes:
//!
//! - every secret registered with [`register`]: passwords parsed from
//!   `postgres://` URLs and `PGPASSWORD`, sink credentials (from options or
//!   the environment), webhook URLs, and every value interpolated into the
//!   config from `${VAR}` outside a short list of plainly public keys;
//! - the password of any `scheme://user:password@host` URL, registered or
//!   not (a mistyped URL in an error message is still a URL);
//! - the value of query parameters whose name says secret (`password`,
//!   `secret`, `token`, `signature`, `X-Amz-Signature`, `sig`, `key`, …).
//!
//! Values shorter than four characters are not registered: scrubbing every
//! `1` from a log would hide more than it protects.

use std::borrow::Cow;
use std::sync::RwLock;

/// What a removed secret is replaced with.
pub const MASK: &str = "***";

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Never print `secret` again, anywhere.
pub fn register(secret: &str) {
    let s = secret.trim();
    if s.len() < 4 {
        return;
    }
    let mut all = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    if !all.iter().any(|x| x == s) {
        all.push(s.to_string());
        // Longest first, so a secret containing another is removed whole.
        all.sort_by_key(|x| std::cmp::Reverse(x.len()));
    }
    // A secret also appears percent-encoded inside URLs, and escaped inside
    // JSON log lines.
    let json = serde_json::to_string(s).unwrap_or_default();
    let json = json.trim_matches('"').to_string();
    for form in [percent_encode(s), json] {
        if form != s && !all.contains(&form) {
            all.push(form);
        }
    }
    all.sort_by_key(|x| std::cmp::Reverse(x.len()));
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

const SECRET_PARAMS: [&str; 12] = [
    "password",
    "passwd",
    "pass",
    "secret",
    "token",
    "signature",
    "sig",
    "key",
    "apikey",
    "api_key",
    "access_token",
    "credential",
];

fn is_secret_param(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    SECRET_PARAMS.iter().any(|p| n == *p)
        || n.ends_with("password")
        || n.ends_with("secret")
        || n.ends_with("token")
        || n.ends_with("signature")
        || n.ends_with("_key")
        || n.contains("secret_access")
}

/// `text` without secrets.
pub fn text(input: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(input);
    {
        let all = SECRETS.read().unwrap_or_else(|e| e.into_inner());
        for s in all.iter() {
            if out.contains(s.as_str()) {
                out = Cow::Owned(out.replace(s.as_str(), MASK));
            }
        }
    }
    if out.contains("://")
        && let Some(cleaned) = url_passwords(&out)
    {
        out = Cow::Owned(cleaned);
    }
    if out.contains('=')
        && let Some(cleaned) = query_secrets(&out)
    {
        out = Cow::Owned(cleaned);
    }
    out
}

/// `scheme://user:password@` → `scheme://user:***@`; `None` if none found.
fn url_passwords(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    let mut changed = false;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        // The authority ends at '/', '?', '#', whitespace or a quote.
        let end = tail
            .find(|c: char| matches!(c, '/' | '?' | '#' | '"' | '\'' | '`') || c.is_whitespace())
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match (authority.rfind('@'), authority.find(':')) {
            (Some(at), Some(colon)) if colon < at => {
                out.push_str(&authority[..=colon]);
                out.push_str(MASK);
                out.push_str(&authority[at..]);
                changed = true;
            }
            _ => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    changed.then_some(out)
}

/// `?token=abc&x=1` → `?token=***&x=1`; `None` if none found.
fn query_secrets(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut changed = false;
    let mut rest = s;
    while let Some(i) = rest.find(['?', '&']) {
        out.push_str(&rest[..=i]);
        let tail = &rest[i + 1..];
        let name_end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
            .unwrap_or(tail.len());
        let name = &tail[..name_end];
        if !name.is_empty() && tail[name_end..].starts_with('=') && is_secret_param(name) {
            let vstart = name_end + 1;
            let vend = tail[vstart..]
                .find(|c: char| matches!(c, '&' | '#' | '"' | '\'' | '`') || c.is_whitespace())
                .map(|e| vstart + e)
                .unwrap_or(tail.len());
            if vend > vstart {
                out.push_str(name);
                out.push('=');
                out.push_str(MASK);
                rest = &tail[vend..];
                changed = true;
                continue;
            }
        }
        rest = tail;
    }
    out.push_str(rest);
    changed.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_passwords_are_masked_anywhere_in_text() {
        assert_eq!(
            text("cannot connect to postgres://app:hunter2@db:5432/shop: refused"),
            "cannot connect to postgres://app:***@db:5432/shop: refused"
        );
        assert_eq!(
            text("invalid sink URL \"s3://AKIA:sEcReT@bucket/x\""),
            "invalid sink URL \"s3://AKIA:***@bucket/x\""
        );
        assert_eq!(text("postgres://app@db/shop"), "postgres://app@db/shop");
        assert_eq!(text("http://127.0.0.1:9000/b"), "http://127.0.0.1:9000/b");
    }

    #[test]
    fn secret_query_parameters_are_masked() {
        assert_eq!(
            text("GET https://h/o?X-Amz-Signature=abcdef&x=1 failed"),
            "GET https://h/o?X-Amz-Signature=***&x=1 failed"
        );
        assert_eq!(
            text("\"s3://b/p?secret_access_key=zzzz&region=eu\""),
            "\"s3://b/p?secret_access_key=***&region=eu\""
        );
        assert_eq!(text("a=b c?region=eu"), "a=b c?region=eu");
        assert_eq!(
            text("naïve ünïcode ?token=x é"),
            "naïve ünïcode ?token=*** é"
        );
    }

    #[test]
    fn registered_secrets_are_masked_inside_json_too() {
        register("pa\"ss\\word");
        let line = serde_json::json!({ "error": "bad pa\"ss\\word here" }).to_string();
        assert!(!text(&line).contains("ss"), "{}", text(&line));
        assert!(text(&line).contains("***"));
    }

    #[test]
    fn registered_secrets_are_masked_raw_and_percent_encoded() {
        register("correct horse battery");
        register("abc"); // too short to register
        assert_eq!(
            text("pw correct horse battery and correct%20horse%20battery, abc"),
            "pw *** and ***, abc"
        );
    }
}
