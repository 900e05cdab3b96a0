"""A fitted model in one file: ``m.save(path)`` and :func:`lmermagic.load_model`.

**The file** has the layout of a disk-cache entry (:mod:`lmermagic.cache`):
a header (magic, format version, the number of parts and their lengths), a
digest, and three parts: what was fitted (the request's options, the row
index, the versions the numbers were computed with) as JSON; the fit's
tables as R packs them (``lmm_pack_raw``, read in Python alone by
:mod:`lmermagic.packed`), with R's warnings; and R's ``serialize()`` of the
fit and its data as the disk cache writes it (``R/cache.R``: no closure, no
promise, no active binding, the formula's environment by name).

**What is trusted.** A file travels between machines, so no key can say who
wrote it: the digest (unkeyed BLAKE2b) only catches a damaged or cut file.
Safety comes from reading: the JSON and the tables are parsed in Python,
every option goes through the checks a new fit's options go through, and
the R part is checked by :mod:`lmermagic.rdsguard` against what this R
session writes itself, before R reads a byte of it. The functions a
formula may call beyond lmermagic's allowlist come from the caller
(``allow_functions=``), never from the file. Nothing is unpickled.

**Versions.** The numbers are those of the R, lme4 and lmermagic that
fitted the model (``versions``); methods that compute (predict, refit,
simulate, ...) run in this R. A file of a newer format than this lmermagic
reads is refused with the advice to upgrade; lme4's working objects are
rebuilt from this lme4's classes, and if that fails the error says so.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
import struct
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from . import cache, fitting, packed, rdsguard
from .errors import DataError, FitError, FormulaError, ModelFileError
from .rbridge import Serialized, frame_to_pandas, get_r
from .request import (
    KINDS,
    FitRequest,
    formula_text,
    normalize_ddf,
    parse_contrasts,
    parse_control,
)

__all__ = ["FORMAT", "MAGIC", "index_layout", "load_fields", "read", "save", "write"]

FORMAT = 1
MAGIC = b"LMMOD\r\n\x1a"  # \r\n: a copy that changed line ends; \x1a: a text viewer's end
_PREFIX = struct.Struct(">8sII")  # magic, format, number of parts
_LENGTH = struct.Struct(">Q")
_DIGEST = 32
_PARTS = 3
# What a file starts with when it is something else, said in the error.
_KINDS_OF_FILE = ((b"\x89PNG", "a PNG image"), (b"\x80", "a Python pickle"),
                  (b"\x1f\x8b", "gzip-compressed data (an .rds file?)"),
                  (b"X\n", "R's serialize() output"), (b"RDX", "an R .RData file"),
                  (b"PK\x03\x04", "a zip archive"))


def _digest(header: bytes, parts: Sequence[bytes]) -> bytes:
    h = hashlib.blake2b(digest_size=_DIGEST, person=b"lmermagic-model")
    h.update(header)
    for p in parts:
        h.update(p)
    return h.digest()


def write(path: str | os.PathLike[str], parts: Sequence[bytes]) -> None:
    """Write ``parts`` as one file, atomically (a temporary file renamed)."""
    header = _PREFIX.pack(MAGIC, FORMAT, len(parts)) + b"".join(
        _LENGTH.pack(len(p)) for p in parts)
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent or ".", prefix=".tmp-lmm-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(header)
            fh.write(_digest(header, parts))
            for p in parts:
                fh.write(p)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read(path: str | os.PathLike[str]) -> list[bytes]:
    """The parts of a file :func:`write` wrote; :class:`ModelFileError` for
    anything else (never blocks on a FIFO, never reads a directory)."""
    name = repr(os.fspath(path))
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise ModelFileError(f"cannot open {name}: {exc.strerror}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise ModelFileError(f"{name} is not a regular file (a directory, FIFO or "
                             "device): give the path of a file m.save() wrote.")
    with os.fdopen(fd, "rb") as fh:
        raw = fh.read(st.st_size + 1)
    return _parts(name, raw)


def _parts(name: str, raw: bytes) -> list[bytes]:
    if not raw:
        raise ModelFileError(f"{name} is empty, not a model saved by lmermagic.")
    if raw.startswith(cache.MAGIC):
        raise ModelFileError(f"{name} is an entry of lmermagic's fit cache, not a saved "
                             "model: save a model with m.save(path).")
    if not raw.startswith(MAGIC):
        what = next((w for start, w in _KINDS_OF_FILE if raw.startswith(start)),
                    "something else")
        raise ModelFileError(f"{name} is not a model saved by lmermagic (it looks like "
                             f"{what}).")
    if len(raw) < _PREFIX.size:
        raise ModelFileError(f"{name} is cut short (it ends inside its header).")
    _, fmt, n = _PREFIX.unpack_from(raw)
    if fmt > FORMAT:
        raise ModelFileError(
            f"{name} was saved by a newer lmermagic (file format {fmt}; this lmermagic "
            f"reads format {FORMAT} and older): upgrade lmermagic (pip install -U "
            "lmermagic) to load it.")
    if fmt < 1 or n != _PARTS:
        raise ModelFileError(f"{name} has a damaged header (format {fmt}, {n} parts).")
    head_end = _PREFIX.size + n * _LENGTH.size
    if len(raw) < head_end + _DIGEST:
        raise ModelFileError(f"{name} is cut short (it ends inside its header).")
    lengths = [_LENGTH.unpack_from(raw, _PREFIX.size + i * _LENGTH.size)[0] for i in range(n)]
    body = len(raw) - head_end - _DIGEST
    if sum(lengths) > body:
        raise ModelFileError(f"{name} is cut short ({body} of {sum(lengths)} bytes "
                             "after its header).")
    if sum(lengths) < body:
        raise ModelFileError(f"{name} has {body - sum(lengths)} bytes after its end.")
    parts, at = [], head_end + _DIGEST
    for length in lengths:
        parts.append(raw[at:at + length])
        at += length
    if not hmac.compare_digest(raw[head_end:head_end + _DIGEST],
                               _digest(raw[:head_end], parts)):
        raise ModelFileError(f"{name} is damaged: its contents do not match their digest "
                             "(changed on disk or in transit).")
    return parts


# -- a model's fields <-> parts -------------------------------------------------

_SAVED = ("formula", "kind", "reml", "ddf", "family", "link", "factors", "weights",
          "offset", "contrasts", "control", "nagq", "data_name", "name", "extra_functions")


def save(m: Any, path: str | os.PathLike[str]) -> None:
    """Write model ``m`` to ``path`` (see the module)."""
    req: FitRequest = m.request
    r = get_r()
    out = r.run("lmm_save_parts", m.r_object, m.r_data, req.kind, req.ddf, list(m.warnings))
    meta = {"request": {k: getattr(req, k) for k in _SAVED},
            "index": index_layout(m.fitted.index), "versions": dict(m.versions)}
    write(path, [json.dumps(meta).encode(), out["tables"], out["payload"]])


def index_layout(index: pd.Index) -> dict[str, Any]:
    """The row index as JSON can carry it (read back by :func:`_index`)."""
    if isinstance(index, pd.RangeIndex):
        return {"range": [index.start, index.stop, index.step]}
    if all(isinstance(v, (int, str)) for v in index.tolist()):
        return {"values": index.tolist()}
    return {"range": [0, len(index), 1]}  # labels JSON cannot carry exactly: positions


def _bad(name: str, what: str) -> ModelFileError:
    return ModelFileError(f"{name} does not hold a model lmermagic can load: {what}.")


def _request(name: str, d: Any, allow_functions: Sequence[str]) -> FitRequest:
    """The saved request, every option checked as a new fit's are."""
    if not isinstance(d, dict) or set(d) != set(_SAVED):
        raise _bad(name, "its options are not a fit's")
    text = (str, type(None))
    if not (isinstance(d["formula"], str) and d["kind"] in KINDS
            and isinstance(d["reml"], bool) and isinstance(d["ddf"], str)
            and all(isinstance(d[k], text) for k in ("family", "link", "weights", "offset",
                                                     "data_name", "name"))
            and isinstance(d["nagq"], (int, type(None)))
            and all(isinstance(v, list) and all(isinstance(x, str) for x in v)
                    for v in (d["factors"], d["extra_functions"]))
            and isinstance(d["contrasts"], dict) and isinstance(d["control"], (dict, type(None)))
            and all(isinstance(v, dict) and isinstance(v.get("type"), str)
                    and isinstance(v.get("ref", ""), str) for v in d["contrasts"].values())):
        raise _bad(name, "its options are not a fit's")
    missing = sorted(set(d["extra_functions"]) - set(allow_functions))
    if missing:
        raise ModelFileError(
            f"{name}: the model's formula calls {', '.join(missing)}, outside lmermagic's "
            f"allowlist; if you trust them, load it with allow_functions={missing!r}.")
    spec = {c: v["type"] + (":" + v["ref"] if v.get("ref") else "")
            for c, v in d["contrasts"].items()}
    try:
        ddf = normalize_ddf(d["ddf"])
        if d["kind"] != "lmer" and ddf != "lme4":
            raise DataError(f"ddf {ddf!r} for a {d['kind']} model")
        return FitRequest(**{**d, "formula": formula_text(d["formula"]), "ddf": ddf,
                             "factors": tuple(d["factors"]),
                             "extra_functions": tuple(d["extra_functions"]),
                             "contrasts": parse_contrasts(spec),
                             "control": parse_control(d["control"])})
    except (DataError, FormulaError) as exc:
        raise _bad(name, f"its options are not a fit's ({exc})") from None


def _index(name: str, layout: Any, n: int) -> pd.Index:
    if isinstance(layout, dict) and isinstance(layout.get("values"), list):
        values = layout["values"]
        if len(values) == n and all(isinstance(v, (int, str)) for v in values):
            return pd.Index(values)
    if isinstance(layout, dict) and isinstance(layout.get("range"), list):
        r = layout["range"]
        if len(r) == 3 and all(isinstance(v, int) for v in r) and r[2] != 0:
            index = pd.RangeIndex(*r)
            if len(index) == n:
                return index
    raise _bad(name, "its row index does not match its data")


def load_fields(path: str | os.PathLike[str],
                allow_functions: Sequence[str] = ()) -> dict[str, Any]:
    """The fields of the model saved at ``path`` (see the module)."""
    name = repr(os.fspath(path))
    parts = read(path)
    try:
        meta = json.loads(parts[0].decode("utf-8"))
    except (ValueError, RecursionError):
        raise _bad(name, "its description is not JSON") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("versions"), dict):
        raise _bad(name, "its description is not a model's")
    request = _request(name, meta.get("request"), tuple(allow_functions))
    try:
        t, texts = cache.stored_tables(parts[1:])
        rdsguard.check(parts[2], fitting._known(request.extra_functions))
    except (packed.PackError, rdsguard.UnsafeStream) as exc:
        raise _bad(name, str(exc)) from None
    bundle = Serialized(parts[2], ("fit", "data"), reader="lmm_cache_unserialize")
    try:
        data = get_r().run("lmm_saved_data", bundle.handle("data"), convert=frame_to_pandas)
    except FitError as exc:
        raise ModelFileError(
            f"{name}: this R (lme4 {get_r().stack_versions().get('lme4')}) cannot read back "
            f"the fit saved with lme4 {meta['versions'].get('lme4')}; refit the model "
            f"from its data. R said: {exc.r_message}") from None
    data.index = _index(name, meta.get("index"), len(data))
    try:  # the formula as a new fit's is checked: columns, allowlist
        fitting.used_columns(request, [str(c) for c in data.columns])
    except (DataError, FormulaError) as exc:
        raise _bad(name, f"its formula does not pass lmermagic's check ({exc})") from None
    fields = {
        "formula": request.formula, "kind": request.kind,
        "family": str(t["family"][0]), "link": str(t["link"][0]), "ddf": request.ddf,
        "data_name": request.data_name, "r_object": bundle.handle("fit"),
        "r_data": bundle.handle("data"), "request": request, "data": data,
        "name": request.name,
        "versions": {str(k): str(v) for k, v in meta["versions"].items()},
        **fitting.model_fields(t, list(texts), data.index),
    }
    fields["meta"]["saved_file"] = os.fspath(path)
    return fields
