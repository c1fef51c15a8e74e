//! One test alone in a fresh process of this binary, for tests that read or change what
//! the whole process shares: its memory (VmRSS, the VmHWM high-water mark) or the global
//! tracing subscriber. With every suite in one binary, other suites' tests run in the
//! same process at the same time and would move those numbers or fill that log.

use std::time::Duration;

/// Set in the fresh process to the name of the one test it runs.
const VAR: &str = "MCPT_IT_OWN_PROCESS";
/// Bound on the fresh process's run.
const LIMIT: Duration = Duration::from_secs(300);

/// Call first in the test `test` of module `module` (`module_path!()`). In the test
/// process: runs that test alone in a fresh process of this binary, asserts it passed and
/// returns `true` (the caller returns). In the fresh process: returns `false`, and the
/// caller's body runs there.
pub async fn ran_elsewhere(module: &str, test: &str) -> bool {
    let module = module.split_once("::").map_or(module, |(_crate, path)| path);
    let name = format!("{module}::{test}");
    if std::env::var(VAR).is_ok_and(|v| v == name) {
        return false;
    }
    let exe = std::env::current_exe().expect("path of the test binary");
    let mut cmd = tokio::process::Command::new(exe);
    cmd.args([name.as_str(), "--exact", "--test-threads=1", "--nocapture"]).env(VAR, &name).kill_on_drop(true);
    let out = tokio::time::timeout(LIMIT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{name}: not finished within {LIMIT:?} in its own process"))
        .expect("run the test binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    print!("{stdout}");
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    // Exactly one test ran: a misspelt name would otherwise pass with 0 tests.
    assert!(
        out.status.success() && stdout.contains("test result: ok. 1 passed"),
        "{name} failed in its own process ({})",
        out.status
    );
    true
}
