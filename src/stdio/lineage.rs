//! Which processes are stdio children of this gateway, and whether a peer of the control
//! socket is one of them (or descends from one).
//!
//! Children run with the gateway's uid unless `stdio_user` is set, so the socket's file
//! mode alone does not keep them out. The control socket asks [`peer_verdict`] about each
//! peer: it walks the peer's parent chain (`/proc/<pid>/stat`) up to this process and
//! refuses it when a live child is on the way, or when the peer is in a child's process
//! group (each child leads its own), or in this process's session while this process
//! leads it (under a service manager only the gateway's descendants are there). A child
//! that detaches with `setsid` after a double fork escapes all three: only a different
//! uid (`stdio_user`) closes that door, which docs/security.md says.

use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard, OnceLock};

/// Longest parent chain walked (a loop in /proc data must not hang the socket).
const MAX_DEPTH: usize = 4096;

/// Live child pids of every bridge in this process (one process, one set: any child of
/// it is refused, whichever route spawned it).
fn registry() -> MutexGuard<'static, HashSet<u32>> {
    static CHILDREN: OnceLock<Mutex<HashSet<u32>>> = OnceLock::new();
    CHILDREN.get_or_init(Mutex::default).lock().unwrap_or_else(|e| e.into_inner())
}

/// Keeps a child's pid in the registry until dropped (after the child is reaped, so the
/// pid cannot belong to another process while it is listed).
#[derive(Debug)]
pub struct Registered(u32);

impl Registered {
    pub fn new(pid: u32) -> Self {
        registry().insert(pid);
        Self(pid)
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        registry().remove(&self.0);
    }
}

/// What the control socket does with a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not a stdio child: serve it.
    Operator,
    /// A stdio child, a descendant of one, or in a child's group or the gateway's session.
    StdioChild,
    /// The peer's pid (or part of its ancestry) could not be read: refused, since the
    /// check cannot be done.
    Unknown,
}

impl Verdict {
    /// The audit `reason` of a refusal.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Operator => "operator",
            Self::StdioChild => "stdio_child",
            Self::Unknown => "peer_pid_unknown",
        }
    }
}

/// The fields of `/proc/<pid>/stat` the check needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub ppid: u32,
    pub pgid: u32,
    pub sid: u32,
}

/// Judges the peer with pid `peer` (from SO_PEERCRED; `None` or 0 when the kernel could
/// not tell, e.g. across pid namespaces).
pub fn peer_verdict(peer: Option<i32>) -> Verdict {
    let me = std::process::id();
    let children = registry().clone();
    let peer = peer.and_then(|p| u32::try_from(p).ok()).filter(|p| *p != 0);
    judge(peer, me, &children, read_stat)
}

/// The decision, over any source of process data (tests feed a fake table).
pub fn judge(peer: Option<u32>, me: u32, children: &HashSet<u32>, stat: impl Fn(u32) -> Option<Stat>) -> Verdict {
    let Some(peer) = peer else { return Verdict::Unknown };
    if peer == me {
        return Verdict::Operator;
    }
    let Some(first) = stat(peer) else { return Verdict::Unknown };
    if children.contains(&first.pgid) || children.contains(&first.sid) {
        return Verdict::StdioChild;
    }
    if let Some(mine) = stat(me) {
        // Leading its session, the gateway shares it only with its own descendants.
        if mine.sid == me && first.sid == me {
            return Verdict::StdioChild;
        }
    }
    let (mut pid, mut st) = (peer, first);
    for _ in 0..MAX_DEPTH {
        if children.contains(&pid) {
            return Verdict::StdioChild;
        }
        if st.ppid == me || st.ppid <= 1 {
            return Verdict::Operator;
        }
        pid = st.ppid;
        // An ancestor that vanished mid-walk leaves the answer open: refuse.
        st = match stat(pid) {
            Some(s) => s,
            None => return Verdict::Unknown,
        };
    }
    Verdict::Unknown
}

/// Reads `/proc/<pid>/stat`.
fn read_stat(pid: u32) -> Option<Stat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// `pid (comm) state ppid pgrp session …`; `comm` may hold spaces and parentheses, so
/// the fields start after the last `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace().skip(1).map(|f| f.parse::<u32>().ok());
    Some(Stat { ppid: fields.next()??, pgid: fields.next()??, sid: fields.next()?? })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn table(rows: &[(u32, u32, u32, u32)]) -> HashMap<u32, Stat> {
        rows.iter().map(|&(pid, ppid, pgid, sid)| (pid, Stat { ppid, pgid, sid })).collect()
    }

    #[test]
    fn parses_stat_with_awkward_names() {
        let s = parse_stat("42 (a) b (c)) S 7 42 5 0 -1").unwrap();
        assert_eq!(s, Stat { ppid: 7, pgid: 42, sid: 5 });
        assert_eq!(parse_stat("42 (x) S"), None);
    }

    #[test]
    fn descendants_and_group_members_of_children_are_refused() {
        // 100 = gateway (session 1, not leader); 200 = child (own group); 300 = its tool's
        // subprocess; 400 = an operator's ctl (child of a shell 50); 500 = a grandchild
        // orphaned to init but still in the child's group.
        let t = table(&[
            (100, 1, 100, 1),
            (200, 100, 200, 1),
            (300, 200, 200, 1),
            (50, 1, 50, 1),
            (400, 50, 400, 1),
            (500, 1, 200, 1),
            (600, 100, 600, 1),
        ]);
        let children: HashSet<u32> = [200].into();
        let v = |p| judge(Some(p), 100, &children, |pid| t.get(&pid).copied());
        assert_eq!(v(200), Verdict::StdioChild);
        assert_eq!(v(300), Verdict::StdioChild);
        assert_eq!(v(500), Verdict::StdioChild);
        assert_eq!(v(400), Verdict::Operator);
        assert_eq!(v(600), Verdict::Operator, "a non-child process the gateway itself started");
        assert_eq!(v(100), Verdict::Operator);
        assert_eq!(v(999), Verdict::Unknown);
        assert_eq!(judge(None, 100, &children, |pid| t.get(&pid).copied()), Verdict::Unknown);
    }

    #[test]
    fn a_session_leading_gateway_refuses_its_session() {
        // Under a service manager the gateway leads session 100; 700 escaped the child's
        // group (setpgid) and was orphaned, but is still in the gateway's session.
        let t = table(&[(100, 1, 100, 100), (700, 1, 700, 100), (400, 50, 400, 9), (50, 1, 50, 9)]);
        let none = HashSet::new();
        assert_eq!(judge(Some(700), 100, &none, |p| t.get(&p).copied()), Verdict::StdioChild);
        assert_eq!(judge(Some(400), 100, &none, |p| t.get(&p).copied()), Verdict::Operator);
    }
}
