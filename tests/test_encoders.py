"""Encoders on real inputs: Online Retail descriptions, scikit-image photos, synthetic images."""

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from PIL import Image
from skimage import data as photos

from salesfusion.datasets import online_retail
from salesfusion.encoders.cache import EmbeddingCache
from salesfusion.encoders.image.efficientnet import load_efficientnet_lite0
from salesfusion.encoders.image.loading import imagenet_tensor, read_rgb
from salesfusion.encoders.image.resnet import LAYOUTS, ImageProjection, ResNet
from salesfusion.encoders.registry import create_encoder, registered_encoders
from salesfusion.encoders.static import UNSEEN, StaticVocabulary

TEXT_ENCODERS = ["tfidf", "doc2vec", "minilm", "word_sequence", "e5"]
IMAGE_ENCODERS = ["color_texture", "efficientnet_lite0", "resnet18", "resnet50"]
ESPRESSO = 967  # ImageNet class index


@pytest.fixture(scope="module")
def descriptions() -> list:
    items = online_retail().tables.items
    return [*items["description"].head(40).to_list(), None, "   "]


@pytest.fixture(scope="module")
def image_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("images")
    Image.fromarray(photos.coffee()).save(root / "coffee.png")
    Image.fromarray(photos.chelsea()).save(root / "cat.png")
    Image.fromarray(photos.camera()).save(root / "gray.png")  # grayscale
    rgba = Image.fromarray(photos.coffee()).convert("RGBA")
    rgba.putalpha(255)
    rgba.save(root / "coffee_rgba.png")
    rotated = Image.fromarray(photos.coffee()).rotate(90, expand=True)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: the stored pixels need a 90° clockwise turn
    rotated.save(root / "coffee_exif.jpg", exif=exif, quality=92)
    (root / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    (root.parent / "outside.png").write_bytes((root / "cat.png").read_bytes())
    return root


def _fitted(name: str, corpus: list):
    encoder = create_encoder(name)
    return encoder.fit(corpus) if encoder.needs_fit else encoder


@pytest.mark.parametrize("name", TEXT_ENCODERS)
def test_text_encoders_shapes_masks_determinism(name, descriptions):
    encoder = _fitted(name, descriptions)
    first = encoder.encode(descriptions)
    second = _fitted(name, descriptions).encode(descriptions)
    assert first.vectors.shape == (len(descriptions), *encoder.output_shape())
    assert first.mask.tolist() == [True] * 40 + [False, False]
    assert set(first.problems) == {40, 41}
    assert np.all(first.vectors[~first.mask] == 0)
    assert np.isfinite(first.vectors).all()
    np.testing.assert_allclose(first.vectors, second.vectors, atol=1e-5)
    if first.token_mask is not None:
        assert first.token_mask[first.mask].any(axis=1).all()
        assert not first.token_mask[~first.mask].any()


@pytest.mark.parametrize("name", TEXT_ENCODERS)
def test_second_run_hits_the_cache_and_encodes_nothing(name, descriptions, tmp_path,
                                                       monkeypatch):
    cache = EmbeddingCache(tmp_path)
    encoder = _fitted(name, descriptions)
    before = encoder.encode(descriptions, batch_size=16, cache=cache)
    calls = []
    original = type(encoder).encode_batch
    monkeypatch.setattr(type(encoder), "encode_batch",
                        lambda self, batch: calls.append(len(batch)) or original(self, batch))
    after = encoder.encode(descriptions, batch_size=16, cache=cache)
    assert calls == []
    unique = len({d for d in descriptions if d and d.strip()})
    assert after.cache_hits == unique
    np.testing.assert_array_equal(before.vectors, after.vectors)


def test_interrupted_encoding_resumes(descriptions, tmp_path, monkeypatch):
    cache = EmbeddingCache(tmp_path)
    encoder = _fitted("tfidf", descriptions)
    original = type(encoder).encode_batch
    calls = []

    def flaky(self, batch):
        calls.append(len(batch))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(self, batch)

    monkeypatch.setattr(type(encoder), "encode_batch", flaky)
    with pytest.raises(KeyboardInterrupt):
        encoder.encode(descriptions, batch_size=10, cache=cache)
    monkeypatch.setattr(type(encoder), "encode_batch", original)
    resumed = encoder.encode(descriptions, batch_size=10, cache=cache)
    assert resumed.cache_hits == 10  # the first batch survived the interruption
    assert not list(tmp_path.rglob("*.tmp"))
    uninterrupted = encoder.encode(descriptions, batch_size=10)
    np.testing.assert_array_equal(resumed.vectors, uninterrupted.vectors)
    np.testing.assert_array_equal(resumed.mask, uninterrupted.mask)


def test_text_encoders_capture_meaning():
    minilm = create_encoder("minilm").encode(["red coffee mug", "crimson cup for coffee",
                                              "garden hose reel"]).vectors
    assert minilm[0] @ minilm[1] > minilm[0] @ minilm[2]
    e5 = create_encoder("e5").encode(["red cup", "rote Tasse", "blaue Lampe"]).vectors
    assert e5[0] @ e5[1] > e5[0] @ e5[2]  # multilingual: German matches English


def test_efficientnet_uses_the_real_imagenet_weights():
    network = load_efficientnet_lite0()
    batch = torch.from_numpy(imagenet_tensor(Image.fromarray(photos.coffee())))[None]
    with torch.inference_mode():
        probabilities = network(batch).softmax(-1)[0]
    assert int(probabilities.argmax()) == ESPRESSO
    assert float(probabilities[ESPRESSO]) > 0.5


@pytest.mark.parametrize("name", IMAGE_ENCODERS)
def test_image_encoders_mask_bad_files_and_normalise_modes(name, image_root):
    encoder = create_encoder(name, image_root=image_root)
    refs = ["coffee.png", "coffee_rgba.png", "coffee_exif.jpg", "gray.png", "cat.png",
            "missing.jpg", "corrupt.jpg", "../outside.png", None]
    result = encoder.encode(refs, batch_size=4)
    assert result.vectors.shape == (len(refs), encoder.dim)
    assert result.mask.tolist() == [True] * 5 + [False] * 4
    assert "not found" in result.problems[5]
    assert "unreadable" in result.problems[6]
    assert "outside the image root" in result.problems[7]
    np.testing.assert_allclose(result.vectors[0], result.vectors[1], rtol=1e-4, atol=1e-4)
    again = create_encoder(name, image_root=image_root).encode(refs[:2]).vectors
    np.testing.assert_allclose(again, result.vectors[:2], rtol=1e-4, atol=1e-5)


def test_loading_applies_exif_orientation_and_converts_modes(image_root):
    upright = np.asarray(read_rgb(image_root / "coffee.png"), dtype=float)
    turned = np.asarray(read_rgb(image_root / "coffee_exif.jpg"), dtype=float)
    assert turned.shape == upright.shape  # rotated back by its EXIF orientation tag
    assert np.abs(turned - upright).mean() < 8  # only JPEG noise remains
    gray = read_rgb(image_root / "gray.png")
    assert gray.mode == "RGB"


def _torchvision_state_dict(depth: int) -> dict[str, tuple[int, ...]]:
    """Key names and shapes as torchvision's resnet{depth}().state_dict() has them, written
    out from torchvision's published layout (independently of our module)."""
    bottleneck = depth >= 50
    blocks = {18: [2, 2, 2, 2], 50: [3, 4, 6, 3], 101: [3, 4, 23, 3], 152: [3, 8, 36, 3]}[depth]
    shapes: dict[str, tuple[int, ...]] = {"conv1.weight": (64, 3, 7, 7)}

    def bn(prefix: str, width: int) -> None:
        for leaf in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}.{leaf}"] = (width,)
        shapes[f"{prefix}.num_batches_tracked"] = ()

    bn("bn1", 64)
    inplanes = 64
    for stage, (planes, count) in enumerate(zip([64, 128, 256, 512], blocks, strict=True), 1):
        out = planes * (4 if bottleneck else 1)
        for index in range(count):
            p = f"layer{stage}.{index}"
            if bottleneck:
                shapes[f"{p}.conv1.weight"] = (planes, inplanes, 1, 1)
                shapes[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
                shapes[f"{p}.conv3.weight"] = (out, planes, 1, 1)
                bn(f"{p}.bn1", planes), bn(f"{p}.bn2", planes), bn(f"{p}.bn3", out)
            else:
                shapes[f"{p}.conv1.weight"] = (planes, inplanes, 3, 3)
                shapes[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
                bn(f"{p}.bn1", planes), bn(f"{p}.bn2", planes)
            if index == 0 and (stage > 1 or inplanes != out):
                shapes[f"{p}.downsample.0.weight"] = (out, inplanes, 1, 1)
                bn(f"{p}.downsample.1", out)
            inplanes = out
    shapes["fc.weight"] = (1000, inplanes)
    shapes["fc.bias"] = (1000,)
    return shapes


@pytest.mark.parametrize("depth", sorted(LAYOUTS))
def test_resnet_matches_torchvision_names_and_shapes(depth):
    ours = {k: tuple(v.shape) for k, v in ResNet(depth).state_dict().items()}
    assert ours == _torchvision_state_dict(depth)


def test_resnet_loads_a_torchvision_checkpoint_file(tmp_path, image_root):
    generator = torch.Generator().manual_seed(7)
    state = {k: (torch.randn(s, generator=generator) if s else torch.tensor(0))
             for k, s in _torchvision_state_dict(18).items()}
    for key in state:
        if key.endswith("running_var"):
            state[key] = state[key].abs() + 0.5
    torch.save(state, tmp_path / "resnet18-custom.pth")
    encoder = create_encoder("resnet18", image_root=image_root,
                             weights=str(tmp_path / "resnet18-custom.pth"))
    assert encoder.pretrained
    assert not create_encoder("resnet18").pretrained
    loaded = encoder.network().state_dict()
    assert torch.equal(loaded["layer3.1.conv2.weight"], state["layer3.1.conv2.weight"])
    # The file's weights are the ones used: pooled features equal a ResNet given the state
    # directly, on the same preprocessed image.
    reference = ResNet(18)
    reference.load_state_dict(state)
    pixels = torch.from_numpy(imagenet_tensor(read_rgb(image_root / "cat.png")))[None]
    with torch.inference_mode():
        expected = reference.eval().features(pixels).numpy()
    assert np.isfinite(expected).all()
    # The cache never mixes weights: vectors of the default (random-init) weights cached first
    # are not served for the checkpoint's.
    cache = EmbeddingCache(tmp_path / "cache")
    create_encoder("resnet18", image_root=image_root).encode(["cat.png"], cache=cache)
    result = encoder.encode(["cat.png"], cache=cache)
    assert result.cache_hits == 0
    np.testing.assert_allclose(result.vectors, expected, rtol=1e-4)


def test_projection_of_seed_000():
    """Eq. 11: h = ReLU(W^T x + b), computed here from the module's own W and b."""
    projection = ImageProjection(2048, 512)
    features = torch.randn(3, 2048, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = projection(features)
        expected = torch.clamp(features @ projection.linear.weight.T + projection.linear.bias,
                               min=0)
    assert out.shape == (3, 512)
    torch.testing.assert_close(out, expected)
    assert 0 < int((out == 0).sum()) < out.numel()  # the ReLU really cuts, not everywhere


def test_static_vocabulary_reserves_unseen():
    train = pl.DataFrame({"category": ["mug", "lamp", "mug"], "price": [1.0, 3.0, 2.0]})
    vocabulary = StaticVocabulary(["category"], ["price"]).fit(train)
    codes, numbers = vocabulary.transform(pl.DataFrame({"category": ["lamp", "sofa", None],
                                                        "price": [2.0, None, 4.0]}))
    assert codes[:, 0].tolist() == [vocabulary.levels["category"]["lamp"], UNSEEN, UNSEEN]
    # Training prices 1, 3, 2: mean 2, sample sd 1; a missing price is the mean (0 scaled).
    assert numbers[:, 0].tolist() == [0.0, 0.0, 2.0]
    # Saved as JSON and read back, it transforms identically.
    again = StaticVocabulary.from_dict(json.loads(json.dumps(vocabulary.to_dict())))
    new = pl.DataFrame({"category": ["mug", "lamp", "sofa"], "price": [5.0, None, 0.5]})
    for got, want in zip(again.transform(new), vocabulary.transform(new), strict=True):
        np.testing.assert_array_equal(got, want)


def test_registry_lists_every_modality():
    assert set(registered_encoders("text")) >= set(TEXT_ENCODERS)
    assert set(registered_encoders("image")) >= {"efficientnet_lite0", "resnet18", "resnet50",
                                                 "resnet101", "resnet152", "color_texture"}
    assert registered_encoders("static") == ["static"]


@pytest.mark.parametrize("name", ["resnet18", "resnet101"])
def test_untrained_resnets_give_features_on_one_scale(name):
    """Without weights, residual branches start at zero: an untrained ResNet-101's features are
    on the scale of ResNet-18's (plain init: mean absolute value ~19,000 against ~1.6)."""
    network = create_encoder(name).network()
    with torch.no_grad():
        features = network.features(torch.rand(2, 3, 224, 224, generator=torch.Generator()
                                                .manual_seed(0)))
    assert torch.isfinite(features).all() and float(features.abs().max()) < 10
