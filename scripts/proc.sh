#!/usr/bin/env bash
# Helpers for the servers the scripts start (source this file):
#   proc_free_port              print a free loopback port
#   proc_wait_port PID PORT     wait (up to 10 s) until PORT accepts connections; fail if PID exits first
#   proc_stop PID [TENTHS]      SIGTERM, wait up to TENTHS/10 s (default 100), then SIGKILL; reap it

proc_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

proc_wait_port() {
  local pid="$1" port="$2"
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then return 1; fi
    sleep 0.1
  done
  return 1
}

proc_stop() {
  local pid="$1" tenths="${2:-100}"
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 "$tenths"); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
}
