"""Your own image folder: odd files are skipped or named, never hang the loader or load twice."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image

from contrastive_lab.data.folder import load_image_folder


def save(path, colour=(200, 30, 30), size=(20, 12)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are a POSIX thing")
def test_a_named_pipe_among_the_images_is_skipped_not_waited_on(tmp_path):
    save(tmp_path / "cats" / "a.png")
    os.mkfifo(tmp_path / "cats" / "pipe.png")
    script = textwrap.dedent(f"""
        from contrastive_lab.data.folder import load_image_folder
        x, y, classes = load_image_folder({str(tmp_path)!r}, image_size=16)
        print(tuple(x.shape))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "(1, 3, 16, 16)" in done.stdout
    assert "skipped 1 entry(ies) that are not regular files" in done.stdout and "pipe.png" in done.stdout


def test_a_symlink_loop_loads_each_image_once(tmp_path):
    save(tmp_path / "cats" / "a.png")
    save(tmp_path / "cats" / "b.png")
    os.symlink("..", tmp_path / "cats" / "up")
    x, _, classes = load_image_folder(tmp_path, image_size=16)
    assert len(x) == 2 and classes == ["cats"]


def test_a_16_bit_grey_png_keeps_its_brightness(tmp_path):
    (tmp_path / "grey").mkdir()
    Image.fromarray(np.full((8, 8), 30000, dtype=np.uint16)).save(tmp_path / "grey" / "deep.png")
    Image.fromarray(np.full((8, 8), 117, dtype=np.uint8)).save(tmp_path / "grey" / "plain.png")
    x, _, _ = load_image_folder(tmp_path, image_size=8)
    assert x[0].unique().tolist() == [117] and x[1].unique().tolist() == [117]     # 30000 / 65535 × 255 ≈ 117


def test_a_jpeg_is_turned_upright_by_its_exif_orientation(tmp_path):
    pixels = np.zeros((16, 32, 3), dtype=np.uint8)
    pixels[:, :16] = (255, 0, 0)                                    # left half red, right half blue
    pixels[:, 16:] = (0, 0, 255)
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6                                                # "rotate 90° clockwise to view"
    (tmp_path / "photos").mkdir()
    image.save(tmp_path / "photos" / "phone.jpg", exif=exif, quality=95)
    x, _, _ = load_image_folder(tmp_path, image_size=16)
    top, bottom = x[0, :, :6].float().mean((1, 2)), x[0, :, -6:].float().mean((1, 2))
    assert top[0] > 200 and top[2] < 60 and bottom[2] > 200 and bottom[0] < 60      # red on top, blue below


def test_a_decompression_bomb_is_a_clear_error_naming_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)             # a 20×12 image is then "too large"
    save(tmp_path / "cats" / "huge.png")
    with pytest.raises(ValueError, match="cannot read image .*huge.png: it is too large to decode safely"):
        load_image_folder(tmp_path)


def test_images_beside_the_class_folders_are_reported(tmp_path, capsys):
    save(tmp_path / "cats" / "a.png")
    for i in range(5):
        save(tmp_path / f"loose{i}.png")
    x, _, _ = load_image_folder(tmp_path, image_size=16)
    assert len(x) == 1
    assert "ignored 5 image(s) lying beside the class folders (e.g. loose0.png)" in capsys.readouterr().out


@pytest.mark.parametrize("size", [32.5, "32", True])
def test_image_size_must_be_a_whole_number(tmp_path, size):
    save(tmp_path / "cats" / "a.png")
    with pytest.raises(ValueError, match="image_size must be a whole number of pixels"):
        load_image_folder(tmp_path, image_size=size)


def test_hidden_folders_are_not_classes(tmp_path):
    save(tmp_path / "cats" / "a.png")
    (tmp_path / ".ipynb_checkpoints").mkdir()
    _, _, classes = load_image_folder(tmp_path, image_size=16)
    assert classes == ["cats"]


def test_same_pixels_as_before_for_an_ordinary_image(tmp_path):
    save(tmp_path / "cats" / "a.png", colour=(10, 120, 250), size=(16, 16))
    x, y, _ = load_image_folder(tmp_path, image_size=16)
    assert x.dtype == torch.uint8 and x[0, :, 0, 0].tolist() == [10, 120, 250] and y.tolist() == [0]


def test_a_jpeg_with_garbled_bytes_mid_stream_is_a_clear_error_not_wrong_pixels(tmp_path):
    pixels = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
    (tmp_path / "cats").mkdir()
    Image.fromarray(pixels).save(tmp_path / "cats" / "intact.jpg", quality=90)
    data = bytearray((tmp_path / "cats" / "intact.jpg").read_bytes())
    middle = len(data) // 2
    data[middle:middle + 40] = np.random.default_rng(1).integers(0, 255, 40, dtype=np.uint8).tobytes()
    (tmp_path / "cats" / "garbled.jpg").write_bytes(bytes(data))
    with Image.open(tmp_path / "cats" / "garbled.jpg") as image:
        image.load()                                               # Pillow alone decodes it without a word
    with pytest.raises(ValueError, match=r"cannot read image .*garbled.jpg: its JPEG data is damaged \(Corrupt JPEG"):
        load_image_folder(tmp_path, image_size=16)
    (tmp_path / "cats" / "garbled.jpg").unlink()
    x, _, _ = load_image_folder(tmp_path, image_size=16)          # the intact JPEG loads, no complaint
    assert x.shape == (1, 3, 16, 16)
