"""MkDocs hook (`hooks:` in mkdocs.yml): the benchmarks page shows the plots where
`scripts/bench` writes them, `benchmarks/results/*.png`, without a copy of them in `docs/`.

They join the site's files at its root, next to `benchmarks.md`, which includes
`benchmarks/results/suite.md` (whose image links name the bare files). This file itself is
kept out of the built site."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results"


def on_files(files: Files, config: MkDocsConfig) -> Files:
    hook = files.get_file_from_path("hooks.py")
    if hook is not None:
        files.remove(hook)
    for plot in sorted(RESULTS.glob("*.png")):
        files.append(
            File(
                plot.name,
                src_dir=str(RESULTS),
                dest_dir=config.site_dir,
                use_directory_urls=config.use_directory_urls,
            )
        )
    return files


def on_serve(server: Any, config: MkDocsConfig, builder: Any) -> Any:
    """`mkdocs serve` rebuilds when the results change."""
    server.watch(str(RESULTS))
    return server
