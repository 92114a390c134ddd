"""The CLIP-style joint space: trained on (image, caption) pairs, it must match held-out images
to their captions far above chance, and saved heads must load back without training."""

import numpy as np
import pytest

from salesfusion.datasets.synthetic import synthetic
from salesfusion.encoders.registry import create_encoder
from salesfusion.errors import InputError


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    shop = synthetic(tmp_path_factory.mktemp("clip"), n_items=240, n_weeks=4, seed=4)
    items = shop.tables.items.join(shop.truth.item_effects, on="item_id")
    captions = [f"a {c} {p} product" for c, p in zip(items["colour"], items["pattern"],
                                                     strict=True)]
    return shop, items["image"].to_list(), captions


def test_joint_space_retrieves_captions(catalogue, tmp_path):
    shop, refs, captions = catalogue
    clip = create_encoder("clip", image_root=shop.folder, image_encoder="color_texture",
                          epochs=80).fit(list(zip(refs[:180], captions[:180], strict=True)))
    images = clip.encode(refs[180:]).vectors
    classes = sorted(set(captions))
    texts = clip.encode_text(classes)
    predicted = np.array(classes)[(images @ texts.T).argmax(axis=1)]
    accuracy = float((predicted == np.array(captions[180:])).mean())
    assert accuracy > 0.6 > 3 / len(classes)
    assert np.allclose(np.linalg.norm(images, axis=1), 1.0, atol=1e-5)

    clip.save_heads(tmp_path / "heads.safetensors")
    loaded = create_encoder("clip", image_root=shop.folder, image_encoder="color_texture",
                            weights=str(tmp_path / "heads.safetensors"))
    np.testing.assert_allclose(loaded.encode(refs[180:]).vectors, images, atol=1e-6)
    np.testing.assert_allclose(loaded.encode_text(classes), texts, atol=1e-6)  # both heads


def test_mismatched_heads_are_refused(catalogue, tmp_path):
    shop, refs, captions = catalogue
    clip = create_encoder("clip", image_root=shop.folder, image_encoder="color_texture",
                          epochs=1, dim=32).fit(list(zip(refs[:20], captions[:20], strict=True)))
    clip.save_heads(tmp_path / "small.safetensors")
    with pytest.raises(InputError, match="not matching clip heads"):
        create_encoder("clip", image_root=shop.folder, image_encoder="color_texture",
                       weights=str(tmp_path / "small.safetensors"))
