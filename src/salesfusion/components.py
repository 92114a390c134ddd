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

A plug-in never takes a name that a built-in (or another plug-in) holds: the plug-ins are read
on a registry's first use, a single name's lookup included, and a clash is an error naming the
plug-in, its distribution and the name, whenever that name is asked for or the registry listed
(a warning when another name is looked up), instead of one component silently hiding the other.
"""

from __future__ import annotations

import importlib
import warnings
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import Any

from salesfusion.errors import InputError
from salesfusion.registry import Registry


class NameClash(ValueError):
    """A component registered under a name that another component holds."""

    def __init__(self, kind: str, name: str, holder: str) -> None:
        super().__init__(f"{kind} name '{name}' is registered twice: {holder} already holds it")
        self.name = name


class PluginWarning(UserWarning):
    """A plug-in that cannot be loaded or clashes, found while another name was looked up."""


def _origin(component: Any) -> str:
    """Where a component is defined (module and qualified name): a class, or a loss object's
    class."""
    defined = component if isinstance(component, type) else type(component)
    return f"{defined.__module__}.{defined.__qualname__}"


def _described(point: EntryPoint, group: str) -> str:
    dist = getattr(point, "dist", None)
    source = f", distribution {dist.name} {dist.version}" if dist is not None else ""
    return f"plug-in '{point.name}' ({point.value}, entry point group {group}{source})"


class PluginRegistry(Registry[Any]):
    """A registry of built-in components (imported from ``modules``, lazily) and of the
    plug-ins of its entry-point group (read once per process, or again after
    ``refresh_plugins``)."""

    def __init__(self, kind: str, group: str, modules: tuple[str, ...],
                 index: dict[str, str] | None = None) -> None:
        super().__init__(kind, self._load_everything, index)
        self.group, self.modules = f"salesfusion.{group}", modules
        self.plugins_read = False
        self.reading_plugins = False
        self.plugin_problems: list[str] = []
        self.clashes: dict[str, str] = {}  # name -> the problem of the plug-in that claims it

    def register(self, component: Any) -> Any:
        """Register ``component`` under its ``name``; a name another component holds is a
        ``NameClash``."""
        name = component.name
        if name in self._index and name not in self._entries:
            # The built-in registers first (a no-op while its own module is being imported),
            # so a plug-in claiming its name clashes instead of taking it before it loads.
            importlib.import_module(self._index[name])
        held = self._entries.get(name)
        if held is not None and held is not component:
            if _origin(held) != _origin(component):
                raise NameClash(self.kind, name, _origin(held))
            # The same class again: its plug-in module, which failed half-way, imported anew.
            self.unregister(name)
        return super().register(component)

    def _load_for(self, name: object) -> None:
        if name not in self._entries and isinstance(name, str) and name in self._index:
            importlib.import_module(self._index[name])
        if name not in self._entries:  # any built-in module may hold it, or a plug-in
            self._import_builtins()
            self._read_failures_again()  # the plug-in that failed may be the one asked for
        read_now = self.read_plugins()
        if name in self.clashes:
            raise InputError(self.clashes[name])
        if self.plugin_problems and name not in self._entries:
            raise InputError("; ".join(self.plugin_problems))
        if self.plugin_problems and read_now:  # the name answers; the others' problems are said
            warnings.warn("; ".join(self.plugin_problems), PluginWarning, stacklevel=3)

    def _import_builtins(self) -> None:
        for module in self.modules:
            importlib.import_module(module)

    def _load_everything(self) -> None:
        self._import_builtins()
        self._read_failures_again()  # a failure is said on every full read, never once only
        self.read_plugins()
        if self.plugin_problems:
            raise InputError("; ".join(self.plugin_problems))

    def _read_failures_again(self) -> None:
        # Not while reading: a plug-in that looks a name up as it loads must not recurse.
        if self.plugin_problems and not self.reading_plugins:
            self.plugins_read = False

    def read_plugins(self) -> bool:
        """Load the entry-point group's plug-ins unless they were read; True when read now.
        Every good plug-in is registered; the others are kept in ``plugin_problems`` (and in
        ``clashes`` under the name they claim)."""
        if self.plugins_read:
            return False
        self.plugins_read = self.reading_plugins = True  # first: no recursion from a plug-in
        try:
            self._read_plugins()
        finally:
            self.reading_plugins = False
        return True

    def _read_plugins(self) -> None:
        if not self._index:
            # Without an index a built-in's name is known only once its module is imported.
            self._import_builtins()
        problems, clashes = [], {}
        for point in entry_points(group=self.group):
            where, stage = _described(point, self.group), "loaded"
            try:
                loaded = point.load()
                if not isinstance(loaded, ModuleType):
                    stage = "registered"
                    self.register(loaded)
            except NameClash as clash:  # from an object, or from a module's decorator
                clashes[clash.name] = f"{where} cannot be registered: {clash}"
                problems.append(clashes[clash.name])
            except Exception as exc:  # a broken plug-in names itself, not a traceback
                problems.append(f"{where} cannot be {stage}: {type(exc).__name__}: {exc}")
        self.plugin_problems, self.clashes = problems, clashes


def _registry(kind: str, group: str, *modules: str,
              index: dict[str, str] | None = None) -> PluginRegistry:
    registry = PluginRegistry(kind, group, modules, index)
    _PLUGGABLE.append(registry)
    return registry


_PLUGGABLE: list[PluginRegistry] = []


def refresh_plugins() -> None:
    """Read the entry points again on each registry's next use: after a distribution was
    installed into (or put on the path of) a running process."""
    for registry in _PLUGGABLE:
        registry.plugins_read = False


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
