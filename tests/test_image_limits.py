"""Every image failure masks that item with its reason: decompression bombs (refused from the
header, before decoding), images over the pixel limit, truncated files, non-images, corrupt
chunks; ``encode`` and model training finish with the item masked."""

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image
from typer.testing import CliRunner

from salesfusion.cli import app
from salesfusion.encoders.image import loading
from salesfusion.encoders.image.color_texture import ColorTextureEncoder
from salesfusion.encoders.image.loading import UnreadableImage, read_rgb

runner = CliRunner()


def claimed_size_png(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose IHDR header claims ``width`` x ``height`` (CRC fixed, so it parses)."""
    buffer = io.BytesIO()
    Image.new("P", (8, 8)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = struct.pack(">II", width, height)  # IHDR data starts after 8 + 4 + 4 bytes
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    return path


def photo(path: Path, width: int = 48, height: int = 32, seed: int = 0) -> Path:
    pixels = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture
def bad_images(tmp_path: Path) -> Path:
    claimed_size_png(tmp_path / "bomb.png", 40_000, 40_000)  # over Pillow's error limit
    claimed_size_png(tmp_path / "big.png", 12_000, 12_000)  # between warning and error limits
    whole = photo(tmp_path / "good.png").read_bytes()
    (tmp_path / "truncated.png").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "text.png").write_text("name,price\nmug,3\n")
    broken = bytearray(whole)
    broken[whole.index(b"IDAT") + 20] ^= 0xFF  # compressed pixel data no longer inflates
    (tmp_path / "broken.png").write_bytes(bytes(broken))
    # Pillow reports this one with a ValueError, not an OSError: still masked.
    (tmp_path / "bad.ppm").write_bytes(b"P6\n4 4\n0\n" + bytes(48))
    photo(tmp_path / "other.jpg", 20, 60, seed=1)
    return tmp_path


def test_bomb_header_is_refused_before_decoding(bad_images):
    with pytest.raises(UnreadableImage, match=r"1,600,000,000 pixels, over the limit"):
        read_rgb(bad_images / "bomb.png")


def test_image_between_pillows_warning_and_error_limits_is_refused(bad_images):
    """Pillow would only warn about 144 megapixels and decode 0.4 GB: refused instead."""
    with pytest.raises(UnreadableImage, match=r"144,000,000 pixels, over the limit of "
                                              r"89,478,485 \(MAX_IMAGE_PIXELS"):
        read_rgb(bad_images / "big.png")


def test_pixel_limit_is_a_setting_checked_from_the_header(tmp_path, monkeypatch):
    image = photo(tmp_path / "p.png", 40, 30)
    assert read_rgb(image).size == (40, 30)
    assert read_rgb(image, max_pixels=1200).size == (40, 30)  # the limit itself is allowed
    with pytest.raises(UnreadableImage, match=r"40x30 = 1,200 pixels, over the limit of 1,199"):
        read_rgb(image, max_pixels=1199)
    monkeypatch.setattr(loading, "MAX_IMAGE_PIXELS", 1000)  # the documented module setting
    encoded = ColorTextureEncoder(image_root=tmp_path).encode(["p.png"])
    assert not encoded.mask[0] and "over the limit of 1,000" in encoded.problems[0]


def test_every_failure_masks_its_item_with_a_reason(bad_images):
    names = ["good.png", "bomb.png", "big.png", "truncated.png", "text.png", "broken.png",
             "bad.ppm", "other.jpg"]
    encoded = ColorTextureEncoder(image_root=bad_images).encode(names)
    assert encoded.mask.tolist() == [True, False, False, False, False, False, False, True]
    problems = encoded.problems
    assert "1,600,000,000 pixels" in problems[1] and "144,000,000 pixels" in problems[2]
    assert "truncated" in problems[3]
    assert "cannot identify image file" in problems[4]
    assert "broken data stream" in problems[5]
    assert "corrupt image (ValueError: maxval must be greater than 0" in problems[6]
    assert all(p.startswith("unreadable: ") for p in problems.values())
    assert np.all(encoded.vectors[~encoded.mask] == 0)


def test_extreme_aspect_ratio_is_resampled_without_blowing_up(tmp_path):
    """A 1x40000 banner (40k pixels) would be scaled to 128x5.1M before cropping; only the
    kept region is resampled."""
    Image.new("RGB", (1, 40_000), (200, 30, 30)).save(tmp_path / "banner.png")
    encoded = ColorTextureEncoder(image_root=tmp_path).encode(["banner.png"])
    assert encoded.mask.all() and np.isfinite(encoded.vectors).all()
    crop = loading.center_crop_array(read_rgb(tmp_path / "banner.png"), 16)
    assert crop.shape == (16, 16, 3)
    assert np.allclose(crop, np.array([200, 30, 30]) / 255, atol=1 / 255)


def _shop_with_bad_images(folder: Path) -> Path:
    from salesfusion.datasets.synthetic import generate

    generate(folder, n_items=20, n_weeks=20, seed=2)
    claimed_size_png(folder / "images" / "S00003.png", 40_000, 40_000)
    whole = (folder / "images" / "S00004.png").read_bytes()
    (folder / "images" / "S00004.png").write_bytes(whole[: len(whole) // 2])
    return folder / "spec.yaml"


def test_cli_encode_finishes_and_reports_the_masked_bomb(tmp_path):
    spec = _shop_with_bad_images(tmp_path / "shop")
    out = tmp_path / "out" / "img.parquet"
    result = runner.invoke(app, ["encode", "--spec", str(spec), "--modality", "image",
                                 "--encoder", "color_texture", "--cache", str(tmp_path / "c"),
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "2 masked" in result.stderr
    assert "masked S00003: unreadable: image is 1,600,000,000 pixels" in result.stderr
    assert "masked S00004: unreadable: image file is truncated" in result.stderr
    assert "Traceback" not in result.output
    written = pl.read_parquet(out)
    masked = written.filter(~pl.col("mask"))
    assert masked["item_id"].to_list() == ["S00003", "S00004"]
    assert "over the limit" in masked["problem"][0]


def test_training_finishes_with_the_bomb_masked(tmp_path):
    from salesfusion.data.panel import build_panel
    from salesfusion.data.spec import load_spec
    from salesfusion.data.validate import load_tables
    from salesfusion.models.registry import create_model

    spec = _shop_with_bad_images(tmp_path / "shop")
    panel = build_panel(load_tables(load_spec(spec)))
    model = create_model("multimodal", epochs=1, lookback=8, hidden=8, fusion_dim=8,
                         accelerator="cpu", cache_dir=str(tmp_path / "cache")).fit(panel)
    note = next(n for n in model.notes if "image(s) missing or unreadable" in n)
    assert note.startswith("2 item image(s) missing or unreadable: masked (first: S00003: "
                           "unreadable: image is 1,600,000,000 pixels, over the limit")
    assert model.predict(2)["y_pred"].is_finite().all()
