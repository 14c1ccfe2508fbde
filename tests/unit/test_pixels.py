"""The desktop pixel checks must reject blank and error screens."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

from tests.e2e.pixels import desktop_checks


def test_blank_screen_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "blank.png"
    Image.new("RGB", (1280, 800), (40, 60, 80)).save(path)
    problems = desktop_checks(path)
    assert any("blank" in p for p in problems) and any("icons" in p for p in problems)


def test_text_page_without_icons_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "error.png"
    image = Image.new("RGB", (1280, 800), (255, 255, 255))
    ImageDraw.Draw(image).text((600, 400), "Failed to connect to server", fill=(0, 0, 0))
    image.save(path)
    assert desktop_checks(path) != []


def test_desktop_with_icons_passes(tmp_path: Path) -> None:
    path = tmp_path / "desktop.png"
    image = Image.new("RGB", (1280, 800), (47, 69, 86))
    draw = ImageDraw.Draw(image)
    for row in range(3):
        top = 10 + row * 104
        for shade in range(48):
            draw.line((36, top + shade, 84, top + shade), fill=(150 + shade, 120 + shade * 2, 90))
        draw.text((30, top + 60), f"Icon {row}", fill=(255, 255, 255))
    image.save(path)
    assert desktop_checks(path) == []
