"""Where the Slovene SuperGLUE files come from and how slopeft lays them out.

The SloBench leaderboard's human-translated train and validation splits and its unlabelled test inputs
are the three QA zips its evaluator is run on; the machine-translated sets are the Slovene SuperGLUE
release's Google-MT translation of the full English sets (CLARIN.SI 11356/1380), which has no WSC.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from slopeft.data.catalogue import Dataset, Source
from slopeft.data.convert import convert_slo_superglue

_SLOBENCH_QA = (
    # Pinned to the commit that added the zips (listed in clarinsi/slobench-eval-docker at
    # e3345f801a7d7c94b231a8d233384f22030eff4b, folder evaluation_scripts/eval_question_answering).
    "https://raw.githubusercontent.com/clarinsi/slobench-eval-docker/"
    "e3345f801a7d7c94b231a8d233384f22030eff4b/evaluation_scripts/eval_question_answering/"
)
_SLOBENCH_EVIDENCE = (
    "github.com/clarinsi/slobench-eval-docker evaluation_scripts/eval_question_answering (README.md "
    "runs the evaluator on qa_validation.zip; evaluate.py reads <Task>.jsonl from the unzipped folder)"
)

SOURCES = (
    Source(
        "qa_train",
        _SLOBENCH_QA + "qa_train.zip",
        None,
        "CC BY-SA 4.0",
        "SloBench QA training split, human-translated: <Task>.jsonl -> "
        "human-translated/<Task>/train.jsonl",
        _SLOBENCH_EVIDENCE,
    ),
    Source(
        "qa_validation",
        _SLOBENCH_QA + "qa_validation.zip",
        None,
        "CC BY-SA 4.0",
        "SloBench QA validation split, human-translated: <Task>.jsonl -> "
        "human-translated/<Task>/val.jsonl",
        _SLOBENCH_EVIDENCE,
    ),
    Source(
        "qa_test",
        _SLOBENCH_QA + "qa_test.zip",
        None,
        "CC BY-SA 4.0",
        "SloBench QA test inputs without labels: <Task>.jsonl -> test-unlabelled/<Task>.jsonl",
        _SLOBENCH_EVIDENCE,
    ),
    Source(
        "googlemt",
        "https://www.clarin.si/repository/xmlui/bitstream/handle/11356/1380/"
        "SuperGLUE-GoogleMT.zip?sequence=2&isAllowed=y",
        None,
        "CC BY-SA 4.0",
        "Slovene SuperGLUE (hdl.handle.net/11356/1380), Google-MT translation of the full English "
        "sets: <Task>/{train,val}.jsonl -> machine-translated/<Task>/",
        "github.com/eriknovak/SLM4IE configs/data/download.yaml, entry superglue_sl (lists this URL "
        "and .../SuperGLUE-HumanT.zip?sequence=1&isAllowed=y)",
    ),
)


def superglue_dataset(folders: Sequence[str], machine_folders: Sequence[str]) -> Dataset:
    """The ``slo-superglue`` dataset of these task folders (``machine_folders``: those Google-MT has)."""
    layout = (
        f"  <root>/slo-superglue/human-translated/<Task>/{{train,val}}.jsonl   ({' '.join(folders)})\n"
        f"  <root>/slo-superglue/machine-translated/<Task>/{{train,val}}.jsonl ({' '.join(machine_folders)})\n"
        "  <root>/slo-superglue/test-unlabelled/<Task>.jsonl"
    )
    return Dataset(
        name="slo-superglue",
        probe="slo-superglue/human-translated",
        layout=layout,
        sources=SOURCES,
        convert=functools.partial(convert_slo_superglue, tasks=tuple(folders), machine_tasks=tuple(machine_folders)),
    )
