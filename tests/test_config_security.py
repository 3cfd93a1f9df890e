"""Security: a config is data, never code (SPEC §10).

Loading a config may only pick among built-in names, names given to
``register_penalty`` and keys of an explicit ``registry``. Every other string,
import paths included, raises ``UnknownNameError`` before anything is imported
or called. Each payload below would leave a file behind or import a module on
the old loader, which resolved ``"module:attr"`` strings with importlib.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from arraypenalties import (
    MultiPipeline,
    Pipeline,
    UnknownNameError,
    pipeline,
    register_penalty,
)
from arraypenalties._lib.errors import InvalidTypeError, InvalidValueError

# a module that, when imported, writes a marker file and exposes a callable that writes another
_PAYLOAD_MODULE = """
import pathlib
pathlib.Path({imported!r}).write_text("imported")

def go(x, **kwargs):
    pathlib.Path({called!r}).write_text("called")
    return x.sum()
"""


@pytest.fixture
def payload(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """An importable module `ap_security_payload` whose import and call leave files."""
    imported, called = tmp_path / "imported.txt", tmp_path / "called.txt"
    module_dir = tmp_path / "mods"
    module_dir.mkdir()
    source = _PAYLOAD_MODULE.format(imported=str(imported), called=str(called))
    (module_dir / "ap_security_payload.py").write_text(source)
    monkeypatch.syspath_prepend(str(module_dir))
    return {"imported": imported, "called": called}


def _config(fn: str, opts: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    entry = {"name": "x", "fn": fn, "opts": opts or {}, **extra}
    return json.loads(json.dumps({"entries": [entry]}))


@pytest.mark.parametrize(
    "ref",
    [
        "ap_security_payload:go",
        "ap_security_payload.go",
        "ap_security_payload",
        "arraypenalties.penalties:l1",  # even the library's own functions: names only
    ],
)
def test_security_import_path_in_pipeline_config_imports_and_calls_nothing(
    payload: dict[str, Path], ref: str
) -> None:
    before = set(sys.modules)
    with pytest.raises(UnknownNameError, match="is not a built-in penalty or a registered name"):
        Pipeline.from_config(_config(ref)).compute_total(np.ones(3))
    assert "ap_security_payload" not in sys.modules
    assert set(sys.modules) == before
    assert not payload["imported"].exists()
    assert not payload["called"].exists()


def test_security_import_path_in_multipipeline_config(payload: dict[str, Path]) -> None:
    config = _config("ap_security_payload:go", inputs=["a", "b"])
    with pytest.raises(UnknownNameError):
        MultiPipeline.from_config(config)
    assert "ap_security_payload" not in sys.modules
    assert not payload["imported"].exists()


def test_security_import_path_in_add_and_builder(payload: dict[str, Path]) -> None:
    with pytest.raises(UnknownNameError):
        Pipeline().add("x", "ap_security_payload:go")
    with pytest.raises(UnknownNameError):
        MultiPipeline().add("x", "ap_security_payload:go", inputs=("a",))
    with pytest.raises(UnknownNameError):
        pipeline(["ap_security_payload:go"])
    with pytest.raises(UnknownNameError):
        pipeline([("ap_security_payload:go", {"weight": 2.0})])
    assert "ap_security_payload" not in sys.modules
    assert not payload["imported"].exists()


def test_security_known_attack_strings_run_nothing_in_a_fresh_interpreter(
    tmp_path: Path,
) -> None:
    """The payloads of the issue, in a clean process: no module appears, no file is written."""
    marker = tmp_path / "pwned.txt"
    script = textwrap.dedent(
        f"""
        import json, sys
        import numpy as np
        import arraypenalties as ap
        payloads = [
            ("pydoc:pipepager", {{"cmd": "touch {marker}"}}),
            ("os:system", {{"command": "touch {marker}"}}),
            ("subprocess:run", {{}}),
            ("numpy:ndarray.tofile", {{"fid": "{marker}"}}),
            ("torch:save", {{"f": "{marker}"}}),
            ("sys:exit", {{}}),
            ("this:nothing", {{}}),
            ("antigravity:fly", {{}}),
            ("builtins:eval", {{}}),
            ("os.system", {{}}),
        ]
        before = set(sys.modules)
        refused = 0
        for ref, opts in payloads:
            cfg = json.loads(json.dumps({{"entries": [{{"name": "x", "fn": ref, "opts": opts}}]}}))
            for cls in (ap.Pipeline, ap.MultiPipeline):
                try:
                    cls.from_config(cfg).compute_total(np.ones(3))
                except ap.UnknownNameError:
                    refused += 1
        new = sorted(set(sys.modules) - before)
        print(json.dumps({{"refused": refused, "new_modules": new}}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"refused": 20, "new_modules": []}
    assert not marker.exists()


def _tv(x: Any) -> Any:
    return (x[1:] - x[:-1]).__abs__().sum()


def test_registry_argument_resolves_names_for_one_call() -> None:
    config = _config("tv_for_one_call")
    with pytest.raises(UnknownNameError):
        Pipeline.from_config(config)
    loaded = Pipeline.from_config(config, registry={"tv_for_one_call": _tv})
    assert float(loaded.compute_total(np.array([0.0, 1.0, 3.0]))) == 3.0
    assert loaded.to_config()["entries"][0]["fn"] == "tv_for_one_call"


def test_registry_must_map_names_to_callables() -> None:
    with pytest.raises(InvalidTypeError, match="`registry`"):
        Pipeline.from_config(_config("l1"), registry=["l1"])  # type: ignore[arg-type]
    with pytest.raises(InvalidTypeError, match="`registry` entry 'bad'"):
        Pipeline.from_config(_config("bad"), registry={"bad": "os:system"})


def test_register_penalty_round_trips_and_refuses_bad_names() -> None:
    register_penalty("security_tv", _tv)
    register_penalty("security_tv", _tv)  # idempotent for the same function
    p = Pipeline().add("tv", _tv, weight=2.0)
    config = json.loads(json.dumps(p.to_config()))
    assert config["entries"][0]["fn"] == "security_tv"
    assert float(Pipeline.from_config(config).compute_total(np.array([0.0, 2.0]))) == 4.0
    with pytest.raises(InvalidValueError, match="already registered"):
        register_penalty("security_tv", lambda x: x.sum())
    with pytest.raises(InvalidValueError, match="must not contain ':'"):
        register_penalty("mod:fn", _tv)
    with pytest.raises(InvalidValueError, match="built-in"):
        register_penalty("l1", _tv)
    with pytest.raises(InvalidTypeError, match="must be callable"):
        register_penalty("not_callable", "os:system")  # type: ignore[arg-type]
    with pytest.raises(InvalidValueError, match="`inputs`"):
        register_penalty("zero_inputs", _tv, inputs=0)


def test_unregistered_function_cannot_be_written_to_a_config() -> None:
    def local(x: Any) -> Any:
        return x.sum()

    with pytest.raises(InvalidValueError, match="entry 'mine' cannot be written to a config"):
        Pipeline().add("mine", local).to_config()
