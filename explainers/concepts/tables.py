"""Which neuron table names a model's units: its own build, CLIP-dissect's published one, or the demo."""

from __future__ import annotations

from pathlib import Path

from dissection_data.paths import TABLES_DIR
from dissection_data.tables import CSV_NAME, NeuronTable, read_table
from explainers.concepts.attribution import check_table_fits
from explainers.concepts.published import (
    PUBLISHED_TABLES,
    load_published_table,
    published_csv,
    read_published_csv,
    spec_for_file,
)
from explainers.errors import XaiLensError

PUBLISHED = "published"


def default_table(model: str, tables_root: Path | None = None, published_dir: Path | None = None) -> NeuronTable | None:
    """The best table already on this machine: the model's own build, else CLIP-dissect's published
    one if cached, else the offline demo; None where there is none. Never downloads (nothing hangs)."""
    root = Path(tables_root) if tables_root is not None else TABLES_DIR
    if (root / model / CSV_NAME).is_file():
        return read_table(root / model, model)
    if model in PUBLISHED_TABLES:
        try:
            path = published_csv(PUBLISHED_TABLES[model], published_dir, download=False)
        except XaiLensError:
            pass
        else:
            return read_published_csv(path, PUBLISHED_TABLES[model])
    demo = root / "demo" / model
    if (demo / CSV_NAME).is_file():
        return read_table(demo, f"demo/{model}")
    return None


def open_table(source: str | Path | None, model: str, published_dir: Path | None = None) -> NeuronTable | None:
    """The table `source` names for `model`: None (the default), 'published' (CLIP-dissect's, downloaded
    on demand), a table folder, or a CSV in the published layout. A table of another model is refused."""
    if source is None:
        return default_table(model, published_dir=published_dir)
    if str(source) == PUBLISHED:
        table = load_published_table(model, published_dir)
    else:
        path = Path(source).expanduser()
        if path.is_dir():
            where, home = path.resolve(), TABLES_DIR.resolve()
            table = read_table(path, where.relative_to(home).as_posix() if where.is_relative_to(home) else path.name)
        elif path.is_file() and path.suffix.lower() == ".csv":
            table = read_published_csv(path, spec_for_file(path))
        else:
            raise XaiLensError(
                f"'{source}' is neither a table folder (with {CSV_NAME}) nor a CSV file; give one, or '{PUBLISHED}'."
            )
    check_table_fits(table, model)
    return table
