#!/usr/bin/env bash
# The project on a GPU, in two commands that fit the device machine (10 minutes a command, 15 in all):
#
#   bench/gpu_check.sh build   (~6 min) the CUDA llama-cpp-python from the shared kit into /tmp/site, while the
#                              random-weight models (mkmodel.py: tiny, 1b, 8b, F16) are written beside it
#   bench/gpu_check.sh check   (<= 6 min) a handful of runtime tests and the tiny fixtures under CUDA, the
#                              offload plan against llama.cpp's real VRAM use (3 shapes, goal: within 10%),
#                              bench/generate.py and bench/speculative.py (when present) on the 8B Q4_K_M
#                              (a random 1B of the same vocabulary as its draft), bench/vision.py on a
#                              LLaVA-1.5-shaped pair (that 8B and a CLIP-L/336 projector, random), then ONE table
#   bench/gpu_check.sh check --cpu-dry-run   the same steps on this machine's CPU build with tiny shapes,
#                              so the first GPU run is likely to work (build --cpu-dry-run checks the kit);
#                              e.g. PYTHON=/work/main/.venv/bin/python GPU_KIT=/work/shared/gpu OUT=/tmp/gc ...
#
# How to call it with the `run` tool (the machine starts bare, reaches no network, and gets the repo's
# working tree plus what `carry` names; ../shared does not travel, so copy the kit into an ignored folder):
#
#   here:    mkdir -p .gpu && cp ../shared/gpu/* .gpu/        (.gitignore ignores /.gpu/: ~8 MB travels)
#   run(command="bash bench/gpu_check.sh build", carry=[".gpu"], timeout_s=560)
#   run(command="bash bench/gpu_check.sh check", carry=[".gpu"], timeout_s=420)   <- AT ONCE after build
#
# The machine stays warm only ~30 s after a call and a fresh one is bare: call `check` immediately after
# `build` returns (no thinking in between). In case it went back anyway, `build` also returns the built
# /tmp/site, xz-compressed in 15 MB parts (site.tar.xz.aa, ...; only when under 48 MB): copy them from
# files_at into .gpu/ and `check` restores them on a fresh machine (it then writes the models itself);
# with neither, `check` stops in one line (rc 3).
# Budget: start ~1-2 min + build ~6 + check ~4-6 = under 15 minutes; nothing else fits in the same lease.
# Everything lands in $OUT (the table in gpu_check.txt, logs beside it); on the GPU the table is also the
# last thing printed, so output_tail holds it. Put the table in the closing note of issue 20.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

MODE=${1:-}
DRY=0
[[ "${2:-}" == "--cpu-dry-run" || "${1:-}" == "--cpu-dry-run" ]] && DRY=1
[[ "$MODE" == "--cpu-dry-run" ]] && MODE=${2:-}
KIT=${GPU_KIT:-$ROOT/.gpu}
[[ -f "$KIT/mkmodel.py" ]] || KIT=$ROOT/../shared/gpu
OUTDIR=${OUT:-/tmp/gpu-check-out}
WORK=${GPU_CHECK_WORK:-/tmp/gpu-check}
SITE=${GPU_SITE:-/tmp/site}  # where build-llama-cuda.sh installs (another only for testing the packing)
PY=${PYTHON:-python3}
BUDGET=${GPU_CHECK_BUDGET:-345}  # seconds check may spend before it stops starting steps
mkdir -p "$OUTDIR" "$WORK"
ROWS=$WORK/rows.txt  # $OUT brings back 8 files at most: the logs and the table go there

say() { echo "[gpu_check $(date +%T)] $*"; }
die() { echo "gpu_check: $*" >&2; exit "${2:-2}"; }
row() { echo "$1|$2|$3|$4|$5" >> "$ROWS"; }          # check | setting | figure | result | detail
left() { echo $(( BUDGET - SECONDS )); }
cap() { local l; l=$(left); (( l < $1 )) && echo $(( l > 5 ? l : 5 )) || echo "$1"; }  # a step's timeout

gguf_py() {  # gguf-py ships inside the sdist; the GPU image has no gguf package
  local g=$WORK/gguf-py
  if [[ ! -d $g ]]; then
    tar xzf "$KIT"/llama_cpp_python-*-slim.tar.gz -C "$WORK" --wildcards '*/vendor/llama.cpp/gguf-py' \
      && mv "$WORK"/llama_cpp_python-*/vendor/llama.cpp/gguf-py "$g" || die "cannot unpack gguf-py from $KIT"
  fi
  echo "$g"
}

env_path() {  # PYTHONPATH for the project's code: the CUDA build first on the GPU, the venv's on CPU
  if (( DRY )); then echo "$ROOT"; else echo "$SITE:$(gguf_py):$ROOT"; fi
}

make_models() {  # F16 models of real shapes (random weights): what the plan check and the benches load
  local shapes=${*:-tiny 1b 8b}
  for s in $shapes; do
    [[ -s $WORK/$s-F16.gguf ]] && continue
    PYTHONPATH=$(env_path) $PY "$KIT/mkmodel.py" "$WORK/$s-F16.gguf.part" "$s" && mv "$WORK/$s-F16.gguf.part" "$WORK/$s-F16.gguf"
  done
}

quantize() {  # IN-F16 -> Q4_K_M with llama.cpp's own quantizer (all threads); the F16 of the 8B is deleted after
  local s=$1
  [[ -s $WORK/$s-Q4_K_M.gguf ]] && return 0
  PYTHONPATH=$(env_path) $PY "$KIT/quantize.py" "$WORK/$s-F16.gguf" "$WORK/$s-Q4_K_M.gguf.part" Q4_K_M \
    >> "$OUTDIR/models.log" 2>&1 && mv "$WORK/$s-Q4_K_M.gguf.part" "$WORK/$s-Q4_K_M.gguf"
}

cmd_build() {
  [[ -f $KIT/build-llama-cuda.sh ]] || die "no CUDA kit in $KIT: copy ../shared/gpu into .gpu and carry it"
  if (( DRY )); then  # nothing to compile here: check the kit and write the tiny model the dry check uses
    bash -n "$KIT/build-llama-cuda.sh" && gguf_py > /dev/null && make_models tiny || die "the kit is incomplete"
    say "dry run: kit in $KIT is complete; llama_cpp here: $($PY -c 'import llama_cpp; print(llama_cpp.__version__)')"
    return 0
  fi
  gguf_py > /dev/null
  (make_models tiny 1b 8b > "$OUTDIR/models.log" 2>&1) &  # one core, beside the 16-core compile
  local writer=$!
  say "building llama-cpp-python with CUDA (about 6 minutes)"
  bash "$KIT/build-llama-cuda.sh" > "$OUTDIR/build.log" 2>&1
  local rc=$?
  tail -n 3 "$OUTDIR/build.log"
  wait "$writer" || say "writing the models failed (see models.log); check writes them again"
  ls -la "$WORK"/*.gguf 2>/dev/null
  (( rc == 0 )) || die "the CUDA build failed (build.log)" 1
  tar -C "$(dirname "$SITE")" -cf - "$(basename "$SITE")" | xz -T0 -6 > "$WORK/site.tar.xz"
  local size; size=$(stat -c %s "$WORK/site.tar.xz")
  if (( size < 48 * 1024 * 1024 )); then
    split -b 15M "$WORK/site.tar.xz" "$OUTDIR/site.tar.xz."
    say "the build, compressed: $(( size >> 20 )) MB in $OUTDIR/site.tar.xz.* (copy them into .gpu/)"
  else
    say "the build is $(( size >> 20 )) MB compressed: too large to bring back; check must follow at once"
  fi
  say "built; now run check at once: the machine keeps /tmp/site only while it stays warm"
}

cmd_check() {
  : > "$ROWS"
  local PP; PP=$(env_path)
  if (( ! DRY )) && [[ ! -d $SITE/llama_cpp ]]; then
    if compgen -G "$KIT/site.tar.xz.*" > /dev/null; then  # a fresh machine: the build that build brought back
      say "restoring the CUDA build from $KIT/site.tar.xz.*"
      cat "$KIT"/site.tar.xz.* | xz -d | tar -C "$(dirname "$SITE")" -xf - || die "cannot restore the build from $KIT" 3
    else
      die "no CUDA build in $SITE: this is a fresh machine; run build, then check at once" 3
    fi
  fi
  local info
  info=$(PYTHONPATH=$PP $PY -c 'import llama_cpp; print(llama_cpp.__version__, llama_cpp.llama_supports_gpu_offload())') \
    || die "llama_cpp does not import with PYTHONPATH=$PP" 1
  local card="CPU (dry run)"
  (( DRY )) || card=$(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null | head -1)
  row "machine" "$card" "llama_cpp ${info% *}" "$([[ ${info#* } == True ]] && echo 'GPU offload' || echo 'CPU build')" "$(nproc) cores"
  (( DRY )) || [[ ${info#* } == True ]] || die "this llama_cpp has no GPU offload: the build did not take" 1

  # models: the F16s from build (written again if missing), quantized while the tests run
  local big=8b draft=1b
  if (( DRY )); then big=tiny; draft=tiny; fi
  (make_models tiny $draft $big >> "$OUTDIR/models.log" 2>&1 && quantize $big && quantize $draft \
     && { (( DRY )) || rm -f "$WORK/$big-F16.gguf"; }) &
  local maker=$!

  say "runtime tests and the tiny fixtures ($( (( DRY )) && echo CPU || echo CUDA) build)"
  PYTHONPATH=$PP timeout "$(cap 150)" $PY -m pytest -q -p no:cacheprovider tests/test_tiny_gguf.py tests/test_llama.py \
    tests/test_worker.py tests/test_scheduler.py -k "not demo_gemma" > "$OUTDIR/tests.log" 2>&1
  local rc=$? summary
  summary=$(grep -E '(passed|failed|error)' "$OUTDIR/tests.log" | tail -1)
  row "tests" "tiny_gguf, llama, worker, scheduler" "pytest" "$( ((rc == 0)) && echo ok || echo "FAILED rc=$rc")" "${summary:-no summary (crashed: tests.log)}"
  PYTHONPATH=$PP timeout "$(cap 60)" $PY bench/gpu_probe.py fixtures "$WORK/fixtures" > "$OUTDIR/fixtures.log" 2>&1
  rc=$?
  grep '^fixture ' "$OUTDIR/fixtures.log" >> "$ROWS"
  (( rc == 0 || rc == 1 )) || row "fixtures" "0 and all layers" "load + decode" "CRASHED rc=$rc" "$(tail -1 "$OUTDIR/fixtures.log")"

  say "offload plan against llama.cpp's buffers"
  local shapes=("tiny-F16 --ctx 8192 --slots 1 --flash 1")
  wait "$maker" || row "models" "$big Q4_K_M, $draft Q4_K_M" "mkmodel + quantize" "FAILED" "see models.log"
  if (( DRY )); then
    shapes+=("tiny-Q4_K_M --ctx 8192 --slots 4 --flash 1" "tiny-Q4_K_M --ctx 4096 --slots 2 --flash 0")
  else
    shapes+=("1b-Q4_K_M --ctx 8192 --slots 4 --flash 1" "8b-Q4_K_M --ctx 8192 --slots 1 --flash 0"
             "8b-Q4_K_M --ctx 8192 --slots 1 --flash 1 --card-gib 3")
  fi
  local s
  for s in "${shapes[@]}"; do
    set -- $s
    [[ -s $WORK/$1.gguf ]] || { row "plan $1" "" "" "SKIPPED" "no model"; continue; }
    PYTHONPATH=$PP timeout "$(cap 60)" $PY bench/gpu_probe.py plan "$WORK/$1.gguf" "$@" >> "$OUTDIR/plan.log" 2>&1
    rc=$?
    (( rc <= 1 )) || row "plan $1" "${*:2}" "" "CRASHED rc=$rc" "$(tail -1 "$OUTDIR/plan.log")"
  done
  grep '^plan ' "$OUTDIR/plan.log" >> "$ROWS"

  local model=$WORK/$big-Q4_K_M.gguf dmodel=$WORK/$draft-Q4_K_M.gguf
  say "bench/generate.py on $(basename "$model")"
  PYTHONPATH=$PP timeout "$(cap 150)" $PY bench/generate.py --quick --model "$model" --gpu-layers -1 \
    > "$OUTDIR/generate.log" 2>&1
  rc=$?
  bench_rows generate "$OUTDIR/generate.log" $rc

  vision "$model" "$PP"
  speculative "$model" "$dmodel" "$PP"
  table | tee "$OUTDIR/gpu_check.txt"
}

bench_rows() {  # a bench's result rows (generate.py's row(): name, ratio, goal, ok|MISSED, detail) into the table
  local name=$1 log=$2 rc=$3
  PYTHONPATH=$ROOT $PY - "$name" "$log" >> "$ROWS" <<'EOF'
import re, sys
name, log = sys.argv[1], sys.argv[2]
found = 0
for line in open(log, errors="replace"):
    # generate.py's row(): f"{name:<46} {ratio:>7.3f}  {goal:<8} {ok:<6}  {detail}" (a goal may hold a space)
    m = re.match(r"^(.*?)\s+(-?\d+\.\d+|inf|nan)  (.{8}) (ok|MISSED)\s*(.*)$", line.rstrip())
    if m and not line.startswith("figure"):
        found += 1
        figure, ratio, goal, result, detail = (g.strip() for g in m.groups())
        print(f"{name}|{figure}|{ratio}{', goal ' + goal if goal else ''}|{result}|{detail}")
if not found:
    tail = [l.strip() for l in open(log, errors="replace") if l.strip()][-3:]
    for l in tail or ["(no output)"]:
        print(f"{name}|output||-|{l[:160]}")
EOF
  if grep -q '^Traceback' "$log" || (( rc > 1 )); then  # a crash (rc 1 alone: a goal missed)
    row "$name" "stopped early" "" "FAILED rc=$rc" "$(grep -v '^ ' "$log" | tail -1 | cut -c1-160)"
  fi
}

table() {  # the rows as one aligned table
  $PY - "$ROWS" <<'EOF'
import sys
rows = [line.rstrip("\n").split("|", 4) for line in open(sys.argv[1]) if line.strip()]
rows = [r + [""] * (5 - len(r)) for r in rows]
head = ["check", "setting", "figure", "result", "detail"]
widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
for r in [head, ["-" * w for w in widths] + ["-" * 6], *rows]:
    print("  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4])
EOF
}

vision() {  # bench/vision.py: time to first token with an image, bare mtmd / llamadeck, and the 2nd turn
  # the text model with a projector of the test fixture's kind at CLIP-L/336's shape (LLaVA 1.5's tower: 576
  # image tokens, 1024 wide, 23 blocks run, ~0.6 GB F16), random weights; the dry run takes a small tower
  local model=$1 PP=$2 rc args=(--quick --model "$1" --gpu-layers -1 --width 1024 --layers 23)
  (( DRY )) && args=(--quick --model "$model" --width 128 --layers 2 --repeats 1)
  [[ -s $model ]] || { row "vision" "" "" "SKIPPED" "no model"; return; }
  say "bench/vision.py ${args[*]}"
  PYTHONPATH=$PP timeout "$(cap 120)" $PY bench/vision.py "${args[@]}" > "$OUTDIR/vision.log" 2>&1
  rc=$?
  bench_rows vision "$OUTDIR/vision.log" $rc
}

speculative() {  # bench/speculative.py (the speculative-decoding helper's), given the flags its --help names
  local model=$1 dmodel=$2 PP=$3
  if [[ ! -f bench/speculative.py ]]; then
    row "speculative" "bench/speculative.py" "" "PENDING" "not in this tree yet"
    return
  fi
  local args=() help rc
  help=$(PYTHONPATH=$PP timeout 30 $PY bench/speculative.py --help 2>&1)
  [[ $help == *--quick* ]] && args+=(--quick)
  [[ $help == *--model* ]] && args+=(--model "$model")
  [[ $help == *--draft* ]] && args+=(--draft "$dmodel")
  [[ $help == *--gpu-layers* ]] && args+=(--gpu-layers -1)
  say "bench/speculative.py ${args[*]}"
  PYTHONPATH=$PP timeout "$(cap 150)" $PY bench/speculative.py "${args[@]}" > "$OUTDIR/speculative.log" 2>&1
  rc=$?
  bench_rows speculative "$OUTDIR/speculative.log" $rc
}

[[ "${BASH_SOURCE[0]}" == "$0" ]] || return 0  # sourced (tests of the functions): define, do not run
case "$MODE" in
  build) cmd_build ;;
  check) cmd_check ;;
  *) sed -n '2,/^set -uo/p' "$0" | sed '$d'; exit 2 ;;
esac
