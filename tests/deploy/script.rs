//! deploy_container.sh: create and update paths, skips, bad input, missing tools and credentials, secrets.

use serde_json::Value;

use crate::stubs::{Sandbox, PASSWORD};

const IMAGE: &str = "registry.cn-shanghai.aliyuncs.com/team-ns/jwt-token-cleaner:latest";

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

/// The body of a recorded aliyun call (the content of its `--body-file`, recorded by the stub), parsed.
fn body(call: &[String]) -> Value {
    let content = call.iter().find_map(|a| a.strip_prefix('@')).expect("a --body-file");
    serde_json::from_str(content).expect("body is JSON")
}

/// The argument vector as the process list shows it (without the stub's record of the body file's content).
fn argv(call: &[String]) -> Vec<&String> {
    call.iter().filter(|a| !a.starts_with('@')).collect()
}

fn method_and_path(call: &[String]) -> (String, String) {
    (call[2].clone(), call[3].clone())
}

/// No secret on any command line: not the registry password, not the function's own secrets (those travel in
/// a body file readable by the user alone, removed right after).
fn assert_no_secret_in_argv(sandbox: &Sandbox) {
    for call in sandbox.calls() {
        for secret in [PASSWORD, "db-secret"] {
            assert!(!argv(&call).iter().any(|a| a.contains(secret)), "{secret} in argv: {call:?}");
        }
    }
    assert!(sandbox.temp_left().is_empty(), "body files left behind: {:?}", sandbox.temp_left());
}

#[test]
fn create_path_builds_pushes_and_creates_function_and_trigger() {
    let sandbox = Sandbox::new(&["docker", "aliyun", "jq"]);
    let out = sandbox.run(&[]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let docker = sandbox.calls_to("docker");
    assert_eq!(docker[0][1..4], ["build", "--platform", "linux/amd64"]);
    assert_eq!(docker[1], ["docker", "tag", "jwt-token-cleaner:latest", IMAGE]);
    assert_eq!(
        docker[2],
        ["docker", "login", "--username", "deployer", "--password-stdin", "registry.cn-shanghai.aliyuncs.com"]
    );
    assert_eq!(docker[3], ["docker", "push", IMAGE]);
    assert_eq!(sandbox.stdin_of_login().as_deref(), Some(PASSWORD), "the password goes on stdin");

    let aliyun: Vec<(String, String)> = sandbox.calls_to("aliyun").iter().map(|c| method_and_path(c)).collect();
    assert_eq!(
        aliyun,
        [
            ("GET".into(), "/2023-03-30/functions/jwt-token-cleaner".into()),
            ("POST".into(), "/2023-03-30/functions".into()),
            ("GET".into(), "/2023-03-30/functions/jwt-token-cleaner/triggers/jwt-cleanup-hourly".into()),
            ("POST".into(), "/2023-03-30/functions/jwt-token-cleaner/triggers".into()),
        ]
    );
    let calls = sandbox.calls_to("aliyun");
    let function = body(&calls[1]);
    assert_eq!(function["functionName"], "jwt-token-cleaner");
    assert_eq!(function["runtime"], "custom-container");
    assert_eq!(function["handler"], "not-used");
    assert_eq!(function["timeout"], 60);
    assert_eq!(function["memorySize"], 128);
    assert_eq!(function["instanceConcurrency"], 1);
    assert_eq!(function["customContainerConfig"]["image"], IMAGE);
    assert_eq!(function["customContainerConfig"]["port"], 9000);
    assert_eq!(function["customContainerConfig"]["healthCheckConfig"]["httpGetUrl"], "/health");
    let env = &function["environmentVariables"];
    assert_eq!(env["DB_URI"], "mongodb://db.example:27017");
    assert_eq!(env["DB_NAME"], "app");
    assert_eq!(env["LOG_FORMAT"], "json");
    assert!(env.get("ACR_PASSWORD").is_none() && env.get("ACR_USERNAME").is_none(), "{env}");
    assert!(env.get("MONGODB_API_URL").is_none(), "unset variables are not passed: {env}");
    assert_eq!(env["DB_PASSWORD"], "db-secret", "secrets reach the function through the body file");
    // The lifecycle hooks of the checked-in config; no role, VPC or log config unless configured.
    assert_eq!(function["instanceLifecycleConfig"]["initializer"]["timeout"], 10);
    assert_eq!(function["instanceLifecycleConfig"]["preStop"]["timeout"], 10);
    for absent in ["role", "vpcConfig", "logConfig"] {
        assert!(function.get(absent).is_none(), "{absent} is sent only when configured: {function}");
    }

    let trigger = body(&calls[3]);
    assert_eq!(trigger["triggerName"], "jwt-cleanup-hourly");
    assert_eq!(trigger["triggerType"], "timer");
    assert_eq!(trigger["qualifier"], "LATEST");
    let config: Value =
        serde_json::from_str(trigger["triggerConfig"].as_str().expect("triggerConfig is a string")).unwrap();
    assert_eq!(config["cronExpression"], "0 0 * * * *");
    assert_eq!(config["enable"], true);
    assert_eq!(config["payload"], "{}");

    let stdout = text(&out.stdout);
    assert!(stdout.contains("https://fcnext.console.aliyun.com/cn-shanghai/functions/jwt-token-cleaner"), "{stdout}");
    assert!(stdout.contains("aliyun fc POST /2023-03-30/functions/jwt-token-cleaner/invocations"), "{stdout}");
    assert_no_secret_in_argv(&sandbox);
    assert_eq!(sandbox.body_file_mode().as_deref(), Some("600"), "the body file is the user's alone");
}

#[test]
fn update_path_puts_function_and_trigger() {
    let mut sandbox = Sandbox::new(&["docker", "aliyun", "jq"]);
    sandbox.env.insert("STUB_FUNCTION_EXISTS".into(), "1".into());
    sandbox.env.insert("STUB_TRIGGER_EXISTS".into(), "1".into());
    let out = sandbox.run(&["--skip-build", "--cron", "CRON_TZ=Asia/Shanghai 0 30 2 * * *"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(sandbox.calls_to("docker").is_empty());
    let calls = sandbox.calls_to("aliyun");
    let methods: Vec<(String, String)> = calls.iter().map(|c| method_and_path(c)).collect();
    assert_eq!(methods[1], ("PUT".into(), "/2023-03-30/functions/jwt-token-cleaner".into()));
    assert_eq!(
        methods[3],
        ("PUT".into(), "/2023-03-30/functions/jwt-token-cleaner/triggers/jwt-cleanup-hourly".into())
    );
    let function = body(&calls[1]);
    assert!(function.get("functionName").is_none() && function.get("runtime").is_none(), "{function}");
    assert_eq!(function["customContainerConfig"]["image"], IMAGE);
    let trigger = body(&calls[3]);
    let config: Value = serde_json::from_str(trigger["triggerConfig"].as_str().unwrap()).unwrap();
    assert_eq!(config["cronExpression"], "CRON_TZ=Asia/Shanghai 0 30 2 * * *");
}

#[test]
fn skip_build_needs_neither_docker_nor_registry_credentials() {
    let mut sandbox = Sandbox::new(&["aliyun", "jq"]);
    sandbox.env.remove("ACR_PASSWORD");
    sandbox.env.remove("ACR_USERNAME");
    let out = sandbox.run(&["--skip-build"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(sandbox.calls_to("aliyun").len(), 4);
}

#[test]
fn skip_deploy_builds_and_pushes_only() {
    let sandbox = Sandbox::new(&["docker", "jq"]);
    let out = sandbox.run(&["--skip-deploy"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(sandbox.calls_to("docker").len(), 4);
    assert!(sandbox.calls_to("aliyun").is_empty());
}

#[test]
fn bad_cron_expressions_are_refused_before_anything_runs() {
    for cron in ["0 * * * *", "every hour", "0 0 * * * * *", "0 0 * * * ;rm", "@every soon"] {
        let sandbox = Sandbox::new(&["docker", "aliyun", "jq"]);
        let out = sandbox.run(&["--cron", cron]);
        assert_eq!(out.status.code(), Some(1), "{cron:?}");
        let stderr = text(&out.stderr);
        assert!(stderr.contains("invalid cron expression"), "{cron:?}: {stderr}");
        assert!(sandbox.calls_to("docker").is_empty() && sandbox.calls_to("aliyun").is_empty(), "{cron:?}");
    }
    for cron in ["@every 30m", "0 */5 * * * *", "0 0 8 ? * MON-FRI"] {
        let sandbox = Sandbox::new(&["aliyun", "jq"]);
        let out = sandbox.run(&["--skip-build", "--cron", cron]);
        assert!(out.status.success(), "{cron:?}: {}", text(&out.stderr));
    }
}

#[test]
fn missing_tools_are_named_with_how_to_install_them() {
    let sandbox = Sandbox::new(&["aliyun", "jq"]);
    let out = sandbox.run(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("docker is not installed: see https://docs.docker.com/engine/install/"));

    let sandbox = Sandbox::new(&["docker", "jq"]);
    let out = sandbox.run(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("aliyun (Alibaba Cloud CLI) is not installed"));

    let sandbox = Sandbox::new(&["docker", "aliyun"]);
    let out = sandbox.run(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("jq is not installed: apt-get install jq"));
    assert!(sandbox.calls().is_empty());
}

#[test]
fn missing_registry_credentials_stop_before_the_build() {
    let mut sandbox = Sandbox::new(&["docker", "aliyun", "jq"]);
    sandbox.env.remove("ACR_PASSWORD");
    let out = sandbox.run(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("ACR_PASSWORD is not set"), "{}", text(&out.stderr));
    assert!(sandbox.calls_to("docker").is_empty());
}

#[test]
fn missing_database_settings_stop_before_the_deploy() {
    let mut sandbox = Sandbox::new(&["aliyun", "jq"]);
    sandbox.env.remove("DB_URI");
    let out = sandbox.run(&["--skip-build"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("set DB_NAME and DB_URI or MONGODB_API_URL"));
    assert_eq!(sandbox.calls_to("aliyun").len(), 0);
}

#[test]
fn a_time_budget_that_cannot_fit_the_function_timeout_is_refused() {
    for (budget, timeout, ok) in [("55", 60, true), ("56", 60, false), ("120", 60, false), ("120", 125, true)] {
        let mut sandbox = Sandbox::new(&["aliyun", "jq"]);
        sandbox.env.insert("CLEANUP_TIME_BUDGET_SECONDS".into(), budget.into());
        sandbox.edit_config(move |c| c["function"]["timeout"] = timeout.into());
        let out = sandbox.run(&["--skip-build"]);
        if ok {
            assert!(out.status.success(), "{budget}/{timeout}: {}", text(&out.stderr));
        } else {
            assert_eq!(out.status.code(), Some(1), "{budget}/{timeout}");
            assert!(text(&out.stderr).contains("does not fit function.timeout"), "{}", text(&out.stderr));
            assert_eq!(sandbox.calls_to("aliyun").len(), 0);
        }
    }
}

#[test]
fn failures_are_clear_and_non_zero() {
    let mut sandbox = Sandbox::new(&["docker", "aliyun", "jq"]);
    sandbox.env.insert("STUB_DOCKER_FAIL".into(), "push".into());
    let out = sandbox.run(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("docker push failed"));
    assert!(sandbox.calls_to("aliyun").is_empty());

    let mut sandbox = Sandbox::new(&["aliyun", "jq"]);
    sandbox.env.insert("STUB_GET_ERROR".into(), "Forbidden.AccessDenied".into());
    let out = sandbox.run(&["--skip-build"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("Forbidden.AccessDenied"), "{}", text(&out.stderr));
    assert_eq!(sandbox.calls_to("aliyun").len(), 1, "nothing is created after an unexpected error");
}

#[test]
fn dot_env_is_read_and_the_environment_wins() {
    let mut sandbox = Sandbox::new(&["aliyun", "jq"]);
    sandbox.env.remove("DB_NAME");
    std::fs::write(
        sandbox.dir.join(".env"),
        "# comment\nDB_NAME=from_env_file\nDB_URI=mongodb://ignored\nexport CLEANUP_BATCH_SIZE=\"2000\"\nrm -rf /\n",
    )
    .unwrap();
    let out = sandbox.run(&["--skip-build"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let env = &body(&sandbox.calls_to("aliyun")[1])["environmentVariables"];
    assert_eq!(env["DB_NAME"], "from_env_file");
    assert_eq!(env["DB_URI"], "mongodb://db.example:27017", "the real environment wins");
    assert_eq!(env["CLEANUP_BATCH_SIZE"], "2000");
}

#[test]
fn dry_run_prints_every_request_with_every_secret_masked_and_needs_no_docker_or_aliyun() {
    // Only jq on PATH: no docker, no aliyun.
    let mut sandbox = Sandbox::new(&["jq"]);
    let secrets = [
        ("DB_PASSWORD", "Db-Pa55-dry"),
        ("MONGODB_API_KEY", "Api-K3y-dry"),
        ("JWT_SECRET_KEY", "Jwt-K3y-dry-0123456789abcdef0123456789"),
        ("ACR_PASSWORD", "Acr-Pa55-dry"),
    ];
    for (name, value) in secrets {
        sandbox.env.insert(name.into(), value.into());
    }
    sandbox.env.insert("DB_URI".into(), "mongodb://svc:Uri-Pa55-dry@db.example:27017/app".into());
    sandbox.env.insert("MONGODB_API_URL".into(), "https://db-api.example/app/data/v1".into());
    let out = sandbox.run(&["--dry-run"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(sandbox.calls().iter().all(|c| c[0] == "jq"), "nothing but jq ran");
    let printed = format!("{}{}", text(&out.stdout), text(&out.stderr));
    for expected in [
        "+ docker build --platform linux/amd64",
        "+ docker login --username deployer --password-stdin",
        "+ docker push",
        "+ aliyun fc GET /2023-03-30/functions/jwt-token-cleaner",
        "+ aliyun fc POST /2023-03-30/functions",
        "--body",
        "****",
    ] {
        assert!(printed.contains(expected), "missing {expected:?} in {printed}");
    }
    for secret in secrets.iter().map(|(_, v)| *v).chain(["Uri-Pa55-dry"]) {
        assert!(!printed.contains(secret), "{secret} printed: {printed}");
    }
}

#[test]
fn vpc_log_role_and_lifecycle_settings_go_into_both_bodies() {
    let vpc = serde_json::json!({ "vpcId": "vpc-1", "vSwitchIds": ["vsw-1", "vsw-2"], "securityGroupId": "sg-1" });
    let log = serde_json::json!({
        "project": "jtc-logs", "logstore": "cleaner", "enableRequestMetrics": true,
        "enableInstanceMetrics": true, "logBeginRule": "DefaultRegex",
    });
    for exists in [false, true] {
        let mut sandbox = Sandbox::new(&["aliyun", "jq"]);
        sandbox.edit_config(|c| {
            c["function"]["vpcConfig"] = vpc.clone();
            c["function"]["logConfig"] = log.clone();
            c["function"]["role"] = "acs:ram::123:role/jtc-fc".into();
        });
        if exists {
            sandbox.env.insert("STUB_FUNCTION_EXISTS".into(), "1".into());
        }
        let out = sandbox.run(&["--skip-build"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let calls = sandbox.calls_to("aliyun");
        assert_eq!(calls[1][2], if exists { "PUT" } else { "POST" });
        let function = body(&calls[1]);
        assert_eq!(function["vpcConfig"], vpc, "{exists}");
        assert_eq!(function["logConfig"], log);
        assert_eq!(function["role"], "acs:ram::123:role/jtc-fc");
        assert_eq!(function["instanceLifecycleConfig"]["initializer"]["timeout"], 10);
        assert!(text(&out.stdout).contains("Log Service: project jtc-logs, logstore cleaner"), "{}", text(&out.stdout));
    }
}

/// A change to fc-config.json.
type ConfigEdit = Box<dyn Fn(&mut Value)>;

#[test]
fn invalid_deploy_configurations_are_refused_before_any_command() {
    let cases: Vec<(ConfigEdit, &str)> = vec![
        (
            Box::new(|c| c["function"]["vpcConfig"] = serde_json::json!({ "vpcId": "v", "securityGroupId": "sg" })),
            "function.vpcConfig.vSwitchIds",
        ),
        (
            Box::new(|c| {
                c["function"]["vpcConfig"] =
                    serde_json::json!({ "vpcId": "v", "vSwitchIds": [], "securityGroupId": "sg" })
            }),
            "function.vpcConfig.vSwitchIds",
        ),
        (
            Box::new(|c| c["function"]["vpcConfig"] = serde_json::json!({ "vpcId": "v", "vSwitchIds": ["s"] })),
            "function.vpcConfig.securityGroupId",
        ),
        (
            Box::new(|c| c["function"]["logConfig"] = serde_json::json!({ "project": "p", "logstore": "l" })),
            "function.logConfig needs function.role",
        ),
        (
            Box::new(|c| c["function"]["instanceLifecycleConfig"]["preStop"] = serde_json::json!({ "handler": "x" })),
            "function.instanceLifecycleConfig.preStop.timeout",
        ),
        (Box::new(|c| c["acr"]["namespace"] = "your-namespace".into()), "acr.namespace is still the placeholder"),
        (Box::new(|c| c["acr"]["imageName"] = "".into()), "acr.imageName is empty"),
    ];
    for (edit, expected) in cases {
        let sandbox = Sandbox::new(&["docker", "aliyun", "jq"]);
        sandbox.edit_config(edit);
        for args in [&[][..], &["--dry-run"][..]] {
            let out = sandbox.run(args);
            assert_eq!(out.status.code(), Some(1), "{expected}");
            assert!(text(&out.stderr).contains(expected), "{expected}: {}", text(&out.stderr));
            assert!(sandbox.calls().iter().all(|c| c[0] == "jq"), "{expected}: a command ran: {:?}", sandbox.calls());
        }
    }
}

#[test]
fn a_vpc_only_database_without_a_vpc_config_is_warned_about() {
    for (name, value) in [
        ("DB_URI", "mongodb://svc@dds-abc.mongodb.rds.aliyuncs.com:3717/app"),
        ("MONGODB_API_URL", "https://db-operation-xxxx.cn-shanghai-vpc.fcapp.run"),
    ] {
        let mut sandbox = Sandbox::new(&["aliyun", "jq"]);
        sandbox.env.insert(name.into(), value.into());
        let out = sandbox.run(&["--skip-build"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let stderr = text(&out.stderr);
        assert!(stderr.contains(&format!("warning: {name} points at a VPC-only address")), "{stderr}");
        let vpc = serde_json::json!({ "vpcId": "v", "vSwitchIds": ["s"], "securityGroupId": "sg" });
        sandbox.edit_config(|c| c["function"]["vpcConfig"] = vpc);
        let out = sandbox.run(&["--skip-build"]);
        assert!(!text(&out.stderr).contains("warning"), "{}", text(&out.stderr));
    }
}

#[test]
fn unknown_options_are_refused() {
    let sandbox = Sandbox::new(&["docker", "aliyun", "jq"]);
    let out = sandbox.run(&["--force"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("unknown option: --force"));
}

#[test]
fn readme_deploy_section_matches_help() {
    let sandbox = Sandbox::new(&["jq"]);
    let out = sandbox.run(&["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/deployment.md")).unwrap();
    assert!(
        readme.contains(help.trim_end()),
        "docs/deployment.md must contain the output of ./deploy_container.sh --help verbatim"
    );
}

/// `CLEANUP_TARGETS` is JSON inside an environment variable: it reaches the function's body as the same string,
/// quotes, spaces, braces and a `$` included, with nothing evaluated by the shell.
#[test]
fn cleanup_targets_json_reaches_the_function_as_written() {
    let targets = r#"[{"name": "auth", "collection": "jwt_blacklist"}, {"name": "resets", "database": "bill$ing", "collection": "password resets'", "expires_field": "created_at", "grace_seconds": 86400}]"#;
    let mut sandbox = Sandbox::new(&["docker", "aliyun", "jq"]);
    sandbox.env.insert("CLEANUP_TARGETS".into(), targets.into());
    let out = sandbox.run(&[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let calls = sandbox.calls_to("aliyun");
    let function = body(&calls[1]);
    assert_eq!(function["environmentVariables"]["CLEANUP_TARGETS"], targets);
}
