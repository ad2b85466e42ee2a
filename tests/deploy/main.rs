//! The packaging: `deploy_container.sh` against stub `docker`, `aliyun` and `jq` commands that record their
//! arguments; `fc-config.json` and `s.yaml` against FC 3.0's documented limits; the Dockerfile's essentials; the
//! README's deploy section against `--help`; and the static binary run as the image runs it (`container`).

mod config_files;
mod container;
mod layout;
mod script;
mod stubs;
mod supply_chain;
