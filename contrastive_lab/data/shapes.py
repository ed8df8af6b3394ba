"""Captioned shape scenes: an offline image–text dataset for CLIP (notebook 08).

Each scene is a 32×32 RGB image of coloured shapes on a dark, cluttered
background, with several captions that say the same thing in different words.
Three kinds of scene, so that captions are specific enough to make retrieval
a real test:

    single  one object, its size and place     "a medium red circle at the top left"
    pair    two objects and their relation     "a striped red circle left of a blue square"
    count   two to four copies of one object   "three green squares"

Any object may be striped (every other pixel row dark), and its caption then says so.

Vocabulary: 6 colours × 5 shapes = 30 colour–shape combinations. The
combinations in `HELD_OUT` never appear in a training scene (neither as an
object of a pair nor in a count), so a model can be asked zero-shot about a
"green triangle" it has never seen, built from words it has seen in other
company. Every phrasing of a caption holds the scene's whole content, and
`content` is one canonical string per content: two scenes with the same
content are interchangeable as retrieval answers.

Generation is vectorized (signed-distance arithmetic on the pixel grid, with
one-pixel soft edges) and deterministic given (n, split, seed).

    >>> scenes = make_captioned_scenes(1000, split="train", seed=0)
    >>> scenes.images.shape, scenes.captions[0][0]
    (torch.Size([1000, 3, 32, 32]), 'four striped blue diamonds')
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

CANVAS = 32
CHUNK = 512          # scenes rendered at a time

COLOURS = ("red", "orange", "yellow", "green", "blue", "purple")
RGB = torch.tensor([[0.90, 0.12, 0.10],    # red
                    [1.00, 0.55, 0.05],    # orange
                    [0.95, 0.92, 0.15],    # yellow
                    [0.10, 0.75, 0.20],    # green
                    [0.20, 0.35, 1.00],    # blue
                    [0.65, 0.20, 0.85]])   # purple
SHAPES = ("circle", "square", "triangle", "diamond", "cross")
PLURALS = ("circles", "squares", "triangles", "diamonds", "crosses")
SIZES = ("small", "medium", "large")
RADII = ((3.3, 3.9), (4.5, 5.1), (5.7, 6.5))   # radius range of each size, px
PLACES = ("at the top left", "at the top", "at the top right",       # a 3×3 grid, row-major
          "on the left", "in the centre", "on the right",
          "at the bottom left", "at the bottom", "at the bottom right")
RELATIONS = ("left of", "right of", "above", "below")
INVERSE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
COUNTS = ("two", "three", "four")
MAX_OBJECTS = 4
KINDS = ("single", "pair", "count")

#: combinations never shown in training: one per shape, five different colours
HELD_OUT = (("green", "triangle"), ("red", "square"), ("blue", "cross"),
            ("yellow", "circle"), ("purple", "diamond"))

SINGLE_TEMPLATES = ("a {size} {colour} {shape} {place}",
                    "there is a {size} {colour} {shape} {place}",
                    "{place} there is a {size} {colour} {shape}",
                    "a photo of a {size} {colour} {shape} {place}")
PAIR_TEMPLATES = ("{a} {rel} {b}",             # {a}, {b}: objects with their article
                  "{b} {inv} {a}",
                  "there is {a} {rel} {b}",
                  "a photo of {b} {inv} {a}")
COUNT_TEMPLATES = ("{count} {colour} {shapes}",
                   "there are {count} {colour} {shapes}",
                   "a photo of {count} {colour} {shapes}",
                   "exactly {count} {colour} {shapes}")


def combo_id(colour: str, shape: str) -> int:
    """Index of a colour–shape combination in 0..29 (colour-major)."""
    return COLOURS.index(colour) * len(SHAPES) + SHAPES.index(shape)


def with_article(phrase: str) -> str:
    """"a red circle", "an orange circle": the indefinite article the phrase takes."""
    return ("an " if phrase[:1] in "aeiou" else "a ") + phrase


def all_combos() -> list[tuple[str, str]]:
    """The 30 (colour, shape) combinations in combo_id order."""
    return [(c, s) for c in COLOURS for s in SHAPES]


@dataclass
class CaptionedScenes:
    """Images with captions.

    images: (N, 3, 32, 32) float32 in [0, 1].
    captions: N lists of phrasings (strings); every phrasing of scene i has the same content.
    content: N canonical content strings (equal strings = interchangeable scenes).
    kind: (N,) int64 index into KINDS ("single", "pair", "count").
    combos: (N, MAX_OBJECTS) int64 combination id (see combo_id) of each object,
        −1 where the scene has fewer objects.
    """

    images: torch.Tensor
    captions: list[list[str]]
    content: list[str]
    kind: torch.Tensor
    combos: torch.Tensor

    def __len__(self) -> int:
        return len(self.content)

    def __repr__(self) -> str:
        counts = ", ".join(f"{(self.kind == i).sum().item()} {k}" for i, k in enumerate(KINDS))
        return f"CaptionedScenes({len(self)} scenes: {counts})"

    def subset(self, index) -> "CaptionedScenes":
        """The scenes at `index` (a bool mask or index tensor), in that order."""
        index = torch.as_tensor(index)
        if index.dtype == torch.bool:
            index = index.nonzero().flatten()
        idx = index.tolist()
        return CaptionedScenes(self.images[index], [self.captions[i] for i in idx],
                               [self.content[i] for i in idx], self.kind[index], self.combos[index])

    def distinct(self) -> "CaptionedScenes":
        """The first scene of every content: a gallery in which each caption has exactly
        one right image and each image one right caption (strict Recall@K)."""
        first: dict[str, int] = {}
        for i, c in enumerate(self.content):
            first.setdefault(c, i)
        return self.subset(torch.tensor(sorted(first.values())))

    def content_ids(self) -> torch.Tensor:
        """(N,) int64 labels, equal exactly where the content strings are equal."""
        index: dict[str, int] = {}
        return torch.tensor([index.setdefault(c, len(index)) for c in self.content])

    @property
    def combo_labels(self) -> torch.Tensor:
        """(N,) combination id of the first object (the class of a single-object scene)."""
        return self.combos[:, 0]


# ------------------------------------------------------------------ drawing
def _shape_masks(shape: torch.Tensor, cx: torch.Tensor, cy: torch.Tensor, r: torch.Tensor,
                 grid: torch.Tensor) -> torch.Tensor:
    """Anti-aliased masks (N, S, S) in [0, 1] of one object per image.

    shape (N,) index into SHAPES; cx, cy, r (N,) in pixels; grid (S,) pixel centres.
    Each shape is a signed distance (in pixels, negative inside); a pixel is
    covered by 0.5 − distance, clamped to [0, 1] (a one-pixel soft edge).
    """
    rr = r[:, None, None]
    u = (grid[None, None, :] - cx[:, None, None]) / rr                # (N, 1, S) x offset / radius
    v = (grid[None, :, None] - cy[:, None, None]) / rr                # (N, S, 1) y offset (down)
    au, av = u.abs(), v.abs()
    sdf = torch.stack(torch.broadcast_tensors(
        (u * u + v * v).sqrt() - 1.0,                                            # circle
        torch.maximum(au, av) - 0.82,                                            # square
        torch.maximum(v - 0.75, (1.75 * au - v - 1.0) / 2.016),                  # triangle, apex up
        (au + av - 1.15) / 1.414,                                                # diamond
        torch.minimum(torch.maximum(au - 0.34, av - 1.0),
                      torch.maximum(av - 0.34, au - 1.0)),                       # cross
    ), 1)                                                                        # (N, 5, S, S)
    d = sdf[torch.arange(len(shape)), shape] * rr
    return (0.5 - d).clamp(0, 1)


def _render(n, objects, g) -> torch.Tensor:
    """Draw scenes. objects: list of (present (N,), colour (N,), shape (N,), cx, cy, r) slots."""
    s = CANVAS
    grid = torch.arange(s, dtype=torch.float32) + 0.5
    # background: a dark grey with a vertical gradient ...
    base = 0.08 + 0.22 * torch.rand(n, 1, 1, 1, generator=g)
    slope = 0.15 * (torch.rand(n, 1, 1, 1, generator=g) - 0.5)
    grey = (base + slope * grid[None, None, :, None] / s).expand(n, 1, s, s).clone()
    # ... with clutter: four low-contrast grey line segments per image
    for _ in range(4):
        p0, p1 = s * torch.rand(n, 2, generator=g), s * torch.rand(n, 2, generator=g)
        d = p1 - p0
        px = grid[None, None, :] - p0[:, 0, None, None]
        py = grid[None, :, None] - p0[:, 1, None, None]
        t = ((px * d[:, 0, None, None] + py * d[:, 1, None, None]) /
             (d * d).sum(1).clamp_min(1e-6)[:, None, None]).clamp(0, 1)
        dist = ((px - t * d[:, 0, None, None]) ** 2 + (py - t * d[:, 1, None, None]) ** 2).sqrt()
        alpha = 0.6 * (1.1 - dist).clamp(0, 1).unsqueeze(1)
        value = 0.25 + 0.3 * torch.rand(n, 1, 1, 1, generator=g)
        grey = grey + alpha * (value - grey)
    tint = 0.06 * (torch.rand(n, 3, 1, 1, generator=g) - 0.5)
    image = grey + tint                                                  # (N, 3, S, S)
    rows = grid[None, None, :, None]                                      # (1, 1, S, 1) pixel row
    for present, colour, shape, texture, cx, cy, r in objects:
        mask = _shape_masks(shape, cx, cy, r, grid).unsqueeze(1) * present[:, None, None, None]
        rgb = (RGB[colour] + 0.08 * (torch.rand(n, 3, generator=g) - 0.5))[:, :, None, None]
        shade = (1 - 0.15 * (rows - cy[:, None, None, None]) / r[:, None, None, None]).clamp(0.8, 1.2)
        # striped: every other pixel row at 55 % brightness (random phase)
        phase = torch.randint(2, (n, 1, 1, 1), generator=g)
        dark = (texture[:, None, None, None] == 1) & ((rows.long() + phase) % 2 == 0)
        shade = torch.where(dark, 0.55 * shade, shade)
        image = image + mask * (rgb * shade - image)
    image = image + 0.03 * torch.randn(image.shape, generator=g)
    return image.clamp(0, 1).contiguous()


# ------------------------------------------------------------------ scenes
def make_captioned_scenes(n: int, split: str = "train", seed: int = 0, *,
                          kinds: tuple[str, ...] = KINDS,
                          combos: list[tuple[str, str]] | None = None,
                          held_out: tuple[tuple[str, str], ...] = HELD_OUT) -> CaptionedScenes:
    """Generate `n` captioned scenes.

    Args:
        n: number of scenes (any size).
        split: "train" (no combination of `held_out` appears anywhere) or
            "test" (every combination may appear).
        seed: the same (n, split, seed, kinds, combos) always gives the same scenes.
        kinds: which scene kinds to draw from, in equal proportion
            ("single", "pair", "count").
        combos: (colour, shape) combinations objects are drawn from; default all
            allowed by the split. E.g. combos=HELD_OUT, split="test" gives a
            zero-shot test set of held-out combinations only.
        held_out: the combinations a "train" split must never contain.

    Returns a CaptionedScenes (images (n, 3, 32, 32) in [0, 1], 4 phrasings per scene).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise ValueError(f"kinds must be a non-empty subset of {KINDS}, got {kinds}")
    held = {combo_id(c, s) for c, s in held_out}
    allowed = [combo_id(c, s) for c, s in (combos or all_combos())]
    if split == "train":
        leaked = sorted({a for a in allowed if a in held})
        if combos is not None and leaked:
            raise ValueError(f"a train split may not use held-out combinations, got "
                             f"{[all_combos()[a] for a in leaked]}")
        allowed = [a for a in allowed if a not in held]
    if len(allowed) < 2 and "pair" in kinds:
        raise ValueError("pair scenes need at least two allowed combinations")
    allowed = torch.tensor(allowed)
    g = torch.Generator().manual_seed(seed * 2 + (split == "test"))

    def rand(*shape):
        return torch.rand(*shape, generator=g)

    kind_ids = torch.tensor([KINDS.index(k) for k in kinds])
    kind = kind_ids[torch.randint(len(kinds), (n,), generator=g)]
    first = allowed[torch.randint(len(allowed), (n,), generator=g)]
    # the second object of a pair: another allowed combination
    offset = torch.randint(1, len(allowed), (n,), generator=g) if len(allowed) > 1 else torch.zeros(n, dtype=torch.long)
    pos_first = (allowed[:, None] == first[None, :]).float().argmax(0)
    second = allowed[(pos_first + offset) % len(allowed)]

    size = torch.randint(len(SIZES), (n,), generator=g)
    texture = torch.randint(2, (n, MAX_OBJECTS), generator=g)   # per object; a count shares one
    place = torch.randint(len(PLACES), (n,), generator=g)
    relation = torch.randint(len(RELATIONS), (n,), generator=g)
    count = 2 + torch.randint(len(COUNTS), (n,), generator=g)

    m = MAX_OBJECTS
    cx, cy, r = torch.zeros(n, m), torch.zeros(n, m), torch.ones(n, m)
    present = torch.zeros(n, m, dtype=torch.bool)
    combo = torch.full((n, m), -1, dtype=torch.long)

    # single: one object of a size band, at one of 9 places (7, 16 or 25 px) ± 1.5 px
    single = kind == 0
    low, high = torch.tensor(RADII).T
    r_single = low[size] + (high[size] - low[size]) * rand(n)
    jitter = (rand(n, 2) - 0.5) * 3
    cx[:, 0] = torch.where(single, 7.0 + 9.0 * (place % 3).float() + jitter[:, 0], cx[:, 0])
    cy[:, 0] = torch.where(single, 7.0 + 9.0 * (place // 3).float() + jitter[:, 1], cy[:, 0])
    r[:, 0] = torch.where(single, r_single, r[:, 0])

    # pair: objects A and B on one row (left of / right of) or one column (above / below)
    pair = kind == 1
    along_a = 6.0 + 5.0 * rand(n)                 # the side that comes first, px
    along_b = 21.0 + 5.0 * rand(n)
    across = 9.0 + 14.0 * rand(n)
    a_first = (relation == 0) | (relation == 2)   # A is left of / above B
    pa, pb = torch.where(a_first, along_a, along_b), torch.where(a_first, along_b, along_a)
    horizontal = relation < 2
    wobble = (rand(n, 2) - 0.5) * 3
    for k, along in ((0, pa), (1, pb)):
        cx[:, k] = torch.where(pair, torch.where(horizontal, along, across + wobble[:, k]), cx[:, k])
        cy[:, k] = torch.where(pair, torch.where(horizontal, across + wobble[:, k], along), cy[:, k])
    r[:, :2] = torch.where(pair[:, None], 3.8 + 1.2 * rand(n, 2), r[:, :2])

    # count: 2–4 copies in distinct cells of a 3×3 grid, ± 1 px
    cnt = kind == 2
    cells = rand(n, 9).argsort(1)[:, :m]
    ccx = (cells % 3).float() * (32 / 3) + 16 / 3 + (rand(n, m) - 0.5) * 2
    ccy = (cells // 3).float() * (32 / 3) + 16 / 3 + (rand(n, m) - 0.5) * 2
    cx = torch.where(cnt[:, None], ccx, cx)
    cy = torch.where(cnt[:, None], ccy, cy)
    r = torch.where(cnt[:, None], 3.2 + 1.0 * rand(n, m), r)

    slot = torch.arange(m)
    present[:, 0] = True
    present[:, 1] = pair
    present = present | (cnt[:, None] & (slot[None, :] < count[:, None]))
    combo[:, 0] = first
    combo[:, 1] = torch.where(pair, second, combo[:, 1])
    combo = torch.where(cnt[:, None] & present, first[:, None], combo)
    texture = torch.where(cnt[:, None], texture[:, :1], texture)

    n_shapes = len(SHAPES)
    objects = []
    for k in range(m):
        c = combo[:, k].clamp_min(0)
        objects.append((present[:, k].float(), c // n_shapes, c % n_shapes, texture[:, k],
                        cx[:, k], cy[:, k], r[:, k]))
    # render in chunks on one thread: small element-wise ops gain nothing from more
    # threads, and on a busy CPU thread synchronization would cost more than the maths
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        images = torch.cat([_render(len(range(n)[i:i + CHUNK]),
                                    [tuple(t[i:i + CHUNK] for t in slot) for slot in objects], g)
                            for i in range(0, n, CHUNK)])
    finally:
        torch.set_num_threads(threads)

    captions, content = [], []
    columns = zip(kind.tolist(), combo[:, 0].tolist(), combo[:, 1].tolist(), size.tolist(),
                  place.tolist(), relation.tolist(), count.tolist(), texture.tolist())
    for k, first_id, second_id, z, q, rel_id, cnt_i, tex in columns:
        ca, sa = divmod(first_id, n_shapes)
        look = ["striped " if t else "" for t in tex]
        if k == 0:
            words = dict(size=SIZES[z], colour=look[0] + COLOURS[ca], shape=SHAPES[sa], place=PLACES[q])
            phrasings = [t.format(**words) for t in SINGLE_TEMPLATES]
            canonical = phrasings[0]
        elif k == 1:
            cb, sb = divmod(second_id, n_shapes)
            rel = RELATIONS[rel_id]
            words = dict(a=with_article(f"{look[0]}{COLOURS[ca]} {SHAPES[sa]}"),
                         b=with_article(f"{look[1]}{COLOURS[cb]} {SHAPES[sb]}"), rel=rel, inv=INVERSE[rel])
            phrasings = [t.format(**words) for t in PAIR_TEMPLATES]
            # canonical form uses "left of" / "above", so "A right of B" == "B left of A"
            canonical = phrasings[0] if rel_id in (0, 2) else phrasings[1]
        else:
            words = dict(count=COUNTS[cnt_i - 2], colour=look[0] + COLOURS[ca], shapes=PLURALS[sa])
            phrasings = [t.format(**words) for t in COUNT_TEMPLATES]
            canonical = phrasings[0]
        captions.append(phrasings)
        content.append(canonical)
    return CaptionedScenes(images, captions, content, kind, combo)
