"""An imported Hugging Face checkpoint is a run like any other: read from shards on an
fsdp x tensor mesh it computes what it computes on one device, and ``train`` continues from it
through ``init_from``."""
import os

import jax
import numpy as np
import pytest

from pretrainx import main
from pretrainx.core import inference, train
from pretrainx.models import gpt, transformer
from pretrainx.run import rundir
from pretrainx.tools import hf_export
from tests import hf_checkpoints as hfc
from tests.conftest import SHARED_DATA


@pytest.fixture(scope="module")
def sharded_llama(tmp_path_factory):
    """A GQA Llama saved in shards (model.safetensors.index.json), with its transformers model."""
    hf_dir = str(tmp_path_factory.mktemp("hf") / "llama")
    model = hfc.make_model("llama", hf_dir, max_shard_size="40KB", num_key_value_heads=2)
    assert os.path.exists(os.path.join(hf_dir, "model.safetensors.index.json"))
    assert len([f for f in os.listdir(hf_dir) if f.endswith(".safetensors")]) > 1
    return hf_dir, model


def _import(hf_dir, workdir, *overrides):
    assert main.cli(["import-hf", hf_dir, "--workdir", workdir, *overrides]) == 0
    _, ctx, config = inference.load_trained_run(workdir, "latest")
    return transformer.TransformerConfig.from_config(config.model), ctx.params


@pytest.mark.slow      # 15-35 s on 2 cores: out of the -m 'not slow' set's 10 min
def test_sharded_import_on_fsdp_x_tensor_mesh_gives_the_one_device_logits(sharded_llama, tmp_path):
    hf_dir, model = sharded_llama
    cfg, sharded = _import(hf_dir, str(tmp_path / "mesh"), "--config.mesh.data=1",
                           "--config.mesh.fsdp=4", "--config.mesh.tensor=2")
    kernel = sharded["h_0"]["mlp"]["fc"]["kernel"]                 # ('embed', 'mlp') -> fsdp, tensor
    assert tuple(kernel.sharding.spec) == ("fsdp", "tensor") and len(kernel.sharding.device_set) == 8
    one_device = jax.device_put(jax.tree.map(np.asarray, sharded), jax.devices()[0])
    tokens = np.random.default_rng(1).integers(0, hfc.VOCAB, (8, 16))
    apply = lambda params: np.asarray(gpt.GPT(cfg).apply({"params": params}, tokens))
    on_mesh, alone = apply(sharded), apply(one_device)
    err = float(np.max(np.abs(on_mesh - alone)) / np.max(np.abs(alone)))
    print(f"fsdp 4 x tensor 2 vs one device: max relative difference {err:.2e}")
    assert err < 1e-5
    ref = hfc.reference_logits(model, tokens)
    assert float(np.max(np.abs(alone - ref)) / np.max(np.abs(ref))) < 1e-4


@pytest.mark.slow
def test_train_continues_from_an_imported_run(sharded_llama, tmp_path):
    """Continued pretraining on Tiny Shakespeare from the imported run's own config.json and
    tokenizer: with a zero learning rate two steps leave the weights exactly as imported, so
    init_from read every one of them."""
    hf_dir, _ = sharded_llama
    imported = str(tmp_path / "imported")
    _, params = _import(hf_dir, imported)
    config = rundir.load_config(imported)
    config.init_from.workdir = imported
    config.data.path = os.path.join(SHARED_DATA, "tinyshakespeare", "input.txt")
    config.data.max_bytes = 20000
    config.data.seq_len = 32
    config.batch_size = 8
    config.optimizer.lr = config.optimizer.end_lr = 0.0
    config.optimizer.warmup_steps = 0
    config.train.steps = 2
    config.train.progress = False
    config.eval.every = 0
    config.checkpoint.every = 2
    cont = str(tmp_path / "continued")
    train.run(config, cont)
    _, ctx, _ = inference.load_trained_run(cont, "latest")
    assert ctx.step == 2
    before, after = hf_export.flat_params(params), hf_export.flat_params(ctx.params)
    for path in before:
        np.testing.assert_array_equal(after[path], before[path], err_msg=path)


def test_imported_checkpoint_holds_the_weights_and_no_optimizer_state(sharded_llama, tmp_path):
    """The step-0 checkpoint of an import is the weights alone (a run starting from it makes its
    own Adam moments), and sample/eval/export still restore it."""
    import orbax.checkpoint as ocp
    workdir = str(tmp_path / "w")
    _, params = _import(sharded_llama[0], workdir)
    saved = ocp.PyTreeCheckpointer().metadata(
        os.path.abspath(os.path.join(workdir, "checkpoints", "0", "state"))).item_metadata.tree
    assert saved["opt_state"] is None and saved["ema_params"] is None
    assert sorted(saved["params"]) == sorted(params)
    assert inference.fields_not_saved(workdir, "latest") == ["opt_state", "ema_params"]
