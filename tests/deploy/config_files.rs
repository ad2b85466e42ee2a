//! fc-config.json and s.yaml against FC 3.0's documented limits (docs/fc-protocol.md), the Dockerfile's
//! essentials and .dockerignore.

use serde_json::Value;

fn read(name: &str) -> String {
    std::fs::read_to_string(format!("{}/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn fc_config() -> Value {
    serde_json::from_str(&read("fc-config.json")).expect("fc-config.json is JSON")
}

/// The FC 3.0 limits a function's resources must respect.
fn check_resources(cpu: f64, memory_mb: u64, disk_mb: u64, timeout: u64) {
    assert!((0.05..=16.0).contains(&cpu), "cpu {cpu}");
    assert!(((cpu / 0.05).round() * 0.05 - cpu).abs() < 1e-9, "cpu {cpu} is not a multiple of 0.05");
    assert!((128..=32768).contains(&memory_mb) && memory_mb.is_multiple_of(64), "memorySize {memory_mb}");
    let gb_per_vcpu = memory_mb as f64 / 1024.0 / cpu;
    // 0.05 vCPU with 128 MB is explicitly valid (2.5 GB per vCPU); the rule is 1:1 to 1:4.
    assert!((1.0..=4.0).contains(&gb_per_vcpu), "vCPU:GB ratio {gb_per_vcpu}");
    assert!([512, 10240].contains(&disk_mb), "diskSize {disk_mb}");
    assert!((1..=86400).contains(&timeout), "timeout {timeout}");
}

#[test]
fn fc_config_respects_the_documented_limits() {
    let c = fc_config();
    let f = &c["function"];
    assert_eq!(f["name"], "jwt-token-cleaner");
    assert_eq!(f["runtime"], "custom-container");
    assert!(f["handler"].as_str().is_some_and(|h| !h.is_empty()), "the API requires a handler");
    assert_eq!(f["timeout"], 60);
    assert_eq!(f["memorySize"], 128);
    assert_eq!(f["instanceConcurrency"], 1);
    assert_eq!(f["internetAccess"], true);
    check_resources(f["cpu"].as_f64().unwrap(), 128, f["diskSize"].as_u64().unwrap(), 60);

    let container = &c["container"];
    assert_eq!(container["port"], 9000);
    let health = &container["healthCheckConfig"];
    assert_eq!(health["httpGetUrl"], "/health");
    assert!((0..=120).contains(&health["initialDelaySeconds"].as_u64().unwrap()));
    assert!((1..=120).contains(&health["periodSeconds"].as_u64().unwrap()));
    assert!((1..=3).contains(&health["timeoutSeconds"].as_u64().unwrap()));
    assert!(health["failureThreshold"].as_u64().unwrap() >= 1 && health["successThreshold"].as_u64().unwrap() >= 1);

    for key in ["domain", "namespace", "imageName", "imageVersion"] {
        assert!(c["acr"][key].as_str().is_some_and(|v| !v.is_empty()), "acr.{key}");
    }
    assert_eq!(c["acr"]["namespace"], "your-namespace", "a placeholder, not anyone's registry");
    assert!(c["region"].as_str().is_some());

    let trigger = &c["trigger"];
    assert_eq!(trigger["cronExpression"].as_str().unwrap().split_whitespace().count(), 6);
    assert_eq!(trigger["enable"], true);
    assert!(trigger["payload"].is_string());

    // Every variable fc-config.json passes is in the configuration table (docs/configuration.md) (and below, the other way).
    let names: Vec<&str> = f["environmentVariables"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    let readme = read("docs/configuration.md");
    for name in &names {
        assert!(
            readme.contains(&format!("| `{name}` |")),
            "{name} is not in the configuration table (docs/configuration.md)"
        );
    }
    // And the other way: every variable of the cleaner's configuration table reaches the function, but the
    // listening port, which FC sets itself.
    let table = readme.split("\n## Configuration").nth(1).and_then(|rest| rest.split("\n## ").next()).unwrap_or("");
    let documented: Vec<&str> =
        table.lines().filter_map(|line| line.strip_prefix("| `").and_then(|rest| rest.split('`').next())).collect();
    assert!(documented.len() > 20, "the configuration table was not found: {documented:?}");
    for name in documented {
        if name != "PORT" && name != "FC_CUSTOM_LISTEN_PORT" {
            assert!(
                names.contains(&name),
                "{name} is in the configuration table (docs/configuration.md) but not passed to the function"
            );
        }
    }
    for required in ["DB_URI", "DB_NAME", "DB_PASSWORD", "MONGODB_API_URL", "MONGODB_API_KEY", "JWT_SECRET_KEY"] {
        assert!(names.contains(&required), "{required} is not passed to the function");
    }
}

#[test]
fn s_yaml_has_the_same_settings() {
    let s: serde_yaml::Value = serde_yaml::from_str(&read("s.yaml")).expect("s.yaml is YAML");
    let c = fc_config();
    assert_eq!(s["edition"], serde_yaml::Value::from("3.0.0"));
    let props = &s["resources"]["jwt-token-cleaner"]["props"];
    assert_eq!(s["resources"]["jwt-token-cleaner"]["component"], serde_yaml::Value::from("fc3"));
    for key in ["timeout", "memorySize", "diskSize", "instanceConcurrency"] {
        assert_eq!(props[key].as_u64(), c["function"][key].as_u64(), "{key}");
    }
    assert_eq!(props["cpu"].as_f64(), c["function"]["cpu"].as_f64());
    assert_eq!(props["runtime"], serde_yaml::Value::from("custom-container"));
    assert_eq!(props["customContainerConfig"]["port"].as_u64(), Some(9000));
    for hook in ["initializer", "preStop"] {
        let timeout = props["instanceLifecycleConfig"][hook]["timeout"].as_u64();
        assert_eq!(timeout, c["function"]["instanceLifecycleConfig"][hook]["timeout"].as_u64(), "{hook}");
    }
    // Every variable fc-config.json passes, and nothing else (before, s.yaml passed 12 of 33).
    let passed: Vec<&str> = props["environmentVariables"]
        .as_mapping()
        .expect("environmentVariables")
        .keys()
        .filter_map(|k| k.as_str())
        .collect();
    let expected: Vec<&str> =
        c["function"]["environmentVariables"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    for name in &expected {
        assert!(passed.contains(name), "{name} is passed by fc-config.json but not by s.yaml");
    }
    for name in &passed {
        assert!(expected.contains(name), "{name} is passed by s.yaml but not by fc-config.json");
    }
    let trigger = &props["triggers"][0];
    assert_eq!(trigger["triggerType"], serde_yaml::Value::from("timer"));
    assert_eq!(trigger["triggerName"].as_str(), c["trigger"]["name"].as_str());
    assert_eq!(trigger["triggerConfig"]["cronExpression"].as_str(), c["trigger"]["cronExpression"].as_str());
}

#[test]
fn dockerfile_is_multi_stage_locked_non_root_with_a_shell_free_healthcheck() {
    let dockerfile = read("Dockerfile");
    let instructions: Vec<&str> =
        dockerfile.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    let froms: Vec<&&str> = instructions.iter().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(froms.len(), 2, "a builder and a runtime stage");
    assert!(froms.iter().all(|f| f.contains("--platform=linux/amd64")), "amd64 only");
    assert!(froms[1].contains("distroless"), "a small runtime image: {}", froms[1]);
    assert!(dockerfile.contains("cargo auditable build --release --locked"));
    // The cargo-auditable the image is built with is the one CI builds the tested binary with.
    let pin = |text: &str, key: &str| {
        text.lines().find_map(|l| l.trim().strip_prefix(key)).map(|v| v.trim_matches('"').to_string())
    };
    assert_eq!(
        pin(&dockerfile, "ARG CARGO_AUDITABLE_VERSION="),
        pin(&read("scripts/supply-chain.sh"), "CARGO_AUDITABLE_VERSION="),
        "the Dockerfile and scripts/supply-chain.sh pin different cargo-auditable versions"
    );
    assert!(
        dockerfile.find("COPY Cargo.toml Cargo.lock").unwrap() < dockerfile.find("COPY src").unwrap(),
        "manifests first"
    );
    assert!(instructions.iter().any(|l| l.starts_with("USER ") && !l.contains("root:root") && l != &"USER root"));
    assert!(instructions.contains(&"EXPOSE 9000"));
    let health = dockerfile.find("HEALTHCHECK").expect("HEALTHCHECK");
    let health = &dockerfile[health..dockerfile[health..].find("ENTRYPOINT").map(|e| health + e).unwrap()];
    assert!(health.contains("--interval=30s"), "{health}");
    assert!(
        health.contains(r#"CMD ["/usr/local/bin/jwt-token-cleaner", "healthcheck"]"#),
        "exec form, no shell: {health}"
    );
    assert!(dockerfile.contains(r#"ENTRYPOINT ["/usr/local/bin/jwt-token-cleaner"]"#));

    // The workspace goes in as it is: no placeholder for another package's files, and only the cleaner is built.
    assert!(!dockerfile.contains("fn main() {}"), "no stub targets");
    for copied in ["COPY Cargo.toml Cargo.lock ./", "COPY crates ./crates", "COPY benches ./benches", "COPY src ./src"]
    {
        assert!(dockerfile.contains(copied), "the Dockerfile does not {copied}");
    }
    assert!(dockerfile.contains("-p jwt-token-cleaner --bin jwt-token-cleaner --target x86_64-unknown-linux-musl"));
    // Every workspace member is copied: cargo reads every member's manifest to load the workspace.
    for member in workspace_members(&read("Cargo.toml")) {
        assert!(member == "." || member.starts_with("crates/"), "{member} is not under crates/, which is copied");
    }
}

/// The `members` of the root manifest's `[workspace]`.
fn workspace_members(manifest: &str) -> Vec<String> {
    let line = manifest.lines().find(|l| l.trim_start().starts_with("members = ")).expect("a members line");
    line.split('"').skip(1).step_by(2).map(str::to_string).collect()
}

#[test]
fn the_manifest_reader_finds_every_member() {
    let members = workspace_members(&read("Cargo.toml"));
    for member in [".", "crates/shared", "crates/auth-api", "crates/test-support"] {
        assert!(members.contains(&member.to_string()), "{members:?}");
    }
}

#[test]
fn dockerignore_keeps_secrets_and_build_output_out() {
    let ignore = read(".dockerignore");
    let lines: Vec<&str> = ignore.lines().map(str::trim).collect();
    for entry in ["target/", ".git/", ".env", ".env.*", ".tools/", "tests/", "scripts/"] {
        assert!(lines.contains(&entry), "{entry} is not in .dockerignore");
    }
    for needed in ["Cargo.toml", "Cargo.lock", "src", "src/", "crates", "crates/", "benches", "benches/"] {
        assert!(!lines.contains(&needed), "{needed} is needed by the build");
    }
}

/// Every variable the cleaner's settings read is in the configuration table (docs/configuration.md), and so (by the tests above,
/// which hold the table, fc-config.json and s.yaml to each other both ways) reaches the function. The names are
/// learnt by asking: the settings are parsed from a lookup that records each name it is asked for, with both
/// backends, the legacy secret, both alerts and a trace collector set so that every conditional setting is read too. A new setting
/// that the table misses fails here.
#[test]
fn every_variable_the_settings_read_is_documented() {
    let asked = std::cell::RefCell::new(std::collections::BTreeSet::new());
    let given: std::collections::HashMap<&str, &str> = [
        ("DB_URI", "mongodb://127.0.0.1:1/"),
        ("DB_NAME", "app"),
        ("MONGODB_API_URL", "http://127.0.0.1:1/app/x/endpoint/data/v1"),
        ("MONGODB_API_KEY", "a-key-of-some-length"),
        ("JWT_SECRET_KEY", "a-secret-of-some-length-for-legacy"),
        ("CLEANUP_HEARTBEAT_URL", "http://127.0.0.1:1/ping"),
        ("CLEANUP_PUSHGATEWAY_URL", "http://127.0.0.1:1"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1"),
    ]
    .into_iter()
    .collect();
    jwt_token_cleaner::config::Settings::from_lookup(|name| {
        asked.borrow_mut().insert(name.to_string());
        given.get(name).map(|v| v.to_string())
    })
    .expect("settings");
    let asked = asked.into_inner();
    assert!(asked.len() > 20, "the settings asked for only {asked:?}");
    let readme = read("docs/configuration.md");
    for name in &asked {
        assert!(
            readme.contains(&format!("| `{name}` |")),
            "{name} is read but not in the configuration table (docs/configuration.md)"
        );
    }
}
