//! The house keeps its shape: the top-level modules of `src/` import each other without a
//! circle, and no file in `src/` grows past 600 lines (issue 17: "a file should fit in one head").
//!
//! An import is a `crate::X` path, or a `super::` path that climbs to the crate root and names
//! `X`, written in code (comments left out; a string that is a whole path, such as serde's
//! `with = "crate::duration"`, counts) outside `#[cfg(test)]` items. `src/lib.rs` and
//! `src/main.rs` are the root, not parts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The longest a file in `src/` may be.
const MAX_LINES: usize = 600;

/// Top-level module → the top-level modules it imports → the files that import it (with a line).
type Graph = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

#[test]
fn the_top_level_modules_import_each_other_without_a_circle() {
    let graph = import_graph();
    // Shown with `--nocapture`: the graph the issue asks to report.
    println!("{}", describe_graph(&graph));
    let circles = circles(&graph);
    assert!(
        circles.is_empty(),
        "import circles between the top-level modules of src/:\n{}\nthe whole graph:\n{}",
        circles
            .iter()
            .map(|circle| describe_circle(&graph, circle))
            .collect::<Vec<_>>()
            .join("\n"),
        describe_graph(&graph)
    );
}

#[test]
fn no_file_in_src_is_longer_than_600_lines() {
    let long: Vec<String> = rust_files(&src_dir())
        .into_iter()
        .filter_map(|path| {
            let lines = std::fs::read_to_string(&path).unwrap().lines().count();
            (lines > MAX_LINES).then(|| format!("{} ({lines} lines)", relative(&path)))
        })
        .collect();
    assert!(
        long.is_empty(),
        "files in src/ longer than {MAX_LINES} lines (split them by concern): {}",
        long.join(", ")
    );
}

#[test]
fn the_circle_finder_finds_circles_and_only_circles() {
    let graph = |edges: &[(&str, &str)]| -> Graph {
        let mut g = Graph::new();
        for (from, to) in edges {
            g.entry(from.to_string())
                .or_default()
                .entry(to.to_string())
                .or_default()
                .insert(format!("src/{from}.rs:1"));
            g.entry(to.to_string()).or_default();
        }
        g
    };
    // A chain and a diamond: no circle.
    assert!(circles(&graph(&[
        ("http", "jobs"),
        ("jobs", "pipeline"),
        ("pipeline", "db")
    ]))
    .is_empty());
    assert!(circles(&graph(&[("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")])).is_empty());
    // Two modules that import each other, named with the files that make the circle.
    let two = graph(&[("config", "db"), ("db", "config"), ("db", "domain")]);
    let found = circles(&two);
    assert_eq!(found, vec![vec!["config".to_string(), "db".to_string()]]);
    let text = describe_circle(&two, &found[0]);
    assert!(text.contains("config → db: src/config.rs:1"), "{text}");
    assert!(text.contains("db → config: src/db.rs:1"), "{text}");
    assert!(!text.contains("domain"), "{text}");
    // A longer circle beside a separate one, and a module outside both.
    let found = circles(&graph(&[
        ("a", "b"),
        ("b", "c"),
        ("c", "a"),
        ("c", "x"),
        ("p", "q"),
        ("q", "p"),
    ]));
    assert_eq!(
        found,
        vec![
            vec!["a".to_string(), "b".to_string(), "c".to_string()],
            vec!["p".to_string(), "q".to_string()],
        ]
    );
}

#[test]
fn the_import_reader_sees_code_paths_and_not_comments_strings_or_tests() {
    let text = r##"
//! See [`crate::doc_link`].
use crate::config::Settings;
use crate::{db::{self, Db}, domain::Level};
use super::super::super::jobs::Queue;
use super::super::inside_http::Thing;
/* crate::block_comment /* nested crate::nested */ */
const SQL: &str = "SELECT 'crate::in_sql'";
#[serde(with = "crate::duration")]
fn f<'a>(x: &'a str) -> char { let _ = crate::telemetry::span(); '{' }
#[cfg(test)]
mod tests {
    use crate::test_only::Thing;
    fn g() { let _ = "}"; }
}
fn h() { crate::providers::mock(); }
"##;
    let found: BTreeSet<String> = imports(text, &["http".into(), "sync".into(), "x".into()])
        .into_iter()
        .map(|(module, _)| module)
        .collect();
    let expected: BTreeSet<String> = [
        "config",
        "db",
        "domain",
        "jobs",
        "duration",
        "telemetry",
        "providers",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(found, expected);
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn relative(path: &Path) -> String {
    path.strip_prefix(env!("CARGO_MANIFEST_DIR"))
        .unwrap_or(path)
        .display()
        .to_string()
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The top-level modules `src/lib.rs` declares.
fn top_level_modules() -> BTreeSet<String> {
    let lib = std::fs::read_to_string(src_dir().join("lib.rs")).unwrap();
    lib.lines()
        .filter_map(|line| {
            let line = line.trim();
            let rest = line
                .strip_prefix("pub mod ")
                .or_else(|| line.strip_prefix("mod "))?;
            Some(rest.trim_end_matches(';').trim().to_string())
        })
        .collect()
}

/// The module path of a file under `src/`: `src/jobs/scheduler/tick.rs` is
/// `jobs::scheduler::tick`, `src/jobs/scheduler/mod.rs` is `jobs::scheduler`.
fn module_path(path: &Path) -> Vec<String> {
    let rel = path.strip_prefix(src_dir()).unwrap();
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

fn import_graph() -> Graph {
    let tops = top_level_modules();
    let mut graph = Graph::new();
    for top in &tops {
        graph.entry(top.clone()).or_default();
    }
    let test_files = out_of_line_test_modules();
    for path in rust_files(&src_dir()) {
        let module = module_path(&path);
        let Some(top) = module.first() else { continue };
        if !tops.contains(top) || test_files.contains(&path) {
            continue; // lib.rs, main.rs
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for (target, line) in imports(&text, &module) {
            if &target != top && tops.contains(&target) {
                graph
                    .get_mut(top)
                    .unwrap()
                    .entry(target)
                    .or_default()
                    .insert(format!("{}:{line}", relative(&path)));
            }
        }
    }
    graph
}

/// Files that are `#[cfg(test)] mod x;` of another file.
fn out_of_line_test_modules() -> BTreeSet<PathBuf> {
    let mut files = BTreeSet::new();
    for path in rust_files(&src_dir()) {
        let code = code_only(&std::fs::read_to_string(&path).unwrap());
        let mut rest = code.as_str();
        while let Some(at) = rest.find("#[cfg(test)]") {
            rest = &rest[at + "#[cfg(test)]".len()..];
            let item = skip_attributes(rest);
            if let Some(name) = item
                .strip_prefix("mod ")
                .and_then(|m| m.split_once(';'))
                .map(|(name, _)| name.trim())
                .filter(|name| !name.contains('{'))
            {
                let dir = if path
                    .file_name()
                    .is_some_and(|f| f == "mod.rs" || f == "lib.rs")
                {
                    path.parent().unwrap().to_path_buf()
                } else {
                    path.with_extension("")
                };
                files.insert(dir.join(format!("{name}.rs")));
                files.insert(dir.join(name).join("mod.rs"));
            }
        }
    }
    files
}

fn skip_attributes(mut text: &str) -> &str {
    loop {
        text = text.trim_start();
        if text.starts_with("#[") {
            let mut depth = 0;
            for (i, c) in text.char_indices() {
                match c {
                    '[' => depth += 1,
                    ']' => {
                        depth -= 1;
                        if depth == 0 {
                            text = &text[i + 1..];
                            break;
                        }
                    }
                    _ => {}
                }
            }
        } else {
            let text = text.strip_prefix("pub(crate) ").unwrap_or(text);
            return text.strip_prefix("pub ").unwrap_or(text);
        }
    }
}

/// The text with comments blanked, string and char literals emptied (a string that is a whole
/// `crate::`/`super::` path is kept, it names a module to serde), and `#[cfg(test)]` items
/// blanked; newlines are kept so positions keep their line.
fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if c == '"'
            || (c == 'r'
                && matches!(next, Some('"') | Some('#'))
                && !ident(chars.get(i.wrapping_sub(1)).copied()))
        {
            // A string, raw or not: find its end.
            let (hashes, start) = if c == 'r' {
                let mut h = 0;
                while chars.get(i + 1 + h) == Some(&'#') {
                    h += 1;
                }
                if chars.get(i + 1 + h) != Some(&'"') {
                    out.push(c);
                    i += 1;
                    continue;
                }
                (Some(h), i + 2 + h)
            } else {
                (None, i + 1)
            };
            let mut j = start;
            let end = loop {
                if j >= chars.len() {
                    break chars.len();
                }
                match (hashes, chars[j]) {
                    (None, '\\') => j += 2,
                    (None, '"') => break j,
                    (Some(h), '"') if (1..=h).all(|k| chars.get(j + k) == Some(&'#')) => break j,
                    _ => j += 1,
                }
            };
            let content: String = chars[start..end.min(chars.len())].iter().collect();
            let is_path = (content.starts_with("crate::") || content.starts_with("super::"))
                && content
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == ':');
            let close = end + 1 + hashes.unwrap_or(0);
            out.extend(chars[i..close.min(chars.len())].iter().map(|&c| blank(c)));
            if is_path {
                // Put the path back in place of the blanks (same length, no newline in it).
                let at = out.len() - (close.min(chars.len()) - i) + (start - i);
                out.replace_range(at..at + content.len(), &content);
            }
            i = close;
        } else if c == '\'' {
            // A char literal ('x', '\n', '{'), or a lifetime ('a).
            if next == Some('\\') {
                let mut j = i + 2;
                while j < chars.len() && chars[j] != '\'' {
                    j += 1;
                }
                out.extend(chars[i..=j.min(chars.len() - 1)].iter().map(|&c| blank(c)));
                i = j + 1;
            } else if chars.get(i + 2) == Some(&'\'') {
                out.push_str("   ");
                i += 3;
            } else {
                out.push(c);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    blank_test_items(&out)
}

fn ident(c: Option<char>) -> bool {
    c.is_some_and(|c| c.is_alphanumeric() || c == '_')
}

/// Blanks each `#[cfg(test)]` module (`mod x { … }`) or `use`, keeping newlines.
fn blank_test_items(code: &str) -> String {
    let mut out: Vec<char> = code.chars().collect();
    let text: String = out.iter().collect();
    let mut from = 0;
    while let Some(at) = text[from..].find("#[cfg(test)]").map(|a| a + from) {
        let after = &text[at + "#[cfg(test)]".len()..];
        let item = skip_attributes(after);
        let item_at = text.len() - item.len();
        let end = if item.starts_with("mod ") {
            match (item.find('{'), item.find(';')) {
                (Some(open), semi) if semi.is_none_or(|s| open < s) => {
                    let mut depth = 0;
                    let mut end = text.len();
                    for (k, c) in item[open..].char_indices().map(|(k, c)| (k + open, c)) {
                        match c {
                            '{' => depth += 1,
                            '}' => {
                                depth -= 1;
                                if depth == 0 {
                                    end = item_at + k + 1;
                                    break;
                                }
                            }
                            _ => {}
                        }
                    }
                    end
                }
                (_, Some(semi)) => item_at + semi + 1,
                _ => text.len(),
            }
        } else if item.starts_with("use ") {
            item_at + item.find(';').map_or(item.len(), |s| s + 1)
        } else {
            at + "#[cfg(test)]".len()
        };
        // Positions are byte offsets; the code is ASCII outside blanked comments and strings,
        // but map through char indices to be safe.
        let start_char = text[..at].chars().count();
        let end_char = text[..end].chars().count();
        for c in &mut out[start_char..end_char] {
            if *c != '\n' {
                *c = ' ';
            }
        }
        from = end.max(at + 1);
    }
    out.into_iter().collect()
}

/// The top-level modules a file's code names (with the line), given the file's module path.
fn imports(text: &str, module: &[String]) -> Vec<(String, usize)> {
    let code = code_only(text);
    let line_of = |at: usize| code[..at].matches('\n').count() + 1;
    let mut found = Vec::new();
    for (at, _) in code
        .match_indices("crate::")
        .chain(code.match_indices("super::"))
    {
        // The first segment of a path only: not `$crate` (same crate) nor `super::super`'s second.
        let before = code[..at].chars().next_back();
        if ident(before) || before == Some(':') {
            continue;
        }
        let path = &code[at..];
        let names = if let Some(after) = path.strip_prefix("crate::") {
            first_segments(after)
        } else {
            let mut after = path;
            let mut ups = 0;
            while let Some(tail) = after.strip_prefix("super::") {
                ups += 1;
                after = tail;
            }
            // `super` of `a::b::c` is `a::b`; once at the root the next segment is a part.
            if ups >= module.len() {
                first_segments(after)
            } else {
                Vec::new()
            }
        };
        found.extend(names.into_iter().map(|name| (name, line_of(at))));
    }
    found.sort_by_key(|(_, line)| *line);
    found
}

/// The first segment of a path (`db::x` → `db`), or of each path in a group
/// (`{db::{self, Db}, domain}` → `db`, `domain`).
fn first_segments(path: &str) -> Vec<String> {
    let Some(group) = path.strip_prefix('{') else {
        return segment(path).into_iter().collect();
    };
    let mut depth = 0;
    let mut items = vec![String::new()];
    for c in group.chars() {
        match c {
            '}' if depth == 0 => break,
            ',' if depth == 0 => {
                items.push(String::new());
                continue;
            }
            '{' => depth += 1,
            '}' => depth -= 1,
            _ => {}
        }
        items.last_mut().unwrap().push(c);
    }
    items
        .iter()
        .filter_map(|item| segment(item.trim()))
        .collect()
}

fn segment(path: &str) -> Option<String> {
    let name: String = path
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty() && name != "self").then_some(name)
}

/// The circles of the graph: each strongly connected component of more than one module, its
/// modules sorted; the components in order of their first module.
fn circles(graph: &Graph) -> Vec<Vec<String>> {
    // Tarjan's algorithm, iteration order fixed by the BTreeMaps.
    struct State<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        components: Vec<Vec<String>>,
    }
    fn visit<'g>(s: &mut State<'g>, v: &'g str) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        s.on_stack.insert(v);
        let targets: Vec<&'g str> = s
            .graph
            .get(v)
            .map(|t| t.keys().map(String::as_str).collect())
            .unwrap_or_default();
        for w in targets {
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.components.push(component);
            }
        }
    }
    let mut state = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        components: Vec::new(),
    };
    for v in graph.keys() {
        if !state.index.contains_key(v.as_str()) {
            visit(&mut state, v);
        }
    }
    state.components.sort();
    state.components
}

/// The imports inside one circle, each with the files that make it.
fn describe_circle(graph: &Graph, circle: &[String]) -> String {
    let mut lines = vec![format!("circle: {}", circle.join(", "))];
    for from in circle {
        for (to, files) in &graph[from] {
            if circle.contains(to) {
                let files: Vec<&str> = files.iter().map(String::as_str).collect();
                lines.push(format!("  {from} → {to}: {}", files.join(", ")));
            }
        }
    }
    lines.join("\n")
}

fn describe_graph(graph: &Graph) -> String {
    graph
        .iter()
        .map(|(from, to)| {
            format!(
                "  {from} → {}",
                to.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}
