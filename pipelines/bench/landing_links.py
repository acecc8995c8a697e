"""The landing files of a large point, once ingested, as hard links to their kept copies.

Ingestion keeps every file's bytes under ``inputs/`` (``pipelines.operations.batches.keep_inputs``), so a
point's landing files are on the disk twice: 20 GB more at 10,000,000 persons, which the models' spill
needs. A bench point's landing folder is never written again, so each landing file whose kept copy holds
the same bytes (same content hash, same size) can become a link to it. Not for a federation's own landing
folder: an agency writing a file again in place would change the kept copy through the link.

``python -m pipelines.bench.landing_links DATA_DIR``
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from pipelines.ingest.readers import discover_landing_files
from pipelines.operations.batches import NOT_KEPT, inputs_dir, kept_path


def link_to_kept_inputs(data_dir: Path) -> tuple[int, int]:
    """Replace each landing file under ``data_dir`` by a hard link to its kept copy; the number of files
    linked and the bytes given back. A file not kept, or kept with other bytes, is left as it is."""
    linked = freed = 0
    for file in discover_landing_files(data_dir / "landing"):
        kept = kept_path(inputs_dir(data_dir), file.agency_folder, file.sha256, file.relative_path)
        if file.format in NOT_KEPT or not kept.is_file() or kept.stat().st_size != file.size_bytes:
            continue
        if kept.samefile(file.path):
            continue
        staged = file.path.with_name(f".{file.path.name}.link")
        os.link(kept, staged)
        staged.replace(file.path)  # a rename: the landing file is never missing
        linked += 1
        freed += file.size_bytes
    return linked, freed


def main() -> None:
    linked, freed = link_to_kept_inputs(Path(sys.argv[1]))
    print(f"{linked} landing files linked to their kept copies, {freed / 1e9:.1f} GB given back")


if __name__ == "__main__":
    main()
