//! The layout docs cannot drift: each crate's `# Layout` doc (in its `lib.rs`) names every module the crate
//! declares there. The last review found the cleaner's omitting four.

const CRATES: [&str; 4] =
    ["src/lib.rs", "crates/shared/src/lib.rs", "crates/auth-api/src/lib.rs", "crates/test-support/src/lib.rs"];

#[test]
fn every_crates_layout_doc_names_every_module_it_declares() {
    for lib in CRATES {
        let text = std::fs::read_to_string(format!("{}/{lib}", env!("CARGO_MANIFEST_DIR"))).expect(lib);
        let doc: String = text.lines().filter_map(|line| line.strip_prefix("//!")).collect::<Vec<_>>().join("\n");
        let layout = doc.split("# Layout").nth(1).unwrap_or_else(|| panic!("{lib} has no # Layout doc"));
        let layout = layout.split("\n # ").next().unwrap_or(layout);
        let modules = text.lines().filter_map(|line| {
            let line = line.trim();
            let rest = line.strip_prefix("pub mod ").or_else(|| line.strip_prefix("mod "))?;
            rest.strip_suffix(';')
        });
        for module in modules {
            assert!(
                layout.contains(&format!("[`{module}`]")) || layout.contains(&format!("`{module}`")),
                "{lib}: the # Layout doc does not name the module `{module}`"
            );
        }
    }
}
