"""The name registries: create by name, list, warn on duplicates, fail loudly on typos."""

import pytest

from models import registry
from models.registry import Registry, create_method, create_model, list_methods, list_models


def test_builtin_names_are_registered():
    assert {"gaze_resnet_s", "gaze_resnet_m"} <= set(list_models())
    assert list_models("gaze_resnet_*") == sorted(list_models("gaze_resnet_*"))
    assert list_models("nope_*") == []
    assert {"source_only", "dann", "daln"} <= set(list_methods())


def test_unknown_names_list_the_known_ones():
    with pytest.raises(KeyError, match="gaze_resnet_s"):
        create_model("gaze_resnet_xxl")
    with pytest.raises(KeyError, match="dann"):
        create_method("cdan")


def test_register_create_and_duplicate_warning():
    reg = Registry("thing")

    @reg.register("a")
    def build_a(x=1):
        return ("a", x)

    assert reg.create("a", x=3) == ("a", 3)
    assert reg.names() == ["a"] and "a" in reg
    with pytest.warns(UserWarning, match="registered twice"):
        reg.register("a")(lambda: "other")
    assert reg.create("a") == "other"


def test_module_level_registries_are_separate():
    assert set(registry.list_models()).isdisjoint(registry.list_methods())
