//! The packaging: `deploy_container.sh` against stub `docker`, `aliyun` and `jq` commands that record their
//! arguments; `fc-config.json` and `s.yaml` against FC 3.0's documented limits; the Dockerfile's essentials; the
//! README's deploy section against `--help`.

mod config_files;
mod script;
mod stubs;
