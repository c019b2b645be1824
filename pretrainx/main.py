"""The ``pretrainx`` command: a thin entry point; all logic lives in importable modules.

  pretrainx train  --config configs/gpt/shakespeare_char.py[:smoke] --workdir DIR [--config.KEY=VALUE ...]
  pretrainx eval   --workdir DIR [--checkpoint latest|best] [--config.data.KEY=VALUE|--config.eval.KEY=VALUE ...]
  pretrainx eval   --workdir DIR --tasks NAME[,NAME|PATH.yaml ...] [--limit N] [--task-dir DIR]
                   (lm-evaluation-harness tasks: pip install pretrainx[eval])
  pretrainx sample --workdir DIR [the run's objective's flags: --workdir DIR --help lists them]
  pretrainx pairs  --workdir PRETRAINED --out PAIRS.jsonl [--prompts 4000] [--samples 4]  (VADER-labelled)
  pretrainx tokenizer train --corpus PATH --kind bpe --vocab-size 8000 --out DIR
  pretrainx tokenize SOURCE [SOURCE ...] --tokenizer DIR|byte --out DIR [--workers N] [--shard-mb 32]
                   [--text-key text] [--val-fraction 0.001]   (token shards: data.kind = "shards")
  pretrainx ngram  --text PATH [--n 2]
  pretrainx sweep  --config FILE[:arg] --workdir DIR [--storage URL] [--parallel N] [--trials K]
                   [--pruner median|successive_halving|hyperband|none] [--config.KEY=VALUE ...]
  pretrainx plot   WORKDIR [WORKDIR ...] [--metric val/loss] [--log-x] [--out FILE.png]
  pretrainx reproduce NAME [--workdir DIR] [--log FILE] [--force] [--config.KEY=VALUE ...] | --list
  pretrainx bench  --config FILE[:arg] [--steps 30] [--steps-per-dispatch K] [--measure-peak]
                   [--json OUT] [--config.KEY=VALUE ...]   (tokens|examples/s, MFU, peak memory)
  pretrainx profile --config FILE[:arg] [--steps 5] [--trace-dir DIR] [--json OUT] [--config.KEY=VALUE ...]
  pretrainx flops  FILE[:arg] [FILE[:arg] ...] [--json OUT] [--config.KEY=VALUE ...]
                   (XLA's FLOPs per train step; steps for the first config's FLOP budget)
  pretrainx generate-couplings --workdir RUN --out DIR --num N [--seed S] [--sampler euler --steps 32]
                   [--shard K --num-shards N]     (reflow pairs, pretrainx/tools/couplings.py)
  pretrainx import-hf DIR --workdir W    (a Hugging Face GPT-2 / Llama / Qwen2 folder -> a run)
  pretrainx export-hf --workdir W --out DIR [--checkpoint latest|best]   (a run -> such a folder)
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

from pretrainx.core import inference
from pretrainx.errors import UserError

USAGE = __doc__

#: exit codes: 0 done, 1 a bug (traceback), 2 a one-line user error, 75 stopped by SIGTERM after
#: saving (rerun to resume; pretrainx.run.preemption.PREEMPTED_EXIT_CODE), 130 interrupted by
#: Ctrl-C (128 + SIGINT, as a shell reports it)
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130

# A missing or unreadable file is the user's to fix wherever it surfaces.
_FILE_ERRORS = (FileNotFoundError, PermissionError)


def load_config(spec: str, pairs: list[str]):
    """The config of ``FILE.py[:arg]`` with the ``--config.KEY=VALUE`` overrides applied, locked
    (a typo that would add a key fails instead), as every command that takes a config reads it."""
    from pretrainx.config import load as config_lib
    config = config_lib.apply_overrides(config_lib.load(spec), pairs)
    config.lock()
    return config


def _train(argv: list[str]) -> int:
    from pretrainx.config import load as config_lib
    if {"-h", "--help", "--helpfull"} & set(argv):
        print(TRAIN_HELP)
        return 0
    rest, pairs = config_lib.split_override_args(argv)
    p = argparse.ArgumentParser(prog="pretrainx train", add_help=False)
    p.add_argument("--config")
    p.add_argument("--workdir")
    p.add_argument("--distributed", action="store_true")
    p.add_argument("--coordinator_address")
    p.add_argument("--num_processes", type=int)
    p.add_argument("--process_id", type=int)
    args, unknown = p.parse_known_args(rest)
    if unknown:
        raise UserError(f"unrecognized argument {unknown[0]!r} (see pretrainx train --help)")
    if not args.config or not args.workdir:
        raise UserError("train needs --config PATH.py[:variant] and --workdir DIR")
    config = load_config(args.config, pairs)
    explicit = (args.coordinator_address, args.num_processes, args.process_id)
    if args.distributed or any(v is not None for v in explicit):
        from pretrainx.core import distributed
        distributed.initialize(*explicit)
    from pretrainx.run import preemption
    from pretrainx.core import train
    result = train.run(config, args.workdir)
    vals = [h["val/loss"] for h in result.history if "val/loss" in h]
    if vals:
        print(f"best val/loss {min(vals):.4f}; workdir {args.workdir}")
    if result.preempted:
        print(f"pretrainx: stopped by SIGTERM after saving; rerun the same command to resume "
              f"(exit {preemption.PREEMPTED_EXIT_CODE})", file=sys.stderr)
        return preemption.PREEMPTED_EXIT_CODE
    return 0


TRAIN_HELP = """usage: pretrainx train --config FILE.py[:variant] --workdir DIR [--config.KEY=VALUE ...]

  --config FILE.py[:arg]   experiment config: get_config(arg) of that file
  --workdir DIR            output directory (created; resumed when it holds a checkpoint, under
                           the config it was trained with: see docs/design.md, "Resume")
  --config.KEY=VALUE       override one config field, e.g. --config.train.steps=100
  --distributed            call jax.distributed.initialize() first (TPU pods, SLURM, ...)
  --coordinator_address HOST:PORT, --num_processes N, --process_id I
                           a multi-process run elsewhere (imply --distributed)

exit codes: 0 finished, 2 a one-line error (bad input), 75 stopped by SIGTERM after saving
(rerun to resume), 1 anything else (a traceback)."""


SAMPLE_USAGE = """usage: pretrainx sample --workdir DIR [--checkpoint latest|best] [FLAGS OF THE RUN'S OBJECTIVE]

  Generate with a run's trained weights. The flags after --workdir are the ones the run's
  objective declares: `pretrainx sample --workdir DIR --help` lists them (a causal LM: --prompt,
  --max-new-tokens, --temperature, --top-k, --seed; an image run: --sampler, --steps, ...)."""


def _sample(argv: list[str]) -> int:
    from pretrainx.objectives import sample_flags
    p = argparse.ArgumentParser(prog="pretrainx sample", add_help=False)
    p.add_argument("--workdir")
    p.add_argument("--checkpoint", choices=("latest", "best"), default="latest")
    args, rest = p.parse_known_args(argv)
    wants_help = bool({"-h", "--help"} & set(rest))
    if not args.workdir:
        if wants_help:
            print(SAMPLE_USAGE)
            return 0
        raise UserError("sample needs --workdir DIR (--help with it lists the run's flags)")
    # The run's objective, built from its config.json and tokenizer, declares the flags; they
    # are checked here, before the (slower) restore of the weights.
    objective, config = inference.objective_of(args.workdir)
    options = objective.sample_options()
    prog = f"pretrainx sample ({config.objective})"
    if wants_help:
        print(SAMPLE_USAGE.splitlines()[0] + "\n")
        print(sample_flags.parser_for(options, prog).format_help())
        return 0
    values = sample_flags.parse(options, rest, prog)
    objective, ctx, _ = inference.load_trained_run(args.workdir, args.checkpoint)
    print(objective.sample_command(ctx, values))
    return 0


def _eval(argv: list[str]) -> int:
    from pretrainx.config import check as config_check, load as config_lib
    from pretrainx.core import evaluate, train
    p = argparse.ArgumentParser(prog="pretrainx eval", epilog="--config.data.KEY=VALUE or "
                                "--config.eval.KEY=VALUE: evaluate on other data than the run's, "
                                "e.g. --config.data.eval_split=test (eval.num_batches to cover a "
                                "larger split)")
    p.add_argument("--workdir", required=True)
    p.add_argument("--checkpoint", choices=("latest", "best"), default="latest")
    p.add_argument("--tasks", help="lm-evaluation-harness tasks instead of the validation loss: "
                   "names or task YAML paths, comma-separated (local: pretrainx_wikitext_cloze, "
                   "pretrainx_shakespeare_nextline)")
    p.add_argument("--limit", type=int, default=None, help="at most N examples per task")
    p.add_argument("--task-dir", default=os.path.expanduser("~/.cache/pretrainx/tasks"),
                   help="where the local tasks' JSONL and YAML files are generated")
    rest, pairs = config_lib.split_override_args(argv)
    args = p.parse_args(rest)
    if args.tasks:
        return _eval_tasks(args)
    if any(not pair.startswith(("data.", "eval.")) for pair in pairs):
        raise UserError(f"eval overrides only --config.data.* and --config.eval.* (the weights "
                        f"are the run's): {pairs}")
    objective, ctx, config = inference.load_trained_run(args.workdir, args.checkpoint)
    config = config_lib.apply_overrides(config, pairs)
    config_check.check_values(config)
    dataset = train.build_dataset(config, type(objective), args.workdir)   # as the run made it
    evaluate.check_held_out(config, dataset)
    objective = type(objective)(config, type(objective).data_spec(config, dataset))
    ev = evaluate.EvalRunner(objective, config, ctx.mesh, dataset, args.workdir)
    for k, v in sorted(ev.run(ctx.params, ctx.frozen, ctx.step, final=True, aux=ctx.aux).items()):
        print(f"{k} {v:.6f}")
    return 0


def _eval_tasks(args) -> int:
    from pretrainx.core import harness
    objective, ctx, _ = inference.load_trained_run(args.workdir, args.checkpoint)
    lm = harness.PretrainxLM(objective, ctx.params, mesh=ctx.mesh)
    results = harness.evaluate_tasks(lm, args.tasks.split(","), task_dir=args.task_dir,
                                     limit=args.limit)
    for task, metrics in sorted(results.items()):
        for name, value in sorted(metrics.items()):
            print(f"{task}/{name} {value:.6f}")
    return 0


def _tokenizer(argv: list[str]) -> int:
    from pretrainx.tools import tokenizer_cli
    return tokenizer_cli.main(argv)


def _tokenize(argv: list[str]) -> int:
    from pretrainx.tools import tokenize_corpus
    return tokenize_corpus.main(argv)


def _ngram(argv: list[str]) -> int:
    from pretrainx.tools import ngram
    return ngram.main(argv)


def _pairs(argv: list[str]) -> int:
    from pretrainx.tools import synthetic_prefs
    return synthetic_prefs.cli(argv)


def _sweep(argv: list[str]) -> int:
    from pretrainx.config import load as config_lib
    from pretrainx.tools import sweep, sweep_def, sweep_worker
    p = argparse.ArgumentParser(prog="pretrainx sweep",
                                epilog="--config.KEY=VALUE overrides the base config of every trial")
    p.add_argument("--config", required=True, help="config file with get_sweep(arg): FILE.py[:arg]")
    p.add_argument("--workdir", required=True, help="trials in DIR/trials/NNN, results in DIR")
    p.add_argument("--storage", help="Optuna storage: a journal file path (default "
                   "DIR/study.journal) or a database URL (sqlite:///x.db, postgresql://...)")
    p.add_argument("--study", help="study name in the storage (default: DIR's name)")
    p.add_argument("--parallel", type=int, default=1, help="trials at once on this machine "
                   "(processes; on GPUs one device each)")
    p.add_argument("--trials", type=int, help="trial budget (default: the sweep's)")
    p.add_argument("--pruner", help="none | median | successive_halving | hyperband "
                   "(default: the sweep's)")
    p.add_argument("--heartbeat", type=int, default=60, help="seconds between heartbeats with a "
                   "database storage; a trial silent for twice that is failed and retried")
    p.add_argument("--worker-index", type=int, dest="worker_index", help=argparse.SUPPRESS)
    p.add_argument("--no-report", action="store_false", dest="report", help=argparse.SUPPRESS)
    rest, pairs = config_lib.split_override_args(argv)
    args, bad = p.parse_known_args(rest)
    if bad:
        raise UserError(f"unrecognized argument {bad[0]!r} (overrides are --config.KEY=VALUE)")
    # Typed by the fields of the config the trials start from, as train types its overrides.
    overrides = config_lib.parse_overrides(pairs, sweep_def.load(args.config)[1])
    try:
        return sweep.run_sweep(args.config, args.workdir, argv=argv, overrides=overrides,
                               storage=args.storage, parallel=args.parallel, trials=args.trials,
                               pruner=args.pruner, study_name=args.study, heartbeat=args.heartbeat,
                               worker_index=args.worker_index, report=args.report)
    except KeyboardInterrupt as e:   # SIGTERM or Ctrl-C: the trial saved and was re-queued
        print(f"pretrainx: sweep stopped ({e or 'interrupted'}); rerun the same command to resume",
              file=sys.stderr)
        # SIGTERM (a scheduler's preemption) exits as `train` does: 75, "try again later"
        return 75 if isinstance(e, sweep_worker.Interrupted) else EXIT_INTERRUPTED


def _plot(argv: list[str]) -> int:
    from pretrainx.tools import plot
    return plot.main(argv)


def _reproduce(argv: list[str]) -> int:
    from pretrainx.tools import reproduce
    p = argparse.ArgumentParser(prog="pretrainx reproduce",
                                description="run a registry entry and check its number")
    p.add_argument("name", nargs="?", help="registry entry (see --list)")
    p.add_argument("--list", action="store_true", help="every entry with its status")
    p.add_argument("--workdir", help="run folder of a training entry (default "
                   "workdirs/reproduce/NAME; an unfinished run there resumes)")
    p.add_argument("--log", default=reproduce.LOG, help="results log, one JSON line per run")
    p.add_argument("--registry", default=reproduce.REGISTRY)
    p.add_argument("--force", action="store_true", help="run a GPU entry on this CPU anyway")
    p.epilog = ("--config.KEY=VALUE changes a config entry's run (e.g. where its data lie); "
                "the results log keeps the overrides")
    from pretrainx.config import load as config_lib
    rest, pairs = config_lib.split_override_args(argv)
    args = p.parse_args(rest)
    entries = reproduce.load_registry(args.registry)
    if args.list:
        print(reproduce.status_table(entries, args.log))
        return 0
    if not args.name:
        raise UserError("reproduce needs NAME or --list")
    entry = reproduce.with_overrides(reproduce.find(entries, args.name), pairs)
    workdir = args.workdir or os.path.join("workdirs", "reproduce", entry.name)
    try:
        result = reproduce.reproduce(entry, workdir, args.log, force=args.force)
    except reproduce.NotRunnable as e:
        print(f"{entry.name}: {e}")
        return 3
    print(reproduce.format_result(entry, result))
    return 0 if result["passed"] is not False else 1


def _bench(argv: list[str]) -> int:
    from pretrainx.tools import bench
    return bench.bench_main(argv)


def _flops(argv: list[str]) -> int:
    from pretrainx.tools import bench
    return bench.flops_main(argv)


def _profile(argv: list[str]) -> int:
    from pretrainx.tools import profile
    return profile.main(argv)


def _generate_couplings(argv: list[str]) -> int:
    from pretrainx.tools import couplings
    return couplings.main(argv, inference.load_trained_run)


def _import_hf(argv: list[str]) -> int:
    from pretrainx.tools import hf_import
    return hf_import.main(argv)


def _export_hf(argv: list[str]) -> int:
    from pretrainx.tools import hf_export
    return hf_export.main(argv)


COMMANDS = {"train": _train, "eval": _eval, "sample": _sample, "tokenizer": _tokenizer,
            "tokenize": _tokenize, "ngram": _ngram, "sweep": _sweep, "plot": _plot,
            "reproduce": _reproduce,
            "generate-couplings": _generate_couplings, "pairs": _pairs, "bench": _bench,
            "flops": _flops, "profile": _profile, "import-hf": _import_hf,
            "export-hf": _export_hf}


def cli(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print(USAGE, file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("absl", "jax._src", "orbax"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return COMMANDS[argv[0]](argv[1:]) or 0
    except KeyboardInterrupt:   # Ctrl-C: the user's own stop, not a bug; saves begun have landed
        if os.environ.get("PRETRAINX_DEBUG"):
            raise
        print(f"pretrainx: interrupted (Ctrl-C); rerun the same command to resume from the last "
              f"checkpoint (exit {EXIT_INTERRUPTED})", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (UserError, *_FILE_ERRORS) as e:   # anything else is a bug: it keeps its traceback
        if os.environ.get("PRETRAINX_DEBUG"):
            raise
        text = str(e).strip()
        msg = text.splitlines()[0] if text else type(e).__name__
        print(f"pretrainx: error: {type(e).__name__}: {msg}", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(cli())
