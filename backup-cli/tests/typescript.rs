//! The npm package's option types are generated from the core's typed
//! arguments: the checked-in `bindings/node/options.d.ts` must be exactly
//! what the generator writes today, and each operation's option names must
//! be the JSON API's (the same names the Python keywords use).

#[test]
fn the_typescript_option_types_are_generated_from_the_rust_definitions() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../bindings/node/options.d.ts");
    let text = backup_cli::typescript::options_dts();
    if std::env::var_os("LIFEBOAT_BLESS").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == text,
        "bindings/node/options.d.ts is out of date: run LIFEBOAT_BLESS=1 cargo test -p backup-cli --test typescript"
    );
    for k in [
        "sink?: string",
        "target: string",
        "drillCluster?: boolean",
        "minSize?: Size",
        "schemas?: string[]",
    ] {
        assert!(text.contains(k), "{k}");
    }
}

#[test]
fn the_clap_flags_and_the_json_options_are_the_same_fields() {
    for (op, mut ids) in backup_cli::typescript::option_ids() {
        ids.extend(["config".to_string(), "profile".to_string()]);
        ids.sort();
        let json = backup_core::ops::json::option_names(op).unwrap();
        assert_eq!(ids, json, "{op}");
    }
}
