"""`inspect`: a GGUF's facts, its memory need, and whether it fits this machine's best device."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from silnode.config import Config
from silnode.errors import NotFound
from silnode.fit.estimate import estimate, fits, fmt_size
from silnode.fit.hardware import fit_device, probe_recent
from silnode.gguf import facts_from_header, read_header
from silnode.names import is_valid_name
from silnode.store import Store


def resolve_model_path(config: Config, model: str) -> Path:
    """A .gguf path, or a store model's first file (part 1 of a split model carries the facts)."""

    path = Path(model).expanduser()
    store = Store(config.base_dir)
    # a store name wins over a relative path that happens to spell it ("etc/passwd" from a daemon in /), so a
    # caller allowed store names only (the API without admin) never reaches a file outside the store
    if path.is_file() and not (is_valid_name(model) and store.exists(model)):
        return path
    if is_valid_name(model):
        manifest = store.read_manifest(model)  # ModelNotFound (404) when absent
        return store.model_dir(model) / manifest.files[0].path
    raise NotFound(f"{model}: no such file or store model", hint="give a .gguf path or an org/model name")


def hardware_overrides(config: Config) -> dict[str, int] | None:
    hw = config.hardware
    caps = {k: v for k, v in (("ram_bytes", hw.ram_bytes), ("vram_bytes", hw.vram_bytes)) if v}
    return caps or None


def free_for_one_more(dev: Any, held_total: int = 0, held_mapped: int = 0) -> int:
    """Free memory on `dev` for one more model, given what silnode's loaded models hold there.

    The probe's free memory already excludes what those models allocated, except their mmapped weights:
    page cache counts as available, yet evicting it makes the loaded model read its weights from disk
    again. So those are subtracted. A configured cap (hardware.ram_bytes / vram_bytes) is a budget for
    silnode's own models, so everything they need comes off it."""
    probed = dev.probed_free_bytes if dev.overridden else dev.free_bytes
    free = (probed or 0) - held_mapped
    if dev.overridden:
        free = min(free, (dev.total_bytes or 0) - held_total)
    return max(free, 0)


def inspect_model(
    config: Config,
    model: str,
    *,
    n_ctx: int | None = None,
    flash_attn: bool = False,
    held: dict[str, tuple[int, int]] | None = None,
) -> dict[str, Any]:
    """Blocking (reads a header, probes hardware): call it off the event loop. `held`: device id ->
    (bytes needed, bytes of mmapped weights) of the models already loaded (see free_for_one_more)."""

    path = resolve_model_path(config, model)
    header = read_header(path)
    dev = fit_device(probe_recent(hardware_overrides(config)))
    est = estimate(
        header, n_ctx=n_ctx, flash_attn=flash_attn, gpu=bool(dev and dev.is_gpu), device=dev.id if dev else None
    )
    if dev and dev.free_bytes:
        held_total, held_mapped = (held or {}).get(dev.id, (0, 0))
        ok, reason = fits(est, free_for_one_more(dev, held_total, held_mapped))
        if held_total:
            reason += f" (after {fmt_size(held_total)} for the models already loaded)"
    else:
        ok, reason = False, "no device with known free memory (see `silnode hardware`)"
    return {
        "path": str(path),
        "gguf": facts_from_header(header).to_dict(),
        "estimate": est.to_dict(),
        "device": dev.id if dev else None,
        "fits": ok,
        "reason": reason,
    }
