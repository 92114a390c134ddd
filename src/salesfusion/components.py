"""Every registry of components, in one place at the bottom of the layers: models, encoders,
fusions, temporal backbones, heads, losses and target transforms.

Each registry imports the modules that register its built-in components only when it is first
read, so importing this module is cheap and no layer has to import another to validate a name.
``salesfusion components`` lists them all.

Components from outside the package: an installed distribution that declares entry points in
the group ``salesfusion.<kind>`` (``salesfusion.models``, ``salesfusion.encoders``,
``salesfusion.fusions``, ``salesfusion.backbones``, ``salesfusion.heads``, ``salesfusion.losses``,
``salesfusion.target_transforms``, ``salesfusion.searchers``,
``salesfusion.modalities``) adds to that registry when it is
first read: an entry point naming a module (``my_pkg.backbone``) is imported, its decorators
registering what it defines; one naming an object (``my_pkg.backbone:Mine``) registers that
object. So the CLI, ``serve`` and ``Forecaster.load`` all see a plug-in without an import of it.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any

from salesfusion.errors import InputError
from salesfusion.registry import Registry


class _Loader:
    """Imports a registry's built-in modules, then (once per process, or again after
    ``refresh_plugins``) its entry-point group's plug-ins."""

    def __init__(self, group: str, *modules: str) -> None:
        self.group, self.modules = group, modules
        self.registry: Registry[Any] | None = None
        self.plugins_loaded = False

    def __call__(self) -> None:
        for module in self.modules:
            importlib.import_module(module)
        if self.plugins_loaded or self.registry is None:
            return
        self.plugins_loaded = True  # first: a plug-in that reads its registry must not recurse
        broken = []
        # Every good plug-in is registered before a broken one is reported, and the group is
        # read again on the next use, so a failure is never silent the second time.
        for point in entry_points(group=self.group):
            where = f"plug-in '{point.name}' ({point.value}, entry point group {self.group})"
            try:
                loaded = point.load()
            except Exception as exc:  # a broken plug-in names itself, not a traceback
                broken.append(f"{where} cannot be loaded: {type(exc).__name__}: {exc}")
                continue
            if not isinstance(loaded, ModuleType):
                try:
                    self.registry.register(loaded)
                except (AttributeError, ValueError) as exc:  # no name, or a name taken
                    broken.append(f"{where} cannot be registered: {exc}")
        if broken:
            self.plugins_loaded = False
            raise InputError("; ".join(broken))


def _registry(kind: str, group: str, *modules: str,
              index: dict[str, str] | None = None) -> Registry[Any]:
    loader = _Loader(f"salesfusion.{group}", *modules)
    registry: Registry[Any] = Registry(kind, loader, index)
    loader.registry = registry
    _LOADERS.append(loader)
    return registry


_LOADERS: list[_Loader] = []


def refresh_plugins() -> None:
    """Read the entry points again on each registry's next use: after a distribution was
    installed into (or put on the path of) a running process."""
    for loader in _LOADERS:
        loader.plugins_loaded = False


def _by_module(modules: dict[str, tuple[str, ...]]) -> dict[str, str]:
    return {name: module for module, names in modules.items() for name in names}


# Which module registers each built-in model and encoder (tests/test_imports.py holds this
# true), so that asking for ``naive`` imports statistics, not torch. The presets are the YAML
# files of ``models/presets``, registered by that package.
_MODEL_MODULES = {
    "salesfusion.models.baselines.statistical": (
        "naive", "seasonal_naive", "moving_average", "ets", "arima", "croston", "tsb",
        "adida", "imapa"),
    "salesfusion.models.baselines.launch_curves": (
        "mean_launch_curve", "median_launch_curve", "category_launch_curve"),
    "salesfusion.models.baselines.knn": ("knn_analogue",),
    "salesfusion.models.baselines.lightgbm": ("lightgbm",),
    "salesfusion.models.baselines.lightgbm_launch": ("lightgbm_launch",),
    "salesfusion.models.ensemble": ("ensemble", "launch_ensemble"),
    "salesfusion.models.multimodal": ("multimodal",),
    "salesfusion.models.presets": (
        "bert_cnn", "ca_rnn", "gru", "gtm", "lstm", "memf", "msrl_bigru", "multimodal_launch",
        "resnet_biattn_bilstm", "tft_multimodal", "transformer"),
}
_ENCODER_MODULES = {
    "salesfusion.encoders.text.tfidf": ("tfidf",),
    "salesfusion.encoders.text.doc2vec": ("doc2vec",),
    "salesfusion.encoders.text.minilm": ("minilm", "word_sequence"),
    "salesfusion.encoders.text.e5": ("e5",),
    "salesfusion.encoders.image.color_texture": ("color_texture",),
    "salesfusion.encoders.image.resnet": ("resnet18", "resnet50", "resnet101", "resnet152"),
    "salesfusion.encoders.image.efficientnet": ("efficientnet_lite0",),
    "salesfusion.encoders.static": ("static",),
    "salesfusion.encoders.clip": ("clip",),
}

MODELS = _registry("model", "models", *_MODEL_MODULES, index=_by_module(_MODEL_MODULES))
ENCODERS = _registry("encoder", "encoders", *_ENCODER_MODULES,
                     index=_by_module(_ENCODER_MODULES))
FUSIONS = _registry("fusion", "fusions", "salesfusion.fusion")
BACKBONES = _registry("backbone", "backbones", "salesfusion.models.temporal")
HEADS = _registry("head", "heads", "salesfusion.models.heads")
LOSSES = _registry("loss", "losses", "salesfusion.training.losses")
TARGET_TRANSFORMS = _registry("target transform", "target_transforms",
                              "salesfusion.training.transforms")
SEARCHERS = _registry("searcher", "searchers", "salesfusion.tuning.searchers")
MODALITIES = _registry("modality", "modalities", "salesfusion.encoders.modalities")

ALL: dict[str, Registry[Any]] = {r.kind: r for r in (
    MODELS, ENCODERS, FUSIONS, BACKBONES, HEADS, LOSSES, TARGET_TRANSFORMS, SEARCHERS,
    MODALITIES)}
