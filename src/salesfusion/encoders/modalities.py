"""Item-content modalities as registered sources: what each reads of the items table, how its
inputs are extracted for an encoder, which encoder it uses by default, and the network buffers
its vectors become.

The network, the multimodal model's fitting and new-item paths, ``explain`` and the dashboard
loop over the registered modalities (``components.MODALITIES``) instead of naming ``text`` and
``image``, so a new modality is one file: a ``ContentModality`` subclass registered with
``@MODALITIES.register`` (or from a plug-in package, entry point group
``salesfusion.modalities``), and an encoder for it. Static attributes are not a content source
(they are coded through a vocabulary, not encoded): ``static`` stays the model's own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from salesfusion.components import MODALITIES
from salesfusion.encoders.inputs import TEXT_ROLES
from salesfusion.encoders.registry import create_encoder

if TYPE_CHECKING:
    from salesfusion.encoders.base import Encoder
    from salesfusion.encoders.inputs import Catalogue


class ContentModality:
    """One kind of item content, encoded into one vector (or a sequence) per item.

    Subclasses set ``name``, ``columns`` (items-table columns it reads: the modality is present
    when any of them is), ``needs`` (what a spec must map, for error messages) and
    ``default_encoder``, and implement ``inputs``. ``order`` places built-in modalities first,
    in a fixed order (the network's layout depends on it); others follow by name.
    ``refittable``: an encoder that learns from the catalogue can be fitted again on the saved
    catalogue to encode new items (texts are saved with the model; photos are not)."""

    name: ClassVar[str]
    columns: ClassVar[tuple[str, ...]]
    needs: ClassVar[str]
    default_encoder: ClassVar[str]
    order: ClassVar[int] = 100
    refittable: ClassVar[bool] = False

    @classmethod
    def buffers(cls) -> tuple[str, str, str]:
        """The network's buffers of this modality: vectors, presence, token masks."""
        return f"{cls.name}_values", f"{cls.name}_present", f"{cls.name}_tokens"

    @classmethod
    def present_in(cls, catalogue: Catalogue) -> bool:
        return any(column in catalogue.items.columns for column in cls.columns)

    @classmethod
    def inputs(cls, catalogue: Catalogue) -> tuple[list[Any], dict[str, Any]]:
        """(one input per item, encoder parameters the inputs need)."""
        raise NotImplementedError

    @classmethod
    def encoder(cls, catalogue: Catalogue, name: str | None = None,
                **params: Any) -> Encoder:
        """The registered encoder ``name`` (default ``default_encoder``) with the parameters
        the catalogue's inputs need."""
        _, needed = cls.inputs(catalogue)
        return create_encoder(name or cls.default_encoder, **{**needed, **params})


@MODALITIES.register
class TextModality(ContentModality):
    """Titles and descriptions, joined per item."""

    name = "text"
    columns = TEXT_ROLES
    needs = f"a text role ({', '.join(TEXT_ROLES)})"
    default_encoder = "tfidf"
    order = 0
    refittable = True

    @classmethod
    def inputs(cls, catalogue: Catalogue) -> tuple[list[Any], dict[str, Any]]:
        return catalogue.texts(), {}


@MODALITIES.register
class ImageModality(ContentModality):
    """Product photos, read through the safe loader from the image root."""

    name = "image"
    columns = ("image",)
    needs = "an 'image' role"
    default_encoder = "color_texture"
    order = 1

    @classmethod
    def inputs(cls, catalogue: Catalogue) -> tuple[list[Any], dict[str, Any]]:
        return catalogue.items["image"].to_list(), {"image_root": catalogue.image_root}


def content_modalities() -> list[type[ContentModality]]:
    """Every registered content modality, built-ins first in their fixed order."""
    return sorted((MODALITIES.get(name) for name in MODALITIES.names()),
                  key=lambda source: (source.order, source.name))


def content_modality(name: str) -> type[ContentModality]:
    return MODALITIES.get(name)
