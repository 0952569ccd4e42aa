//! The configuration reference (docs/configuration.md) is generated from the code: it must be
//! what the code says now, and every setting must say what it does.

#[test]
fn the_configuration_reference_is_generated_from_the_code() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(sluice::cli::reference::PATH);
    let generated = sluice::cli::reference::markdown();
    if std::env::var_os("SLUICE_WRITE_REFERENCE").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is not what the code says: run scripts/config-reference and commit the result",
        sluice::cli::reference::PATH
    );
}

#[test]
fn every_setting_says_what_it_does_and_its_default() {
    let (undocumented, undefaulted) = sluice::cli::reference::gaps();
    assert!(undocumented.is_empty(), "settings without a doc comment (the reference would say nothing of them): {undocumented:?}");
    assert!(
        undefaulted.is_empty(),
        "settings that may be left out but whose default the reference cannot show (derive Serialize on its type): {undefaulted:?}"
    );
}
