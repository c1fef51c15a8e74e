use std::collections::HashMap;
use std::env::VarError;
use std::path::Path;

use super::*;

fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Result<String, VarError> {
    let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    move |name| map.get(name).cloned().ok_or(VarError::NotPresent)
}

fn expanded(text: &str, pairs: &[(&str, &str)]) -> Result<Source, ConfigError> {
    Source::from_text(Path::new("x.toml"), text).expand_env(&vars(pairs))
}

#[test]
fn expand_replaces_variables_and_keeps_other_dollars() {
    let lookup = vars(&[("A", "alpha"), ("B_2", "")]);
    let ok = |t: &str| expand(t, &lookup).ok();
    assert_eq!(ok("${A}").as_deref(), Some("alpha"));
    assert_eq!(ok("x${A}y${B_2}z").as_deref(), Some("xalphayz"));
    assert_eq!(ok("$${A}").as_deref(), Some("${A}"), "$${{ is a literal ${{");
    assert_eq!(ok("a$${A}b${A}").as_deref(), Some("a${A}balpha"));
    assert_eq!(ok("cost $5, $$, $").as_deref(), Some("cost $5, $$, $"));
    assert!(matches!(expand("${NOPE}", &lookup), Err(Failure::Unset(n)) if n == "NOPE"));
    for bad in ["${", "${A", "${}", "${1A}", "${A-B}", "${ A}"] {
        assert!(matches!(expand(bad, &lookup), Err(Failure::Malformed)), "{bad}");
    }
}

#[test]
fn string_values_everywhere_are_expanded_and_lines_kept() {
    let text = r#"top = "${A}"  # a comment with ${NOT_A_VALUE}
n = 5
when = 1979-05-27T07:32:00Z
list = ["${A}", "plain", "$${A}"]
inline = { k = "<${A}>" }
multi = """
${A}
"""
[table]
key = "${A}"
[implicit.sub]
dotted.key = "${A}"
[[routes]]
host = "one"
[[routes]]
upstream = "${URL}"
after = "line 17"
"#;
    let src = expanded(text, &[("A", "alpha"), ("URL", "http://10.0.0.5:8080")]).expect("expands");
    assert_eq!(src.text.lines().count(), text.lines().count(), "{}", src.text);
    let line_of_after = src.text.lines().position(|l| l.starts_with("after")).map(|i| i + 1);
    assert_eq!(line_of_after, Some(17));
    let table: toml::Table = src.parse().expect("still TOML");
    assert_eq!(table["top"].as_str(), Some("alpha"));
    assert_eq!(table["list"].as_array().map(|a| a.len()), Some(3));
    assert_eq!(table["list"][0].as_str(), Some("alpha"));
    assert_eq!(table["list"][2].as_str(), Some("${A}"));
    assert_eq!(table["inline"]["k"].as_str(), Some("<alpha>"));
    assert_eq!(table["multi"].as_str(), Some("alpha\n"));
    assert_eq!(table["table"]["key"].as_str(), Some("alpha"));
    assert_eq!(table["implicit"]["sub"]["dotted"]["key"].as_str(), Some("alpha"));
    assert_eq!(table["routes"][1]["upstream"].as_str(), Some("http://10.0.0.5:8080"));
    assert!(table["when"].is_datetime());
}

#[test]
fn a_value_cannot_inject_toml() {
    let evil = "x\"\nadmin = { listen = \"0.0.0.0:1\" }\n[inject]\nk = \"\\";
    let src = expanded("a = \"${EVIL}\"\nb = \"${EVIL}\"\n", &[("EVIL", evil)]).expect("expands");
    let table: toml::Table = src.parse().expect("still TOML");
    assert_eq!(table.keys().collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(table["a"].as_str(), Some(evil));
    assert_eq!(src.text.lines().count(), 2);
}

#[test]
fn an_unset_variable_names_itself_the_key_and_the_line() {
    let text = "a = 1\n[admin]\nlisten = \"127.0.0.1:9090\"\ntoken_sha256 = \"${MCPT_ADMIN_TOKEN_SHA256}\"\n";
    let msg = expanded(text, &[]).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        msg.starts_with("x.toml:4: `admin.token_sha256`: environment variable `MCPT_ADMIN_TOKEN_SHA256` is not set"),
        "{msg}"
    );
    let text = "[tunnels.acme]\nhostnames = [\"${HOSTS}\"]\n";
    let msg = expanded(text, &[]).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(msg.starts_with("x.toml:2: `tunnels.acme.hostnames[0]`: environment variable `HOSTS`"), "{msg}");
    let text = "[[routes]]\nhost = \"a\"\n[[routes]]\nhost = \"b\"\ntokens = [\"x\", \"${TOK}\"]\n";
    let msg = expanded(text, &[]).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(msg.starts_with("x.toml:5: `routes[1].tokens[1]`: environment variable `TOK` is not set"), "{msg}");
    let msg = expanded("a = \"${oops\"\n", &[]).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(msg.starts_with("x.toml:1: `a`: `${` must start a variable name"), "{msg}");
}

#[test]
fn later_errors_do_not_quote_a_substituted_secret() {
    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Raw {
        a: String,
    }
    let src = expanded("a = \"ok\"\ntypo = \"${SECRET}\"\n", &[("SECRET", "hunter2")]).expect("expands");
    let msg = src.parse::<Raw>().err().map(|e| e.to_string()).unwrap_or_default();
    assert!(msg.starts_with("x.toml: TOML parse error at line 2: unknown field `typo`"), "{msg}");
    assert!(!msg.contains("hunter2"), "{msg}");
}

#[test]
fn text_without_variables_is_left_alone() {
    let text = "a = \"$${x}\" # ${ in a comment only\n";
    let src = expanded("b = 'no dollars'\n", &[]).expect("ok");
    assert_eq!(src.text, "b = 'no dollars'\n");
    assert!(!src.expanded);
    let src = expanded(text, &[]).expect("ok");
    let table: toml::Table = src.parse().expect("TOML");
    assert_eq!(table["a"].as_str(), Some("${x}"));
}
