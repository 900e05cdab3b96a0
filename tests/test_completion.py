"""Tab completion inside the magics: in-process through IPython's Completer, and
through a real kernel's complete_request. Nothing here needs R."""

from __future__ import annotations

from typing import ClassVar

import pandas as pd
import pytest
from IPython.core.completer import provisionalcompleter

from lmermagic.completion import MATCHER_ID, complete, resolve_frame
from lmermagic.rsyntax import is_r_name

FRAME = pd.DataFrame({"Reaction": [1.0], "Days": [1], "Subject": ["a"], "my col": [2.0],
                      "Dose": [0.5]})


class Holder:
    def __init__(self) -> None:
        self.sleep = FRAME


class Sneaky:
    """Reading any of these attributes would run code."""

    ran: ClassVar[list[str]] = []

    @property
    def frame(self) -> pd.DataFrame:
        Sneaky.ran.append("property")
        return FRAME

    def __getattr__(self, name: str) -> pd.DataFrame:
        Sneaky.ran.append(f"getattr {name}")
        return FRAME


class Frame(pd.DataFrame):
    @property
    def columns(self):  # type: ignore[override]
        Sneaky.ran.append("columns")
        return pd.Index(["hidden"])


NS = {"sleep": FRAME, "holder": Holder(), "sneaky": Sneaky(), "sub": Frame(FRAME),
      "number": 3}


def texts(text: str, cursor: int | None = None) -> list[str]:
    lines = text[:len(text) if cursor is None else cursor].split("\n")
    result = complete(text, len(lines) - 1, len(lines[-1]), NS)
    return [c.text for c in result["completions"]]


@pytest.mark.parametrize("text, expected", [
    # the formula of a line magic, plain and assigned
    ("%lmer -d sleep Reaction ~ Da", ["Days"]),
    ("m = %lmer -d sleep Reaction ~ D", ["Days", "Dose"]),
    ("%glmer -d sleep --family poisson Reaction ~ Days + (1 | Sub", ["Subject"]),
    # functions of the allowlist; the operators are not offered
    ("%lmer -d sleep Reaction ~ lo", ["log", "log10", "log1p", "log2"]),
    ("%lmer -d sleep Reaction ~ as.f", ["as.factor"]),
    # lme4 2.x's covariance terms
    ("%lmer -d sleep Reaction ~ Days + cs", ["cs"]),
    ("%lmer -d sleep Reaction ~ Days + ar", ["ar1"]),
    # names that are not R symbols come in backticks, typed with one or not
    ("%lmer -d sleep Reaction ~ `my", ["`my col`"]),
    ("%lmer -d sleep Reaction ~ my", ["`my col`"]),
    ("%lmer -d sleep Reaction ~ `", ["`Reaction`", "`Days`", "`Subject`", "`my col`",
                                     "`Dose`"]),
    # the cell magic: option line and body
    ("%%lmer -d sleep\nReaction ~ Da", ["Days"]),
    ("%%glmer -d=sleep --family binomial\nReaction ~\n  Days + (1 | Su", ["Subject"]),
    ("%%lmer -d sleep --compare\nm0 = Reaction ~ Da", ["Days"]),
    ("%%lmer -d sleep\nReaction ~ Days  # Da", []),  # in a comment
    # attribute chains
    ("%lmer -d holder.sleep Reaction ~ Da", ["Days"]),
    # option names and values
    ("%lmer -d sleep --fam", ["--family"]),
    ("%%lmer -d sleep --opt", ["--optimizer"]),
    ("%lmer -d sleep --family p", ["poisson"]),
    ("%lmer -d sleep --family=G", ["Gamma"]),
    ("%lmer -d sleep --ddf k", ["kenward-roger"]),
    ("%%lmer -d sleep --optimizer N", ["Nelder_Mead"]),
    ("%lmer -d sleep --contrasts Su", ["Subject"]),
    ("%lmer -d sleep --contrasts Subject=he", ["helmert"]),
    ("%lmer -d sleep --contrasts Subject=sum,Do", ["Dose"]),
    ("%lmer -d sleep --factors Days,Su", ["Subject"]),
    ("%lmer -d sleep --weights D", ["Days", "Dose"]),
    ("%lmer -d sleep --emtrends Da", ["Days"]),
    ("%lmer -d sleep --emmeans Days,Su", ["Subject"]),
    ("%lmer -d sleep --by Su", ["Subject"]),
    ("%lmer -d sleep --at D", ["Days", "Dose"]),
    ("%lmer -d sleep --at Days=", []),
    ("%lmer -d sl", ["sleep"]),  # not sub: a DataFrame subclass could run code
    # %glmmtmb: glmmTMB's families, its one-sided formulas; %clmm: links, thresholds
    ("%glmmtmb -d sleep --family nb", ["nbinom1", "nbinom2"]),
    ("%glmmtmb -d sleep --family tr", ["truncated_poisson", "truncated_nbinom2"]),
    ("%glmmtmb -d sleep --zi D", ["Days", "Dose"]),
    ('%glmmtmb -d sleep --disp "~ Da', ["Days"]),
    ("%glmmtmb -d sleep --zi ~Days Reaction ~ Da", ["Days"]),
    ("m = %glmmtmb -d sleep --re", ["--reml"]),
    ("%%glmmtmb -d sleep --family beta\nReaction ~ (1 | Su", ["Subject"]),
    ("%clmm -d sleep --link c", ["cloglog", "cauchit"]),
    ("%clmm -d sleep --threshold sym", ["symmetric", "symmetric2"]),
    ("%clmm -d sleep --fam", []),  # %clmm has no --family
    ("%%clmm -d sleep --th", ["--threshold"]),
    ("%%clmm -d sleep\nReaction ~ Days + (1 | Su", ["Subject"]),
    # outside our magics nothing
    ("x = lo", []),
    ("%time Reaction ~ Da", []),
    ("%lmerx -d sleep y ~ Da", []),
])
def test_completions(text, expected):
    assert texts(text) == expected


@pytest.mark.parametrize("name, bare", [
    ("Days", True), (".x", True), ("a.b_c2", True), (".", True), ("2x", False),
    (".2x", False), ("my col", False), ("if", False), ("TRUE", False), ("...", False),
    ("..1", False), ("x-y", False), ("", False),
])
def test_is_r_name(name, bare):
    assert is_r_name(name) is bare


def test_the_cursor_inside_the_text():
    text = "%%lmer -d sleep --ddf s\nReaction ~ Days"
    assert texts(text, cursor=text.index("\n")) == ["satterthwaite"]


def test_completion_runs_no_user_code():
    Sneaky.ran.clear()
    for expr in ("sneaky.frame", "sneaky.other", "sub", "sleep[sleep.Days > 0]",
                 "__import__('os').getcwd()", "number", "missing"):
        assert resolve_frame(expr, NS) is None, expr
        assert texts(f"%lmer -d {expr} y ~ D") == [], expr
    assert Sneaky.ran == []


def test_polars_frames():
    pl = pytest.importorskip("polars")
    ns = {"p": pl.DataFrame({"yield": [1.0], "block": ["a"]})}
    text = "%lmer -d p yield ~ 1 + (1 | bl"
    assert [c.text for c in complete(text, 0, len(text), ns)["completions"]] == ["block"]


# -- through IPython's Completer, with the built-in matchers beside ours

def shell_completions(shell, text):
    with provisionalcompleter():
        return [(c.text, text[c.start:c.end], c.type)
                for c in shell.Completer.completions(text, len(text))]


@pytest.fixture()
def ns(shell):
    shell.user_ns.update(sleep=FRAME)
    return shell.user_ns


def test_completer_in_process(shell, ns):
    assert shell_completions(shell, "%lmer -d sleep Reaction ~ Da") == [
        ("Days", "Da", "column")]
    assert shell_completions(shell, "%%lmer -d sleep\nReaction ~ `my") == [
        ("`my col`", "`my", "column")]
    assert shell_completions(shell, "%%glmer -d sleep --family b") == [
        ("binomial", "b", "value")]
    # loading the extension again does not register the matcher twice
    shell.run_line_magic("reload_ext", "lmermagic")
    ids = [getattr(m, "matcher_identifier", None) for m in shell.Completer.custom_matchers]
    assert ids.count(MATCHER_ID) == 1


def test_builtin_completers_keep_working(shell, ns):
    assert ("import", "imp", "keyword") in shell_completions(shell, "imp")
    assert any(t == "%timeit" for t, _, _ in shell_completions(shell, "%timei"))
    assert any(t == "operator" for t, _, _ in shell_completions(shell, "import operat"))
    # -d takes any expression: Python's names stay beside the frames
    found = shell_completions(shell, "%lmer -d sl")
    assert ("sleep", "sl", "DataFrame") in found


# -- a real kernel, as JupyterLab, Notebook 7 and VS Code ask it

def test_complete_request_in_a_kernel():
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    km = KernelManager(kernel_name="python3",
                       kernel_spec_manager=KernelSpecManager(kernel_dirs=[]))
    km.start_kernel(extra_arguments=["--IPKernelApp.log_level=ERROR"])
    try:
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=60)
        reply = kc.execute_interactive(
            "%load_ext lmermagic\nimport pandas as pd\n"
            "sleep = pd.DataFrame({'Reaction': [1.0], 'Days': [1], 'Subject': ['a']})",
            timeout=60)
        assert reply["content"]["status"] == "ok"

        def ask(code):
            msg_id = kc.complete(code, len(code))
            while True:
                msg = kc.get_shell_msg(timeout=30)
                if msg["parent_header"].get("msg_id") == msg_id:
                    content = msg["content"]
                    start, end = content["cursor_start"], content["cursor_end"]
                    return content["matches"], code[start:end]

        assert ask("%%lmer -d sleep\nReaction ~ Days + (Days | Sub") == (["Subject"], "Sub")
        assert ask("%lmer -d sleep --ddf k") == (["kenward-roger"], "k")
        matches, _ = ask("import o")
        assert "os" in matches
        kc.stop_channels()
    finally:
        km.shutdown_kernel(now=True)
