//! docs/compatibility.md must list every command and config option ferrokv has as
//! supported ("yes" or "partial"), so the page cannot fall behind the code.

use std::collections::HashMap;

fn doc_rows() -> HashMap<String, String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/compatibility.md");
    let text = std::fs::read_to_string(path).expect("docs/compatibility.md exists");
    let mut rows = HashMap::new();
    for line in text.lines().filter(|l| l.starts_with("| ")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // Commands: | NAME | group | status | notes |; options: | name | status | notes |
        let status = if cells.len() >= 6 { cells[3] } else { cells[2] };
        rows.insert(cells[1].to_string(), status.to_string());
    }
    rows
}

fn listed_as_supported(rows: &HashMap<String, String>, name: &str) -> bool {
    rows.get(name).is_some_and(|s| s == "yes" || s == "partial")
}

#[test]
fn every_command_is_listed_as_supported() {
    let rows = doc_rows();
    let mut missing = Vec::new();
    for spec in ferrokv_commands::table::all() {
        let name = spec.name.to_uppercase();
        if !listed_as_supported(&rows, &name) {
            missing.push(name);
        }
        for sub in spec.subcommands {
            let name = sub.name.to_uppercase().replace('|', " ");
            if !listed_as_supported(&rows, &name) {
                missing.push(name);
            }
        }
    }
    assert!(missing.is_empty(), "regenerate docs/compatibility.md (docs/tools/compat.py); missing: {missing:?}");
}

#[test]
fn every_config_option_is_listed_as_supported() {
    let rows = doc_rows();
    let missing: Vec<&str> =
        ferrokv_server::config::OPTIONS.iter().map(|o| o.name).filter(|n| !listed_as_supported(&rows, n)).collect();
    assert!(missing.is_empty(), "regenerate docs/compatibility.md (docs/tools/compat.py); missing: {missing:?}");
}
