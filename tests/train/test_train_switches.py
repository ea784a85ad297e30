"""train.modalities and train.training_subjects: what the model is built on, sees and records."""

from __future__ import annotations

import json

import pytest
import torch

from raysys.config import ConfigError
from raysys.data import open_store
from raysys.models.mmhvae.family import MMHVAEFamily
from raysys.preflight import preflight_train
from raysys.registry.format import save_from_checkpoint
from raysys.train import TrainConfig, train_local
from raysys.train.checkpoint import load_state
from raysys.train.config import run_modalities, train_config_from_flat

torch.set_num_threads(1)


def mmhvae_train(store: str, **kw) -> TrainConfig:
    base = dict(family="mmhvae", preset="tiny", data=store, epochs=1, batch_size=2, max_steps_per_epoch=2, max_val_steps=1)
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture()
def seen_batches(monkeypatch):
    """The (subject, available) of every training batch the mmhvae family is given."""
    seen: list[tuple[list[int], torch.Tensor]] = []
    original = MMHVAEFamily.train_step

    def recording(self, batch, ctx):
        seen.append((batch["subject"].tolist(), batch["available"].clone()))
        assert batch["images"].shape[1] == len(self.modalities)
        return original(self, batch, ctx)

    monkeypatch.setattr(MMHVAEFamily, "train_step", recording)
    return seen


def test_config_reads_modalities_and_keeps_store_order():
    train = train_config_from_flat({"modalities": "flair, t2", "training_subjects": "complete"})
    assert train.modalities == ("flair", "t2") and train.training_subjects == "complete"
    assert train_config_from_flat({"modalities": ""}).modalities == ()
    assert run_modalities(train, ["t1", "t1gd", "t2", "flair"]) == ["t2", "flair"]
    assert run_modalities(TrainConfig(), ["t1", "t2"]) == ["t1", "t2"]
    with pytest.raises(ConfigError, match="pd not in the store"):
        run_modalities(TrainConfig(modalities=("t2", "pd")), ["t1", "t2"])
    with pytest.raises(ConfigError, match="twice"):
        TrainConfig(modalities=("t2", "t2"))
    with pytest.raises(ConfigError, match="training_subjects"):
        TrainConfig(training_subjects="some")


def test_a_two_modality_model_trains_and_records_its_modalities(tiny_store, tmp_path, seen_batches):
    result = train_local(mmhvae_train(tiny_store, modalities=("flair", "t2")), checkpoint_dir=tmp_path / "run")
    state = load_state(result.checkpoint)
    assert state["modalities"] == ["t2", "flair"] and state["train_config"]["modalities"] == ["flair", "t2"]
    assert len(seen_batches) == 2 and all(a.shape == (2, 2) and a.any(1).all() for _, a in seen_batches)
    heads = {k.split(".")[1] for k in state["family_state"]["modules"]["model"] if k.startswith("heads.")}
    assert heads == {"0", "1"}  # one image head per chosen modality
    scored = {k for k in result.metrics if k.startswith("val/psnr/")}
    assert "val/psnr/t2_to_t2" in scored and all("t1" not in k for k in scored)  # cells of its modalities only
    meta_dir = save_from_checkpoint(result.checkpoint, tmp_path / "model")
    meta = json.loads((meta_dir / "raysys_model.json").read_text())
    assert meta["modalities"] == ["t2", "flair"]


def test_complete_training_subjects_only_and_recorded(tiny_store, tmp_path, seen_batches):
    store = open_store(tiny_store)
    chosen = ["t1gd", "t2"]
    columns = [store.modalities.index(m) for m in chosen]
    train_split = store.split_subjects("train", 0)
    complete = {int(s) for s in train_split if store.availability[s, columns].all()}
    assert 2 <= len(complete) < len(train_split)  # the fixture has incomplete training subjects
    result = train_local(mmhvae_train(tiny_store, modalities=tuple(chosen), training_subjects="complete",
                                      max_steps_per_epoch=4), checkpoint_dir=tmp_path / "run")
    assert {s for subjects, _ in seen_batches for s in subjects} <= complete
    assert all(a.all() for _, a in seen_batches)  # complete subjects: both modalities in every item
    meta_dir = save_from_checkpoint(result.checkpoint, tmp_path / "model")
    training = json.loads((meta_dir / "raysys_model.json").read_text())["training"]
    assert training["train_subjects"] == [store.subjects[s] for s in sorted(complete)]
    assert len(training["val_subjects"]) == len(store.split_subjects("val", 0))  # validation unchanged


def test_preflight_refuses_unknown_modalities_and_too_few_complete_subjects(tiny_store):
    with pytest.raises(ConfigError) as err:
        preflight_train("mmhvae", mmhvae_train(tiny_store, modalities=("t2", "pd")), {})
    assert "\n" not in str(err.value) and "pd is no modality" in str(err.value) and "t1,t1gd,t2,flair" in str(err.value)
    store = open_store(tiny_store)
    n = sum(bool(store.availability[s].all()) for s in store.split_subjects("train", 0))
    with pytest.raises(ConfigError) as err:
        preflight_train("mmhvae", mmhvae_train(tiny_store, batch_size=n + 1, training_subjects="complete"), {})
    assert "\n" not in str(err.value) and f"has {n} subjects" in str(err.value) and "training_subjects=all" in str(err.value)
    preflight_train("mmhvae", mmhvae_train(tiny_store, batch_size=n, training_subjects="complete"), {})
    with pytest.raises(ConfigError, match="cannot be used by the disentangle model"):
        preflight_train("disentangle", mmhvae_train(tiny_store, family="disentangle", modalities=("t2",)), {})
