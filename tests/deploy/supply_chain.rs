//! The supply chain: the static binary carries its dependency list (cargo-auditable), that list is Cargo.lock's
//! for the cleaner alone, and `scripts/sbom` turns it into a CycloneDX SBOM with the same versions.
//!
//! `JTC_MUSL_BIN` names the binary, and `JTC_MUSL_AUDITABLE=1` says it was built with `cargo auditable`
//! (`scripts/test` does both when the musl target and cargo-auditable are installed). Without them the tests say
//! so and do nothing, unless `JTC_REQUIRE_CONTAINER_TEST=1` (CI sets it), when that is a failure.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// Crates only auth-api uses: none may be in the cleaner's binary.
const AUTH_API_ONLY: [&str; 5] = ["argon2", "blake2", "password-hash", "redis", "unicode-script"];

/// The auditable binary, or `None` (said, or a failure where it is required).
fn auditable_binary() -> Option<String> {
    let binary = std::env::var("JTC_MUSL_BIN").ok().filter(|_| std::env::var("JTC_MUSL_AUDITABLE").is_ok());
    if binary.is_none() {
        let why = "JTC_MUSL_BIN built with cargo auditable is not set (scripts/supply-chain.sh; scripts/test)";
        assert!(std::env::var("JTC_REQUIRE_CONTAINER_TEST").is_err(), "the supply-chain test is required here: {why}");
        eprintln!("supply-chain test not run: {why}");
    }
    binary
}

/// `scripts/sbom` with `args`: its stdout.
fn sbom(args: &[&str]) -> String {
    let out = Command::new(format!("{ROOT}/scripts/sbom")).args(args).output().expect("scripts/sbom runs");
    assert!(out.status.success(), "scripts/sbom {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// Every package of Cargo.lock: name to its versions.
fn lock_versions() -> BTreeMap<String, BTreeSet<String>> {
    let lock = std::fs::read_to_string(format!("{ROOT}/Cargo.lock")).expect("Cargo.lock");
    let mut versions: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut name = None;
    for line in lock.lines() {
        if let Some(n) = line.strip_prefix("name = ") {
            name = Some(n.trim_matches('"').to_string());
        } else if let (Some(v), Some(n)) = (line.strip_prefix("version = "), name.take()) {
            versions.entry(n).or_default().insert(v.trim_matches('"').to_string());
        }
    }
    versions
}

/// The cleaner's runtime dependencies for the musl target (proc macros, which run at build time, left out), by
/// cargo's own resolution: `name version`.
fn cargo_tree() -> BTreeSet<String> {
    let out = Command::new(env!("CARGO"))
        .current_dir(ROOT)
        .args(["tree", "--locked", "--offline", "-q", "-p", "jwt-token-cleaner", "-e", "normal,no-proc-macro"])
        .args(["--target", "x86_64-unknown-linux-musl", "--prefix", "none", "--format", "{p}"])
        .output()
        .expect("cargo tree");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            Some(format!("{} {}", words.next()?, words.next()?.trim_start_matches('v')))
        })
        .collect()
}

#[test]
fn the_static_binary_carries_its_dependency_list_and_it_is_cargo_locks() {
    let Some(binary) = auditable_binary() else { return };
    let listing: Value = serde_json::from_str(&sbom(&["--list", &binary])).expect("the embedded list is JSON");
    let packages = listing["packages"].as_array().expect("packages");
    let lock = lock_versions();
    let mut runtime = BTreeSet::new();
    for package in packages {
        let (name, version) = (package["name"].as_str().unwrap(), package["version"].as_str().unwrap());
        assert!(
            lock.get(name).is_some_and(|versions| versions.contains(version)),
            "{name} {version} is in the binary but not in Cargo.lock"
        );
        assert!(!AUTH_API_ONLY.contains(&name), "auth-api's {name} is in the cleaner's binary");
        if package.get("kind").is_none_or(|kind| kind == "runtime") {
            runtime.insert(format!("{name} {version}"));
        }
    }
    assert!(packages.iter().any(|p| p["root"] == true && p["name"] == "jwt-token-cleaner"), "{listing}");
    // Everything cargo resolves for the cleaner's target is listed. The list may hold a few more: cargo-auditable
    // records optional dependencies that the lock file resolves (quinn, mongocrypt) whatever the enabled features,
    // which errs on the side a vulnerability scanner wants; each is still a Cargo.lock version, checked above.
    let missing: Vec<_> = cargo_tree().difference(&runtime).cloned().collect();
    assert!(missing.is_empty(), "the binary's list misses crates of the cleaner's tree: {missing:?}");
}

#[test]
fn the_sbom_lists_the_binarys_crates_with_cargo_locks_versions() {
    let Some(binary) = auditable_binary() else { return };
    let path = sbom(&[&binary]);
    let path = path.trim();
    assert!(path.ends_with(".cdx.json"), "it prints the path it wrote: {path}");
    let bom: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("the SBOM")).expect("JSON");
    assert_eq!(bom["bomFormat"], "CycloneDX");
    assert_eq!(bom["specVersion"], "1.5");
    assert_eq!(bom["metadata"]["component"]["name"], "jwt-token-cleaner");
    let lock = lock_versions();
    let components = bom["components"].as_array().expect("components");
    let mut listed = BTreeSet::new();
    for component in components {
        let (name, version) = (component["name"].as_str().unwrap(), component["version"].as_str().unwrap());
        assert!(lock.get(name).is_some_and(|v| v.contains(version)), "{name} {version} is not Cargo.lock's");
        assert_eq!(component["purl"], format!("pkg:cargo/{name}@{version}"));
        assert!(!AUTH_API_ONLY.contains(&name), "auth-api's {name} is in the SBOM");
        listed.insert(format!("{name} {version}"));
    }
    let mut expected = cargo_tree();
    expected.remove(&format!("jwt-token-cleaner {}", env!("CARGO_PKG_VERSION")));
    let missing: Vec<_> = expected.difference(&listed).cloned().collect();
    assert!(missing.is_empty(), "the SBOM misses crates of the cleaner's tree: {missing:?}");
}
