"""The transform ships alone: its folder's .py files at the root of a Lambda zip, stdlib only."""

import ast
import base64
import importlib.util
import json
import subprocess
import sys
import zipfile
import zipimport
from pathlib import Path

import pytest

import sales_cdc.transform.handler as package_handler

TRANSFORM_DIR = Path(package_handler.__file__).resolve().parent
STREAM_RECORD = {
    "eventID": "e-1",
    "eventName": "INSERT",
    "dynamodb": {
        "ApproximateCreationDateTime": 1_772_874_000,
        "Keys": {"orderId": {"S": "o-1"}},
        "NewImage": {"orderId": {"S": "o-1"}, "unitPrice": {"N": "12.30"}},
        "SequenceNumber": "1",
    },
}
EVENT = {
    "records": [
        {
            "recordId": "r-1",
            "approximateArrivalTimestamp": 0,
            "data": base64.b64encode(json.dumps(STREAM_RECORD).encode()).decode(),
        }
    ]
}


@pytest.fixture
def lambda_zip(tmp_path: Path) -> Path:
    """A Lambda deployment zip built the way the project deploys it: .py files at the root."""
    path = tmp_path / "transform.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for source in sorted(TRANSFORM_DIR.glob("*.py")):
            archive.write(source, arcname=source.name)
    return path


def test_handler_loads_from_the_zip_and_transforms(lambda_zip):
    spec = zipimport.zipimporter(str(lambda_zip)).find_spec("handler")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.__file__.startswith(str(lambda_zip))
    [out] = module.lambda_handler(EVENT, None)["records"]
    assert out["result"] == "Ok"
    assert out == package_handler.lambda_handler(EVENT, None)["records"][0]


def test_handler_runs_from_the_zip_in_a_bare_interpreter(lambda_zip, tmp_path):
    """No site-packages, no project on sys.path: only the stdlib and the zip, as on Lambda."""
    script = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(lambda_zip)!r})\n"
        "import handler\n"
        f"event = json.loads({json.dumps(EVENT)!r})\n"
        "[out] = handler.lambda_handler(event, None)['records']\n"
        "assert handler.__file__.startswith(sys.path[0]), handler.__file__\n"
        "assert not [m for m in sys.modules if m.startswith('sales_cdc')]\n"
        "print(out['result'])\n"
    )
    completed = subprocess.run(
        [sys.executable, "-I", "-S", "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "Ok"


def imported_modules(source: Path) -> list[tuple[str, int]]:
    """(module, relative level) of every import statement in a source file."""
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, 0) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.module or "", node.level))
    return found


def test_handler_imports_only_the_standard_library():
    imports = imported_modules(TRANSFORM_DIR / "handler.py")
    assert imports
    for module, level in imports:
        assert level == 0, f"relative import of {module!r}"
        assert module.split(".")[0] in sys.stdlib_module_names, module


def test_package_init_imports_nothing():
    assert imported_modules(TRANSFORM_DIR / "__init__.py") == []
