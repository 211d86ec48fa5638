"""The dataset card: README.md whose YAML is the declarative loading config.

Rendered from ``dataset_card/README.md`` with huggingface_hub's ``DatasetCard`` /
``DatasetCardData``. The YAML holds ``configs`` (``default`` = every domain, plus one
config per domain, split ``test``) and ``dataset_info`` (features and exact split
sizes, per config), so the unmodified ``datasets`` loads a tagged revision with no
loading script. Also writes the per-domain preview images the card links to.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from .._shared.meta import __version__
from .schema import SPLIT, features_yaml

DIFFICULTY_ORDER = ("easy", "medium", "hard")
PREVIEW_HEIGHT = 200


def size_category(n: int) -> str:
    """The Hub's ``size_categories`` label for ``n`` rows."""
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                         (1_000_000, "100K<n<1M")):
        if n < limit:
            return label
    return "n>1M"


def _template() -> str:
    return resources.files("vmeval_hf.dataset_card").joinpath("README.md").read_text(encoding="utf-8")


def _info(config: str, num_examples: int, num_bytes: int, download_size: int) -> dict[str, Any]:
    return {
        "config_name": config,
        "features": features_yaml(),  # a fresh list per config: shared objects become YAML anchors
        "splits": [{"name": SPLIT, "num_bytes": num_bytes, "num_examples": num_examples}],
        "download_size": download_size,
        "dataset_size": num_bytes,
    }


def card_metadata(*, repo_id: str, version: str, license: str, domains: dict[str, int],
                  num_bytes: dict[str, int], download_size: dict[str, int]) -> dict[str, Any]:
    """The YAML block as a dict (also used by tests)."""
    names = sorted(domains)
    configs: list[dict[str, Any]] = [{
        "config_name": "default", "default": True,
        "data_files": [{"split": SPLIT, "path": f"data/*/{SPLIT}-*.parquet"}],
    }]
    configs += [{"config_name": d, "data_files": [{"split": SPLIT, "path": f"data/{d}/{SPLIT}-*.parquet"}]}
                for d in names]
    infos = [_info("default", sum(domains.values()), sum(num_bytes.values()),
                   sum(download_size.values()))]
    infos += [_info(d, domains[d], num_bytes[d], download_size[d]) for d in names]
    return {
        "license": license,
        "pretty_name": "VMEvalKit Questions",
        "task_categories": ["image-to-video"],
        "language": ["en"],
        "size_categories": [size_category(sum(domains.values()))],
        "tags": ["video-reasoning", "benchmark", "vmevalkit", *names],
        "configs": configs,
        "dataset_info": infos,
        "vmeval": {"version": version, "repo": repo_id},
    }


def load_renderer() -> None:
    """Import what :func:`render_card` needs (``huggingface_hub``'s card classes, Jinja2): about
    0.2 s the first time, so the build does it while its workers run."""
    import jinja2  # noqa: F401  # start-up: ~90 ms; DatasetCard.from_template imports it per call
    from huggingface_hub import DatasetCard, DatasetCardData  # noqa: F401  # start-up: ~0.2 s


def render_card(*, repo_id: str, version: str, license: str, domains: dict[str, int],
                difficulties: dict[str, dict[str, int]], num_bytes: dict[str, int],
                download_size: dict[str, int], previews: list[dict[str, str]], content_sha256: str,
                versions: list[dict[str, str]] | None = None) -> str:
    """The card's text: YAML (the loading config) and the page. ``versions``: the rows of the
    "Versions" table (:meth:`~vmeval_hf.release.changes.History.rows`); no table without them."""
    load_renderer()
    from huggingface_hub import DatasetCard, DatasetCardData  # start-up: see load_renderer

    meta = card_metadata(repo_id=repo_id, version=version, license=license, domains=domains,
                         num_bytes=num_bytes, download_size=download_size)
    pretty_name = meta.pop("pretty_name")
    data = DatasetCardData(pretty_name=pretty_name, **meta)
    seen = {name for counts in difficulties.values() for name in counts}
    names = [d for d in DIFFICULTY_ORDER if d in seen] + sorted(seen - set(DIFFICULTY_ORDER))
    table = [{"domain": d, "counts": [difficulties[d].get(n, 0) for n in names], "total": domains[d]}
             for d in sorted(domains)]
    card = DatasetCard.from_template(
        data, template_str=_template(), pretty_name=pretty_name, repo_id=repo_id, version=version,
        split=SPLIT, domains=sorted(domains), first_domain=sorted(domains)[0], total=sum(domains.values()),
        difficulty_names=names, table=table, previews=previews, content_sha256=content_sha256,
        tool_version=__version__, versions=versions or [],
    )
    return str(card).rstrip("\n") + "\n"


#: one example question for a preview: (id, first frame, final frame or None)
PreviewSource = tuple[str, Path, "Path | None"]


def write_previews(root: Path, examples: dict[str, PreviewSource]) -> list[dict[str, str]]:
    """Write ``assets/<domain>_preview.png`` (first | final frame, side by side) for each domain."""
    from PIL import Image  # start-up: ~20 ms; only the previews need Pillow

    out = []
    (root / "assets").mkdir(parents=True, exist_ok=True)
    for domain in sorted(examples):
        qid, first, final = examples[domain]
        frames = [first] + ([final] if final else [])
        images = []
        for path in frames:
            with Image.open(path) as im:
                im = im.convert("RGB")
                w = max(1, round(im.width * PREVIEW_HEIGHT / im.height))
                # shrinking: an area average, a third of Lanczos' cost (this is on the build's
                # critical path) and as good at a thumbnail's size; growing: Lanczos
                shrink = im.height >= PREVIEW_HEIGHT
                images.append(im.resize((w, PREVIEW_HEIGHT),
                                        Image.Resampling.BOX if shrink else Image.Resampling.LANCZOS))
        gap = 8
        canvas = Image.new("RGB", (sum(i.width for i in images) + gap * (len(images) - 1), PREVIEW_HEIGHT),
                           (255, 255, 255))
        x = 0
        for im in images:
            canvas.paste(im, (x, 0))
            x += im.width + gap
        rel = f"assets/{domain}_preview.png"
        canvas.save(root / rel, format="PNG", optimize=False)
        out.append({"domain": domain, "id": qid, "path": rel})
    return out
