# Sourced by .ci/run: a container engine, the local base images and the classsync image.
# The engine (Debian's docker.io) is installed and started when missing; no image registry
# needs to answer: tools/container/build-base.sh builds the bases from Debian packages.

CI_OUT=${CI_OUT:-/tmp/classsync-ci}
DOCKERD_LOG="$CI_OUT/dockerd.log"
CI_IMAGE=${CI_IMAGE:-classsync:ci}
CI_BASE_IMAGE=${CI_BASE_IMAGE:-local/python:3.11}
CI_POSTGRES_IMAGE=${CI_POSTGRES_IMAGE:-local/postgres:15}
STARTED_DOCKERD_PID=""
STEP_TIMES=()
mkdir -p "$CI_OUT"

# timed NAME COMMAND...: run it and remember how long it took (printed by report_times).
timed() {
  local name=$1 start=$SECONDS status=0
  shift
  "$@" || status=$?
  STEP_TIMES+=("$name: $((SECONDS - start)) s")
  return "$status"
}

report_times() {
  local line
  if [ "${#STEP_TIMES[@]}" -gt 0 ]; then echo "step times:"; fi
  for line in "${STEP_TIMES[@]}"; do echo "  $line"; done
}

engine_answers() { timeout 10 docker info >/dev/null 2>&1; }

install_engine() {
  echo "installing Debian's docker.io and debootstrap"
  apt-get update -q >"$CI_OUT/apt.log" 2>&1
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    docker.io debootstrap >>"$CI_OUT/apt.log" 2>&1 || {
    tail -n 20 "$CI_OUT/apt.log"
    return 1
  }
}

# No bridge and no iptables rules: containers use the host network, tests dial 127.0.0.1.
start_engine() {
  engine_answers && { echo "container engine already answers"; return 0; }
  if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then
    install_engine || { echo "FAIL: could not install docker.io (see $CI_OUT/apt.log)"; return 1; }
  fi
  dockerd --bridge=none --iptables=false >"$DOCKERD_LOG" 2>&1 &
  STARTED_DOCKERD_PID=$!
  local waited=0
  until engine_answers; do
    if ! kill -0 "$STARTED_DOCKERD_PID" 2>/dev/null || [ "$waited" -ge 60 ]; then
      echo "FAIL: dockerd did not start (waited ${waited} s); last lines of $DOCKERD_LOG:"
      tail -n 20 "$DOCKERD_LOG"
      return 1
    fi
    sleep 1
    waited=$((waited + 1))
  done
  echo "dockerd started (pid $STARTED_DOCKERD_PID, log $DOCKERD_LOG)"
}

# Containers the testcontainers fixtures left behind after an interrupted run, then our dockerd.
stop_engine() {
  if engine_answers; then
    docker ps -aq --filter label=org.testcontainers.lang=python | xargs -r docker rm -f >/dev/null
  fi
  if [ -n "$STARTED_DOCKERD_PID" ]; then
    kill "$STARTED_DOCKERD_PID" 2>/dev/null && wait "$STARTED_DOCKERD_PID" 2>/dev/null || true
  fi
}

build_images() {
  timed "base images (debootstrap + python + postgresql; reused by tag)" \
    env PYTHON_IMAGE="$CI_BASE_IMAGE" POSTGRES_IMAGE="$CI_POSTGRES_IMAGE" tools/container/build-base.sh
  timed "classsync image (wheelhouse + docker build)" \
    make image IMAGE="$CI_IMAGE" BASE_IMAGE="$CI_BASE_IMAGE"
}

# The database tests once through testcontainers: no TEST_DATABASE_URL, the local image.
# Fails when the fixtures fell back to another path (their summary line says which).
testcontainers_run() {
  env -u TEST_DATABASE_URL TESTCONTAINERS_POSTGRES_IMAGE="$CI_POSTGRES_IMAGE" \
    .venv/bin/pytest tests/integration -m "not slow" -p no:cacheprovider -q 2>&1 |
    tee "$CI_OUT/testcontainers.log"
  grep -q "PostgreSQL for tests: testcontainers" "$CI_OUT/testcontainers.log" || {
    echo "FAIL: the integration tests did not run through testcontainers (see the line above)"
    return 1
  }
}
