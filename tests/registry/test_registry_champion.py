"""Champion rule against a real MLflow registry (sqlite): the alias moves only on improvement."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

sys.path.insert(0, str(Path(__file__).parent))
from registry_helpers import write_checkpoint  # noqa: E402

from raysys.tracking import get_or_create_experiment  # noqa: E402
from raysys.names import TAG_STORE  # noqa: E402
from raysys.registry.champion import CHAMPION, publish, should_promote  # noqa: E402

OBJ = "val/psnr_cross"


@pytest.fixture()
def registry(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri, registry_uri=uri)
    experiment = get_or_create_experiment(client, "champion-test", uri)
    checkpoint = write_checkpoint(tmp_path / "ck", "disentangle")

    def pub(value: float, store: str = "store-a", mode: str = "max", **kw):
        run_id = client.create_run(experiment).info.run_id
        return publish(tracking_uri=uri, family="disentangle", checkpoint_dir=checkpoint, objective_name=OBJ,
                       objective_value=value, mode=mode, store_id=store, run_id=run_id, **kw)

    return client, pub


def champion_version(client) -> str:
    return str(client.get_model_version_by_alias("disentangle", CHAMPION).version)


def test_champion_moves_only_when_beaten_on_the_same_objective_and_store(registry):
    client, pub = registry
    first = pub(20.0)
    assert first.is_champion and first.previous_champion is None and champion_version(client) == first.version
    worse = pub(19.5)
    assert not worse.is_champion and champion_version(client) == first.version
    equal = pub(20.0)
    assert not equal.is_champion and champion_version(client) == first.version
    better = pub(21.0)
    assert better.is_champion and better.previous_champion == first.version and champion_version(client) == better.version
    other_store = pub(35.0, store="store-b")
    assert not other_store.is_champion and "not comparable" in other_store.reason
    assert champion_version(client) == better.version
    versions = client.search_model_versions("name='disentangle'")
    assert len(versions) == 5  # every candidate stays registered, with the decision recorded
    tags = client.get_model_version("disentangle", other_store.version).tags
    assert tags[TAG_STORE] == "store-b" and "not comparable" in tags["raysys.champion_decision"]


def test_a_failure_after_create_model_version_leaves_no_version_behind(registry):
    client, pub = registry
    first = pub(20.0)

    def fail(version: str) -> None:
        raise RuntimeError(f"simulated failure after creating version {version}")

    with pytest.raises(RuntimeError, match="simulated failure"):
        pub(25.0, before_alias=fail)
    versions = client.search_model_versions("name='disentangle'")
    assert [str(v.version) for v in versions] == [first.version]
    assert champion_version(client) == first.version


def test_min_mode_and_refusals():
    champ = {"raysys.objective": "val/loss", "raysys.objective_value": "1.0", "raysys.store_id": "s"}
    assert should_promote(champ, "val/loss", 0.5, "min", "s")[0]
    assert not should_promote(champ, "val/loss", 1.5, "min", "s")[0]
    assert not should_promote(champ, "val/other", 0.1, "min", "s")[0]
    assert should_promote(None, "val/loss", 9.0, "min", "s") == (True, "no champion yet")
