#!/usr/bin/env bash
# Builds the jwt-token-cleaner image, pushes it to Alibaba Cloud Container Registry and creates or updates the
# Function Compute 3.0 function and its timer trigger. Run it from the repository root. See --help.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: ./deploy_container.sh [options]

Build the image, push it to ACR, then create or update the FC 3.0 function and its timer trigger,
as configured in fc-config.json.

Options:
  --skip-build     do not build or push: deploy the image already in the registry
  --skip-deploy    build and push only: do not touch the function or the trigger
  --cron "EXPR"    the timer's schedule: 6 fields "Seconds Minutes Hours Day-of-month Month Day-of-week" (UTC),
                   optionally prefixed "CRON_TZ=Asia/Shanghai ", or "@every 30m"
                   (default: trigger.cronExpression in fc-config.json)
  --dry-run        print every command and request body instead of running it, secrets as ****
                   (needs neither docker nor aliyun installed)
  -h, --help       this help

Needs: docker (build and push), aliyun 3.x with --body-file (deploy; configured with `aliyun configure`), jq.
Environment (a .env file in this directory is read first; the real environment wins):
  ACR_USERNAME, ACR_PASSWORD   registry credentials for the push (the password goes to docker on stdin)
  IMAGE_VERSION                overrides acr.imageVersion
  the function's variables     every name in function.environmentVariables that is set is passed to the function
EOF
}

die() {
  echo "deploy: error: $*" >&2
  exit 1
}

info() {
  echo "deploy: $*" >&2
}

SKIP_BUILD=false
SKIP_DEPLOY=false
DRY_RUN=false
CRON=""
while [ $# -gt 0 ]; do
  case "$1" in
    --skip-build) SKIP_BUILD=true ;;
    --skip-deploy) SKIP_DEPLOY=true ;;
    --dry-run) DRY_RUN=true ;;
    --cron)
      [ $# -ge 2 ] || die "--cron needs an expression, e.g. --cron \"0 0 * * * *\""
      CRON="$2"
      shift
      ;;
    --cron=*) CRON="${1#--cron=}" ;;
    -h | --help)
      usage
      exit 0
      ;;
    *) die "unknown option: $1 (see --help)" ;;
  esac
  shift
done

# A 6-field FC cron expression, with an optional CRON_TZ= prefix, or @every <duration>.
valid_cron() {
  local expr="$1" field count=0
  if [[ "$expr" =~ ^@every\ [0-9]+(s|m|h)([0-9]+(s|m))?$ ]]; then
    return 0
  fi
  if [[ "$expr" =~ ^CRON_TZ=[A-Za-z_]+(/[A-Za-z_+-]+)*\ (.*)$ ]]; then
    expr="${BASH_REMATCH[2]}"
  fi
  local -a fields
  read -r -a fields <<<"$expr"
  for field in "${fields[@]}"; do
    [[ "$field" =~ ^[0-9A-Za-z*?/,#-]+$ ]] || return 1
    count=$((count + 1))
  done
  [ "$count" -eq 6 ]
}

# Tools: say which one is missing and how to get it.
need() {
  command -v "$1" >/dev/null 2>&1 && return 0
  case "$1" in
    docker) die "docker is not installed: see https://docs.docker.com/engine/install/ (or use --skip-build)" ;;
    aliyun) die "aliyun (Alibaba Cloud CLI) is not installed: see https://github.com/aliyun/aliyun-cli#installation, then run 'aliyun configure' (or use --skip-deploy)" ;;
    jq) die "jq is not installed: apt-get install jq, brew install jq, or see https://jqlang.github.io/jq/download/" ;;
  esac
}
need jq
# A dry run runs neither docker nor aliyun, so it needs neither installed.
$SKIP_BUILD || $DRY_RUN || need docker
$SKIP_DEPLOY || $DRY_RUN || need aliyun

[ -f fc-config.json ] || die "fc-config.json not found: run this script from the repository root"
jq empty fc-config.json 2>/dev/null || die "fc-config.json is not valid JSON"

# The configuration is checked whole before any command runs; each message names the field.
# True when the jq filter $1 yields a value (not null or false) in fc-config.json.
q() { jq -er "$1" fc-config.json >/dev/null 2>&1; }
check_config() {
  local namespace image
  namespace="$(jq -r '.acr.namespace // ""' fc-config.json)"
  image="$(jq -r '.acr.imageName // ""' fc-config.json)"
  [ -n "$namespace" ] || die "fc-config.json: acr.namespace is empty: set your Container Registry namespace"
  [ "$namespace" != "your-namespace" ] \
    || die "fc-config.json: acr.namespace is still the placeholder \"your-namespace\": set your Container Registry namespace"
  [ -n "$image" ] || die "fc-config.json: acr.imageName is empty"
  if q '.function.vpcConfig'; then
    q '.function.vpcConfig.vpcId | select(type == "string" and . != "")' \
      || die "fc-config.json: function.vpcConfig.vpcId is missing"
    q '.function.vpcConfig.vSwitchIds | select(type == "array" and length > 0 and all(type == "string" and . != ""))' \
      || die "fc-config.json: function.vpcConfig.vSwitchIds is missing or empty (at least one vSwitch in the VPC)"
    q '.function.vpcConfig.securityGroupId | select(type == "string" and . != "")' \
      || die "fc-config.json: function.vpcConfig.securityGroupId is missing (a security group that reaches the database)"
  fi
  if q '.function.logConfig'; then
    q '.function.logConfig.project | select(type == "string" and . != "")' \
      || die "fc-config.json: function.logConfig.project is missing"
    q '.function.logConfig.logstore | select(type == "string" and . != "")' \
      || die "fc-config.json: function.logConfig.logstore is missing"
    q '.function.role | select(type == "string" and . != "")' \
      || die "fc-config.json: function.logConfig needs function.role: FC writes to Log Service with the function's role"
  fi
  local hook
  for hook in initializer preStop; do
    if q ".function.instanceLifecycleConfig.$hook"; then
      q ".function.instanceLifecycleConfig.$hook.timeout | select(type == \"number\" and . >= 1)" \
        || die "fc-config.json: function.instanceLifecycleConfig.$hook.timeout is missing (seconds, at least 1)"
    fi
  done
}
check_config

# .env: KEY=VALUE lines, never executed; variables already set in the environment win.
if [ -f .env ]; then
  while IFS= read -r line || [ -n "$line" ]; do
    line="${line%$'\r'}"
    [[ "$line" =~ ^[[:space:]]*(export[[:space:]]+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]] || continue
    name="${BASH_REMATCH[2]}"
    value="${BASH_REMATCH[3]}"
    if [[ "$value" =~ ^\"(.*)\"$ || "$value" =~ ^\'(.*)\'$ ]]; then
      value="${BASH_REMATCH[1]}"
    fi
    [ -n "${!name+set}" ] || export "$name=$value"
  done <.env
  info "read .env"
fi

cfg() {
  jq -er "$1" fc-config.json 2>/dev/null || die "fc-config.json: $1 is missing"
}
REGION="$(cfg .region)"
FUNCTION="$(cfg .function.name)"
ACR_DOMAIN="$(cfg .acr.domain)"
ACR_NAMESPACE="$(cfg .acr.namespace)"
IMAGE_NAME="$(cfg .acr.imageName)"
IMAGE_VERSION="${IMAGE_VERSION:-$(cfg .acr.imageVersion)}"
TRIGGER="$(cfg .trigger.name)"
CRON="${CRON:-$(cfg .trigger.cronExpression)}"
IMAGE="$ACR_DOMAIN/$ACR_NAMESPACE/$IMAGE_NAME:$IMAGE_VERSION"

# A database or API that is reachable only inside a VPC, and a function outside any VPC: it would never reach it.
if ! jq -e '.function.vpcConfig' fc-config.json >/dev/null 2>&1; then
  for name in DB_URI MONGODB_API_URL; do
    value="${!name:-}"
    if [[ "$value" == *-vpc.* || "$value" == *.mongodb.rds.aliyuncs.com* || "$value" == *vpc.fcapp.run* ]]; then
      info "warning: $name points at a VPC-only address, but fc-config.json has no function.vpcConfig: the function will not reach it"
    fi
  done
fi

# A run ends within CLEANUP_TIME_BUDGET_SECONDS plus the cleaner's call margin (5 s, src/store/deadline.rs); a
# function timeout shorter than that would let FC kill a run mid-batch, its report lost.
FUNCTION_TIMEOUT="$(cfg .function.timeout)"
BUDGET="${CLEANUP_TIME_BUDGET_SECONDS:-50}"
[[ "$BUDGET" =~ ^[0-9]+$ ]] || die "CLEANUP_TIME_BUDGET_SECONDS=\"$BUDGET\" is not a whole number of seconds"
[ $((BUDGET + 5)) -le "$FUNCTION_TIMEOUT" ] \
  || die "CLEANUP_TIME_BUDGET_SECONDS ($BUDGET s) plus the 5 s call margin does not fit function.timeout ($FUNCTION_TIMEOUT s) in fc-config.json: lower the budget or raise the timeout"

valid_cron "$CRON" || die "invalid cron expression \"$CRON\": FC wants 6 fields (Seconds Minutes Hours Day-of-month Month Day-of-week), e.g. \"0 0 * * * *\" for hourly"

# Every secret value a printed command could hold: replaced by **** in anything --dry-run prints.
SECRETS=()
for name in DB_PASSWORD MONGODB_API_KEY JWT_SECRET_KEY ACR_PASSWORD; do
  [ -n "${!name:-}" ] && SECRETS+=("${!name}")
done
# The password inside a connection string: mongodb[+srv]://user:PASSWORD@host.
if [[ "${DB_URI:-}" =~ ^mongodb(\+srv)?://[^:/@]*:(.+)@[^@]*$ ]]; then
  SECRETS+=("${BASH_REMATCH[2]}")
fi
mask() {
  local text="$1" secret
  for secret in "${SECRETS[@]+"${SECRETS[@]}"}"; do
    text="${text//"$secret"/****}"
  done
  printf '%s' "$text"
}

# Runs a command, or prints it (on stderr, like the progress lines, with every secret masked) with --dry-run.
run() {
  if $DRY_RUN; then
    local line
    line="$(printf ' %q' "$@")"
    printf '+%s\n' "$(mask "$line")" >&2
  else
    "$@"
  fi
}

# An aliyun call with a JSON body: the body goes in a file readable by this user alone (--body-file), so the
# function's secrets never reach argv, where any user of the machine could read them; --dry-run prints the body.
BODY_DIR=""
cleanup_bodies() {
  if [ -n "$BODY_DIR" ]; then
    rm -rf "$BODY_DIR"
  fi
}
trap cleanup_bodies EXIT
aliyun_with_body() {
  local body="$1"
  shift
  if $DRY_RUN; then
    run "$@" --body "$body"
    return 0
  fi
  [ -n "$BODY_DIR" ] || BODY_DIR="$(umask 077 && mktemp -d "${TMPDIR:-/tmp}/fc-deploy.XXXXXX")"
  local file="$BODY_DIR/body.json"
  (umask 077 && printf '%s' "$body" >"$file")
  "$@" --body-file "$file"
  local status=$?
  rm -f "$file"
  return $status
}

if ! $SKIP_BUILD; then
  [ -n "${ACR_USERNAME:-}" ] || die "ACR_USERNAME is not set (the registry user, for docker login to $ACR_DOMAIN)"
  [ -n "${ACR_PASSWORD:-}" ] || die "ACR_PASSWORD is not set (the registry password, for docker login to $ACR_DOMAIN)"
  info "building $IMAGE (linux/amd64)"
  run docker build --platform linux/amd64 -t "$IMAGE_NAME:$IMAGE_VERSION" . || die "docker build failed"
  run docker tag "$IMAGE_NAME:$IMAGE_VERSION" "$IMAGE" || die "docker tag failed"
  info "logging in to $ACR_DOMAIN as $ACR_USERNAME"
  if $DRY_RUN; then
    printf '+ docker login --username %q --password-stdin %q  # password from ACR_PASSWORD on stdin\n' \
      "$ACR_USERNAME" "$ACR_DOMAIN" >&2
  else
    printf '%s' "$ACR_PASSWORD" | docker login --username "$ACR_USERNAME" --password-stdin "$ACR_DOMAIN" >/dev/null \
      || die "docker login to $ACR_DOMAIN failed: check ACR_USERNAME and ACR_PASSWORD"
  fi
  info "pushing $IMAGE"
  run docker push "$IMAGE" || die "docker push failed"
fi

if ! $SKIP_DEPLOY; then
  # The function's environment: every listed variable that is set, then the fixed ones.
  ENV_JSON="$(jq -n '{}')"
  while IFS= read -r name; do
    if [ -n "${!name:-}" ]; then
      # The value is read by jq from the environment (env[$k]), never passed on its command line.
      export "${name?}"
      ENV_JSON="$(jq -c --arg k "$name" '. + {($k): env[$k]}' <<<"$ENV_JSON")"
    fi
  done < <(jq -r '.function.environmentVariables[]' fc-config.json)
  ENV_JSON="$(jq -c --argjson fixed "$(jq -c '.function.fixedEnvironment // {}' fc-config.json)" '. + $fixed' <<<"$ENV_JSON")"
  jq -e 'has("DB_NAME") and (has("DB_URI") or has("MONGODB_API_URL"))' <<<"$ENV_JSON" >/dev/null \
    || die "set DB_NAME and DB_URI or MONGODB_API_URL (environment or .env): the function cannot start without them"

  # The environment (secrets included) reaches jq through its own environment, not its command line.
  export DEPLOY_FUNCTION_ENV="$ENV_JSON"
  FUNCTION_BODY="$(jq -c --arg image "$IMAGE" '(env.DEPLOY_FUNCTION_ENV | fromjson) as $env |
    .function as $f | .container as $c | {
      functionName: $f.name,
      description: $f.description,
      runtime: $f.runtime,
      handler: $f.handler,
      timeout: $f.timeout,
      memorySize: $f.memorySize,
      cpu: $f.cpu,
      diskSize: $f.diskSize,
      instanceConcurrency: $f.instanceConcurrency,
      internetAccess: $f.internetAccess,
      environmentVariables: $env,
      customContainerConfig: {
        image: $image,
        port: $c.port,
        healthCheckConfig: $c.healthCheckConfig
      }
    }
    # Optional, in both the create and the update body; a key that is absent or empty is left out, never sent empty.
    + ($f | {role, vpcConfig, logConfig, instanceLifecycleConfig}
          | with_entries(select(.value != null and .value != "" and .value != {} and .value != [])))' fc-config.json)"

  API="/2023-03-30/functions"
  # GET: exit 0 = exists; an answer naming FunctionNotFound = create; anything else is an error.
  exists() {
    local out
    if $DRY_RUN; then
      run aliyun fc GET "$1" --region "$REGION"
      return 1
    fi
    if out="$(aliyun fc GET "$1" --region "$REGION" 2>&1)"; then
      return 0
    fi
    case "$out" in
      *NotFound*) return 1 ;;
      *) die "aliyun fc GET $1 failed: $out" ;;
    esac
  }

  # Updates the resource at $1 (PUT $3) when it exists, else creates it in the collection $2 (POST $4).
  upsert() {
    local path="$1" collection="$2" update_body="$3" create_body="$4" what="$5"
    if exists "$path"; then
      info "updating $what"
      aliyun_with_body "$update_body" aliyun fc PUT "$path" --region "$REGION" --header "Content-Type=application/json;" \
        >/dev/null || die "updating $what failed"
    else
      info "creating $what"
      aliyun_with_body "$create_body" aliyun fc POST "$collection" --region "$REGION" \
        --header "Content-Type=application/json;" >/dev/null || die "creating $what failed"
    fi
  }

  upsert "$API/$FUNCTION" "$API" "$(jq -c 'del(.functionName, .runtime)' <<<"$FUNCTION_BODY")" "$FUNCTION_BODY" \
    "function $FUNCTION"

  # triggerConfig is a JSON-encoded string.
  TRIGGER_CONFIG="$(jq -c --arg cron "$CRON" '{cronExpression: $cron, enable: .trigger.enable, payload: .trigger.payload}' fc-config.json)"
  upsert "$API/$FUNCTION/triggers/$TRIGGER" "$API/$FUNCTION/triggers" \
    "$(jq -nc --arg config "$TRIGGER_CONFIG" '{triggerConfig: $config}')" \
    "$(jq -nc --arg name "$TRIGGER" --arg config "$TRIGGER_CONFIG" --arg q "$(cfg .trigger.qualifier)" \
      '{triggerName: $name, triggerType: "timer", qualifier: $q, triggerConfig: $config}')" \
    "timer trigger $TRIGGER ($CRON)"
fi

DONE="Done"
if $DRY_RUN; then DONE="Dry run done: nothing was run"; fi
cat <<EOF

$DONE.
  image:     $IMAGE
  function:  https://fcnext.console.aliyun.com/$REGION/functions/$FUNCTION
  registry:  https://cr.console.aliyun.com/$REGION/instances
  schedule:  $CRON (trigger $TRIGGER)

Invoke it now (the answer is the sweep report):
  aliyun fc POST /2023-03-30/functions/$FUNCTION/invocations --region $REGION \\
    --header "x-fc-invocation-type=Sync" --header "x-fc-log-type=Tail" --body '{"dry_run": true}'
Read its logs:
  $(if jq -e '.function.logConfig' fc-config.json >/dev/null 2>&1; then
    jq -r '"Log Service: project \(.function.logConfig.project), logstore \(.function.logConfig.logstore)"' fc-config.json
  else
    echo "https://fcnext.console.aliyun.com/$REGION/functions/$FUNCTION/logs (set function.logConfig to keep them in Log Service)"
  fi)
EOF
