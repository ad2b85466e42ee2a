//! A sandbox for one run of the deploy script: a working directory with the script and fc-config.json, and a bin
//! directory of stubs that record every call (one JSON array of arguments per line).

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use jtc_test_support::TempDir;
use std::process::{Command, Output, Stdio};

pub const PASSWORD: &str = "acr-Pa55w0rd-never-in-argv";

pub struct Sandbox {
    pub dir: PathBuf,
    pub env: HashMap<String, String>,
    /// Everything the sandbox holds; held only to be removed when the sandbox is dropped.
    _root: TempDir,
}

/// The stub: records `$0 "$@"` as a JSON array (and, after it, `@` and the content of a `--body-file`, which the
/// script removes right after the call), and stdin when asked to read it; then behaves as told.
const STUB: &str = r#"#!/bin/bash
name="$(basename "$0")"
esc() { local a="$1"; a="${a//\\/\\\\}"; a="${a//\"/\\\"}"; a="${a//$'\n'/\\n}"; printf '%s' "$a"; }
{
  printf '["%s"' "$name"
  body_file=""
  previous=""
  for a in "$@"; do
    printf ',"%s"' "$(esc "$a")"
    [ "$previous" = "--body-file" ] && body_file="$a"
    previous="$a"
  done
  if [ -n "$body_file" ]; then
    printf ',"@%s"' "$(esc "$(cat "$body_file")")"
    printf '%s' "$(stat -c %a "$body_file")" > "$STUB_LOG.mode"
  fi
  printf ']\n'
} >> "$STUB_LOG"
if [ "$name" = docker ] && [[ " $* " == *" --password-stdin "* ]]; then
  cat > "$STUB_LOG.stdin"
fi
if [ "$name" = docker ] && [ "${1:-}" = "${STUB_DOCKER_FAIL:-none}" ]; then
  echo "stub docker: $1 failed" >&2; exit 1
fi
if [ "$name" = aliyun ] && [ "${2:-}" = GET ]; then
  case "$3" in
    */triggers/*) [ "${STUB_TRIGGER_EXISTS:-0}" = 1 ] && { echo '{}'; exit 0; }
                  echo "ERROR: SDK.ServerError ErrorCode: TriggerNotFound" >&2; exit 1 ;;
    *) [ "${STUB_FUNCTION_EXISTS:-0}" = 1 ] && { echo '{}'; exit 0; }
       [ -n "${STUB_GET_ERROR:-}" ] && { echo "ERROR: $STUB_GET_ERROR" >&2; exit 1; }
       echo "ERROR: SDK.ServerError ErrorCode: FunctionNotFound" >&2; exit 1 ;;
  esac
fi
if [ "$name" = jq ]; then exec "$REAL_JQ" "$@"; fi
echo '{}'
"#;

fn real_jq() -> String {
    for candidate in ["/usr/bin/jq", "/usr/local/bin/jq", "/bin/jq"] {
        if Path::new(candidate).exists() {
            return candidate.to_string();
        }
    }
    panic!("jq is needed by deploy_container.sh and its tests: apt-get install jq");
}

impl Sandbox {
    /// A sandbox with stubs for `tools` (some of docker, aliyun, jq).
    pub fn new(tools: &[&str]) -> Self {
        let root = TempDir::new("jtc-deploy");
        let (dir, bin) = (root.join("repo"), root.join("bin"));
        fs::create_dir_all(&dir).unwrap();
        fs::create_dir_all(root.join("tmp")).unwrap();
        fs::create_dir_all(&bin).unwrap();
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        fs::copy(manifest.join("deploy_container.sh"), dir.join("deploy_container.sh")).unwrap();
        // The checked-in config with a real namespace in place of the placeholder, as a user sets it.
        let config = fs::read_to_string(manifest.join("fc-config.json")).unwrap();
        fs::write(dir.join("fc-config.json"), config.replace("\"your-namespace\"", "\"team-ns\"")).unwrap();
        for tool in tools {
            let path = bin.join(tool);
            fs::write(&path, STUB).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        }
        // Only what the script needs from the system, so that a real docker or aliyun elsewhere is never found.
        for tool in ["bash", "cat", "basename", "seq", "env", "mktemp", "rm", "stat"] {
            for prefix in ["/usr/bin", "/bin"] {
                let real = Path::new(prefix).join(tool);
                if real.exists() && !bin.join(tool).exists() {
                    std::os::unix::fs::symlink(&real, bin.join(tool)).unwrap();
                }
            }
        }
        let env: HashMap<String, String> = [
            ("PATH", bin.display().to_string()),
            ("HOME", root.display().to_string()),
            ("STUB_LOG", root.join("calls.log").display().to_string()),
            ("REAL_JQ", real_jq()),
            ("ACR_USERNAME", "deployer".into()),
            ("ACR_PASSWORD", PASSWORD.into()),
            ("DB_URI", "mongodb://db.example:27017".into()),
            ("DB_NAME", "app".into()),
            ("DB_PASSWORD", "db-secret".into()),
            ("TMPDIR", root.join("tmp").display().to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Self { dir, env, _root: root }
    }

    pub fn run(&self, args: &[&str]) -> Output {
        Command::new("/bin/bash")
            .arg("./deploy_container.sh")
            .args(args)
            .current_dir(&self.dir)
            .env_clear()
            .envs(&self.env)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Every recorded call, as its argument vector.
    pub fn calls(&self) -> Vec<Vec<String>> {
        let log = fs::read_to_string(&self.env["STUB_LOG"]).unwrap_or_default();
        log.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad record {l}: {e}"))).collect()
    }

    /// Changes the sandbox's fc-config.json.
    pub fn edit_config(&self, edit: impl FnOnce(&mut serde_json::Value)) {
        let path = self.dir.join("fc-config.json");
        let mut config: serde_json::Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        edit(&mut config);
        fs::write(path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    }

    /// What is left in the sandbox's TMPDIR (the script's body files must be gone).
    pub fn temp_left(&self) -> Vec<String> {
        let tmp = Path::new(&self.env["TMPDIR"]);
        fs::read_dir(tmp)
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path().display().to_string()).collect())
            .unwrap_or_default()
    }

    /// The permission bits of the last body file, as the stub saw it.
    pub fn body_file_mode(&self) -> Option<String> {
        fs::read_to_string(format!("{}.mode", self.env["STUB_LOG"])).ok()
    }

    pub fn calls_to(&self, tool: &str) -> Vec<Vec<String>> {
        self.calls().into_iter().filter(|c| c[0] == tool).collect()
    }

    pub fn stdin_of_login(&self) -> Option<String> {
        fs::read_to_string(format!("{}.stdin", self.env["STUB_LOG"])).ok()
    }
}
