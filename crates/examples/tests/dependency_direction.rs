//! The dependency direction of docs/architecture.md, checked on the
//! resolved dependency graph (`cargo metadata`): a crate that gains a
//! dependency the architecture forbids fails this test, which names the
//! crate, the kind of dependency and the forbidden edge.
//!
//! It checks the direct dependencies of every workspace member (normal,
//! build and dev) against [`RULES`], and the whole normal dependency tree of
//! the inner crates against [`FORBIDDEN_BELOW`], so that an IO crate cannot
//! come in through a helper crate either. It does not look at what the code
//! does (a `std::net` call in the domain is out of its reach), only at
//! which crates it may use.
//!
//! It lives in `payhook-examples` because that crate, like the server,
//! stands outside the layering: it depends on everything and nothing
//! depends on it.

use std::collections::{BTreeSet, HashMap};
use std::process::Command;

use serde_json::Value;

/// Which dependencies a crate may have.
struct Rule {
    /// The crate (package name, or a prefix ending in `-` or `_`).
    krate: &'static str,
    /// Crates it must not depend on in any way, dev-dependencies included.
    never: &'static [&'static str],
    /// Crates it may use in tests only, but not in its code.
    tests_only: &'static [&'static str],
    /// Why, as the architecture doc says it.
    because: &'static str,
}

/// The IO and runtime crates: HTTP, SQL, the async runtime and the pool.
const IO: &[&str] = &[
    "actix-", "actix_", "awc", "diesel", "diesel_", "tokio", "r2d2",
];

/// The rules of docs/architecture.md, crate by crate. A name ending in `-`
/// or `_` stands for every crate it starts.
const RULES: &[Rule] = &[
    Rule {
        krate: "payhook-domain",
        never: &[
            "actix-",
            "actix_",
            "awc",
            "diesel",
            "diesel_",
            "r2d2",
            "payhook-adapters-",
            "payhook-adapter-testkit",
            "payhook-store-diesel",
            "payhook-server",
        ],
        // Its tests drive the async services on a runtime of their own.
        tests_only: &["tokio"],
        because: "domain knows nothing of HTTP, SQL or async runtimes, and depends on no other payhook crate",
    },
    Rule {
        krate: "payhook-adapters-",
        never: &[
            "actix-",
            "actix_",
            "awc",
            "diesel",
            "diesel_",
            "tokio",
            "r2d2",
            "payhook-store-diesel",
            "payhook-server",
            "payhook-adapters-",
        ],
        tests_only: &["payhook-adapter-testkit"],
        because: "adapters depend on domain only: never on the store, on each other, on actix, diesel or tokio",
    },
    Rule {
        krate: "payhook-adapter-testkit",
        never: &[
            "actix-",
            "actix_",
            "awc",
            "diesel",
            "diesel_",
            "tokio",
            "r2d2",
            "payhook-store-diesel",
            "payhook-server",
            "payhook-adapters-",
        ],
        tests_only: &[],
        because: "the adapters' test kit stands where they do: on domain only",
    },
    Rule {
        krate: "payhook-stripe-api",
        never: &[
            "diesel",
            "diesel_",
            "r2d2",
            "payhook-store-diesel",
            "payhook-server",
            "payhook-adapters-paypal",
            "payhook-adapters-generic",
            "payhook-paypal-api",
        ],
        tests_only: &[],
        because: "a gateway's API client depends on domain, its own adapter (for the mapping) and an HTTP client; never on the store, the server or another gateway",
    },
    Rule {
        krate: "payhook-paypal-api",
        never: &[
            "diesel",
            "diesel_",
            "r2d2",
            "payhook-store-diesel",
            "payhook-server",
            "payhook-adapters-stripe",
            "payhook-adapters-generic",
            "payhook-stripe-api",
        ],
        tests_only: &[],
        because: "a gateway's API client depends on domain, its own adapter (for the mapping) and an HTTP client; never on the store, the server or another gateway",
    },
    Rule {
        krate: "payhook-store-diesel",
        never: &[
            "actix-",
            "actix_",
            "awc",
            "payhook-adapters-",
            "payhook-adapter-testkit",
            "payhook-server",
        ],
        tests_only: &[],
        because: "the store depends on domain, never on adapters or actix",
    },
];

/// Crates no workspace member may depend on, in any way: the programs and
/// the examples stand outside the layering.
const NOBODY_DEPENDS_ON: &[&str] = &["payhook-server", "payhook-loadgen", "payhook-examples"];

/// The one exception, for tests only: the load generator's integration
/// test starts a payhook server in its own process (as the server's tests
/// do) and loads it. A program testing against the other program adds no
/// edge to the layering of the libraries.
const TESTS_MAY_START: &[(&str, &str)] = &[("payhook-loadgen", "payhook-server")];

/// For the inner crates, crates that must not appear anywhere in their
/// normal dependency tree, however they would come in.
const FORBIDDEN_BELOW: &[(&str, &[&str])] = &[
    ("payhook-domain", IO),
    ("payhook-adapters-", IO),
    ("payhook-adapter-testkit", IO),
    ("payhook-store-diesel", &["actix-", "actix_", "awc"]),
];

/// True when `name` is `pattern`, or starts with it when it ends in `-`
/// or `_`.
fn matches(pattern: &str, name: &str) -> bool {
    if pattern.ends_with(['-', '_']) {
        name.starts_with(pattern)
    } else {
        name == pattern
    }
}

/// One dependency edge of the resolved graph.
struct Edge<'a> {
    from: &'a str,
    to: &'a str,
    /// `normal`, `build` or `dev`.
    kind: &'a str,
}

/// The graph of `cargo metadata`: package names by id, the workspace
/// members and the direct dependency edges of every package.
struct Graph<'a> {
    members: Vec<&'a str>,
    edges: HashMap<&'a str, Vec<Edge<'a>>>,
}

impl<'a> Graph<'a> {
    fn new(metadata: &'a Value) -> Graph<'a> {
        let names: HashMap<&str, &str> = metadata["packages"]
            .as_array()
            .expect("packages")
            .iter()
            .map(|package| {
                (
                    package["id"].as_str().expect("id"),
                    package["name"].as_str().expect("name"),
                )
            })
            .collect();
        let members = metadata["workspace_members"]
            .as_array()
            .expect("workspace_members")
            .iter()
            .map(|id| names[id.as_str().expect("member id")])
            .collect();
        let mut edges: HashMap<&str, Vec<Edge<'_>>> = HashMap::new();
        for node in metadata["resolve"]["nodes"].as_array().expect("nodes") {
            let from = names[node["id"].as_str().expect("node id")];
            for dependency in node["deps"].as_array().expect("deps") {
                let to = names[dependency["pkg"].as_str().expect("pkg")];
                for kind in dependency["dep_kinds"].as_array().expect("dep_kinds") {
                    let kind = kind["kind"].as_str().unwrap_or("normal");
                    edges.entry(from).or_default().push(Edge { from, to, kind });
                }
            }
        }
        Graph { members, edges }
    }

    fn direct(&self, krate: &str) -> &[Edge<'a>] {
        self.edges.get(krate).map_or(&[], Vec::as_slice)
    }

    /// Every crate in `krate`'s normal dependency tree (build scripts'
    /// dependencies included, dev-dependencies not), each with the path
    /// that brings it in.
    fn normal_tree(&self, krate: &'a str) -> Vec<(&'a str, Vec<&'a str>)> {
        let mut seen = BTreeSet::from([krate]);
        let mut found = Vec::new();
        let mut stack = vec![(krate, vec![krate])];
        while let Some((name, path)) = stack.pop() {
            for edge in self.direct(name) {
                if edge.kind != "dev" && seen.insert(edge.to) {
                    let mut path = path.clone();
                    path.push(edge.to);
                    found.push((edge.to, path.clone()));
                    stack.push((edge.to, path));
                }
            }
        }
        found
    }
}

/// Every edge the architecture forbids, as a sentence naming it.
fn violations(metadata: &Value) -> Vec<String> {
    let graph = Graph::new(metadata);
    let mut found = Vec::new();
    for &member in &graph.members {
        for edge in graph.direct(member) {
            // A crate's dev-dependency on itself turns on a test feature.
            if edge.to == edge.from {
                continue;
            }
            let test_start = edge.kind == "dev" && TESTS_MAY_START.contains(&(edge.from, edge.to));
            for &forbidden in NOBODY_DEPENDS_ON {
                if matches(forbidden, edge.to) && !test_start {
                    found.push(format!(
                        "{} has a {} dependency on {}: nothing depends on the programs or the examples",
                        edge.from, edge.kind, edge.to
                    ));
                }
            }
            for rule in RULES.iter().filter(|rule| matches(rule.krate, member)) {
                let in_code = edge.kind != "dev";
                let forbidden = rule.never.iter().any(|&name| matches(name, edge.to))
                    || (in_code && rule.tests_only.iter().any(|&name| matches(name, edge.to)));
                if forbidden {
                    found.push(format!(
                        "{} has a {} dependency on {}, which the architecture forbids: {}",
                        edge.from, edge.kind, edge.to, rule.because
                    ));
                }
            }
        }
        for &(krate, forbidden) in FORBIDDEN_BELOW {
            if !matches(krate, member) {
                continue;
            }
            for (name, path) in graph.normal_tree(member) {
                // Direct edges are reported above, with their reason.
                if path.len() > 2 && forbidden.iter().any(|&pattern| matches(pattern, name)) {
                    found.push(format!(
                        "{member} depends on {name} through {}: {member} must stay free of it",
                        path.join(" -> ")
                    ));
                }
            }
        }
    }
    found
}

/// The resolved graph of this workspace, as `cargo metadata` prints it.
fn workspace_metadata() -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--manifest-path",
        ])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.toml"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON")
}

#[test]
fn the_workspace_keeps_the_dependency_direction() {
    let metadata = workspace_metadata();
    let graph = Graph::new(&metadata);
    // The rules must be about crates that exist, or they check nothing.
    for name in [
        "payhook-domain",
        "payhook-adapters-stripe",
        "payhook-adapters-paypal",
        "payhook-adapters-generic",
        "payhook-adapter-testkit",
        "payhook-store-diesel",
    ] {
        assert!(
            graph.members.contains(&name),
            "{name} is not a workspace member"
        );
    }
    let found = violations(&metadata);
    assert!(
        found.is_empty(),
        "forbidden dependencies:\n{}",
        found.join("\n")
    );
}

/// A resolved graph of the packages `edges` name, each edge
/// `(from, to, kind)`; every `from` is a workspace member.
fn graph_of(edges: &[(&str, &str, &str)]) -> Value {
    let mut names: BTreeSet<&str> = BTreeSet::new();
    for &(from, to, _) in edges {
        names.insert(from);
        names.insert(to);
    }
    let members: BTreeSet<&str> = edges.iter().map(|&(from, _, _)| from).collect();
    let packages: Vec<Value> = names
        .iter()
        .map(|name| serde_json::json!({"id": format!("id:{name}"), "name": name}))
        .collect();
    let nodes: Vec<Value> =
        names
            .iter()
            .map(|&name| {
                let deps: Vec<Value> = edges
                .iter()
                .filter(|&&(from, _, _)| from == name)
                .map(|&(_, to, kind)| {
                    let kind = if kind == "normal" { Value::Null } else { kind.into() };
                    serde_json::json!({"pkg": format!("id:{to}"), "dep_kinds": [{"kind": kind}]})
                })
                .collect();
                serde_json::json!({"id": format!("id:{name}"), "deps": deps})
            })
            .collect();
    serde_json::json!({
        "packages": packages,
        "workspace_members": members.iter().map(|name| format!("id:{name}")).collect::<Vec<_>>(),
        "resolve": {"nodes": nodes},
    })
}

#[test]
fn each_forbidden_edge_is_named() {
    let cases = [
        (
            ("payhook-domain", "tokio", "normal"),
            "payhook-domain has a normal dependency on tokio",
        ),
        (
            ("payhook-domain", "diesel", "dev"),
            "payhook-domain has a dev dependency on diesel",
        ),
        (
            ("payhook-domain", "payhook-store-diesel", "normal"),
            "payhook-domain has a normal dependency on payhook-store-diesel",
        ),
        (
            ("payhook-adapters-stripe", "payhook-store-diesel", "dev"),
            "payhook-adapters-stripe has a dev dependency on payhook-store-diesel",
        ),
        (
            (
                "payhook-adapters-paypal",
                "payhook-adapters-stripe",
                "normal",
            ),
            "payhook-adapters-paypal has a normal dependency on payhook-adapters-stripe",
        ),
        (
            ("payhook-adapters-generic", "actix-web", "normal"),
            "payhook-adapters-generic has a normal dependency on actix-web",
        ),
        (
            (
                "payhook-adapters-generic",
                "payhook-adapter-testkit",
                "normal",
            ),
            "payhook-adapters-generic has a normal dependency on payhook-adapter-testkit",
        ),
        (
            ("payhook-store-diesel", "payhook-adapters-stripe", "dev"),
            "payhook-store-diesel has a dev dependency on payhook-adapters-stripe",
        ),
        (
            ("payhook-store-diesel", "awc", "normal"),
            "payhook-store-diesel has a normal dependency on awc",
        ),
        (
            ("payhook-loadgen", "payhook-server", "normal"),
            "payhook-loadgen has a normal dependency on payhook-server",
        ),
    ];
    for ((from, to, kind), expected) in cases {
        let found = violations(&graph_of(&[(from, to, kind)]));
        assert_eq!(found.len(), 1, "{from} -> {to}: {found:?}");
        assert!(found[0].starts_with(expected), "{}", found[0]);
    }
}

#[test]
fn allowed_edges_pass() {
    let found = violations(&graph_of(&[
        ("payhook-domain", "serde", "normal"),
        ("payhook-domain", "tokio", "dev"),
        ("payhook-domain", "payhook-domain", "dev"),
        ("payhook-adapters-stripe", "payhook-domain", "normal"),
        ("payhook-adapters-stripe", "payhook-adapter-testkit", "dev"),
        ("payhook-store-diesel", "tokio", "normal"),
        ("payhook-store-diesel", "diesel", "normal"),
        ("payhook-server", "actix-web", "normal"),
        ("payhook-server", "payhook-store-diesel", "normal"),
        ("payhook-examples", "payhook-adapters-stripe", "dev"),
    ]));
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn a_forbidden_crate_deep_in_the_tree_is_found_with_its_path() {
    let found = violations(&graph_of(&[
        ("payhook-adapters-stripe", "some-helper", "normal"),
        ("some-helper", "tokio", "normal"),
    ]));
    assert_eq!(
        found,
        ["payhook-adapters-stripe depends on tokio through payhook-adapters-stripe -> some-helper -> tokio: payhook-adapters-stripe must stay free of it"]
    );
}
