#!/usr/bin/env python3
"""Import circles among the files of src/: reads every `crate::`, `super::` and `self::`
path (in `use` items and in code; comments skipped), resolves it to the module file that
defines it, and reports each strongly connected group of two or more files.

    scripts/module_graph.py            exit 1 on any circle (or layering breach)
    scripts/module_graph.py --edges    also print every file -> file edge

The pipeline redesign (issue 14) removed the last circle, so KNOWN is empty: any circle
fails the test command.

It also holds the layering: the modules in BELOW_GATEWAY (features, their state and the
pieces the request path is built from) never import `crate::gateway`; the gateway calls
them, and where a feature needs the running gateway it defines a small trait the gateway
implements (`control::Operator`). And `cli` (src/cli/) is on top: it imports everything,
nothing else in src/ imports it (main.rs reaches it as `mcp_tunnel::cli`).
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"

# Circles tolerated for now: none.
KNOWN: set = set()

# Top-level modules (directories or files of src/) that must not import src/gateway/.
BELOW_GATEWAY = {
    "approval", "audit", "auth", "body", "control", "mcp", "outbound", "pinning", "protocol",
    "stats", "stdio", "stream", "tls", "transport", "idle", "admin", "reload", "logging", "pki",
}

# The top-level module above all others: no module outside it may import it.
TOP = "cli"

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def module_of(path: Path) -> tuple:
    rel = path.relative_to(SRC).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return tuple(parts)


def is_test_file(path: Path) -> bool:
    return "tests" in path.relative_to(SRC).parts[:-1] or path.stem.endswith("_tests")


def strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text)  # strings may hold `crate::` too
    return re.sub(r"//[^\n]*", " ", text)


def expand_use(tree: str) -> list:
    """`a::{b, c::{d, e}}` -> ["a::b", "a::c::d", "a::c::e"]."""
    tree = tree.strip()
    m = re.match(r"^(.*?)\{(.*)\}$", tree, flags=re.S)
    if not m:
        return [re.sub(r"\s+as\s+\w+$", "", tree)]
    prefix, inner = m.group(1), m.group(2)
    out, depth, cur = [], 0, ""
    for ch in inner + ",":
        if ch == "," and depth == 0:
            if cur.strip():
                out += [prefix + p for p in expand_use(cur)]
            cur = ""
            continue
        depth += (ch == "{") - (ch == "}")
        cur += ch
    return out


def references(text: str) -> list:
    paths = []
    for m in re.finditer(r"\buse\s+([^;]+);", text):
        paths += expand_use(m.group(1))
    paths += re.findall(rf"\b(?:crate|super|self)(?:::{IDENT})+", text)
    return paths


def resolve(path: str, here: tuple, is_mod_file: bool, modules: dict):
    segs = [s for s in path.replace(" ", "").split("::") if s]
    if not segs:
        return None
    # The module a `super`/`self` path starts from: a non-mod file's own module is `here`.
    base = list(here)
    if segs[0] == "crate":
        base, segs = [], segs[1:]
    elif segs[0] in ("self", "super"):
        while segs and segs[0] in ("self", "super"):
            if segs[0] == "super" and base:
                base.pop()
            segs = segs[1:]
    else:
        return None
    full = base + segs
    for n in range(len(full), -1, -1):
        target = modules.get(tuple(full[:n]))
        if target is not None:
            return target
    return None


def main() -> int:
    files = [p for p in SRC.rglob("*.rs") if not is_test_file(p)]
    modules = {module_of(p): p for p in files}
    edges = {}
    for p in files:
        here = module_of(p)
        text = strip_comments(p.read_text())
        # Only the file's own code: inline `mod tests { … }` blocks are test code.
        text = re.split(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", text)[0]
        out = set()
        for ref in references(text):
            t = resolve(ref, here, p.name == "mod.rs", modules)
            if t is not None and t != p:
                out.add(t)
        edges[p] = out

    # Tarjan's strongly connected components.
    index, low, stack, on, groups, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(str(g.relative_to(ROOT)) for g in group))

    for v in files:
        if v not in index:
            visit(v)

    if "--edges" in sys.argv:
        for p in sorted(edges):
            for t in sorted(edges[p]):
                print(f"{p.relative_to(ROOT)} -> {t.relative_to(ROOT)}")
    bad = 0
    gateway = SRC / "gateway"
    for p in sorted(edges):
        top = p.relative_to(SRC).parts[0].removesuffix(".rs")
        if top not in BELOW_GATEWAY:
            continue
        for t in sorted(edges[p]):
            if gateway in t.parents:
                print(f"module_graph: LAYERING: {p.relative_to(ROOT)} imports {t.relative_to(ROOT)}")
                bad += 1
    top = SRC / TOP
    for p in sorted(edges):
        if top in p.parents:
            continue
        for t in sorted(edges[p]):
            if top in t.parents:
                print(f"module_graph: LAYERING: {p.relative_to(ROOT)} imports {t.relative_to(ROOT)} (cli is on top)")
                bad += 1
    for g in groups:
        new = [f for f in g if f not in KNOWN]
        tag = "NEW CIRCLE" if new else "known circle (issue 14)"
        print(f"module_graph: {tag}: {len(g)} files: {', '.join(g)}")
        bad += bool(new)
    if bad:
        print(
            "module_graph: FAIL: break the circle (move the shared item into a module both can import), "
            "keep the feature below the gateway (a trait the gateway implements), "
            "or move what a module takes from cli/ down into that module"
        )
        return 1
    print(f"module_graph: ok: {len(files)} files, {sum(map(len, edges.values()))} edges, {len(groups)} known circle(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
