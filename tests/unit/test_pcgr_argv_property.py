"""Property: no option value or member name puts a shell character, a path separator or a space
onto a PCGR or CPSR command line, except in the engine's own paths.

Hypothesis draws sample TOMLs (known option names with valid, hostile and arbitrary values, and
arbitrary names) and member names, for every release of both programs and both ways of running
them, and asks the engine for the argv the worker would run (`PcgrEngine.preview`: the same checks
and build as `command`, no file system). Either the engine refuses the sample, or every argument
it built is one of its own (the executable, the runtime's arguments, its paths), an input path
under the sample's root whose member part is a safe member name, or a flag, number or plain token.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from capillary.contract import vocabulary
from capillary.contract.layout import CONTAINER_INPUT
from capillary.contract.pcgr_options import TABLES
from capillary.worker.engines import EngineInputError
from capillary.worker.engines.cpsr import CpsrEngine
from capillary.worker.engines.pcgr import PcgrConfig, PcgrEngine
from tests.support.pcgr_facts import valid_values

FORBIDDEN = set(";&|$`\\\"'<>(){}[]*?!#~/ \t\n\r\x00=") | {"\x1b"}
ROOT = Path("/srv/capillary/work/msg-1/input")
OUTDIR = Path("/srv/capillary/work/msg-1/out/b1-0a1b2c-somatic")
HOSTILE_PARTS = [
    ";",
    "$(id)",
    "${IFS}",
    "`id`",
    "|",
    "&&",
    ">",
    "<",
    "'",
    '"',
    "\\",
    " ",
    "\t",
    "\n",
    "/",
    "..",
    "*",
    "?",
    "~",
    "#",
    "!",
    "=",
    "\x00",
    "\x1b[2J",
    "-rf",
    "\ufeff",
    "é",
]
SAFE = st.text(alphabet="abcXYZ019_.-", max_size=8)
NAMES = sorted({name for t in TABLES.values() for name in t.options})
# Per (program, release), (option, repr of a value) pairs the option alone may take.
VALID = {
    key: sorted({(n, repr(v)) for n, spec in TABLES[key].options.items() for v in valid_values(spec)})
    for key in TABLES
}
ENGINES = {"pcgr": PcgrEngine, "cpsr": CpsrEngine}
# What a program requires besides genome_assembly, so a benign sample builds.
REQUIRED = {"pcgr": {}, "cpsr": {"panel_id": "0"}}


def hostile_text() -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(max_size=30),
        st.builds(lambda a, h, b: a + h + b, SAFE, st.sampled_from(HOSTILE_PARTS), SAFE),
    )


def option_value() -> st.SearchStrategy[Any]:
    return st.one_of(
        hostile_text(),
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.floats(allow_nan=True, allow_infinity=True),
        st.booleans(),
        st.sampled_from(["TDP", "TAF", "WGS", "grch37", "absolute", "tcga,depmap"]),
    )


@st.composite
def sample_options(draw: st.DrawFn, key: tuple[str, str]) -> dict[str, Any]:
    options: dict[str, Any] = {"genome_assembly": draw(st.sampled_from(["grch38", "grch37"]))}
    options.update(REQUIRED[key[0]])
    if draw(st.booleans()):
        # The tags and the switch most thresholds ask for, so more samples get to the build
        options.update(tumor_dp_tag="TDP", tumor_af_tag="TAF", control_dp_tag="NDP", control_af_tag="NAF")
        options["estimate_tmb"] = True
    # Valid values of the release's own options (so the engine often builds something) ...
    for name, shown in draw(st.lists(st.sampled_from(VALID[key]), max_size=5)):
        options[name] = eval(shown)  # noqa: S307 - a repr of a value this module listed itself
    # ... and, in most samples, something hostile: any option's value, or an arbitrary name
    hostile = draw(st.sampled_from(["none", "none", "value", "name"]))
    if hostile == "value":
        options[draw(st.sampled_from(NAMES))] = draw(option_value())
    elif hostile == "name":
        options[draw(hostile_text())] = draw(option_value())
    return options


def member() -> st.SearchStrategy[str]:
    # Mostly plain names (so the options decide), the rest hostile or arbitrary.
    plain = st.sampled_from(["s/tumor.vcf.gz", "tumor.vcf.gz", "a/b/T-1_x.vcf.gz"])
    hostile = st.builds(lambda a, h, b: f"s/{a}{h}{b}.vcf.gz", SAFE, st.sampled_from(HOSTILE_PARTS), SAFE)
    return st.integers(min_value=0, max_value=9).flatmap(
        lambda i: plain if i < 7 else hostile if i < 9 else st.text(max_size=40)
    )


def own_arguments(cfg: PcgrConfig, program: str) -> set[str]:
    return {
        str(cfg.conda_env / "bin" / program),
        str(cfg.vep_dir),
        str(cfg.assembly_refdata_dir("grch38")),
        str(cfg.assembly_refdata_dir("grch37")),
        str(OUTDIR),
    }


def check_argument(arg: str, own: set[str]) -> None:
    if arg in own:
        return
    for root in (str(ROOT) + "/", CONTAINER_INPUT + "/"):
        if arg.startswith(root):
            rest = arg.removeprefix(root)
            assert vocabulary.member_problem(rest) is None, arg
            assert not (set(rest) - {"/"}) & FORBIDDEN, arg
            return
    assert not set(arg) & FORBIDDEN, arg
    assert vocabulary.argument_problem(arg) is None, arg


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    key=st.sampled_from(list(TABLES)),
    method=st.sampled_from(["conda", "container"]),
    vcf=member(),
    cna=st.one_of(st.none(), st.just("s/s.cna.tsv"), member()),
    threads=st.integers(min_value=1, max_value=256),
)
def test_nothing_a_sample_carries_reaches_argv_unsafe(
    data: st.DataObject, key: tuple[str, str], method: str, vcf: str, cna: str | None, threads: int
) -> None:
    program, release = key
    options = data.draw(sample_options(key))
    cfg = PcgrConfig(release=release, method=method, threads=threads, container_image="localhost/pcgr:x")
    engine = ENGINES[program](cfg)
    try:
        argv = engine.preview(
            ROOT, [ROOT / vcf], ROOT / cna if cna else None, options, "b1-0a1b2c-somatic", OUTDIR, user="1:1"
        )
    except EngineInputError:
        event("refused")
        return
    event("built")
    own = own_arguments(cfg, program)
    if method == "container":
        # Everything up to the image's `pcgr` (`cpsr`) is the runtime's: the same for any sample
        benign = engine.preview(
            ROOT,
            [ROOT / "s/t.vcf.gz"],
            None,
            {"genome_assembly": options["genome_assembly"], **REQUIRED[program]},
            "b1-0a1b2c-somatic",
            OUTDIR,
            user="1:1",
        )
        head = argv[: argv.index(program) + 1]
        assert head == benign[: benign.index(program) + 1]
        argv = argv[len(head) :]
        own |= {"/mnt/refdata", "/mnt/vep", "/mnt/output"}
    for arg in argv:
        check_argument(arg, own)
