"""Pixel checks that tell a real desktop from a blank screen or an error page."""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path

from PIL import Image, ImageOps


def desktop_checks(path: Path) -> list[str]:
    """Return what is wrong with a desktop screenshot (empty list: looks like a desktop).

    A desktop has a dominant background colour covering most of the screen, yet many other
    colours (icons, labels, panels), and those are concentrated where the icons are: the
    left-hand column, as pcmanfm lays them out.
    """
    image = Image.open(path).convert("RGB")
    width, height = image.size
    problems = []
    if width < 640 or height < 400:
        problems.append(f"screenshot is only {width}x{height}")
    colours = _colours(image)
    background, count = colours.most_common(1)[0]
    if count / (width * height) > 0.995:
        problems.append(f"screen is blank: {count / (width * height):.1%} is {background}")
    if len(colours) < 40:
        problems.append(f"only {len(colours)} colours: no icons or text")
    column = _colours(image.crop((0, 0, min(220, width), height)))
    busy = sum(n for colour, n in column.items() if _far(colour, background))
    if busy < 1500:
        problems.append(f"no icons in the left column ({busy} non-background pixels)")
    return problems


def _colours(image: Image.Image) -> Counter[tuple[int, int, int]]:
    return Counter({colour: n for n, colour in image.getcolors(maxcolors=1 << 24) or []})


def _far(pixel: tuple[int, int, int], other: tuple[int, int, int]) -> bool:
    return sum(abs(a - b) for a, b in zip(pixel, other, strict=True)) > 60


def desktop_labels(path: Path, width: int = 260) -> str:
    """Return the text of the desktop's icon labels (left column), read by Tesseract OCR.

    Labels are light text on the dark background: the column is cropped, made grey, inverted
    to dark-on-light and enlarged three times, which is what Tesseract reads best.
    """
    image = Image.open(path).convert("L")
    column = image.crop((0, 0, min(width, image.width), image.height))
    column = ImageOps.invert(column).resize((column.width * 3, column.height * 3),
                                            Image.Resampling.LANCZOS)
    enlarged = path.with_name(path.stem + "-labels.png")
    column.save(enlarged)
    done = subprocess.run(["tesseract", str(enlarged), "-", "--psm", "11"],
                          capture_output=True, text=True, check=True, timeout=120)
    return done.stdout
