//! The workspace's layering rules, checked on the source: inside each crate, production files
//! never import each other in a loop, and no production module grows past the size one
//! reader takes in at once (docs/ARCHITECTURE.md, "Layering").
//!
//! The check parses every production file with `syn`, following the module tree from each
//! crate root (`lib.rs`, `main.rs`, `src/bin/*.rs`) and leaving out everything under
//! `#[cfg(test)]`. An edge A -> B is any path in A that names an item of B: `use` trees, and
//! paths written out in code (`crate::outbox::Outbox::open`, `super::Seq`). A name that a
//! module only re-exports (`pub use child::Thing`) counts as an edge to the file that defines
//! it, and the re-export itself is no edge: a `mod.rs` that re-exports its children is not a
//! loop with them, but one whose code calls a child that calls back up is.
//!
//! Run it alone: `cargo test -p skolebro-tests --test layering`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// Crates whose production code the rules cover, relative to the workspace root.
const CRATES: &[&str] = &[
    "protocol",
    "roster",
    "systemd",
    "agent",
    "firmware",
    "provisioning",
    "central",
    "tests",
];

/// The most lines a production module may have, not counting its `#[cfg(test)]` tail.
const MAX_PRODUCTION_LINES: usize = 800;

type ModPath = Vec<String>;

/// One module of a crate: the file that holds it and what it re-exports.
struct Module {
    file: PathBuf,
    /// `pub use a::b::Thing` in this module: `Thing` -> the absolute path it names.
    reexports: HashMap<String, ModPath>,
}

/// Paths one file mentions, each with the module it was written in.
struct Mentions {
    file: PathBuf,
    paths: Vec<(ModPath, ModPath)>,
}

fn is_cfg_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|attr| {
        attr.path().is_ident("cfg") && {
            let text = attr
                .meta
                .require_list()
                .map(|l| l.tokens.to_string())
                .unwrap_or_default();
            text == "test" || text.starts_with("all (test") || text.starts_with("all(test")
        }
    })
}

/// Collects every path written in the non-test items of one module.
struct PathCollector<'a> {
    module: ModPath,
    out: &'a mut Vec<(ModPath, ModPath)>,
}

impl<'ast> Visit<'ast> for PathCollector<'_> {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let attrs = match item {
            syn::Item::Fn(i) => &i.attrs,
            syn::Item::Mod(i) => &i.attrs,
            syn::Item::Impl(i) => &i.attrs,
            syn::Item::Use(i) => &i.attrs,
            syn::Item::Struct(i) => &i.attrs,
            syn::Item::Enum(i) => &i.attrs,
            syn::Item::Const(i) => &i.attrs,
            syn::Item::Static(i) => &i.attrs,
            syn::Item::Trait(i) => &i.attrs,
            _ => &Vec::new(),
        };
        if is_cfg_test(attrs) {
            return;
        }
        match item {
            // Inline modules are walked by the module tree with their own path.
            syn::Item::Mod(_) => {}
            // A re-export is the module's face, not a use of the child by its code.
            syn::Item::Use(u) if !matches!(u.vis, syn::Visibility::Inherited) => {}
            syn::Item::Use(u) => {
                let mut found = Vec::new();
                flatten_use(&u.tree, Vec::new(), &mut found);
                for path in found {
                    self.out.push((self.module.clone(), path));
                }
            }
            _ => syn::visit::visit_item(self, item),
        }
    }

    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        if !is_cfg_test(&f.attrs) {
            syn::visit::visit_impl_item_fn(self, f);
        }
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: ModPath = path.segments.iter().map(|s| s.ident.to_string()).collect();
        if segments.len() > 1 {
            self.out.push((self.module.clone(), segments));
        }
        syn::visit::visit_path(self, path);
    }
}

fn flatten_use(tree: &syn::UseTree, prefix: ModPath, out: &mut Vec<ModPath>) {
    match tree {
        syn::UseTree::Path(p) => {
            let mut next = prefix;
            next.push(p.ident.to_string());
            flatten_use(&p.tree, next, out);
        }
        syn::UseTree::Name(n) => {
            let mut path = prefix;
            if n.ident != "self" {
                path.push(n.ident.to_string());
            }
            out.push(path);
        }
        syn::UseTree::Rename(r) => {
            let mut path = prefix;
            path.push(r.ident.to_string());
            out.push(path);
        }
        syn::UseTree::Glob(_) => out.push(prefix),
        syn::UseTree::Group(g) => {
            for item in &g.items {
                flatten_use(item, prefix.clone(), out);
            }
        }
    }
}

/// Turns a path written in `module` into an absolute module path, or `None` if it leaves
/// the crate (another crate, std, a local variable's field).
fn absolute(
    module: &ModPath,
    path: &ModPath,
    modules: &BTreeMap<ModPath, Module>,
) -> Option<ModPath> {
    let first = path.first()?;
    match first.as_str() {
        "crate" => Some(path[1..].to_vec()),
        "self" => Some(module.iter().chain(&path[1..]).cloned().collect()),
        "super" => {
            let mut base = module.clone();
            let mut rest = &path[..];
            while rest.first().map(String::as_str) == Some("super") {
                base.pop()?;
                rest = &rest[1..];
            }
            Some(base.into_iter().chain(rest.iter().cloned()).collect())
        }
        _ => {
            let mut child = module.clone();
            child.push(first.clone());
            modules
                .contains_key(&child)
                .then(|| module.iter().chain(path).cloned().collect())
        }
    }
}

/// The file that defines what `path` names, following re-exports.
fn defining_file(
    path: &ModPath,
    modules: &BTreeMap<ModPath, Module>,
    depth: u8,
) -> Option<PathBuf> {
    let (module_len, module) = (0..=path.len())
        .rev()
        .find_map(|n| modules.get(&path[..n]).map(|m| (n, m)))?;
    if depth < 8 {
        if let Some(item) = path.get(module_len) {
            if let Some(target) = module.reexports.get(item) {
                let mut next = target.clone();
                next.extend(path[module_len + 1..].iter().cloned());
                if let Some(file) = defining_file(&next, modules, depth + 1) {
                    return Some(file);
                }
            }
        }
    }
    Some(module.file.clone())
}

fn module_file(dir: &Path, name: &str) -> PathBuf {
    let flat = dir.join(format!("{name}.rs"));
    if flat.exists() {
        flat
    } else {
        dir.join(name).join("mod.rs")
    }
}

/// Walks one module's items: registers it, its inline and file children, its re-exports and
/// the paths it mentions.
fn walk(
    items: &[syn::Item],
    module: ModPath,
    file: &Path,
    child_dir: &Path,
    modules: &mut BTreeMap<ModPath, Module>,
    mentions: &mut Vec<Mentions>,
) {
    let mut reexports = HashMap::new();
    for item in items {
        if let syn::Item::Use(u) = item {
            if !matches!(u.vis, syn::Visibility::Inherited) && !is_cfg_test(&u.attrs) {
                let mut found = Vec::new();
                flatten_use(&u.tree, Vec::new(), &mut found);
                for path in found {
                    if let Some(name) = path.last() {
                        reexports.insert(name.clone(), path.clone());
                    }
                }
            }
        }
    }
    modules.insert(
        module.clone(),
        Module {
            file: file.to_path_buf(),
            reexports,
        },
    );
    let mut paths = Vec::new();
    let mut collector = PathCollector {
        module: module.clone(),
        out: &mut paths,
    };
    for item in items {
        collector.visit_item(item);
    }
    mentions.push(Mentions {
        file: file.to_path_buf(),
        paths,
    });

    for item in items {
        let syn::Item::Mod(m) = item else { continue };
        if is_cfg_test(&m.attrs) {
            continue;
        }
        let mut child = module.clone();
        child.push(m.ident.to_string());
        let name = m.ident.to_string();
        match &m.content {
            Some((_, inner)) => walk(
                inner,
                child,
                file,
                &child_dir.join(&name),
                modules,
                mentions,
            ),
            None => {
                let child_file = module_file(child_dir, &name);
                let source = std::fs::read_to_string(&child_file)
                    .unwrap_or_else(|e| panic!("{}: {e}", child_file.display()));
                let parsed = syn::parse_file(&source)
                    .unwrap_or_else(|e| panic!("{}: {e}", child_file.display()));
                let grandchildren = if child_file.ends_with("mod.rs") {
                    child_dir.join(&name)
                } else {
                    child_file.with_extension("")
                };
                walk(
                    &parsed.items,
                    child,
                    &child_file,
                    &grandchildren,
                    modules,
                    mentions,
                );
            }
        }
    }
}

/// The import graph of one crate root's production files.
fn import_graph(root: &Path) -> BTreeMap<PathBuf, BTreeMap<PathBuf, String>> {
    let source = std::fs::read_to_string(root).expect("crate root reads");
    let parsed = syn::parse_file(&source).expect("crate root parses");
    let mut modules = BTreeMap::new();
    let mut mentions = Vec::new();
    let dir = root.parent().expect("root has a folder");
    walk(
        &parsed.items,
        Vec::new(),
        root,
        dir,
        &mut modules,
        &mut mentions,
    );

    let mut graph: BTreeMap<PathBuf, BTreeMap<PathBuf, String>> = BTreeMap::new();
    for m in &mentions {
        let edges = graph.entry(m.file.clone()).or_default();
        for (module, path) in &m.paths {
            let Some(abs) = absolute(module, path, &modules) else {
                continue;
            };
            let Some(target) = defining_file(&abs, &modules, 0) else {
                continue;
            };
            if target != m.file {
                edges.entry(target).or_insert_with(|| path.join("::"));
            }
        }
    }
    graph
}

/// Strongly connected components with more than one file (Tarjan).
fn loops(graph: &BTreeMap<PathBuf, BTreeMap<PathBuf, String>>) -> Vec<BTreeSet<PathBuf>> {
    struct Tarjan<'a> {
        graph: &'a BTreeMap<PathBuf, BTreeMap<PathBuf, String>>,
        index: HashMap<&'a PathBuf, usize>,
        low: HashMap<&'a PathBuf, usize>,
        stack: Vec<&'a PathBuf>,
        on_stack: BTreeSet<&'a PathBuf>,
        found: Vec<BTreeSet<PathBuf>>,
    }
    impl<'a> Tarjan<'a> {
        fn visit(&mut self, node: &'a PathBuf) {
            let n = self.index.len();
            self.index.insert(node, n);
            self.low.insert(node, n);
            self.stack.push(node);
            self.on_stack.insert(node);
            for next in self.graph.get(node).into_iter().flat_map(|e| e.keys()) {
                if !self.index.contains_key(next) {
                    self.visit(next);
                    let low = self.low[node].min(self.low[next]);
                    self.low.insert(node, low);
                } else if self.on_stack.contains(next) {
                    let low = self.low[node].min(self.index[next]);
                    self.low.insert(node, low);
                }
            }
            if self.low[node] == self.index[node] {
                let mut component = BTreeSet::new();
                while let Some(top) = self.stack.pop() {
                    self.on_stack.remove(top);
                    component.insert(top.clone());
                    if top == node {
                        break;
                    }
                }
                if component.len() > 1 {
                    self.found.push(component);
                }
            }
        }
    }
    let mut t = Tarjan {
        graph,
        index: HashMap::new(),
        low: HashMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for node in graph.keys() {
        if !t.index.contains_key(node) {
            t.visit(node);
        }
    }
    t.found
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn crate_roots(krate: &str) -> Vec<PathBuf> {
    let src = workspace().join(krate).join("src");
    let mut roots: Vec<PathBuf> = ["lib.rs", "main.rs"]
        .iter()
        .map(|f| src.join(f))
        .filter(|p| p.exists())
        .collect();
    if let Ok(bins) = std::fs::read_dir(src.join("bin")) {
        let mut bins: Vec<PathBuf> = bins
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "rs"))
            .collect();
        bins.sort();
        roots.extend(bins);
    }
    roots
}

fn shown(path: &Path) -> String {
    let root = workspace().canonicalize().expect("workspace");
    let full = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    full.strip_prefix(&root)
        .unwrap_or(&full)
        .display()
        .to_string()
}

#[test]
fn no_crate_has_an_import_loop_between_its_production_files() {
    let mut report = String::new();
    for krate in CRATES {
        for root in crate_roots(krate) {
            let graph = import_graph(&root);
            for component in loops(&graph) {
                report.push_str(&format!("\nloop in {}:\n", shown(&root)));
                for file in &component {
                    for (target, example) in &graph[file] {
                        if component.contains(target) {
                            report.push_str(&format!(
                                "  {} -> {}  ({example})\n",
                                shown(file),
                                shown(target)
                            ));
                        }
                    }
                }
            }
        }
    }
    assert!(report.is_empty(), "import loops:{report}");
}

/// The lines of a file before its trailing `#[cfg(test)]` module, if it has one.
fn production_lines(source: &str) -> usize {
    let lines: Vec<&str> = source.lines().collect();
    let tail = lines.windows(2).position(|pair| {
        let next = pair[1].trim_start();
        pair[0].trim() == "#[cfg(test)]"
            && (next.starts_with("mod ") || next.starts_with("pub(crate) mod "))
    });
    tail.unwrap_or(lines.len())
}

#[test]
fn no_production_module_is_over_eight_hundred_lines() {
    let mut over = Vec::new();
    for krate in CRATES {
        for root in crate_roots(krate) {
            for file in import_graph(&root).keys() {
                let source = std::fs::read_to_string(file).expect("file reads");
                let lines = production_lines(&source);
                if lines > MAX_PRODUCTION_LINES {
                    over.push(format!("{} ({lines} lines)", shown(file)));
                }
            }
        }
    }
    assert!(
        over.is_empty(),
        "over {MAX_PRODUCTION_LINES} lines: {over:#?}"
    );
}

#[test]
fn a_loop_between_two_files_is_found() {
    let a = PathBuf::from("a.rs");
    let b = PathBuf::from("b.rs");
    let c = PathBuf::from("c.rs");
    let mut graph = BTreeMap::new();
    graph.insert(
        a.clone(),
        BTreeMap::from([(b.clone(), "crate::b::X".to_string())]),
    );
    graph.insert(
        b.clone(),
        BTreeMap::from([(a.clone(), "crate::a::Y".to_string())]),
    );
    graph.insert(
        c.clone(),
        BTreeMap::from([(a.clone(), "crate::a::Y".to_string())]),
    );
    assert_eq!(loops(&graph), vec![BTreeSet::from([a, b])]);
}

#[test]
fn a_parent_that_reexports_its_child_is_no_loop_with_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("lib.rs"),
        "mod store;\npub use store::Thing;\nfn f() { crate::store::helper(); }\n",
    )
    .expect("write lib");
    std::fs::create_dir(dir.path().join("store")).expect("mkdir");
    std::fs::write(
        dir.path().join("store/mod.rs"),
        "mod thing;\npub use thing::Thing;\npub fn helper() {}\n",
    )
    .expect("write store");
    std::fs::write(
        dir.path().join("store/thing.rs"),
        "pub struct Thing;\nfn g() -> crate::Thing { super::super::Thing }\n\
         #[cfg(test)]\nmod tests { use crate::store::helper; }\n",
    )
    .expect("write thing");
    let graph = import_graph(&dir.path().join("lib.rs"));
    assert!(loops(&graph).is_empty(), "{graph:#?}");
    assert!(graph[&dir.path().join("lib.rs")].contains_key(&dir.path().join("store/mod.rs")));

    std::fs::write(
        dir.path().join("store/mod.rs"),
        "mod thing;\npub use thing::Thing;\npub fn helper() { thing::g() }\n",
    )
    .expect("rewrite store");
    std::fs::write(
        dir.path().join("store/thing.rs"),
        "pub struct Thing;\npub fn g() { super::helper() }\n",
    )
    .expect("rewrite thing");
    let graph = import_graph(&dir.path().join("lib.rs"));
    assert_eq!(loops(&graph).len(), 1, "{graph:#?}");
}
