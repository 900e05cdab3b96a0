"""A glmmTMB model in one file: ``m.save(path)`` and
:func:`lmermagic.load_model` for a :class:`~lmermagic.TmbModel`.

The file is lmer's (:mod:`lmermagic.savefile`: header, digest, three parts):
what was fitted as JSON (the request, with ``kind`` ``"glmmTMB"``), the
fit's tables as R packs them, and the stripped fit with its data as the
disk cache keeps them (:mod:`lmermagic.tmb_cache`). A file is input from
outside and read as lmer's are: the JSON and the tables parsed in Python,
every option through the checks a new fit's go through
(:meth:`TmbRequest.build`), the fit checked by rdsguard before R reads a
byte of it, the formulas checked against the saved data's columns and the
caller's allowlist (``allow_functions=``, never the file's).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from . import cache, packed, rdsguard, savefile, tmb_cache
from .errors import DataError, FitError, FormulaError, ModelFileError
from .rbridge import frame_to_pandas, get_r
from .tmb_fit import _used, require_glmmtmb, table_fields
from .tmb_request import TmbRequest

__all__ = ["load_fields", "save"]

_SAVED = ("kind", "formula", "family", "link", "ziformula", "dispformula", "reml", "factors",
          "weights", "offset", "data_name", "name", "extra_functions")


def save(m: Any, path: str | os.PathLike[str]) -> None:
    """Write glmmTMB model ``m`` to ``path``."""
    req: TmbRequest = m.request
    out = get_r().run("lmm_tmb_save_parts", m.r_object, m.r_data, list(m.warnings))
    meta = {"request": {k: (list(v) if isinstance(v, tuple) else v)
                        for k in _SAVED for v in (getattr(req, k),)},
            "index": savefile.index_layout(m.fitted.index), "versions": dict(m.versions)}
    savefile.write(path, [json.dumps(meta).encode(), out["tables"], out["payload"]])


def _request(name: str, d: dict[str, Any], allow_functions: Sequence[str]) -> TmbRequest:
    text = (str, type(None))
    if not (set(d) == set(_SAVED) and isinstance(d["formula"], str)
            and isinstance(d["family"], str) and isinstance(d["link"], str)
            and isinstance(d["reml"], bool)
            and all(isinstance(d[k], text) for k in ("ziformula", "dispformula", "weights",
                                                     "offset", "data_name", "name"))
            and all(isinstance(v, list) and all(isinstance(x, str) for x in v)
                    for v in (d["factors"], d["extra_functions"]))):
        raise savefile._bad(name, "its options are not a glmmTMB fit's")
    missing = sorted(set(d["extra_functions"]) - set(allow_functions))
    if missing:
        raise ModelFileError(
            f"{name}: the model's formula calls {', '.join(missing)}, outside lmermagic's "
            f"allowlist; if you trust them, load it with allow_functions={missing!r}.")
    try:
        return TmbRequest.build(
            d["formula"], family=f"{d['family']}({d['link']})", ziformula=d["ziformula"],
            dispformula=d["dispformula"], reml=d["reml"], factors=d["factors"],
            weights=d["weights"], offset=d["offset"], data_name=d["data_name"] or "data",
            name=d["name"], extra_functions=d["extra_functions"])
    except (DataError, FormulaError) as exc:
        raise savefile._bad(name, f"its options are not a fit's ({exc})") from None


def load_fields(path: str | os.PathLike[str],
                allow_functions: Sequence[str] = ()) -> dict[str, Any] | None:
    """The fields of the glmmTMB model saved at ``path``; None if the file
    holds another kind of model (lmer's reader takes it then)."""
    name = repr(os.fspath(path))
    parts = savefile.read(path)
    try:
        meta = json.loads(parts[0].decode("utf-8"))
    except (ValueError, RecursionError):
        raise savefile._bad(name, "its description is not JSON") from None
    if not (isinstance(meta, dict) and isinstance(meta.get("request"), dict)
            and meta["request"].get("kind") == "glmmTMB"):
        return None
    if not isinstance(meta.get("versions"), dict):
        raise savefile._bad(name, "its description is not a model's")
    request = _request(name, meta["request"], tuple(allow_functions))
    version = require_glmmtmb()
    try:
        t, texts = cache.stored_tables(parts[1:])
        if not (tmb_cache.TABLES <= set(t) and isinstance(t["coefs"], dict)):
            raise packed.PackError("it does not hold the tables of a glmmTMB fit")
        rdsguard.check(parts[2], tmb_cache.known(request.extra_functions))
    except (packed.PackError, rdsguard.UnsafeStream) as exc:
        raise savefile._bad(name, str(exc)) from None
    bundle = tmb_cache.bundle(parts[2], request)
    try:
        data = get_r().run("lmm_saved_data", bundle.handle("data"), convert=frame_to_pandas)
    except FitError as exc:
        raise ModelFileError(
            f"{name}: this R (glmmTMB {version}) cannot read back the fit saved with "
            f"glmmTMB {meta['versions'].get('glmmTMB')}; refit the model from its data. "
            f"R said: {exc.r_message}") from None
    data.index = savefile._index(name, meta.get("index"), len(data))
    try:  # the formulas as a new fit's are checked: columns, allowlist
        _used(request, [str(c) for c in data.columns])
    except (DataError, FormulaError) as exc:
        raise savefile._bad(name, f"its formula does not pass lmermagic's check ({exc})"
                            ) from None
    versions = {str(k): str(v) for k, v in meta["versions"].items()}
    fields = table_fields(request, data, data.index, t, list(texts),
                          versions.get("glmmTMB", version), versions)
    fields.update(r_object=bundle.handle("fit"), r_data=bundle.handle("data"))
    fields["meta"]["saved_file"] = os.fspath(path)
    return fields
