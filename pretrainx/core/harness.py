"""EleutherAI's lm-evaluation-harness over a pretrainx run: an adapter on its ``LM`` interface
(``loglikelihood``, ``loglikelihood_rolling``, ``generate_until``) and ``evaluate_tasks``, which
runs task names or YAML files through the harness's own task registry (``TaskManager``).

The adapter scores with the objective's own ``logits`` (so a causal GPT, a prefix LM and a T5
score as they train), batched into rows right-padded to a power-of-two length (few compilations) and, with
a mesh, split over its batch axes as training batches are. A prefix LM reads the context as its
prefix (bidirectional attention) and predicts the continuation causally; an encoder-decoder
(``span_corruption``, ``ul2``) encodes the context (behind UL2's ``[S2S]`` mode token where the
vocabulary has it, then EOS) and scores the continuation as decoder targets, as the harness's
seq2seq backend does. Generation is greedy through the KV cache (``models/decoding.py``), cut at
the first stop string.

A context longer than the model keeps its last tokens (as the harness's Hugging Face backend
does); an empty context is conditioned on the vocabulary's EOS, or on a newline where it has none
(a char vocabulary: a newline is what precedes a line of text). Needs ``pip install
pretrainx[eval]``; nothing here is imported unless ``pretrainx eval --tasks`` runs.
"""
from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
from lm_eval.api.model import TemplateLM
from lm_eval import utils as harness_utils

from pretrainx.core import sharding as sharding_lib
from pretrainx.data import special_tokens as st
from pretrainx.errors import UserError
from pretrainx.models import decoding, gpt
from pretrainx.objectives.encoder_decoder import EncoderDecoderObjective

MIN_BUCKET = 16          # the shortest padded row length
DEFAULT_GEN_TOKENS = 64  # new tokens of generate_until when a task does not say


def _bucket(length: int, max_len: int) -> int:
    """The padded row length for ``length`` tokens: the next power of two, at most max_len."""
    return min(max_len, max(MIN_BUCKET, 1 << (max(length, 1) - 1).bit_length()))


class PretrainxLM(TemplateLM):
    """The harness's ``LM`` over a text objective with ``logits(params, batch, rng, train)``: a
    causal or prefix LM (``clm``, ``prefix_lm`` and their kin) or an encoder-decoder."""

    def __init__(self, objective, params, *, batch_size: int = 16, mesh=None):
        super().__init__()
        self.objective, self.params, self.mesh = objective, params, mesh
        self.tokenizer_ = objective.tokenizer
        self.max_len = int(objective.model_config.max_len)
        self.prefix = objective.model_config.attention_kind == "prefix"
        self.seq2seq = isinstance(objective, EncoderDecoderObjective)
        self.backend = "seq2seq" if self.seq2seq else "causal"    # the harness's pair encoding
        if not self.seq2seq and objective.model_config.attention_kind == "bidirectional":
            raise UserError(f"{objective.config.objective} is a bidirectional (masked) model: it "
                            f"scores no continuation left to right; lm-evaluation-harness needs "
                            f"a causal, prefix or encoder-decoder run")
        # UL2's sequence-to-sequence mode token first, where the vocabulary has one ([S2S])
        s2s = st.id_or_none(self.tokenizer_, st.S2S) if self.seq2seq else None
        self.encoder_prefix = [s2s] if s2s is not None else []
        divisor = sharding_lib.batch_divisor(mesh) if mesh is not None else 1
        self.batch_size = -(-int(batch_size) // divisor) * divisor
        self._logprobs = jax.jit(lambda p, b: jax.nn.log_softmax(
            objective.logits(p, b, None, train=False).astype(jnp.float32)))

    # --- tokens -------------------------------------------------------------------------------
    @property
    def eot_token_id(self) -> int:
        eos = st.id_or_none(self.tokenizer_, st.EOS)
        return eos if eos is not None else self.tokenizer_.encode("\n")[0]

    def tok_encode(self, string: str, add_special_tokens=None, **kwargs) -> list[int]:
        return list(self.tokenizer_.encode(string))

    # --- scoring ------------------------------------------------------------------------------
    def _row(self, context: list[int], continuation: list[int]) -> dict:
        """One request's batch row (1-D arrays, scalars), its context cut from the left to fit;
        ``targets`` and ``weights`` say which predictions are the continuation's."""
        if len(continuation) > self.max_len:
            raise UserError(f"a continuation of {len(continuation)} tokens is longer than the "
                            f"model's max_len {self.max_len}")
        if self.seq2seq:      # context -> the encoder (behind a mode token, before EOS)
            head, tail = self.encoder_prefix, [self.objective.eos_id]
            keep = self.max_len - len(head) - len(tail)
            inputs = head + (list(context)[-keep:] if keep > 0 else []) + tail
            return {"inputs": inputs, "encoder_mask": [True] * len(inputs),
                    "decoder_inputs": [self.objective.pad_id] + list(continuation[:-1]),
                    "targets": list(continuation), "weights": [1.0] * len(continuation)}
        whole = (list(context) + list(continuation))[-(self.max_len + 1):]
        n_context = len(whole) - len(continuation)
        row = {"inputs": whole[:-1], "targets": whole[1:],
               "weights": [0.0] * (n_context - 1) + [1.0] * len(continuation)}
        if self.prefix:
            row["prefix_length"] = n_context
        return row

    def score_tokens(self, pairs: list[tuple[list[int], list[int]]]) -> list[tuple[float, bool]]:
        """(log p(continuation | context), is the continuation the greedy one) of each
        (context ids, continuation ids) pair, in order."""
        out: list[tuple[float, bool]] = [(0.0, True)] * len(pairs)
        scored = [i for i, (_, continuation) in enumerate(pairs) if continuation]
        rows = {i: self._row(*pairs[i]) for i in scored}
        order = sorted(scored, key=lambda i: -len(rows[i]["inputs"]))
        for start in range(0, len(order), self.batch_size):
            chunk = order[start:start + self.batch_size]
            for i, result in zip(chunk, self._score_batch([rows[i] for i in chunk])):
                out[i] = result
        return out

    def _score_batch(self, rows: list[dict]) -> list[tuple[float, bool]]:
        """Rows right-padded (weight 0, masked from the encoder) to a bucket length, scored."""
        batch = {}
        for key, first in rows[0].items():
            if np.ndim(first) == 0:
                batch[key] = np.ones((self.batch_size,), np.int32)
                batch[key][:len(rows)] = [r[key] for r in rows]
                continue
            dtype = {"weights": np.float32, "encoder_mask": bool}.get(key, np.int32)
            batch[key] = np.zeros((self.batch_size, _bucket(max(len(r[key]) for r in rows),
                                                            self.max_len)), dtype)
            for b, r in enumerate(rows):
                batch[key][b, :len(r[key])] = r[key]
        device_batch = {k: v for k, v in batch.items() if k not in ("targets", "weights")}
        if self.mesh is not None:
            device_batch = sharding_lib.put_batch(device_batch, self.mesh)
        logp = np.asarray(jax.device_get(self._logprobs(self.params, device_batch)))
        picked = np.take_along_axis(logp, batch["targets"][..., None], -1)[..., 0]
        greedy = logp.argmax(-1) == batch["targets"]
        w = batch["weights"]
        return [(float((picked[b] * w[b]).sum()), bool(greedy[b][w[b] > 0].all()))
                for b in range(len(rows))]

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, **kwargs):
        return self.score_tokens([(context, continuation) for _, context, continuation in requests])

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        """The log-likelihood of each whole string: windows of max_len tokens, each token
        predicted once with as much context as fits (the harness's own window rule)."""
        results = []
        for (text,) in [req.args for req in requests]:
            windows = [harness_utils.make_disjoint_window(w) for w in
                       harness_utils.get_rolling_token_windows(
                           self.tok_encode(text), self.prefix_token_id, self.max_len, 1)]
            results.append(sum(lp for lp, _ in self.score_tokens(windows)))
        return results

    # --- generation ---------------------------------------------------------------------------
    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        return [self._generate(context, dict(kwargs)) for context, kwargs in
                [req.args for req in requests]]

    def _generate(self, context: str, kwargs: dict) -> str:
        until = kwargs.get("until") or []
        until = [until] if isinstance(until, str) else list(until)
        new = min(int(kwargs.get("max_gen_toks", DEFAULT_GEN_TOKENS)), self.max_len - 1)
        if self.seq2seq:      # greedy span filling from the encoded context (stops at EOS)
            keep = self.max_len - len(self.encoder_prefix) - 1
            text = self.objective.fill_spans(self.params, self.tokenizer_.decode(
                self.tok_encode(context)[-keep:]), new, prefix_ids=self.encoder_prefix)
            return _cut(text, until)
        prompt = (self.tok_encode(context) or [self.prefix_token_id])[-(self.max_len - new):]
        ids = decoding.continue_prompt(_decoder(self.objective.model_config), self.params,
                                       np.asarray(prompt, np.int32), new,
                                       rng=jax.random.PRNGKey(0), temperature=0.0,
                                       vocab_size=self.tokenizer_.vocab_size)
        return _cut(self.tokenizer_.decode(np.asarray(ids)[0, len(prompt):].tolist()), until)


def _cut(text: str, until: list[str]) -> str:
    """``text`` up to the first of the stop strings ``until``."""
    return text[:min([text.find(s) for s in until if s and s in text] or [len(text)])]


@functools.lru_cache(maxsize=4)
def _decoder(model_config):
    return gpt.GPTDecoder(model_config)


def _task_name(path: str) -> str:
    """The ``task`` a YAML file defines (the directory it is in joins the harness's search)."""
    from lm_eval.tasks._yaml_loader import load_yaml
    if not os.path.isfile(path):
        raise FileNotFoundError(f"task file not found: {path} (--tasks)")
    name = load_yaml(path, resolve_func=False, recursive=False).get("task")
    if not isinstance(name, str):
        raise UserError(f"{path} defines no single `task:` name (--tasks)")
    return name


class TaskSuite:
    """Tasks resolved once through the harness's ``TaskManager``: names (the local ones of
    ``local_tasks.py`` are built into ``task_dir`` first; others come from the harness's own
    registry when this machine has their data) or paths to task YAMLs. An unknown task is one
    line, before anything is scored (before a run trains)."""

    def __init__(self, tasks: list[str], *, task_dir: str):
        from lm_eval.tasks import TaskManager

        from pretrainx.core import local_tasks
        self.names, include = [], [task_dir]
        for task in tasks:
            if task.endswith((".yaml", ".yml")):
                folder = os.path.dirname(os.path.abspath(task))
                include += [] if folder in include else [folder]
                self.names.append(_task_name(task))
            else:
                self.names.append(task)
        local_tasks.build(task_dir, [n for n in self.names if n in local_tasks.BUILDERS])
        registered = [t for t in tasks if not t.endswith((".yaml", ".yml"))
                      and t not in local_tasks.BUILDERS]
        self.manager = TaskManager(include_path=include, include_defaults=bool(registered))
        unknown = [n for n in self.names if n not in self.manager.all_tasks]
        if unknown:
            raise UserError(f"unknown task {unknown[0]!r} (--tasks): local tasks are "
                            f"{', '.join(local_tasks.BUILDERS)}, or give a task YAML's path")

    def run(self, lm, *, limit: int | None = None) -> tuple[dict, dict]:
        """``({task: {metric: value}}, {task: {metric: higher is better}})`` of the harness's
        ``simple_evaluate`` (zero-shot, no bootstrap: every number is deterministic)."""
        from lm_eval import evaluator
        out = evaluator.simple_evaluate(model=lm, tasks=self.names, task_manager=self.manager,
                                        limit=limit, bootstrap_iters=0, log_samples=False)
        # "metric,filter" keys are the task's metrics ("alias", "sample_len" are not; a
        # "_stderr" is the string "N/A" without bootstrap)
        scores = {task: {k.split(",")[0]: float(v) for k, v in metrics.items()
                         if "," in k and isinstance(v, (int, float))}
                  for task, metrics in out["results"].items()}
        return scores, {task: dict(better) for task, better in out["higher_is_better"].items()}


def evaluate_tasks(lm, tasks: list[str], *, task_dir: str, limit: int | None = None) -> dict:
    """``{task: {metric: value}}`` of ``TaskSuite(tasks).run(lm)`` (``pretrainx eval --tasks``)."""
    return TaskSuite(tasks, task_dir=task_dir).run(lm, limit=limit)[0]
