#!/usr/bin/env bash
# The GPU measurements that experiments/gpt_shakespeare.md and diffusion_fashion_mnist.md ask for,
# as two phases that each end well inside a 10-minute command, so both fit one 30-minute device
# session (machine start included). Run from the repository root:
#
#   bash experiments/h100_runbook.sh gpt        # GPT-2 124M tokens/s (cuDNN vs XLA attention),
#                                               # then nanoGPT's full shakespeare_char recipe
#   bash experiments/h100_runbook.sh diffusion  # Fashion-MNIST flow and DDPM trained side by side
#                                               # on the one GPU, FID curves, final FID table
#                                               # (OBJECTIVES=flow or =ddpm: one alone, all the GPU;
#                                               # DTYPE=bfloat16: bf16 compute, fp32 weights)
#   bash experiments/h100_runbook.sh levers     # profiles of the GPT-2 and shakespeare_char steps,
#                                               # then one bench per speed option (~5 min)
#   bash experiments/h100_runbook.sh fast       # the recipe and both benches with today's fast
#                                               # paths, then profiles of what is left (~4 min)
#   bash experiments/h100_runbook.sh levers2    # GPT-2: embedding gradient by matmul only, bf16
#                                               # logits, each against the one-hot step (~3 min)
#   bash experiments/h100_runbook.sh levers3    # inputs-first dense gradients and steps per
#                                               # dispatch, the CPU's defaults, on the GPU (~3 min)
#   RUNBOOK_SMOKE=1 PYTHON=.venv/bin/python bash experiments/h100_runbook.sh gpt   # CPU dry run
#
# Results go to $OUT (the device tool's return folder; /tmp/pretrainx_runbook elsewhere): the
# phase's log, one summary JSON and, for diffusion, the two final sample grids (8 files at most).
# Wheels in .whl/ (ml-collections, tensorboardX: the device image lacks them) are installed first;
# fetch them where pip works with
#   pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl \
#     ml_collections==1.1.0 tensorboardX==2.6.5
# The data come from $DATA_DIR (default: .data/ in the checkout if present, else ../shared/data).
# The device gets only the checkout, so copy the two data sets into the git-ignored .data/ first:
#   mkdir -p .data && cp -r ../shared/data/tinyshakespeare ../shared/data/fashion-mnist .data/
# and carry both folders (device tool: carry=[".whl", ".data"], command
# "bash experiments/h100_runbook.sh gpt"; 31 MB in all).
set -uo pipefail
phase=${1:?usage: h100_runbook.sh gpt|diffusion|levers|fast|levers2|levers3}
OUT=${OUT:-/tmp/pretrainx_runbook}
WORK=${RUNBOOK_WORK:-/tmp/pretrainx_runbook_work}
PY=${PYTHON:-python3}
if [ -z "${DATA_DIR:-}" ]; then
  if [ -d .data ]; then DATA_DIR=$PWD/.data; else DATA_DIR=$(cd .. && pwd)/shared/data; fi
fi
smoke=${RUNBOOK_SMOKE:-}
mkdir -p "$OUT" "$WORK"
exec > >(tee -a "$OUT/$phase.log") 2>&1

if compgen -G ".whl/*.whl" > /dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/pretrainx_site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/pretrainx_site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
# A bench and the training run after it share compiled steps where their programs are equal.
export JAX_COMPILATION_CACHE_DIR=$WORK/jax_cache
command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
"$PY" -c "import jax, flax, optax, orbax.checkpoint as o; print('jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__, 'orbax', o.__version__, jax.devices())"
px() { "$PY" -m pretrainx.main "$@"; }   # the pretrainx command, without an install
stamp() { date +%s; }
t_phase=$(stamp)
bench() {   # bench NAME CONFIG STEPS ARGS...: one variant, its JSON kept for the summary
  local name=$1 cfg=$2 steps=$3; shift 3
  timeout -k 10 150 "$PY" -m pretrainx.main bench --config "$cfg" --steps "$steps" \
    --json "$WORK/lever_$name.json" "$@" > "$WORK/lever_$name.log" 2>&1 \
    || { echo "lever $name failed:"; tail -n 3 "$WORK/lever_$name.log"; }
}
# The GPT settings the phases share: shakespeare_char and GPT-2 124M, their bench lengths and the
# steps per dispatch; CPU-sized under RUNBOOK_SMOKE. nanoGPT trains in bf16 autocast on GPUs that
# have it; "auto" attention is then cuDNN's kernel for evaluation (training drops attention
# weights, so it runs the explicit path).
sc=configs/gpt/shakespeare_char.py; g2=configs/gpt/gpt2_124m.py; sc_steps=100; g2_steps=50; k=10
sc_set=(--config.data.path="$DATA_DIR/tinyshakespeare/input.txt" --config.model.dtype=bfloat16)
if [ -n "$smoke" ]; then
  sc=$sc:smoke; g2=$g2:smoke; sc_steps=8; g2_steps=4; k=4
  sc_set=(--config.data.path="$DATA_DIR/tinyshakespeare/input.txt")
fi
summarize_levers() {   # the table of every lever_*.json, kept in $OUT/$1
  "$PY" - "$WORK" "$OUT/$1" <<'EOF2'
import glob, json, os, sys
work, out = sys.argv[1], sys.argv[2]
rows = {os.path.basename(p)[6:-5]: json.load(open(p)) for p in sorted(glob.glob(f"{work}/lever_*.json"))}
json.dump(rows, open(out, "w"), indent=2)
for name, r in rows.items():
    print(f"{name:12s} {r.get('step_ms_pipelined')} ms/step pipelined, stacked x{r.get('steps_per_dispatch', 1)}: "
          f"{r.get('step_ms_stacked')} ms/step; {r.get('tokens_per_sec')} tok/s "
          f"(stacked {r.get('tokens_per_sec_stacked')}), MFU {r.get('mfu')}, mem {r.get('peak_memory_gib')} GiB")
EOF2
}

case "$phase" in
gpt)
  sc_limit=${SC_LIMIT:-$([ -n "$smoke" ] && echo 300 || echo 400)}
  for attention in auto xla; do
    px bench --config "$g2" --steps "$g2_steps" \
      --config.model.attention=$attention --json "$WORK/bench_gpt2_$attention.json" \
      $( [ "$attention" = auto ] && [ -z "$smoke" ] && echo --measure-peak )   # 8192^3: GPU only
  done
  t0=$(stamp)
  timeout -k 20 -s TERM "$sc_limit" "$PY" -m pretrainx.main train --config "$sc" \
    --workdir "$WORK/shakespeare_char" --config.train.progress=False "${sc_set[@]}"
  echo "shakespeare_char: exit $?, $(( $(stamp) - t0 )) s wall including compilation"
  "$PY" experiments/summarize_run.py "$WORK/shakespeare_char" --json "$WORK/sc_summary.json" > /dev/null
  "$PY" - "$WORK" "$OUT/gpt_summary.json" "$(( $(stamp) - t0 ))" <<'EOF'
import json, sys
work, out, wall = sys.argv[1], sys.argv[2], int(sys.argv[3])
def load(name):   # a step that failed (e.g. XLA attention out of memory) leaves no file
    try:
        return json.load(open(f"{work}/{name}"))
    except FileNotFoundError:
        return {"missing": name}
summary = {"bench_gpt2_auto": load("bench_gpt2_auto.json"), "bench_gpt2_xla": load("bench_gpt2_xla.json"),
           "shakespeare_char": {**load("sc_summary.json"), "wall_s_with_compile": wall}}
json.dump(summary, open(out, "w"), indent=2)
sc = summary["shakespeare_char"]
print(f"GPT-2 124M tokens/s: auto {summary['bench_gpt2_auto'].get('tokens_per_sec')} "
      f"(MFU {summary['bench_gpt2_auto'].get('mfu')}), xla {summary['bench_gpt2_xla'].get('tokens_per_sec')}")
print(f"shakespeare_char: best val {sc.get('best_val_loss')} at step {sc.get('best_val_step')}, "
      f"last step {sc.get('last_step')}, loop {sc.get('wall_s')} s, with compile {wall} s")
EOF
  ;;
diffusion)
  export PRETRAINX_FID_CACHE=$WORK/fid_cache
  ddpm_cfg=configs/diffusion/fashion_mnist_ddpm.py; flow_cfg=configs/diffusion/fashion_mnist_flow.py
  # DTYPE=bfloat16: bf16 compute with float32 master weights (tests/test_unet.py pins it);
  # the recipes' default is float32, which ran at 16.4 ms/step on an H200.
  data_set=(--config.data.path="$DATA_DIR/fashion-mnist" --config.model.dtype=${DTYPE:-float32})
  ddpm_set=("${data_set[@]}"); flow_set=("${data_set[@]}"); train_s=${TRAIN_S:-180}; limit=${RUN_LIMIT:-420}
  if [ -n "$smoke" ]; then
    ddpm_cfg=$ddpm_cfg:smoke; flow_cfg=$flow_cfg:smoke; train_s=${TRAIN_S:-20}
    common=(--config.eval.fid_num_samples=200 --config.eval.fid_num_reference=500
            --config.eval.fid_classifier_steps=50)
    ddpm_set=("${data_set[@]}" "${common[@]}" '--config.eval.fid_samplers=("ddim:5","ddim:10")')
    flow_set=("${data_set[@]}" "${common[@]}" '--config.eval.fid_samplers=("euler:4","euler:1")')
  fi
  # Train the FID classifier once, before the two runs would both do it.
  "$PY" experiments/prepare_fid.py --config "$ddpm_cfg" --json "$WORK/fid_protocol.json" \
    --config.data.path="$DATA_DIR/fashion-mnist" \
    $( [ -n "$smoke" ] && echo "${common[@]}" )
  px bench --config "$ddpm_cfg" --steps $([ -n "$smoke" ] && echo 3 || echo 30) \
    --warmup 2 "${data_set[@]}" --json "$WORK/bench_ddpm.json"
  # Steps that fit train_s, two runs sharing the GPU each assumed 1.8x slower than alone, rounded
  # to 500 (to 10 in a dry run); decay_steps follows, so the LR schedule ends with the run.
  objectives=${OBJECTIVES:-flow ddpm}; set -- $objectives
  share=$([ $# -gt 1 ] && echo 1.8 || echo 1.0); mem=$([ $# -gt 1 ] && echo 0.45 || echo 0.9)
  steps=$("$PY" -c "import json,sys; s=json.load(open('$WORK/bench_ddpm.json'))['step_ms_pipelined']/1e3; q=10 if '$smoke' else 500; print(max(q, min(30000, int($train_s/($share*s))//q*q)))")
  every=$(( steps / 5 ))
  echo "diffusion: $steps steps each, eval every $every"
  pids=()
  for obj in $objectives; do
    cfg_var=${obj}_cfg; set_var=${obj}_set[@]
    XLA_PYTHON_CLIENT_MEM_FRACTION=$mem timeout -k 20 -s TERM "$limit" "$PY" -m pretrainx.main train \
      --config "${!cfg_var}" --workdir "$WORK/$obj" --config.train.progress=False \
      --config.train.steps=$steps --config.optimizer.decay_steps=$steps \
      --config.eval.every=$every --config.checkpoint.every=$steps "${!set_var}" \
      > "$WORK/$obj.log" 2>&1 &
    pids+=($!)
  done
  wait "${pids[@]}"   # not a bare wait: that would also wait for the log's tee
  for obj in $objectives; do
    echo "---- $obj (last lines of its log)"; tail -n 15 "$WORK/$obj.log"
    "$PY" experiments/summarize_run.py "$WORK/$obj" --json "$WORK/${obj}_summary.json" > /dev/null
    grid=$(ls "$WORK/$obj/samples/"step_*.png 2>/dev/null | tail -n 1)
    [ -n "$grid" ] && cp "$grid" "$OUT/${obj}_$(basename "$grid")"
  done
  "$PY" - "$WORK" "$OUT/diffusion_summary.json" "$steps" <<'EOF'
import json, os, sys
work, out, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
load = lambda name: json.load(open(os.path.join(work, name))) if os.path.exists(os.path.join(work, name)) else None
summary = {"steps": steps, "fid_protocol": load("fid_protocol.json"), "bench_ddpm": load("bench_ddpm.json"),
           "flow": load("flow_summary.json"), "ddpm": load("ddpm_summary.json")}
json.dump(summary, open(out, "w"), indent=2)
floor = (summary["fid_protocol"] or {}).get("real_floor")
print(f"real-data floor: {floor}")
for obj in ("flow", "ddpm"):
    s = summary[obj] or {}
    last = s.get("last_eval", {})
    fids = {k: round(v, 3) for k, v in last.items() if k.startswith("eval/fid")}
    print(f"{obj}: FID curve {s.get('fid_curve')}; final {fids}; loop {s.get('wall_s')} s")
EOF
  ;;
levers)
  # Where the time goes and which speed options pay, each against the plain step in the same call:
  # profiles of both GPT steps, then benches that change one thing at a time.
  timeout -k 10 150 "$PY" -m pretrainx.main profile --config "$g2" --steps 5 \
    --json "$OUT/profile_gpt2.json" --trace-dir "$WORK/trace_gpt2"
  timeout -k 10 150 "$PY" -m pretrainx.main profile --config "$sc" --steps 20 "${sc_set[@]}" \
    --json "$OUT/profile_sc.json" --trace-dir "$WORK/trace_sc"
  bench sc_plain "$sc" $sc_steps "${sc_set[@]}" --steps-per-dispatch $k
  bench sc_rbg "$sc" $sc_steps "${sc_set[@]}" --config.train.rng_impl=unsafe_rbg --steps-per-dispatch $k
  bench sc_nodrop "$sc" $sc_steps "${sc_set[@]}" --config.model.dropout=0.0 --config.model.attention_dropout=0.0
  bench g2_mu_bf16 "$g2" $g2_steps --config.optimizer.mu_dtype=bfloat16
  XLA_FLAGS="--xla_gpu_enable_triton_gemm=false" bench g2_cublas "$g2" $g2_steps
  XLA_FLAGS="--xla_gpu_enable_command_buffer=FUSION,CUBLAS,CUBLASLT,CUDNN,CUSTOM_CALL" \
    bench g2_cmdbuf "$g2" $g2_steps
  summarize_levers levers_summary.json
  ;;
fast)
  # After the one-hot embedding lookup (2026-11-30: the embeddings' scatter-add gradient was 34 of
  # shakespeare_char's 43 ms per step): the small step, the whole recipe, GPT-2, then profiles.
  sc_limit=${SC_LIMIT:-$([ -n "$smoke" ] && echo 120 || echo 240)}
  bench sc_auto "$sc" $sc_steps "${sc_set[@]}" --steps-per-dispatch $k
  t0=$(stamp)
  timeout -k 20 -s TERM "$sc_limit" "$PY" -m pretrainx.main train --config "$sc" \
    --workdir "$WORK/shakespeare_char" --config.train.progress=False "${sc_set[@]}" \
    > "$WORK/sc_train.log" 2>&1
  echo "shakespeare_char: exit $?, $(( $(stamp) - t0 )) s wall including start and compilation"
  tail -n 4 "$WORK/sc_train.log"
  "$PY" experiments/summarize_run.py "$WORK/shakespeare_char" --json "$OUT/sc_summary.json" > /dev/null
  bench g2_auto "$g2" $g2_steps
  timeout -k 10 120 "$PY" -m pretrainx.main profile --config "$sc" --steps 20 "${sc_set[@]}" \
    --json "$OUT/profile_sc.json" --trace-dir "$WORK/trace_sc" | head -n 20   # JSON is written first
  timeout -k 10 120 "$PY" -m pretrainx.main profile --config "$g2" --steps 5 \
    --json "$OUT/profile_gpt2.json" --trace-dir "$WORK/trace_gpt2" | head -n 20
  bench g2_onehot "$g2" $g2_steps --config.model.embed_lookup=onehot
  summarize_levers fast_summary.json
  ;;
levers2)
  # GPT-2's next levers (gpt_shakespeare.md: ~15 ms of its 79 ms step go to the one-hot lookup of
  # the 50K-row table, ~7 ms to float32 logits), each against the one-hot step in this call.
  bench g2_onehot "$g2" $g2_steps --config.model.embed_lookup=onehot
  bench g2_matmul_grad "$g2" $g2_steps --config.model.embed_lookup=matmul_grad
  bench g2_bf16_logits "$g2" $g2_steps --config.model.embed_lookup=onehot --config.model.logits_dtype=compute
  bench g2_both "$g2" $g2_steps --config.model.embed_lookup=matmul_grad --config.model.logits_dtype=compute
  summarize_levers levers2_summary.json
  ;;
levers3)
  # The seventh session's CPU defaults, not yet measured on a GPU (there: JAX's kernel gradients,
  # one step a dispatch): inputs-first dense kernel gradients, and several steps a dispatch in
  # the loop (the bench's stacked rate), each against the plain step in this call.
  bench sc_plain "$sc" $sc_steps "${sc_set[@]}" --steps-per-dispatch $k
  bench sc_inputs_first "$sc" $sc_steps "${sc_set[@]}" --config.model.dense_grads=inputs_first
  bench g2_onehot "$g2" $g2_steps --config.model.embed_lookup=onehot
  bench g2_inputs_first "$g2" $g2_steps --config.model.embed_lookup=onehot \
    --config.model.dense_grads=inputs_first
  summarize_levers levers3_summary.json
  ;;
*) echo "unknown phase $phase (gpt | diffusion | levers | fast | levers2 | levers3)"; exit 2 ;;
esac
echo "phase $phase: $(( $(stamp) - t_phase )) s"
