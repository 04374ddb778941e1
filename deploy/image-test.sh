#!/usr/bin/env bash
# `make image-test`: the Dockerfile's image built and run here, with podman, as a deployment would run it.
#
#  1. a Debian 12 + Python 3.11 base from debootstrap (deploy/make-base.sh; cached in artifacts/image/base)
#  2. a wheelhouse of requirements.txt made with this machine's pip configuration (artifacts/image/wheelhouse)
#  3. the image, built offline from both (BASE=, WHEELS=, OFFLINE=1), then built again on a warm cache
#  4. a container on a fresh named volume: waits for its HEALTHCHECK to say healthy
#  5. Chromium opens the Build and Train pages and trains a short run from the Train page to `completed`;
#     `python -m archs runs --json` in the container lists it
#  6. the container is stopped and removed, a new one starts on the same volume: healthy again, the Runs page
#     and `runs --json` still list the run
#  7. no process of either container runs as root
# and prints its figures. Exit status 1 on any failure; the containers and the volume it made are removed.
#
# Settings (environment): IMAGE (localhost/archs-lab:test), IMAGE_BASE (localhost/archs-base:bookworm),
# PY (the Python with playwright: .venv/bin/python), IMAGE_CONTEXT (the folder to build from: this checkout;
# e.g. a `git worktree` of HEAD while the working tree is mid-change), IMAGE_TEST_COLD=1 (first build with
# --no-cache), IMAGE_TEST_NETWORK=host (--network=host on port 8501 instead of a published free port),
# IMAGE_STORAGE_DRIVER (e.g. vfs, where overlay is refused), IMAGE_TEST_KEEP=1 (leave the last container and
# the volume running, to look at).
#
# Podman in this sandbox: --runtime runc (crun is refused), --cgroup-manager cgroupfs (no systemd), nofile and
# nproc limits of 1024 (the defaults are over the sandbox's hard limits: "error setting rlimit type 7"),
# --format docker at build time (OCI images drop HEALTHCHECK). With no systemd there is no healthcheck timer
# (podman logs "unable to get systemd connection to add healthchecks"), so this script runs the image's check
# by hand: `podman healthcheck run` until it passes, which also sets the container's health to healthy.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CONTEXT=$(cd "${IMAGE_CONTEXT:-$ROOT}" && pwd)
WORK=$ROOT/artifacts/image
SHOTS=$WORK/screenshots
LOG=$WORK/image-test.log
IMAGE=${IMAGE:-localhost/archs-lab:test}
BASE_IMAGE=${IMAGE_BASE:-localhost/archs-base:bookworm}
PY=${PY:-$ROOT/.venv/bin/python}
[[ $PY = /* ]] || PY=$ROOT/$PY
WHEELHOUSE=$WORK/wheelhouse
TAG=archs-image-test-$$
STATE=$WORK/browser-state-$$.json               # the browser's cookies (its key): one owner across restarts
LIMITS=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
PODMAN=(podman --cgroup-manager cgroupfs --runtime runc)
[ -n "${IMAGE_STORAGE_DRIVER:-}" ] && PODMAN+=(--storage-driver "$IMAGE_STORAGE_DRIVER")
CONTAINERS=()
VOLUME=""
declare -A FIG

mkdir -p "$WORK" "$SHOTS"
: >"$LOG"
say() { printf '%s\n' "image-test: $*"; }
fail() {
  say "FAILED: $*" >&2
  say "podman's messages are in $LOG; screenshots in $SHOTS" >&2
  exit 1
}
now() { date +%s.%N; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(now)"; }
pod() { "${PODMAN[@]}" "$@" 2>>"$LOG"; }  # podman, its complaints into the log (no systemd: it has some)

cleanup() {
  local rc=$?
  if [ "${IMAGE_TEST_KEEP:-0}" = 1 ] && [ ${#CONTAINERS[@]} -gt 0 ]; then
    say "kept: container ${CONTAINERS[-1]}, volume $VOLUME (podman rm -f ${CONTAINERS[-1]}; podman volume rm $VOLUME)"
    return $rc
  fi
  for c in "${CONTAINERS[@]}"; do pod rm -f -t 5 "$c" >/dev/null || true; done
  [ -n "$VOLUME" ] && { pod volume rm -f "$VOLUME" >/dev/null || true; }
  return $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------------------------------ tools
need=()
command -v podman >/dev/null || need+=(podman)
command -v runc >/dev/null || need+=(runc)
command -v debootstrap >/dev/null || need+=(debootstrap)
[ -x /usr/libexec/podman/catatonit ] || command -v catatonit >/dev/null || need+=(catatonit)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing ${need[*]} (apt-get)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >>"$LOG" 2>&1 ||
      { apt-get update -q >>"$LOG" 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >>"$LOG" 2>&1; } ||
      fail "could not install ${need[*]}"
  else
    fail "missing ${need[*]}: install them (Debian: apt-get install podman runc debootstrap catatonit)"
  fi
fi
command -v chromium >/dev/null || command -v chromium-browser >/dev/null ||
  fail "no chromium on PATH (make browser, or apt-get install -y chromium)"
"$PY" -c "import playwright.sync_api" 2>/dev/null || fail "$PY has no playwright (make install-test)"
if ! pod info >/dev/null && [ -z "${IMAGE_STORAGE_DRIVER:-}" ]; then
  say "podman refuses its default storage driver here: using vfs"
  PODMAN+=(--storage-driver vfs)
  pod info >/dev/null || fail "podman info fails, also with --storage-driver vfs"
fi

# ------------------------------------------------------------------------------------------ base
start=$(now)
if pod image exists "$BASE_IMAGE"; then
  FIG[base]="$BASE_IMAGE, already there"
else
  PODMAN="${PODMAN[*]}" bash "$ROOT/deploy/make-base.sh" "$BASE_IMAGE" "$WORK/base" || fail "no base image"
  FIG[base]="$BASE_IMAGE, made in $(since "$start") s"
fi
say "base: ${FIG[base]}"

# ------------------------------------------------------------------------------------------ wheelhouse
# pip as configured on this machine (pip config list: its index, find-links and extra indexes), so torch is
# the local CPU wheel. Remade only when requirements.txt changes.
start=$(now)
stamp=$WHEELHOUSE/.requirements.sha256
want=$(sha256sum "$CONTEXT/requirements.txt" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  mkdir -p "$WHEELHOUSE"
  nice "$PY" -m pip wheel -q --disable-pip-version-check -r "$CONTEXT/requirements.txt" -w "$WHEELHOUSE" \
    >>"$LOG" 2>&1 || fail "pip wheel -r requirements.txt failed (see $LOG)"
  echo "$want" >"$stamp"
  FIG[wheels]="made in $(since "$start") s"
else
  FIG[wheels]="already there"
fi
FIG[wheels]+=", $(find "$WHEELHOUSE" -name '*.whl' | wc -l) wheels, $(du -sh "$WHEELHOUSE" | cut -f1)"
say "wheelhouse: ${FIG[wheels]}"
wheels_arg=artifacts/image/wheelhouse
if [ "$CONTEXT" != "$ROOT" ]; then  # the build context must hold the wheelhouse: hard links into it
  rm -rf "${CONTEXT:?}/$wheels_arg" && mkdir -p "$CONTEXT/artifacts/image"
  cp -al "$WHEELHOUSE" "$CONTEXT/$wheels_arg" 2>/dev/null || cp -a "$WHEELHOUSE" "$CONTEXT/$wheels_arg"
fi

# ------------------------------------------------------------------------------------------ build
build() {  # build LOGFILE [extra podman build options]
  local log=$1
  shift
  nice "${PODMAN[@]}" build --format docker --layers "${LIMITS[@]}" "$@" \
    -f "$ROOT/Dockerfile" --ignorefile "$ROOT/.dockerignore" \
    --build-arg BASE="$BASE_IMAGE" --build-arg WHEELS="$wheels_arg" --build-arg OFFLINE=1 \
    -t "$IMAGE" "$CONTEXT" >"$log" 2>&1
}
say "building $IMAGE from $CONTEXT (log: $WORK/build.log)"
cold=()
[ "${IMAGE_TEST_COLD:-0}" = 1 ] && cold=(--no-cache)
start=$(now)
build "$WORK/build.log" "${cold[@]}" || { tail -n 30 "$WORK/build.log" >&2; fail "podman build failed"; }
FIG[build]="$(since "$start") s ($(grep -c '^--> Using cache' "$WORK/build.log") of its steps from the cache$([ ${#cold[@]} -gt 0 ] && echo ', --no-cache'))"
start=$(now)
build "$WORK/build-warm.log" || { tail -n 30 "$WORK/build-warm.log" >&2; fail "podman build (again) failed"; }
FIG[rebuild]="$(since "$start") s"
size=$(pod image inspect --format '{{.Size}}' "$IMAGE")
FIG[size]="$size bytes ($(python3 -c "import sys; print(f'{int(sys.argv[1]) / 1e9:.2f} GB')" "$size"))"
say "build: ${FIG[build]}; again, nothing changed: ${FIG[rebuild]}; image size ${FIG[size]}"
pod image inspect --format '{{json .Config.Healthcheck}}' "$IMAGE" | grep -q '_stcore/health' ||
  fail "the image has no HEALTHCHECK on /_stcore/health (built without --format docker?)"

# ------------------------------------------------------------------------------------------ run
free_port() { python3 -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"; }
NETWORK=${IMAGE_TEST_NETWORK:-bridge}
start_container() {  # start_container NAME: on the volume; sets URL; echoes nothing
  local name=$1 port net
  if [ "$NETWORK" = host ]; then
    port=8501
    python3 -c "import socket; socket.create_server(('0.0.0.0', 8501)).close()" 2>/dev/null ||
      fail "--network=host needs port 8501 free, and it is taken"
    net=(--network=host)
  else
    port=$(free_port)
    net=(-p "127.0.0.1:$port:8501")
  fi
  CONTAINERS+=("$name")
  if ! pod run -d --init --name "$name" "${net[@]}" -v "$VOLUME:/data" "${LIMITS[@]}" "$IMAGE" >/dev/null; then
    if [ "$NETWORK" != host ]; then
      say "podman run with a published port failed here: trying --network=host"
      pod rm -f "$name" >/dev/null
      NETWORK=host
      start_container "$name"
      return
    fi
    fail "podman run failed"
  fi
  URL=http://127.0.0.1:$port
}
wait_healthy() {  # wait_healthy NAME START: runs the image's HEALTHCHECK by hand until it passes
  local name=$1 t0=$2 deadline=$(( $(date +%s) + 180 ))
  until pod healthcheck run "$name" >/dev/null; do
    [ "$(pod inspect --format '{{.State.Running}}' "$name")" = true ] ||
      { pod logs "$name" | tail -n 30 >&2; fail "container $name stopped before it was healthy"; }
    [ "$(date +%s)" -lt "$deadline" ] || { pod logs "$name" | tail -n 30 >&2; fail "$name not healthy in 180 s"; }
    sleep 0.5
  done
  local status
  status=$(pod inspect --format '{{.State.Health.Status}}' "$name")
  [ "$status" = healthy ] || fail "$name: its health check passed but podman says $status"
  since "$t0"
}
not_root() {  # not_root NAME: every process of the container, and PID 1, runs as uid 10001
  local name=$1 top uid
  top=$(pod top "$name" user huser pid args) || fail "podman top $name failed"
  echo "$top" | sed 's/^/    /'
  echo "$top" | awk 'NR > 1 && ($1 == "root" || $2 == "0") {bad = 1} END {exit bad}' ||
    fail "$name: a process runs as root"
  echo "$top" | grep -q 'streamlit run' || fail "$name: no streamlit process in podman top"
  uid=$(pod exec "$name" awk '/^Uid:/ {print $2}' /proc/1/status)
  [ "$uid" = 10001 ] || fail "$name: PID 1 has uid $uid"
}
runs_json() {  # runs_json NAME RUN: the run is listed as completed by python -m archs runs --json
  pod exec "$1" python -m archs runs --json >"$WORK/runs.json" || fail "python -m archs runs --json failed in $1"
  python3 - "$WORK/runs.json" "$2" <<'EOF' || fail "runs --json in $1 does not list run $2 as completed"
import json, sys
rows = {row["id"]: row for row in json.load(open(sys.argv[1]))["runs"]}
row = rows.get(sys.argv[2])
if row is None or row["status"] != "completed":
    print(f"runs --json: {sorted(rows)} {row and row['status']}", file=sys.stderr)
    sys.exit(1)
times = [row.get(k) for k in ("queued_at", "started_at", "finished_at")]
if all(isinstance(t, (int, float)) for t in times):
    print(f"{row['step']} steps; trained {times[2] - times[1]:.1f} s, {times[2] - times[0]:.1f} s from queued to done")
else:
    print(f"{row['step']} steps")
EOF
}

VOLUME=$TAG-data
pod volume create "$VOLUME" >/dev/null || fail "podman volume create failed"
start=$(now)
start_container "$TAG-1"
FIG[healthy]=$(wait_healthy "$TAG-1" "$start") || exit 1
say "container $TAG-1 on volume $VOLUME at $URL: healthy after ${FIG[healthy]} s"

say "browser: Build page, then Train: 1 epoch, 20 steps of seed002-inception on digits"
out=$(nice "$PY" "$ROOT/deploy/image_browser.py" train "$URL" --state "$STATE" --shots "$SHOTS") ||
  { pod logs "$TAG-1" | tail -n 30 >&2; fail "the Train page did not train a run to completed"; }
echo "$out" >>"$LOG"
RUN=$(python3 -c "import json, sys; print(json.loads(sys.argv[1])['run'])" "$out")
FIG[browser]=$(python3 -c "import json, sys; print(json.loads(sys.argv[1])['seconds_from_start_click'])" "$out")
FIG[run]=$(runs_json "$TAG-1" "$RUN") || exit 1
say "run $RUN: completed on the Train page ${FIG[browser]} s after Start; runs --json: ${FIG[run]}"
say "processes of $TAG-1:"
not_root "$TAG-1"

# ------------------------------------------------------------------------------------------ restart
start=$(now)
pod stop -t 30 "$TAG-1" >/dev/null || fail "podman stop failed"
FIG[stop]=$(since "$start")
start=$(now)
start_container "$TAG-2"
FIG[healthy2]=$(wait_healthy "$TAG-2" "$start") || exit 1
say "stopped $TAG-1 in ${FIG[stop]} s; a new container $TAG-2 on the same volume: healthy after ${FIG[healthy2]} s"
nice "$PY" "$ROOT/deploy/image_browser.py" runs "$URL" --state "$STATE" --run "$RUN" --shots "$SHOTS" >>"$LOG" ||
  fail "the Runs page of the new container does not list run $RUN as completed"
runs_json "$TAG-2" "$RUN" >/dev/null || exit 1
say "run $RUN: still there, completed (Runs page and runs --json)"
say "processes of $TAG-2:"
not_root "$TAG-2"

cat <<EOF
image-test: passed. Figures:
  base image           ${FIG[base]}
  wheelhouse           ${FIG[wheels]}
  build                ${FIG[build]}
  build again          ${FIG[rebuild]} (nothing changed)
  image size           ${FIG[size]}
  start to healthy     ${FIG[healthy]} s (fresh volume), ${FIG[healthy2]} s (new container, same volume)
  training run         ${FIG[browser]} s from Start to "completed" on the Train page; ${FIG[run]}
  stop                 ${FIG[stop]} s
  server user          uid 10001 (archs), every process
EOF
