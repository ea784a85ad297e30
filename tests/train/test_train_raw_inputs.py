"""train.inputs=raw: mmhvae encodes the raw images and reconstructs the normalised ones."""

from __future__ import annotations

import json

import pytest
import torch

from raysys.config import ConfigError
from raysys.data import SliceDataset, open_store
from raysys.models import build_family
from raysys.models.family import StepContext
from raysys.preflight import preflight_train
from raysys.registry.format import save_from_checkpoint
from raysys.train import TrainConfig, train_local
from raysys.train.checkpoint import load_state

torch.set_num_threads(1)


def test_a_training_step_encodes_raw_and_reconstructs_normalised(raw_store):
    store = open_store(raw_store)
    family = build_family("mmhvae", "tiny", store.modalities, {"data_range": store.value_range, "lambda_gan": 0.0})
    family = type(family)(type(family).config_for_raw_inputs(family.config, store.raw_range), store.modalities)
    family.configure_optimizers(total_epochs=1, steps_per_epoch=1)
    model = family.modules["model"]
    seen = {}
    model.register_forward_hook(lambda module, args, out: seen.update(args=args, out=out))
    encoded = []
    model.encoders[0].register_forward_pre_hook(lambda module, args: encoded.append(args[0].clone()))
    dataset = SliceDataset(raw_store, split="train", raw=True, context=1)
    batch = torch.utils.data.default_collate([dataset[i] for i in (0, len(dataset) // 2)])
    logs = family.train_step(batch, StepContext(epoch=0, total_epochs=1, global_step=0, device=torch.device("cpu")))
    assert torch.isfinite(torch.tensor(logs["loss/total"]))
    images, _, _, inputs = seen["args"]
    assert torch.equal(inputs, batch["raw_images"][:, :, 0]) and torch.equal(images, batch["images"][:, :, 0])
    assert torch.allclose(encoded[0][:, 0], model.inputs_to_model_space(batch["raw_images"][:, 0, 0]))  # the encoder read raw
    mask = batch["mask"]
    assert torch.allclose(seen["out"].target[:, 0][mask], model.to_model_space(batch["images"][:, 0, 0])[mask])
    with pytest.raises(ValueError, match="raw_images"):
        family.eval_step({k: v for k, v in batch.items() if k != "raw_images"})


def test_train_local_on_raw_inputs_records_them(raw_store, tmp_path):
    train = TrainConfig(family="mmhvae", preset="tiny", data=raw_store, epochs=1, batch_size=2, max_steps_per_epoch=1,
                        max_val_steps=1, inputs="raw")
    preflight_train("mmhvae", train, {})
    result = train_local(train, checkpoint_dir=tmp_path / "run")
    state = load_state(result.checkpoint)
    assert state["model_config"]["input_range"] == list(open_store(raw_store).raw_range)
    assert state["train_config"]["inputs"] == "raw"
    meta = json.loads((save_from_checkpoint(result.checkpoint, tmp_path / "model") / "raysys_model.json").read_text())
    assert meta["training"]["inputs"] == "raw" and meta["model_config"]["input_range"] == [0.0, 2.0]


def test_preflight_refuses_raw_inputs_without_raw_images_or_support(tiny_store, raw_store):
    with pytest.raises(ConfigError, match="has no raw images; convert the cohort again with python -m data_prep.convert --keep-raw"):
        preflight_train("mmhvae", TrainConfig(family="mmhvae", data=tiny_store, batch_size=2, inputs="raw"), {})
    with pytest.raises(ConfigError, match="disentangle family cannot train on raw inputs"):
        preflight_train("disentangle", TrainConfig(family="disentangle", data=raw_store, batch_size=2, inputs="raw"), {})
