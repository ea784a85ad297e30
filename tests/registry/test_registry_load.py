"""raysys.registry.load in a fresh process: both families, models built at two image sizes,
inputs at the native size and at another size (resampled), outputs equal to the source module's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow import MlflowClient

sys.path.insert(0, str(Path(__file__).parent))
from registry_helpers import MODALITIES, write_checkpoint  # noqa: E402

from raysys.registry import load, model_uri  # noqa: E402
from raysys.registry.format import read_model_dir, save_from_checkpoint  # noqa: E402
from raysys.tracking import get_or_create_experiment  # noqa: E402
from raysys.registry.champion import publish  # noqa: E402

pytestmark = pytest.mark.slow

SIZES = {"mmhvae": (64, 128), "disentangle": (64, 32)}  # tiny mmhvae needs >= 64 (InstanceNorm at the 1x1 bottom)

FRESH = r"""
import json, sys
import numpy as np
import raysys.registry as registry
uri, out = sys.argv[1], {}
for family, sizes in json.loads(sys.argv[2]).items():
    for size in sizes:
        name = f"{family}_{size}"
        model = registry.load(name, alias="champion", tracking_uri=uri)
        rng = np.random.default_rng(0)
        for h, w in [(size, size), (48, 80)]:
            x = rng.normal(size=(2, 4, 3, h, w)).astype("float32")
            available = np.array([[1, 1, 0, 1], [0, 1, 0, 0]], dtype=bool)
            if family == "mmhvae":
                y = {"synthesise": model.synthesise(x, available, temperature=0.0)}
            else:
                a = np.ones((2, 4), dtype=bool)
                y = {"anatomy": model.anatomy(x, a), "modality": model.modality(x, a),
                     "fused_anatomy": model.fused_anatomy(x, available),
                     "cross_synthesis": model.cross_synthesis(x, "t1", "flair", a)}
            out[f"{name}@{h}x{w}"] = {k: {"shape": list(v.shape), "finite": bool(np.isfinite(v).all()),
                                          "sum": float(np.float64(v).sum())} for k, v in y.items()}
print("RESULT " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = get_or_create_experiment(client, "registry-test", uri)
    checkpoints = {}
    for family, sizes in SIZES.items():
        for size in sizes:
            image_size = size if family == "mmhvae" else (size, size)
            ck = write_checkpoint(tmp / f"{family}_{size}", family, seed=size, image_size=image_size)
            run_id = client.create_run(experiment).info.run_id
            publish(tracking_uri=uri, family=f"{family}_{size}", checkpoint_dir=ck, objective_name="val/x",
                    objective_value=1.0, mode="max", store_id="s", run_id=run_id)
            checkpoints[(family, size)] = ck
    return uri, checkpoints, tmp


def test_load_in_a_fresh_process_gives_finite_outputs_of_the_right_shape(registry):
    uri, checkpoints, _ = registry
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", FRESH, uri, json.dumps(SIZES)], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.split("RESULT ", 1)[1])
    for family, sizes in SIZES.items():
        for size in sizes:
            for h, w in [(size, size), (48, 80)]:
                outputs = result[f"{family}_{size}@{h}x{w}"]
                assert all(o["finite"] for o in outputs.values()), outputs
                if family == "mmhvae":
                    assert outputs["synthesise"]["shape"] == [2, 4, h, w]
                else:
                    assert outputs["anatomy"]["shape"][:2] == [2, 4] and outputs["anatomy"]["shape"][-2:] == [h, w]
                    assert outputs["modality"]["shape"][:2] == [2, 4]
                    assert outputs["fused_anatomy"]["shape"][0] == 2 and outputs["fused_anatomy"]["shape"][-2:] == [h, w]
                    assert outputs["cross_synthesis"]["shape"] == [2, 3, h, w]


@pytest.mark.parametrize("family", ["mmhvae", "disentangle"])
def test_loaded_model_computes_what_the_checkpointed_module_computes(registry, family, tmp_path):
    uri, checkpoints, _ = registry
    from raysys.models import build_family
    from raysys.train.checkpoint import load_state

    size = SIZES[family][1]
    ck = checkpoints[(family, size)]
    state = load_state(ck)
    original = build_family(family, "tiny", MODALITIES, {k: v for k, v in state["model_config"].items()})
    original.load_state_dict({"modules": state["family_state"]["modules"]})
    module = original.inference_module().eval()
    loaded = load(model_uri(f"{family}_{size}", alias="champion"), tracking_uri=uri)
    x = torch.randn(2, 4, 3, size, size)
    available = torch.tensor([[True, False, True, True], [True, True, True, True]])
    with torch.no_grad():
        if family == "mmhvae":
            expected = module.synthesise(x * available[:, :, None, None, None], available, temperature=0.0)
            got = loaded.synthesise(x.numpy(), available.numpy(), temperature=0.0)
        else:
            expected = module.fused_anatomy(x * available[:, :, None, None, None], available)
            got = loaded.fused_anatomy(x, available)
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-5, atol=1e-5)
    # The local-directory form gives the same model, and the weights file loads weights-only.
    local = save_from_checkpoint(ck, tmp_path / "model")
    meta, rebuilt = read_model_dir(local)
    assert meta["family"] == family and meta["modalities"] == list(MODALITIES)
    weights = torch.load(local / "weights.pt", weights_only=True)
    assert set(weights) == set(rebuilt.state_dict())


def test_bad_references_are_refused_by_name(registry):
    uri, _, _ = registry
    from raysys.registry import RegistryError

    with pytest.raises(RegistryError, match="no_such_model"):
        load("no_such_model", tracking_uri=uri)
    with pytest.raises(ValueError, match="alias"):
        model_uri("models:/x@champion", alias="champion")
    loaded = load("disentangle_64", version=1, tracking_uri=uri)
    with pytest.raises(ValueError, match="images"):
        loaded.anatomy(np.zeros((2, 3, 3, 64, 64), dtype="float32"))
