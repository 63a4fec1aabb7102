"""PhoneDesk's two Teams app icons, drawn from simple shapes.

The build packages the committed PNGs rather than drawing them, so a package never
depends on the Pillow version at hand. After changing the drawing, regenerate them with
``python -m manifest.icons``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from PIL import Image, ImageDraw

log = logging.getLogger(__name__)

ICON_DIR: Final = Path(__file__).resolve().parent
COLOR_FILE: Final = "color.png"
OUTLINE_FILE: Final = "outline.png"
COLOR_SIZE: Final = 192
OUTLINE_SIZE: Final = 32

ACCENT: Final = "#2F5FA8"
"""The colour icon's background; the manifest's accentColor must be the same."""
BADGE: Final = "#22A35A"
WHITE: Final = (255, 255, 255)

# Shapes are drawn on a large canvas and scaled down, which gives smooth edges without
# relying on Pillow's (version-dependent) anti-aliasing of individual primitives.
_CANVAS: Final = 1024
_OUTLINE_MARGIN: Final = 2


def _hex(colour: str) -> tuple[int, int, int]:
    value = colour.removeprefix("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


def _circle(x: float, y: float, radius: float) -> tuple[float, float, float, float]:
    return (x - radius, y - radius, x + radius, y + radius)


def _handset(canvas: int) -> Image.Image:
    """A telephone handset as a mask (mode L), centred on a square canvas."""
    u = canvas / _CANVAS
    mask = Image.new("L", (canvas, canvas), 0)
    draw = ImageDraw.Draw(mask)
    cx, cy, radius, width = 640 * u, 512 * u, 375 * u, 150 * u
    # The handle's ends are buried in the two pads, so the joins stay smooth.
    draw.arc(
        (cx - radius, cy - radius, cx + radius, cy + radius),
        start=105,
        end=255,
        fill=255,
        width=round(width),
    )
    draw.rounded_rectangle((330 * u, 110 * u, 680 * u, 330 * u), radius=85 * u, fill=255)
    draw.rounded_rectangle((330 * u, 694 * u, 680 * u, 914 * u), radius=85 * u, fill=255)
    tilted = mask.rotate(50, resample=Image.Resampling.BICUBIC, center=(canvas / 2, canvas / 2))
    box = tilted.getbbox()
    assert box is not None
    centred = Image.new("L", (canvas, canvas), 0)
    centred.paste(
        tilted.crop(box), ((canvas - (box[2] - box[0])) // 2, (canvas - (box[3] - box[1])) // 2)
    )
    return centred


def draw_color() -> Image.Image:
    """192x192 RGB: a white handset on the accent colour, with a green "new" badge."""
    canvas = _CANVAS
    image = Image.new("RGB", (canvas, canvas), _hex(ACCENT))
    handset_size = round(canvas * 0.7)
    handset = _handset(canvas).resize((handset_size, handset_size), Image.Resampling.LANCZOS)
    offset = round(canvas * 0.08)
    image.paste(WHITE, (offset, canvas - offset - handset_size), handset)

    draw = ImageDraw.Draw(image)
    # A ring of background colour separates the badge from the handset beneath it.
    x, y, radius, gap = canvas * 0.72, canvas * 0.28, canvas * 0.17, canvas * 0.025
    draw.ellipse(_circle(x, y, radius + gap), fill=_hex(ACCENT))
    draw.ellipse(_circle(x, y, radius), fill=_hex(BADGE))
    arm, half = radius * 0.55, radius * 0.11
    draw.rectangle((x - arm, y - half, x + arm, y + half), fill=WHITE)
    draw.rectangle((x - half, y - arm, x + half, y + arm), fill=WHITE)
    return image.resize((COLOR_SIZE, COLOR_SIZE), Image.Resampling.LANCZOS)


def draw_outline() -> Image.Image:
    """32x32 RGBA: the handset in pure white; everything else fully transparent."""
    inner = OUTLINE_SIZE - 2 * _OUTLINE_MARGIN
    alpha = Image.new("L", (OUTLINE_SIZE, OUTLINE_SIZE), 0)
    alpha.paste(
        _handset(_CANVAS).resize((inner, inner), Image.Resampling.LANCZOS),
        (_OUTLINE_MARGIN, _OUTLINE_MARGIN),
    )
    # Every pixel stays pure white; only its opacity varies, which is what Teams asks of
    # an outline icon (it tints the white itself).
    image = Image.new("RGBA", (OUTLINE_SIZE, OUTLINE_SIZE), (*WHITE, 0))
    image.putalpha(alpha)
    return image


def write_icons(directory: Path = ICON_DIR) -> list[Path]:
    written = []
    for name, image in ((COLOR_FILE, draw_color()), (OUTLINE_FILE, draw_outline())):
        path = directory / name
        image.save(path, format="PNG", optimize=True)
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    directory = Path(argv[0]) if argv else ICON_DIR
    for path in write_icons(directory):
        log.info("wrote %s", path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
