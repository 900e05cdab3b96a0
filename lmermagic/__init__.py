"""lmermagic: R's lme4 and lmerTest mixed models as IPython magics and a pandas API.

R starts at the first fit, not at import::

    %load_ext lmermagic
    %lmer -d dietox -o m  Weight ~ Time + (1 + Time | Pig)
    m.coefs
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# The whole exception tree is public, under the names errors.py gives it.
from .errors import *  # noqa: F403
from .errors import __all__ as _error_names
from . import tally as _tally
from .request import ALLOWED_FUNCTIONS

if TYPE_CHECKING:
    from . import datasets
    from .api import glmer, lmer
    from .many_api import glmer_many, lmer_many
    from .stored import clear_cache, load_model
    from .clmm_api import clmm
    from .clmm_model import ClmmModel
    from .model import LmerModel
    from .tmb import glmmtmb
    from .tmb_model import TmbModel
    from .toolbox import anova
    from .toolbox.many_tables import ManyModels
    from .toolbox.power import PowerResult

# pandas and numpy load on first use, so that `%load_ext lmermagic` stays fast.
_LAZY = {"lmer": "api", "glmer": "api", "lmer_many": "many_api", "glmer_many": "many_api",
         "clear_cache": "stored", "load_model": "stored", "LmerModel": "model", "anova": "toolbox",
         "ManyModels": "toolbox.many_tables", "clmm": "clmm_api", "ClmmModel": "clmm_model",
         "PowerResult": "toolbox.power", "glmmtmb": "tmb", "TmbModel": "tmb_model"}


def __getattr__(name: str) -> Any:
    if name == "datasets":
        return importlib.import_module(".datasets", __name__)
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'lmermagic' has no attribute {name!r}")


def _progress_display() -> Any:
    from .status import progress_display

    return progress_display()


# The fit machinery draws the bootstrap's and many models' progress through a
# display it asks for (it may not import status.py): this installs status's.
_tally.set_display(_progress_display)

__version__ = "0.1.0"

__all__ = [
    *_error_names,
    "ALLOWED_FUNCTIONS",
    "ClmmModel",
    "LmerModel",
    "ManyModels",
    "PowerResult",
    "TmbModel",
    "__version__",
    "anova",
    "clear_cache",
    "clmm",
    "datasets",
    "glmer",
    "glmer_many",
    "glmmtmb",
    "lmer",
    "lmer_many",
    "load_ipython_extension",
    "load_model",
    "shutdown_workers",
]


def shutdown_workers() -> None:
    """End the worker processes the session keeps warm between jobs.

    ``lmer_many(workers=...)``, the bootstrap's ``workers=``, ``m.power(workers=...)``
    and isolated fits (``isolate=True``) lend processes, each with its own R,
    from one pool; kept ones end by themselves after
    ``lmermagic.workers.get_pool().idle_timeout`` seconds without work (300)
    and at exit. Call this to free their memory now; the next job that needs
    workers starts new ones (about 2 s each). A job under way in another
    thread is not interrupted.

    Raises
    ------
    OSError
        Not expected: only if the operating system refuses to end or reap a
        worker process (one that has already ended is fine).

    Examples
    --------
    >>> import lmermagic
    >>> lmermagic.shutdown_workers()
    """
    from .pool import shutdown

    shutdown()


def _magics_classes() -> list[type]:
    """The magics classes %load_ext registers, LmerMagics (the %config one) first; the
    documentation site's magics and %config pages are made from the same list."""
    from .clmm_magics import ClmmMagics
    from .magics import LmerMagics
    from .many_magics import ManyMagics
    from .power_magics import PowerMagics
    from .tmb_magics import TmbMagics

    return [LmerMagics, ManyMagics, PowerMagics, TmbMagics, ClmmMagics]


def load_ipython_extension(ipython: Any) -> None:
    """Register lmermagic's magics and their Tab completion in an IPython shell.

    IPython calls this for ``%load_ext lmermagic``: it registers ``%lmer``,
    ``%%lmer``, ``%glmer``, ``%%glmer``, ``%lmer_many``, ``%glmer_many`` (line
    and cell), ``%lmer_power``, ``%glmmtmb`` and ``%%glmmtmb``, ``%clmm`` and
    ``%%clmm``, makes ``%config LmerMagics`` reach their settings, and adds
    the completion of formulas and options. R is not started here.

    Parameters
    ----------
    ipython : IPython.core.interactiveshell.InteractiveShell
        The shell to register the magics with (a notebook kernel's or a
        terminal IPython's).

    Raises
    ------
    AttributeError
        ``ipython`` is not an IPython shell (it has no ``register_magics``).

    Examples
    --------
    In a notebook or IPython, ``%load_ext lmermagic`` calls this. From Python,
    with IPython's shell (skipped when the examples are tested: creating the
    shell replaces ``sys.modules["__main__"]`` and makes the process-wide
    ``InteractiveShell`` singleton, which the test suite's own shell shares):

    >>> import lmermagic
    >>> from IPython.core.interactiveshell import InteractiveShell
    >>> shell = InteractiveShell.instance()  # doctest: +SKIP
    >>> shell.run_line_magic("load_ext", "lmermagic")  # doctest: +SKIP
    >>> shell.push({"sleep": lmermagic.datasets.load("sleepstudy")})  # doctest: +SKIP
    >>> _ = shell.run_cell("%lmer -d sleep -o m Reaction ~ Days + (1 | Subject);")  # doctest: +SKIP
    >>> shell.user_ns["m"].formula  # doctest: +SKIP
    'Reaction ~ Days + (1 | Subject)'
    """
    from .completion import register

    instances = [cls(shell=ipython) for cls in _magics_classes()]
    for instance in instances:
        ipython.register_magics(instance)
    # %config LmerMagics.timeout = ... reaches the instance through this list.
    magics = instances[0]
    if magics not in ipython.configurables:
        ipython.configurables.append(magics)
    register(ipython)
