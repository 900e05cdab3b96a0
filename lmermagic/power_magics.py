"""``%lmer_power``: power by simulation for a model of the notebook (glue only:
parse, call :meth:`LmerModel.power`, present)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from IPython.core.magic import Magics, line_magic, magics_class, no_var_expand, \
    output_can_be_silenced
from IPython.core.magic_arguments import argument, magic_arguments
from IPython.utils.process import arg_split

from .errors import DataError, LmerError, did_you_mean
from .magics import _parser

if TYPE_CHECKING:
    from .toolbox import PowerResult

__all__ = ["PowerMagics"]


def _sizes(text: str | None) -> list[int] | None:
    if text is None:
        return None
    out = []
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        try:
            out.append(int(item))
        except ValueError:
            raise DataError(f"--n {text}: give whole numbers, e.g. --n 10,20,40.") from None
    return out


@magics_class
class PowerMagics(Magics):
    """``%lmer_power``; its progress line follows ``%config LmerMagics.progress``."""

    def _progress(self) -> bool:
        for c in getattr(self.shell, "configurables", []):
            if type(c).__name__ == "LmerMagics":
                return bool(getattr(c, "progress", True))
        return True

    @output_can_be_silenced
    @no_var_expand
    @magic_arguments()
    @argument("model", help="a fitted model of the notebook (a name)")
    @argument("term", help="the fixed-effect coefficient to test, as in m.coefs")
    @argument("--effect", type=float, help="the coefficient's value to simulate with "
              "(default: the fitted one, which is post hoc power)")
    @argument("--along", metavar="GROUP", help="extend or shrink the design along this "
              "grouping factor")
    @argument("--n", metavar="N[,N...]", help="with --along: the numbers of levels to try")
    @argument("--nsim", type=int, default=1000, help="simulations per size (default 1000)")
    @argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    @argument("--test", help="satterthwaite, kenward-roger, lrt or z (default: "
              "satterthwaite for lmer, z for glmer)")
    @argument("--seed", type=int, help="seed of R's simulate(): the same table every time")
    @argument("--workers", type=int, help="worker processes")
    @argument("--backend", help="serial, processes or dask (a LocalCluster)")
    @argument("-o", "--out", metavar="NAME", help="store the PowerResult as NAME")
    @argument("--plot", action="store_true", help="show the power curve")
    @argument("-q", "--quiet", action="store_true", help="return nothing, display nothing")
    @line_magic
    def lmer_power(self, line: str) -> PowerResult | None:
        """Power to detect a fixed effect, by simulation (``m.power(...)``).

        Usage::

            %lmer_power m Days --effect 5 --along Subject --n 6,10,14,18 --nsim 500 --seed 1

        simulates ``nsim`` responses from the model ``m`` with the coefficient
        ``Days`` set to 5, for 6, 10, 14 and 18 subjects, refits each and
        returns the power per size (``.table``, ``.plot()``, ``.simulations``);
        its display names the smallest size reaching 80 % power.
        """
        try:
            return self._power(line)
        except LmerError as exc:
            raise exc.with_traceback(None) from None

    def _power(self, line: str) -> PowerResult | None:
        from .model import LmerModel  # not at %load_ext: it imports pandas

        args = _parser(PowerMagics.lmer_power).parse_args(arg_split(line))
        ns: dict[str, Any] = self.shell.user_ns if self.shell is not None else {}
        model = ns.get(args.model)
        if not isinstance(model, LmerModel):
            models = [k for k, v in ns.items() if isinstance(v, LmerModel)]
            what = "is not defined" if model is None else f"is a {type(model).__name__}"
            raise DataError(f"%lmer_power: '{args.model}' {what}; give a model fitted by "
                            "%lmer/%glmer or lmermagic.lmer/glmer." + did_you_mean(args.model,
                                                                                  models))
        result = model.power(args.term, effect=args.effect, along=args.along,
                             n=_sizes(args.n), nsim=args.nsim, alpha=args.alpha,
                             test=args.test, seed=args.seed, workers=args.workers,
                             backend=args.backend, progress=self._progress())
        if args.out:
            ns[args.out] = result
        if args.plot:
            from IPython.display import display

            display(result.plot())
        return None if args.quiet else result
