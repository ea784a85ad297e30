"""Availability sampling, --missing specs, tumour assignment, ventricle warp and CLI errors (no cohort I/O)."""

from __future__ import annotations

import numpy as np
import pytest

from data_prep.phantom import (DEFAULT_RATES, generate_cohort, load_template, parse_missing_spec,
                               resolve_rates, sample_availability, tumour_assignment)
from data_prep.phantom.__main__ import main
from data_prep.phantom.deformation import VENTRICLE_STRENGTH, Deformation, source_points, subject_grid_mm, warp


def test_availability_rates_honoured_and_never_empty():
    rates = {"t1": 0.95, "t1gd": 0.9, "t2": 0.7, "flair": 0.5}
    rng = np.random.default_rng(0)
    draws = np.array([list(sample_availability(rng, rates).values()) for _ in range(1000)])
    assert draws.any(axis=1).all()
    assert np.allclose(draws.mean(axis=0), list(rates.values()), atol=0.05)


def test_availability_keeps_one_modality_when_all_rates_are_low():
    rng = np.random.default_rng(1)
    rates = {"t1": 0.0, "t2": 0.05, "flair": 0.0}
    draws = np.array([list(sample_availability(rng, rates).values()) for _ in range(1000)])
    assert (draws.sum(axis=1) == 1).all()
    assert draws[:, 1].all(), "the only modality with a non-zero rate is the one kept"
    zero = np.array([list(sample_availability(rng, {"t1": 0.0, "t2": 0.0}).values()) for _ in range(400)])
    assert (zero.sum(axis=1) == 1).all() and 0.35 < zero[:, 0].mean() < 0.65


def test_missing_spec_parsing_and_defaults():
    assert parse_missing_spec("t1=0.95, t1gd=0.9,t2=0.7,flair=0.5") == {"t1": 0.95, "t1gd": 0.9, "t2": 0.7,
                                                                       "flair": 0.5}
    assert parse_missing_spec("none", ("t1", "t2")) == {"t1": 1.0, "t2": 1.0}
    rates = resolve_rates(("t1", "flair", "pet"), {"flair": 0.2})
    assert rates == {"t1": DEFAULT_RATES["t1"], "flair": 0.2, "pet": DEFAULT_RATES["pet"]}
    for bad, message in [("t1", "modality=rate"), ("t1=high", "not a number"), ("", "empty")]:
        with pytest.raises(ValueError, match=message):
            parse_missing_spec(bad)
    with pytest.raises(ValueError, match=r"rate for 't2' must be in \[0, 1\]"):
        resolve_rates(("t1", "t2"), {"t2": -0.1})
    with pytest.raises(ValueError, match="unknown modality 'ct'"):
        resolve_rates(("t1",), {"ct": 0.5})
    with pytest.raises(ValueError, match="not among the generated modalities"):
        resolve_rates(("t1",), {"t2": 0.5})


def test_tumour_assignment_is_exact_and_prefix_stable():
    for fraction in (0.0, 0.25, 0.5, 1.0):
        flags = tumour_assignment(40, fraction, seed=3)
        assert abs(flags.sum() - fraction * 40) <= 1
        assert np.array_equal(tumour_assignment(10, fraction, seed=3), flags[:10])


def test_ventricle_warp_changes_ventricle_size():
    template = load_template(2)
    grid = subject_grid_mm(template)

    def deep_csf_volume(strength):
        deformation = Deformation(
            brain_centre_mm=template.brain_centre_mm, linear=np.eye(3), shift_mm=np.zeros(3),
            smooth_mm=np.zeros((3, 2, 2, 2), np.float32), ventricle_centre_mm=template.ventricle_centre_mm,
            ventricle_strength=strength, mass_effect=None)
        csf = warp(template.csf, source_points(deformation, grid), template.spacing_mm).reshape(template.shape)
        near = np.linalg.norm(grid - template.ventricle_centre_mm[:, None], axis=0).reshape(template.shape) < 30
        return float(csf[near].sum())

    smallest, template_size, largest = (deep_csf_volume(s) for s in (VENTRICLE_STRENGTH[0], 0.0, VENTRICLE_STRENGTH[1]))
    assert smallest < 0.9 * template_size and largest > 1.15 * template_size


@pytest.mark.parametrize("argv, message", [
    (["--modalities", "t1", "ct"], "unknown ['ct']"),
    (["--missing", "t1=1.5"], "rate for 't1' must be in [0, 1]"),
    (["--missing", "t1"], "modality=rate"),
    (["--missing", "pet=0.5"], "not among the generated modalities"),
    (["--subjects", "0"], "subjects must be a positive integer"),
    (["--tumour-fraction", "2"], "tumour_fraction must be in [0, 1]"),
    (["--resolution", "3"], "invalid choice"),
])
def test_cli_rejects_bad_arguments(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--out", str(tmp_path / "cohort"), *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "cohort").exists(), "nothing is written for bad arguments"


def test_generate_cohort_rejects_file_as_out(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(ValueError, match="not a directory"):
        generate_cohort(target, subjects=1)
