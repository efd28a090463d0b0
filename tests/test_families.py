"""The registry of model families (fxlic/families.py): every role resolves, and every front end uses it."""

from __future__ import annotations

import pytest

from fxlic import models
from fxlic.families import FAMILIES, UnknownFamilyError, family, family_of, open_codec

GOLDEN_ROLES = ("codec", "integer_model", "partition", "board_net")
TORCH_ROLES = ("qat_config", "qat_model", "hw_graph")


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_golden_path_roles_resolve(name: str) -> None:
    fam = FAMILIES[name]
    for role in GOLDEN_ROLES:
        assert callable(fam.resolve(role)), role


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_torch_roles_resolve(name: str) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("compressai")
    fam = FAMILIES[name]
    for role in TORCH_ROLES:
        assert callable(fam.resolve(role)), role


def test_every_shipped_model_opens_the_codec_of_its_family() -> None:
    for name, files in models.available().items():
        model = models.load(name, sorted(files)[0])
        fam = family_of(model)
        codec = open_codec(model)
        assert type(codec) is fam.resolve("codec")
        assert type(codec.net) is fam.resolve("integer_model")
        assert codec.architecture == fam.stream_architecture


def test_model_files_without_an_architecture_are_mean_scale() -> None:
    assert family(None).name == "meanscale" and family_of({"config": {}}).name == "meanscale"


def test_unknown_architecture_is_refused() -> None:
    with pytest.raises(UnknownFamilyError, match="unknown model architecture 'wavelet'; known: meanscale"):
        family("wavelet")


def test_qat_model_of_a_config_comes_from_the_registry() -> None:
    pytest.importorskip("torch")
    pytest.importorskip("compressai")
    from fxlic.qat.charm import CharmHyperprior, model_from_config
    from fxlic.qat.models import MeanScaleHyperprior

    assert type(model_from_config({"N": 8, "M": 12})) is MeanScaleHyperprior
    charm = model_from_config({"N": 8, "M": 12, "slices": 3, "context_hidden": [8, 6], "architecture": "charm"})
    assert type(charm) is CharmHyperprior
