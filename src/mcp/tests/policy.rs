use super::*;
use std::time::{Duration, Instant};

fn g(p: &str) -> Glob {
    Glob::new(p).unwrap()
}

#[test]
fn empty_and_overlong_patterns_are_rejected() {
    assert_eq!(Glob::new(""), Err(GlobError::Empty));
    assert_eq!(Glob::new(&"a".repeat(MAX_GLOB_LEN + 1)), Err(GlobError::TooLong));
    assert!(Glob::new(&"a".repeat(MAX_GLOB_LEN)).is_ok());
    assert_eq!("x*".parse::<Glob>().unwrap().to_string(), "x*");
}

#[test]
fn exact_names() {
    assert!(g("get_weather").matches("get_weather"));
    assert!(!g("get_weather").matches("get_weather2"));
    assert!(!g("get_weather").matches("Get_weather"));
    assert!(!g("get_weather").matches(""));
}

#[test]
fn star_and_question_mark() {
    let cases: &[(&str, &str, bool)] = &[
        ("*", "", true),
        ("*", "anything", true),
        ("a*", "a", true),
        ("a*", "abc", true),
        ("a*", "ba", false),
        ("*c", "abc", true),
        ("*c", "abcd", false),
        ("a*c", "ac", true),
        ("a*c", "abbbc", true),
        ("a*c", "abbbcd", false),
        ("a?c", "abc", true),
        ("a?c", "ac", false),
        ("a?c", "abbc", false),
        ("??", "ab", true),
        ("??", "a", false),
        ("*?", "", false),
        ("*?", "a", true),
        ("a**b", "ab", true),
        ("a**b", "axxb", true),
        ("*a*b*c*", "xxaxxbxxcxx", true),
        ("*a*b*c*", "xxaxxcxxbxx", false),
        ("fs_*_write", "fs_file_write", true),
        ("fs_*_write", "fs_write", false),
        ("*.admin.*", "x.admin.y", true),
        // `?` is one character, not one byte.
        ("caf?", "café", true),
        ("?", "é", true),
        ("*é", "résumé", true),
        ("r?sum?", "résumé", true),
    ];
    for (p, t, want) in cases {
        assert_eq!(g(p).matches(t), *want, "pattern {p:?} text {t:?}");
    }
}

#[test]
fn matcher_agrees_with_a_reference_on_small_inputs() {
    // Exhaustive cross-check against a simple (exponential, but fine at this size) recursion.
    fn reference(p: &[char], t: &[char]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some('*') => reference(&p[1..], t) || (!t.is_empty() && reference(p, &t[1..])),
            Some('?') => !t.is_empty() && reference(&p[1..], &t[1..]),
            Some(c) => t.first() == Some(c) && reference(&p[1..], &t[1..]),
        }
    }
    let alphabet = ['a', 'b', '*', '?'];
    let mut patterns = vec![String::new()];
    for _ in 0..4 {
        let mut next = Vec::new();
        for p in &patterns {
            for c in alphabet {
                next.push(format!("{p}{c}"));
            }
        }
        patterns.extend(next);
    }
    patterns.sort();
    patterns.dedup();
    let texts: Vec<String> = {
        let mut v = vec![String::new()];
        for _ in 0..5 {
            let mut next = Vec::new();
            for t in &v {
                next.push(format!("{t}a"));
                next.push(format!("{t}b"));
            }
            v.extend(next);
        }
        v.sort();
        v.dedup();
        v
    };
    for p in patterns.iter().filter(|p| !p.is_empty()) {
        let glob = g(p);
        let pc: Vec<char> = p.chars().collect();
        for t in &texts {
            let tc: Vec<char> = t.chars().collect();
            assert_eq!(glob.matches(t), reference(&pc, &tc), "pattern {p:?} text {t:?}");
        }
    }
}

#[test]
fn pathological_patterns_stay_fast() {
    let text = "a".repeat(200_000);
    let start = Instant::now();
    assert!(!g("*a*a*a*a*b").matches(&text));
    assert!(!g("*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b").matches(&text));
    assert!(g("*a*a*a*a*a").matches(&text));
    let long_pattern = format!("{}b", "*a".repeat(400));
    assert!(!g(&long_pattern).matches(&"a".repeat(5_000)));
    // A backtracking matcher takes astronomically long here; the linear one takes milliseconds.
    assert!(start.elapsed() < Duration::from_secs(2), "took {:?}", start.elapsed());
}

#[test]
fn policy_deny_wins_and_empty_allow_allows_all() {
    let open = ToolPolicy::default();
    assert!(open.tool_allowed("anything"));
    assert!(open.method_allowed("tools/call"));
    assert!(!open.restricts_tools());

    let p = ToolPolicy {
        allow: vec![g("fs_*"), g("search")],
        deny: vec![g("fs_delete*")],
        deny_methods: vec![g("resources/*"), g("sampling/createMessage")],
    };
    assert!(p.restricts_tools());
    assert!(p.tool_allowed("fs_read"));
    assert!(p.tool_allowed("search"));
    assert!(!p.tool_allowed("fs_delete_all"));
    assert!(!p.tool_allowed("searcher"));
    assert!(!p.tool_allowed("shell"));
    assert!(p.method_allowed("tools/call"));
    assert!(!p.method_allowed("resources/read"));
    assert!(!p.method_allowed("sampling/createMessage"));

    let deny_only = ToolPolicy { deny: vec![g("shell")], ..Default::default() };
    assert!(deny_only.tool_allowed("fs_read"));
    assert!(!deny_only.tool_allowed("shell"));
}

#[test]
fn a_denied_tool_is_refused_in_a_request_a_notification_and_a_batch() {
    use crate::mcp::inspect_request;
    let policy = ToolPolicy { deny: vec![g("shell")], ..Default::default() };
    let bodies = [
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"shell"}}"#,
        r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"shell"}}"#,
        r#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ok"}},
            {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"shell"}}]"#,
    ];
    for body in bodies {
        let info = inspect_request(&http::HeaderMap::new(), body.as_bytes()).expect(body);
        let (reason, _) = policy.first_denied(&info).expect(body);
        assert_eq!(reason.as_str(), "tool_denied", "{body}");
    }
    let fine = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ok"}}"#;
    assert_eq!(policy.first_denied(&inspect_request(&http::HeaderMap::new(), fine.as_bytes()).unwrap()), None);
}
