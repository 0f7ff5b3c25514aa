"""Out-of-domain marks (projection/flags.py): a face is judged against the model's own held-out PSNR, so one face
alone can be marked, where the run-relative flags need a run of faces."""

from __future__ import annotations

import numpy as np

from facemath_core.projection.flags import domain_threshold, domain_warnings, flag_outliers, out_of_domain

META = {
    "reconstruction_psnr": {
        "quantiles": {"0.01": 21.0, "0.5": 24.1, "0.99": 26.8},
        "faces": 512,
        "method": "projection",
    },
    "card": {"data": {"recipe": "facemath data synth --count 32000 --seed 0 --out faces"}},
}


def test_below_the_first_percentile_is_out_of_domain():
    psnr = np.array([10.8, 20.99, 21.0, 24.0])
    assert out_of_domain(psnr, META).tolist() == [True, True, False, False]
    assert domain_threshold(META) == (21.0, 24.1)


def test_one_face_is_judged_where_the_run_relative_flags_say_nothing():
    assert flag_outliers(np.array([3000.0]), np.array([10.8])).tolist() == [False]  # too few faces to compare
    assert out_of_domain(np.array([10.8]), META).tolist() == [True]


def test_a_failed_face_is_failed_not_out_of_domain():
    assert out_of_domain(np.array([5.0, 5.0]), META, failed=np.array([True, False])).tolist() == [False, True]


def test_a_model_without_figures_says_nothing():
    assert out_of_domain(np.array([1.0]), {}) is None
    assert out_of_domain(np.array([1.0]), {"reconstruction_psnr": {"quantiles": {"0.5": 3}}}) is None
    assert domain_warnings(["a.png"], [1.0], None, {}, "generator", 2) == []


def test_the_warning_names_the_models_typical_psnr_and_data():
    (line,) = domain_warnings(["me_1.png", "x.png"], [10.84, 25.0], np.array([True, False]), META, "generator", 2)
    assert line == (
        "me_1.png: out of the model's domain: PSNR 10.8 dB, below generator version 2's 1st percentile (21.0 dB; "
        "typical 24.1 dB on its held-out faces, trained on facemath data synth --count 32000 --seed 0 --out faces): "
        "a face unlike its training faces, or a reconstruction that failed"
    )
