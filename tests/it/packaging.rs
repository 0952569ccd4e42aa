//! The Debian package's and the container's recipes agree with the code: every file the package
//! installs exists or is written by scripts/package, the unit starts the binary where the
//! package puts it, and the container checks the health endpoint the daemon serves by default.
//! (Building them takes a release build: docs/deploy.md says how they were tried.)

use std::path::Path;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn the_package_installs_files_that_exist_and_a_unit_that_starts_its_binary() {
    let manifest: toml::Table = toml::from_str(&read("Cargo.toml")).unwrap();
    let deb = manifest["package"]["metadata"]["deb"].as_table().expect("[package.metadata.deb]");
    let script = read("scripts/package");
    let mut binary_at = None;
    for asset in deb["assets"].as_array().unwrap() {
        let (from, to) = (asset[0].as_str().unwrap(), asset[1].as_str().unwrap());
        if from == "target/release/sluice" {
            binary_at = Some(format!("/{to}sluice"));
        } else if let Some(generated) = from.strip_prefix("target/release/assets/") {
            assert!(script.contains(&format!("$assets/{generated}\"")), "scripts/package does not write {generated}");
        } else if let Some(dir) = from.strip_suffix("/*.md") {
            assert!(std::fs::read_dir(repo().join(dir)).unwrap().count() > 0, "{from}");
        } else {
            assert!(repo().join(from).exists(), "the package installs {from}, which does not exist");
        }
    }
    let unit = read(&format!("{}sluice.service", deb["maintainer-scripts"].as_str().unwrap()));
    let binary_at = binary_at.expect("the package installs the binary");
    assert!(unit.contains(&format!("ExecStart={binary_at} daemon --project /etc/sluice")), "{unit}");
    assert!(unit.contains("User=sluice") && unit.contains("StateDirectory=sluice") && unit.contains("Type=notify"), "{unit}");
    // A LoadCredential line for a file that is not there keeps the unit from starting.
    assert!(unit.lines().all(|l| !l.starts_with("LoadCredential=")), "the packaged unit must start without secrets in place");
    let postinst = read("contrib/deb/postinst");
    assert!(postinst.contains("adduser --system --group --home /var/lib/sluice") && postinst.contains("#DEBHELPER#"), "{postinst}");
    for conf in deb["conf-files"].as_array().unwrap() {
        let conf = conf.as_str().unwrap().trim_start_matches('/');
        assert!(deb["assets"].as_array().unwrap().iter().any(|a| a[1].as_str() == Some(conf)), "conffile {conf} is not installed");
    }
    // The packaged config is one the daemon loads: its state in the state directory.
    let config = read("contrib/deb/sluice.toml");
    assert!(config.contains("url = \"sqlite:///var/lib/sluice/state.db\""), "{config}");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("sluice.toml"), config.replace("/var/lib/sluice", &dir.path().display().to_string())).unwrap();
    std::fs::create_dir(dir.path().join("syncs")).unwrap();
    let check = std::process::Command::new(crate::support::sluice_bin()).args(["check", "--project"]).arg(dir.path()).output().unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
}

#[test]
fn the_container_runs_as_a_user_and_checks_the_daemons_health_endpoint() {
    let recipe = read("contrib/container/Containerfile");
    assert_eq!(recipe.lines().filter(|l| l.starts_with("FROM ")).count(), 2, "two stages: build, then run");
    let user = recipe.lines().find_map(|l| l.strip_prefix("USER ")).expect("a USER");
    assert_ne!(user.trim(), "root");
    let listen = sluice::project::config::DaemonConfig::default().listen;
    let port = listen.rsplit(':').next().unwrap();
    assert!(recipe.contains(&format!("curl -fsS http://127.0.0.1:{port}/healthz")), "the health check asks the default listen port {port}");
    assert!(recipe.contains(&format!("EXPOSE {port}")));
}
